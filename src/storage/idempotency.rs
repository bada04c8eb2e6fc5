//! Idempotent ledger writes: what a repeat of an idempotency key is answered with, for
//! both backends. The first response is stored in a format of this module's own, fixed
//! here: rows written by any earlier version decode with it, whatever later becomes of
//! the API's response type or of how the domain's types serialize.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::entry::LedgerEntry;
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::metadata::Metadata;
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::storage::error::{Result, StorageError};
use crate::storage::rows::corrupt;
use crate::storage::store::Appended;

/// `ledger_idempotency.response`: the entry as first answered, with its instants as
/// RFC 3339 text and its quantity as a JSON number.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredResponse {
    license_id: String,
    account_id: String,
    quantity: Box<RawValue>,
    effective_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
    created_at: String,
}

/// The text stored for a new entry's idempotency key.
pub fn stored_response(entry: &LedgerEntry) -> Result<String> {
    let unstorable =
        |e: serde_json::Error| StorageError::Internal(format!("unstorable value: {e}"));
    let stored = StoredResponse {
        license_id: entry.license_id.as_str().to_owned(),
        account_id: entry.account_id.as_str().to_owned(),
        quantity: RawValue::from_string(entry.quantity.to_string()).map_err(unstorable)?,
        effective_from: entry.effective_from.to_string(),
        metadata: entry.metadata.as_ref().map(|m| m.as_map().clone()),
        created_at: entry.created_at.to_string(),
    };
    serde_json::to_string(&stored).map_err(unstorable)
}

/// The answer to a request whose idempotency key was claimed before: the first response
/// if the request is the same one (its fingerprint matches) and that response was
/// stored; `IdempotencyMismatch` otherwise.
pub fn replay(
    stored_fingerprint: &[u8],
    response: Option<&str>,
    fingerprint: &[u8],
) -> Result<Appended> {
    match response {
        Some(response) if stored_fingerprint == fingerprint => {
            Ok(Appended::Replayed(decode(response)?))
        }
        _ => Err(StorageError::IdempotencyMismatch),
    }
}

fn decode(text: &str) -> Result<LedgerEntry> {
    let stored: StoredResponse = serde_json::from_str(text).map_err(corrupt)?;
    let instant = |text: &str| Timestamp::parse(text).map_err(corrupt);
    Ok(LedgerEntry {
        license_id: LicenseId::from_stored(stored.license_id).map_err(corrupt)?,
        account_id: AccountId::from_stored(stored.account_id).map_err(corrupt)?,
        quantity: Quantity::parse(stored.quantity.get()).map_err(corrupt)?,
        effective_from: instant(&stored.effective_from)?,
        metadata: stored.metadata.map(Metadata::from_stored),
        created_at: instant(&stored.created_at)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response stored by earlier versions, byte for byte: it must replay as it was.
    #[test]
    fn a_stored_response_replays_the_entry_it_was_written_for() {
        let earlier = r#"{"licenseId":"seats","accountId":"acme","quantity":12.5,"effectiveFrom":"2024-03-01T00:00:00Z","metadata":{"po":"7"},"createdAt":"2024-03-02T10:00:00.123456Z"}"#;
        let entry = decode(earlier).unwrap();
        assert_eq!(entry.quantity.to_string(), "12.5");
        assert_eq!(entry.created_at.to_string(), "2024-03-02T10:00:00.123456Z");
        assert_eq!(stored_response(&entry).unwrap(), earlier);

        let fingerprint = [7u8; 32];
        let replayed = replay(&fingerprint, Some(earlier), &fingerprint).unwrap();
        assert_eq!(replayed, Appended::Replayed(entry));
        assert!(matches!(
            replay(&[8u8; 32], Some(earlier), &fingerprint),
            Err(StorageError::IdempotencyMismatch)
        ));
        assert!(matches!(
            replay(&fingerprint, None, &fingerprint),
            Err(StorageError::IdempotencyMismatch)
        ));
    }
}
