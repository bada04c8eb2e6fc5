//! Ledger entries as clients write and read them.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::ids::{
    AccountId, IdempotencyKey, LicenseId, NO_CONTROL_PATTERN, NO_NUL_PATTERN, check_text, shorten,
};
use super::ledger::UpdateType;
use super::quantity::Quantity;
use super::time::Timestamp;

/// String-to-string metadata, kept in key order.
pub type Metadata = BTreeMap<String, String>;

pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 100;
pub const MAX_METADATA_VALUE_CHARS: usize = 500;

/// Metadata within its limits, or a message naming the first thing over them.
pub fn check_metadata(metadata: &Metadata) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(format!(
            "`metadata` has {} keys; at most {MAX_METADATA_KEYS} are allowed",
            metadata.len()
        ));
    }
    for (key, value) in metadata {
        check_text(key, MAX_METADATA_KEY_CHARS)
            .map_err(|e| format!("`metadata` key `{}`: {e}", shorten(key)))?;
        if value.contains('\0') {
            return Err(format!("`metadata.{key}` must not contain NUL characters"));
        }
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(format!(
                "`metadata.{key}` must be at most {MAX_METADATA_VALUE_CHARS} characters"
            ));
        }
    }
    Ok(())
}

/// The schema of metadata as [`check_metadata`] accepts it, for the API's document.
pub fn metadata_schema() -> utoipa::openapi::schema::Object {
    metadata_schema_of(utoipa::openapi::schema::Type::Object.into())
}

/// [`metadata_schema`], or null: an optional field, which a client may also send as null.
pub fn optional_metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::Type;
    metadata_schema_of([Type::Object, Type::Null].into_iter().collect())
}

fn metadata_schema_of(
    schema_type: utoipa::openapi::schema::SchemaType,
) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_METADATA_KEY_CHARS))
        .pattern(Some(NO_CONTROL_PATTERN));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_METADATA_VALUE_CHARS))
        .pattern(Some(NO_NUL_PATTERN));
    ObjectBuilder::new()
        .schema_type(schema_type)
        .max_properties(Some(MAX_METADATA_KEYS))
        .property_names(Some(key))
        .additional_properties(Some(value))
        .build()
}

/// An entry a client asks to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub account_id: AccountId,
    pub license_id: LicenseId,
    pub update_type: UpdateType,
    pub quantity: Quantity,
    /// As the client gave it; `None` means "now", resolved when the entry is written.
    pub effective_from: Option<Timestamp>,
    pub metadata: Option<Metadata>,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl NewEntry {
    /// A digest of what the client asked for, to tell an idempotent repeat from a
    /// different request reusing the key. An omitted `effectiveFrom` counts as omitted,
    /// so a retried request that left it out is still a repeat.
    pub fn fingerprint(&self) -> [u8; 32] {
        let canonical = serde_json::json!([
            self.account_id.as_str(),
            self.license_id.as_str(),
            self.update_type.as_str(),
            self.quantity.to_string(),
            self.effective_from.map(|t| t.micros()),
            self.metadata,
        ]);
        Sha256::digest(canonical.to_string().as_bytes()).into()
    }

    /// The entry as written at `effective_from` (the request's, or the write's instant
    /// when it gave none), with the absolute quantity resolution gave it.
    pub fn written(
        &self,
        absolute: Quantity,
        effective_from: Timestamp,
        created_at: Timestamp,
    ) -> LedgerEntry {
        LedgerEntry {
            license_id: self.license_id.clone(),
            account_id: self.account_id.clone(),
            quantity: absolute,
            effective_from,
            metadata: self.metadata.clone(),
            created_at,
        }
    }
}

/// An entry in the ledger, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub license_id: LicenseId,
    pub account_id: AccountId,
    /// The entry's absolute quantity under the current ledger.
    pub quantity: Quantity,
    pub effective_from: Timestamp,
    pub metadata: Option<Metadata>,
    /// When the entry arrived.
    pub created_at: Timestamp,
}
