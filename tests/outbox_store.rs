//! The outbox's store on its own, on every backend: which endpoints a write is recorded
//! for, which messages are forgotten after their retention, and which one the age of the
//! oldest undelivered message is read from.

mod common;

use std::sync::Arc;

use common::{Backend, TestDatabase};
use licensed::domain::auth::Caller;
use licensed::domain::delivery::{AttemptLog, Message, MessageStatus, Outcome};
use licensed::domain::entry::NewEntry;
use licensed::domain::ids::{AccountId, BusinessId, BusinessName, LicenseId};
use licensed::domain::ledger::UpdateType;
use licensed::domain::time::Timestamp;
use licensed::domain::webhooks::{Endpoint, EndpointPatch, WebhookSecret, WebhookUrl};
use licensed::storage::Store;

backend_store_tests!(
    forgets_old_settled_messages_and_keeps_pending_ones,
    records_a_write_for_the_endpoints_enabled_when_it_is_written,
);

/// A store on a new database of `backend`, with one business; `None` when the backend is
/// not there (the test is then skipped).
async fn store_with_business(
    backend: Backend,
) -> Option<(TestDatabase, Arc<dyn Store>, BusinessId)> {
    let database = TestDatabase::create(backend).await?;
    let store = common::open_store(&database.url).await;
    let business = (store
        .ensure_business(&BusinessName::parse("test").unwrap())
        .await)
        .unwrap();
    Some((database, store, business))
}

/// An enabled endpoint of `business` taking every event, at an address nothing answers.
fn endpoint_of(business: &BusinessId) -> Endpoint {
    let url = WebhookUrl::parse("http://127.0.0.1:9/".into()).unwrap();
    let secret = WebhookSecret::generate().bytes().to_vec();
    Endpoint::new(business.clone(), url, secret, Timestamp::now())
}

fn one_seat() -> NewEntry {
    NewEntry {
        account_id: AccountId::parse("acme").unwrap(),
        license_id: LicenseId::parse("seats").unwrap(),
        update_type: UpdateType::Relative,
        quantity: "1".parse().unwrap(),
        effective_from: None,
        metadata: None,
        idempotency_key: None,
    }
}

/// No message for a write while the business's only endpoint is disabled; one for the
/// write after it is enabled.
async fn records_a_write_for_the_endpoints_enabled_when_it_is_written(backend: Backend) {
    let Some((_database, store, business)) = store_with_business(backend).await else {
        return;
    };
    let caller = Caller::Business(business.clone());
    store.append_entry(&caller, &one_seat()).await.unwrap();
    let endpoint = Endpoint {
        disabled: true,
        ..endpoint_of(&business)
    };
    let endpoint = store.create_webhook(&endpoint).await.unwrap();
    store.append_entry(&caller, &one_seat()).await.unwrap();
    let recorded = async || {
        let listed = store.messages(&business, &endpoint.id, None, 10).await;
        listed.unwrap().len()
    };
    assert_eq!(recorded().await, 0);
    assert_eq!(store.oldest_undelivered().await.unwrap(), None);

    let enable = EndpointPatch {
        disabled: Some(false),
        ..EndpointPatch::default()
    };
    (store.update_webhook(&business, &endpoint.id, enable).await).unwrap();
    store.append_entry(&caller, &one_seat()).await.unwrap();
    assert_eq!(recorded().await, 1);
}

async fn forgets_old_settled_messages_and_keeps_pending_ones(backend: Backend) {
    let Some((_database, store, business)) = store_with_business(backend).await else {
        return;
    };
    let endpoint = store.create_webhook(&endpoint_of(&business)).await.unwrap();
    let caller = Caller::Business(business.clone());
    for _ in 0..3 {
        store.append_entry(&caller, &one_seat()).await.unwrap();
    }
    let messages = |store: &Arc<dyn Store>| {
        let (store, business, endpoint) = (store.clone(), business.clone(), endpoint.id.clone());
        async move {
            let mut listed = store
                .messages(&business, &endpoint, None, 10)
                .await
                .unwrap();
            listed.reverse();
            listed
        }
    };
    let [first, middle, last] = <[Message; 3]>::try_from(messages(&store).await).unwrap();
    assert_eq!(
        store.oldest_undelivered().await.unwrap(),
        Some(first.created_at)
    );

    // The first and the last delivered: the middle one is the oldest undelivered.
    let delivered = |message: &Message| Outcome {
        seq: message.seq,
        log: AttemptLog {
            at: Timestamp::now(),
            status_code: Some(200),
            error: None,
        },
        status: MessageStatus::Delivered,
        tries: 0,
        next_attempt_at: None,
    };
    let outcomes = [delivered(&first), delivered(&last)];
    (store.record_attempts(&endpoint.id, &outcomes, false).await).unwrap();
    assert_eq!(
        store.oldest_undelivered().await.unwrap(),
        Some(middle.created_at)
    );

    // Recorded at or after the cutoff: kept.
    assert_eq!(store.forget_messages(first.created_at).await.unwrap(), 0);
    assert_eq!(messages(&store).await.len(), 3);
    // Settled and recorded before it: forgotten; the pending one before it is kept.
    let after_all = Timestamp::from_micros(last.created_at.micros() + 1).unwrap();
    assert_eq!(store.forget_messages(after_all).await.unwrap(), 2);
    let left: Vec<_> = messages(&store).await.into_iter().map(|m| m.id).collect();
    assert_eq!(left, std::slice::from_ref(&middle.id));

    (store
        .record_attempts(&endpoint.id, &[delivered(&middle)], false)
        .await)
        .unwrap();
    assert_eq!(store.oldest_undelivered().await.unwrap(), None);
    assert_eq!(store.forget_messages(after_all).await.unwrap(), 1);
    assert!(messages(&store).await.is_empty());
}
