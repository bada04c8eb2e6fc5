//! How PostgreSQL's values meet the SQL both backends share: the listing queries'
//! parameters going in, and rows coming out through [`Columns`].

use bytes::BytesMut;
use rust_decimal::Decimal;
use tokio_postgres::Row;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::domain::auth::KeyDigest;
use crate::domain::ids::{
    ApiKeyId, BusinessId, CustomerId, InstanceId, LicenseKeyId, ProductId, SigningKeyId, WebhookId,
};
use crate::domain::quantity::Quantity;
use crate::storage::error::Result;
use crate::storage::listing::Param;
use crate::storage::rows::{Columns, corrupt};

/// Binds the shared listing queries' parameters, in order.
pub(super) fn params<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) => text as &(dyn ToSql + Sync),
            Param::Int(int) => int as &(dyn ToSql + Sync),
        })
        .collect()
}

impl Columns for Row {
    fn text(&self, column: usize) -> Result<String> {
        self.try_get(column).map_err(corrupt)
    }

    fn text_or_null(&self, column: usize) -> Result<Option<String>> {
        self.try_get(column).map_err(corrupt)
    }

    fn bytes(&self, column: usize) -> Result<Vec<u8>> {
        self.try_get(column).map_err(corrupt)
    }

    fn int(&self, column: usize) -> Result<i64> {
        self.try_get(column).map_err(corrupt)
    }

    fn int_or_null(&self, column: usize) -> Result<Option<i64>> {
        self.try_get(column).map_err(corrupt)
    }

    fn flag(&self, column: usize) -> Result<bool> {
        self.try_get(column).map_err(corrupt)
    }

    fn digest_matches(&self, column: usize, digest: KeyDigest) -> Result<bool> {
        let stored: &[u8] = self.try_get(column).map_err(corrupt)?;
        Ok(digest.matches(stored))
    }

    fn quantity(&self, column: usize) -> Result<Quantity> {
        let value: Decimal = self.try_get(column).map_err(corrupt)?;
        Quantity::new(value).map_err(corrupt)
    }

    fn quantity_or_null(&self, column: usize) -> Result<Option<Quantity>> {
        let value: Option<Decimal> = self.try_get(column).map_err(corrupt)?;
        value.map(|v| Quantity::new(v).map_err(corrupt)).transpose()
    }

    fn decimal(&self, column: usize) -> Result<Decimal> {
        self.try_get(column).map_err(corrupt)
    }
}

/// Record ids are bound as the text they are.
macro_rules! bind_as_text {
    ($($id:ty),*) => {$(
        impl ToSql for $id {
            fn to_sql(
                &self,
                ty: &Type,
                out: &mut BytesMut,
            ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }
    )*};
}

bind_as_text!(
    BusinessId,
    CustomerId,
    ProductId,
    LicenseKeyId,
    InstanceId,
    ApiKeyId,
    SigningKeyId,
    WebhookId
);
