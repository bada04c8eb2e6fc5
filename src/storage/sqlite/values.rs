//! How SQLite's values meet the SQL both backends share: the listing queries'
//! parameters going in, and rows coming out through [`Columns`].

use rusqlite::Row;
use rust_decimal::Decimal;

use crate::domain::auth::KeyDigest;
use crate::domain::ids::{
    ApiKeyId, BusinessId, CustomerId, InstanceId, LicenseKeyId, ProductId, SigningKeyId, WebhookId,
};
use crate::domain::quantity::Quantity;
use crate::storage::error::Result;
use crate::storage::listing::Param;
use crate::storage::rows::{Columns, corrupt};

/// The shared listing queries' parameters, bound as they are.
impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            Param::Text(text) => (*text).into(),
            Param::Int(int) => (*int).into(),
        })
    }
}

impl Columns for Row<'_> {
    fn text(&self, column: usize) -> Result<String> {
        self.get(column).map_err(corrupt)
    }

    fn text_or_null(&self, column: usize) -> Result<Option<String>> {
        self.get(column).map_err(corrupt)
    }

    fn bytes(&self, column: usize) -> Result<Vec<u8>> {
        self.get(column).map_err(corrupt)
    }

    fn int(&self, column: usize) -> Result<i64> {
        self.get(column).map_err(corrupt)
    }

    fn int_or_null(&self, column: usize) -> Result<Option<i64>> {
        self.get(column).map_err(corrupt)
    }

    fn flag(&self, column: usize) -> Result<bool> {
        self.get(column).map_err(corrupt)
    }

    fn digest_matches(&self, column: usize, digest: KeyDigest) -> Result<bool> {
        let stored = self.get_ref(column).map_err(corrupt)?;
        Ok(digest.matches(stored.as_blob().map_err(corrupt)?))
    }

    /// Quantities are kept as decimal text: SQLite has no exact decimal type.
    fn quantity(&self, column: usize) -> Result<Quantity> {
        let text: String = self.get(column).map_err(corrupt)?;
        Quantity::parse(&text).map_err(corrupt)
    }

    fn quantity_or_null(&self, column: usize) -> Result<Option<Quantity>> {
        let text: Option<String> = self.get(column).map_err(corrupt)?;
        text.map(|t| Quantity::parse(&t).map_err(corrupt))
            .transpose()
    }

    fn decimal(&self, column: usize) -> Result<Decimal> {
        let text: String = self.get(column).map_err(corrupt)?;
        Decimal::from_str_exact(&text).map_err(corrupt)
    }
}

/// Record ids are bound as the text they are.
macro_rules! bind_as_text {
    ($($id:ty),*) => {$(
        impl rusqlite::ToSql for $id {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
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
