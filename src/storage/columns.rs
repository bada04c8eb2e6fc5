//! The columns each query selects, in the order the decoders of `rows.rs` read them,
//! and how a value that is neither text nor a number is written into its column;
//! written once for both backends.

use crate::domain::license::KeyDuration;
use crate::storage::error::{Result, StorageError};

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
     metadata, created_at, updated_at, details";
pub const LICENSE_KEY_COLUMNS: &str = "id, business_id, key, customer_id, product_id, source, \
     activations_limit, instances_count, disabled, expires_at, payment_id, subscription_id, created_at";
pub const INSTANCE_COLUMNS: &str = "id, business_id, license_key_id, name, created_at";

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

/// A value as the JSON text a column stores (metadata, a product's details).
pub fn json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StorageError::Internal(format!("unstorable value: {e}")))
}
