//! What webhooks announce: one event per change, its body rendered when the change is
//! written, so that it tells what the change did however the record changes later.

use serde::Serialize;

use super::catalog::{Instance, LicenseKey};
use super::entry::LedgerEntry;
use super::ids::{BusinessId, MessageId};
use super::seats::Departure;
use super::time::Timestamp;
use super::views::{InstanceView, LicenseKeyView, LicenseUpdateResponse};
use super::webhooks::EventType;

/// An event as recorded with its change, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `webhook-id` of every delivery of the event.
    pub id: MessageId,
    pub business_id: BusinessId,
    pub event_type: EventType,
    pub timestamp: Timestamp,
    /// `{"business_id", "type", "timestamp", "data"}`, the JSON delivered.
    pub body: String,
}

impl Event {
    /// `license_key.created` or `license_key.updated`: the key as its change left it.
    pub fn license_key(
        event_type: EventType,
        key: &LicenseKey,
        brand_id: &str,
        at: Timestamp,
    ) -> Self {
        let business_id = key.business_id.clone();
        let view = LicenseKeyView::at(key.clone(), brand_id.to_owned(), at);
        Self::new(business_id, event_type, at, "LicenseKey", view, None)
    }

    /// `license_key_instance.created`.
    pub fn instance_created(instance: &Instance, at: Timestamp) -> Self {
        Self::new(
            instance.business_id.clone(),
            EventType::LicenseKeyInstanceCreated,
            at,
            "LicenseKeyInstance",
            InstanceView::from(instance.clone()),
            None,
        )
    }

    /// `license_key_instance.deleted`, with why.
    pub fn instance_deleted(instance: &Instance, reason: Departure, at: Timestamp) -> Self {
        Self::new(
            instance.business_id.clone(),
            EventType::LicenseKeyInstanceDeleted,
            at,
            "LicenseKeyInstance",
            InstanceView::from(instance.clone()),
            Some(reason),
        )
    }

    /// `license_update.created`: the entry as `POST /license_updates` answers it.
    pub fn license_update_created(business_id: &BusinessId, entry: &LedgerEntry) -> Self {
        Self::new(
            business_id.clone(),
            EventType::LicenseUpdateCreated,
            entry.created_at,
            "LicenseUpdate",
            LicenseUpdateResponse::from(entry.clone()),
            None,
        )
    }

    fn new(
        business_id: BusinessId,
        event_type: EventType,
        timestamp: Timestamp,
        payload_type: &'static str,
        resource: impl Serialize,
        reason: Option<Departure>,
    ) -> Self {
        let body = Body {
            business_id: business_id.as_str(),
            event_type,
            timestamp,
            data: Data {
                resource,
                payload_type,
                reason,
            },
        };
        Self {
            id: MessageId::generate(),
            // A view of plain strings, numbers and maps always serializes.
            body: serde_json::to_string(&body).unwrap_or_default(),
            business_id,
            event_type,
            timestamp,
        }
    }
}

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    business_id: &'a str,
    #[serde(rename = "type")]
    event_type: EventType,
    timestamp: Timestamp,
    data: Data<T>,
}

#[derive(Serialize)]
struct Data<T: Serialize> {
    #[serde(flatten)]
    resource: T,
    payload_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Departure>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AccountId, InstanceId, LicenseId, LicenseKeyId};
    use crate::domain::quantity::Quantity;

    fn instance() -> Instance {
        Instance {
            id: InstanceId::from("lki_1"),
            business_id: BusinessId::from("bus_1"),
            license_key_id: LicenseKeyId::from("lic_1"),
            name: "laptop".into(),
            fingerprint: None,
            created_at: Timestamp::from_micros(1_000_000).unwrap(),
            last_heartbeat_at: None,
            heartbeat_expires_at: None,
        }
    }

    #[test]
    fn a_deleted_instance_is_announced_with_its_reason_and_payload_type() {
        let at = Timestamp::from_micros(2_000_000).unwrap();
        let event = Event::instance_deleted(&instance(), Departure::Heartbeat, at);
        let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "business_id": "bus_1",
                "type": "license_key_instance.deleted",
                "timestamp": "1970-01-01T00:00:02Z",
                "data": {
                    "id": "lki_1",
                    "business_id": "bus_1",
                    "created_at": "1970-01-01T00:00:01Z",
                    "license_key_id": "lic_1",
                    "name": "laptop",
                    "fingerprint": null,
                    "last_heartbeat_at": null,
                    "heartbeat_expires_at": null,
                    "payload_type": "LicenseKeyInstance",
                    "reason": "heartbeat",
                },
            })
        );
        assert!(event.id.as_str().starts_with("msg_"));
    }

    #[test]
    fn a_ledger_entry_is_announced_as_the_ledger_answers_it() {
        let entry = LedgerEntry {
            license_id: LicenseId::parse("seats").unwrap(),
            account_id: AccountId::parse("acme").unwrap(),
            quantity: Quantity::parse("5").unwrap(),
            effective_from: Timestamp::from_micros(0).unwrap(),
            metadata: None,
            created_at: Timestamp::from_micros(3_000_000).unwrap(),
        };
        let event = Event::license_update_created(&BusinessId::from("bus_1"), &entry);
        let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["type"], "license_update.created");
        assert_eq!(body["timestamp"], "1970-01-01T00:00:03Z");
        assert_eq!(
            body["data"],
            serde_json::json!({
                "licenseId": "seats",
                "accountId": "acme",
                "quantity": 5,
                "effectiveFrom": "1970-01-01T00:00:00Z",
                "createdAt": "1970-01-01T00:00:03Z",
                "payload_type": "LicenseUpdate",
            })
        );
    }
}
