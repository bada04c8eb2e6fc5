//! Records as the APIs show them: one shape for a response and for the `data` of the
//! webhook event that announces the same change.

use serde::Serialize;
use utoipa::ToSchema;

use super::catalog::{Instance, KeySource, LicenseKey};
use super::entry::LedgerEntry;
use super::ids::{AccountId, LicenseId};
use super::license::KeyStatus;
use super::metadata::Metadata;
use super::quantity::Quantity;
use super::seats::{HeartbeatInterval, SeatBinding};
use super::time::Timestamp;

/// Dodo's `LicenseKey`.
#[derive(Serialize, ToSchema)]
#[schema(as = LicenseKey)]
pub struct LicenseKeyView {
    id: String,
    brand_id: String,
    business_id: String,
    created_at: Timestamp,
    customer_id: String,
    instances_count: u32,
    key: String,
    product_id: String,
    source: KeySource,
    status: KeyStatus,
    #[schema(required = true)]
    activations_limit: Option<u32>,
    #[schema(required = true)]
    expires_at: Option<Timestamp>,
    #[schema(required = true)]
    payment_id: Option<String>,
    #[schema(required = true)]
    subscription_id: Option<String>,
    #[schema(required = true)]
    heartbeat_interval: Option<HeartbeatInterval>,
    /// The ledger pair whose quantity is the limit; null when the key is not bound.
    #[schema(required = true)]
    seats: Option<SeatBinding>,
}

impl LicenseKeyView {
    /// The key as it is at `now` (its status depends on the time).
    pub fn at(k: LicenseKey, brand_id: String, now: Timestamp) -> Self {
        Self {
            status: k.state().status(now),
            id: k.id.into_string(),
            brand_id,
            business_id: k.business_id.into_string(),
            created_at: k.created_at,
            customer_id: k.customer_id.into_string(),
            instances_count: k.instances_count,
            key: k.key,
            product_id: k.product_id.into_string(),
            source: k.source,
            activations_limit: k.activations_limit,
            expires_at: k.expires_at,
            payment_id: k.payment_id,
            subscription_id: k.subscription_id,
            heartbeat_interval: k.heartbeat_interval,
            seats: k.seats,
        }
    }
}

/// Dodo's `LicenseKeyInstance`.
#[derive(Serialize, ToSchema)]
#[schema(as = LicenseKeyInstance)]
pub struct InstanceView {
    id: String,
    business_id: String,
    created_at: Timestamp,
    license_key_id: String,
    name: String,
    #[schema(required = true)]
    fingerprint: Option<String>,
    /// Null when the key has no heartbeat interval.
    #[schema(required = true)]
    last_heartbeat_at: Option<Timestamp>,
    /// When the instance dies unless it beats again; null without a heartbeat interval.
    #[schema(required = true)]
    heartbeat_expires_at: Option<Timestamp>,
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Self {
            id: i.id.into_string(),
            business_id: i.business_id.into_string(),
            created_at: i.created_at,
            license_key_id: i.license_key_id.into_string(),
            name: i.name,
            fingerprint: i.fingerprint,
            last_heartbeat_at: i.last_heartbeat_at,
            heartbeat_expires_at: i.heartbeat_expires_at,
        }
    }
}

/// An entry in the ledger, shaped exactly as the Togai `LicenseUpdateResponse`.
// `deny_unknown_fields` and `default` change nothing when serializing; utoipa reads them
// into the schema (no additional properties; `metadata` optional), as Togai's says.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = LicenseUpdateResponse)]
pub struct LicenseUpdateResponse {
    license_id: LicenseId,
    account_id: AccountId,
    /// The entry's absolute quantity under the current ledger.
    quantity: Quantity,
    effective_from: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    /// When the entry arrived.
    created_at: Timestamp,
}

impl From<LedgerEntry> for LicenseUpdateResponse {
    fn from(entry: LedgerEntry) -> Self {
        LicenseUpdateResponse {
            license_id: entry.license_id,
            account_id: entry.account_id,
            quantity: entry.quantity,
            effective_from: entry.effective_from,
            metadata: entry.metadata,
            created_at: entry.created_at,
        }
    }
}
