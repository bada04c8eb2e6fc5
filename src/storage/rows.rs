//! How records are kept in rows, for both backends: the columns each query selects, in
//! the order the decoders read them, and the decoding of a row into a domain record,
//! which checks every stored value.

use crate::domain::catalog::{Customer, Instance, KeySource, LicenseKey, Product};
use crate::domain::entry::LedgerEntry;
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::license::KeyDuration;
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::storage::listing::ListedEntry;
use crate::storage::{Result, StorageError};

/// A row selected with [`ENTRY_COLUMNS`], before its values are checked.
pub struct EntryRow {
    pub seq: i64,
    pub account_id: String,
    pub license_id: String,
    pub absolute: Quantity,
    pub effective_from: i64,
    pub metadata: Option<String>,
    pub created_at: i64,
}

impl EntryRow {
    pub fn decode(self) -> Result<ListedEntry> {
        Ok(ListedEntry {
            seq: self.seq,
            entry: LedgerEntry {
                license_id: LicenseId::parse(self.license_id).map_err(corrupt)?,
                account_id: AccountId::parse(self.account_id).map_err(corrupt)?,
                quantity: self.absolute,
                effective_from: timestamp(self.effective_from)?,
                metadata: self
                    .metadata
                    .map(|m| serde_json::from_str(&m))
                    .transpose()
                    .map_err(corrupt)?,
                created_at: timestamp(self.created_at)?,
            },
        })
    }
}

/// An instant read back from the database.
pub fn timestamp(micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros).ok_or_else(|| corrupt(format!("instant {micros} out of range")))
}

/// A value as the JSON text a column stores (metadata, a stored response).
pub fn json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StorageError::Internal(format!("unstorable value: {e}")))
}

/// A stored value that does not decode: the database holds something the server never writes.
pub fn corrupt(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("unreadable stored value: {error}"))
}

/// The columns every entry query selects, in the order backends decode them.
pub const ENTRY_COLUMNS: &str =
    "seq, account_id, license_id, absolute, effective_from, metadata, created_at";

/// Every API key with its business's name, for `licensed api-key list`.
pub const LIST_API_KEYS: &str = "SELECT k.id, b.name, k.read_only, k.created_at FROM api_keys k
     JOIN businesses b ON b.id = k.business_id ORDER BY b.name, k.created_at, k.id";

pub const CUSTOMER_COLUMNS: &str =
    "id, business_id, email, name, phone_number, metadata, created_at";
pub const PRODUCT_COLUMNS: &str = "id, business_id, name, description, license_key_activations_limit, \
     license_key_duration_count, license_key_duration_interval, license_key_activation_message, \
     metadata, created_at, updated_at";
pub const LICENSE_KEY_COLUMNS: &str = "id, business_id, key, customer_id, product_id, source, \
     activations_limit, instances_count, disabled, expires_at, payment_id, subscription_id, created_at";
pub const INSTANCE_COLUMNS: &str = "id, business_id, license_key_id, name, created_at";

pub struct CustomerRow {
    pub id: String,
    pub business_id: String,
    pub email: String,
    pub name: String,
    pub phone_number: Option<String>,
    pub metadata: String,
    pub created_at: i64,
}

impl CustomerRow {
    pub fn decode(self) -> Result<Customer> {
        Ok(Customer {
            id: self.id,
            business_id: self.business_id,
            email: self.email,
            name: self.name,
            phone_number: self.phone_number,
            metadata: serde_json::from_str(&self.metadata).map_err(corrupt)?,
            created_at: timestamp(self.created_at)?,
        })
    }
}

pub struct ProductRow {
    pub id: String,
    pub business_id: String,
    pub name: String,
    pub description: Option<String>,
    pub activations_limit: Option<i64>,
    pub duration_count: Option<i64>,
    pub duration_interval: Option<String>,
    pub activation_message: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProductRow {
    pub fn decode(self) -> Result<Product> {
        let duration = match (self.duration_count, self.duration_interval) {
            (Some(count), Some(interval)) => Some(KeyDuration {
                count: u32::try_from(count).map_err(corrupt)?,
                interval: serde_json::from_value(serde_json::Value::String(interval))
                    .map_err(corrupt)?,
            }),
            _ => None,
        };
        Ok(Product {
            id: self.id,
            business_id: self.business_id,
            name: self.name,
            description: self.description,
            license_key_activations_limit: self.activations_limit.map(count).transpose()?,
            license_key_duration: duration,
            license_key_activation_message: self.activation_message,
            metadata: serde_json::from_str(&self.metadata).map_err(corrupt)?,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

/// How a product's key duration is stored: `(count, interval name)`.
pub fn duration_columns(duration: Option<KeyDuration>) -> (Option<i64>, Option<String>) {
    match duration {
        Some(d) => (
            Some(i64::from(d.count)),
            serde_json::to_value(d.interval)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
        ),
        None => (None, None),
    }
}

pub struct LicenseKeyRow {
    pub id: String,
    pub business_id: String,
    pub key: String,
    pub customer_id: String,
    pub product_id: String,
    pub source: String,
    pub activations_limit: Option<i64>,
    pub instances_count: i64,
    pub disabled: bool,
    pub expires_at: Option<i64>,
    pub payment_id: Option<String>,
    pub subscription_id: Option<String>,
    pub created_at: i64,
}

impl LicenseKeyRow {
    pub fn decode(self) -> Result<LicenseKey> {
        Ok(LicenseKey {
            id: self.id,
            business_id: self.business_id,
            key: self.key,
            customer_id: self.customer_id,
            product_id: self.product_id,
            source: KeySource::parse(&self.source)
                .ok_or_else(|| corrupt(format!("key source {}", self.source)))?,
            activations_limit: self.activations_limit.map(count).transpose()?,
            instances_count: count(self.instances_count)?,
            disabled: self.disabled,
            expires_at: self.expires_at.map(timestamp).transpose()?,
            payment_id: self.payment_id,
            subscription_id: self.subscription_id,
            created_at: timestamp(self.created_at)?,
        })
    }
}

pub struct InstanceRow {
    pub id: String,
    pub business_id: String,
    pub license_key_id: String,
    pub name: String,
    pub created_at: i64,
}

impl InstanceRow {
    pub fn decode(self) -> Result<Instance> {
        Ok(Instance {
            id: self.id,
            business_id: self.business_id,
            license_key_id: self.license_key_id,
            name: self.name,
            created_at: timestamp(self.created_at)?,
        })
    }
}

fn count(value: i64) -> Result<u32> {
    u32::try_from(value).map_err(corrupt)
}
