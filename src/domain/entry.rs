//! Ledger entries as clients write and read them.

use sha2::{Digest, Sha256};

use super::ids::{AccountId, IdempotencyKey, LicenseId};
use super::ledger::UpdateType;
use super::metadata::Metadata;
use super::quantity::Quantity;
use super::time::Timestamp;

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
