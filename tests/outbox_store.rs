//! The outbox's store on its own, on every backend: which endpoints a write is recorded
//! for, which messages are due, which are forgotten after their retention, and which one
//! the age of the oldest undelivered message is read from.

mod common;

use std::sync::Arc;

use common::{Backend, TestDatabase};
use licensed::domain::auth::Caller;
use licensed::domain::delivery::{AttemptLog, Message, MessageStatus, Outcome};
use licensed::domain::entry::NewEntry;
use licensed::domain::ids::{AccountId, BusinessId, BusinessName, LicenseId, MessageId, WebhookId};
use licensed::domain::ledger::UpdateType;
use licensed::domain::time::Timestamp;
use licensed::domain::webhooks::{Endpoint, EndpointPatch, WebhookSecret, WebhookUrl};
use licensed::storage::Store;

backend_store_tests!(
    a_message_waiting_for_its_retry_holds_up_no_newer_one,
    forgets_old_settled_messages_and_keeps_pending_ones,
    records_a_write_for_the_endpoints_enabled_when_it_is_written,
    outcomes_of_a_lease_taken_over_are_not_recorded,
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
        let listed = store
            .messages(&business, &endpoint.id, None, None, 10)
            .await;
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

/// A write in a business whose endpoint is being deleted waits for the deletion, then
/// records its event for the endpoints left: the message's foreign key once failed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_beside_the_deletion_of_an_endpoint_succeeds_on_postgres() {
    let Some((database, store, business)) = store_with_business(Backend::Postgres).await else {
        return;
    };
    let gone = store.create_webhook(&endpoint_of(&business)).await.unwrap();
    let kept = store.create_webhook(&endpoint_of(&business)).await.unwrap();
    let deleting = database.connect().await;
    let delete = format!(
        "BEGIN; DELETE FROM webhook_endpoints WHERE id = '{}'",
        gone.id.as_str()
    );
    deleting.batch_execute(&delete).await.unwrap();
    let write = tokio::spawn({
        let store = store.clone();
        let caller = Caller::Business(business.clone());
        async move { store.append_entry(&caller, &one_seat()).await }
    });
    common::until_a_session_waits_for_a_lock(&database.connect().await).await;
    deleting.batch_execute("COMMIT").await.unwrap();
    write.await.unwrap().unwrap();
    let listed = store.messages(&business, &kept.id, None, None, 10).await;
    assert_eq!(listed.unwrap().len(), 1);
}

/// How long the tests' leases last, in µs.
const LEASE: i64 = 60_000_000;

/// Outcomes of attempts made under a lease that has since passed to another process are
/// not recorded: the new holder delivers the message again, and what it records stands.
async fn outcomes_of_a_lease_taken_over_are_not_recorded(backend: Backend) {
    let Some((_database, outbox, [first, ..])) = three_messages(backend).await else {
        return;
    };
    let (store, endpoint) = (&outbox.store, &outbox.endpoint);
    let now = Timestamp::now();
    let mine = now.plus_micros(LEASE).unwrap();
    let renewed = store.due_messages(endpoint, "me", now, mine, 1).await;
    assert!(renewed.unwrap().is_some());
    // "me" misses the end of its lease; "other" takes the endpoint over.
    let after_mine = mine.plus_micros(1).unwrap();
    let theirs = after_mine.plus_micros(LEASE).unwrap();
    let taken = store.lease_endpoints("other", after_mine, theirs, 64).await;
    assert_eq!(taken.unwrap().len(), 1);
    let failed = [outcome(
        &first,
        500,
        (MessageStatus::Pending, 1, Some(theirs)),
    )];
    let stale = store.record_attempts(endpoint, ("me", mine), &failed, true);
    assert!(!stale.await.unwrap());
    let listed = outbox.messages().await;
    assert_eq!(listed[0].status, MessageStatus::Pending);
    assert_eq!(listed[0].tries, 0, "{:?}", listed[0]);
    let enabled = store.webhook(&outbox.business, endpoint).await.unwrap();
    assert!(!enabled.unwrap().disabled, "the stale 410 disabled nothing");

    let delivered = [delivered(&first)];
    let recorded = store.record_attempts(endpoint, ("other", theirs), &delivered, false);
    assert!(recorded.await.unwrap());
    assert_eq!(outbox.messages().await[0].status, MessageStatus::Delivered);

    // "other" lets go and "me" leases the endpoint anew: the old lease still records
    // nothing.
    store.release_endpoint(endpoint, "other").await.unwrap();
    let anew = store.lease_endpoints("me", after_mine, theirs, 64).await;
    assert_eq!(anew.unwrap().len(), 1);
    let stale = store.record_attempts(endpoint, ("me", mine), &failed, true);
    assert!(!stale.await.unwrap());
    assert_eq!(outbox.messages().await[0].status, MessageStatus::Delivered);
}

/// A store on a new database of `backend` with one endpoint, and the messages of three
/// ledger writes for it, oldest first, the endpoint leased by "me"; `None` when the
/// backend is not there.
async fn three_messages(backend: Backend) -> Option<(TestDatabase, Outbox, [Message; 3])> {
    let (database, store, business) = store_with_business(backend).await?;
    let endpoint = store.create_webhook(&endpoint_of(&business)).await.unwrap();
    let caller = Caller::Business(business.clone());
    for _ in 0..3 {
        store.append_entry(&caller, &one_seat()).await.unwrap();
    }
    let now = Timestamp::now();
    let leased = store.lease_endpoints("me", now, now.plus_micros(LEASE).unwrap(), 64);
    let leased: Vec<WebhookId> = leased.await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(leased, vec![endpoint.id.clone()]);
    let outbox = Outbox {
        store,
        business,
        endpoint: endpoint.id,
    };
    let messages = <[Message; 3]>::try_from(outbox.messages().await).unwrap();
    Some((database, outbox, messages))
}

/// A store and the endpoint whose messages a test follows.
struct Outbox {
    store: Arc<dyn Store>,
    business: BusinessId,
    endpoint: WebhookId,
}

impl Outbox {
    /// The endpoint's messages, oldest first.
    async fn messages(&self) -> Vec<Message> {
        let listed = self
            .store
            .messages(&self.business, &self.endpoint, None, None, 10);
        let mut listed = listed.await.unwrap();
        listed.reverse();
        listed
    }

    /// Records outcomes of attempts by "me", under the lease renewed for them.
    async fn record(&self, outcomes: &[Outcome]) {
        let now = Timestamp::now();
        let until = now.plus_micros(LEASE).unwrap();
        let renewed = (self.store).due_messages(&self.endpoint, "me", now, until, 1);
        assert!(renewed.await.unwrap().is_some(), "the lease is held");
        let lease = ("me", until);
        let recorded = (self.store).record_attempts(&self.endpoint, lease, outcomes, false);
        assert!(recorded.await.unwrap());
    }
}

/// An attempt at `message` answered `status_code`, after which it is `status`, with
/// `tries` failures, due again at `next`.
fn outcome(
    message: &Message,
    status_code: u16,
    (status, tries, next): (MessageStatus, u32, Option<Timestamp>),
) -> Outcome {
    let log = AttemptLog {
        at: Timestamp::now(),
        status_code: Some(status_code),
        error: None,
    };
    Outcome {
        seq: message.seq,
        log,
        status,
        tries,
        next_attempt_at: next,
    }
}

/// `message` delivered on its first attempt.
fn delivered(message: &Message) -> Outcome {
    outcome(message, 200, (MessageStatus::Delivered, 0, None))
}

async fn forgets_old_settled_messages_and_keeps_pending_ones(backend: Backend) {
    let Some((_database, outbox, [first, middle, last])) = three_messages(backend).await else {
        return;
    };
    let store = &outbox.store;
    assert_eq!(
        store.oldest_undelivered().await.unwrap(),
        Some(first.created_at)
    );

    // The first and the last delivered: the middle one is the oldest undelivered.
    outbox.record(&[delivered(&first), delivered(&last)]).await;
    assert_eq!(
        store.oldest_undelivered().await.unwrap(),
        Some(middle.created_at)
    );

    // Recorded at or after the cutoff: kept.
    assert_eq!(store.forget_messages(first.created_at).await.unwrap(), 0);
    assert_eq!(outbox.messages().await.len(), 3);
    // Settled and recorded before it: forgotten; the pending one before it is kept.
    let after_all = Timestamp::from_micros(last.created_at.micros() + 1).unwrap();
    assert_eq!(store.forget_messages(after_all).await.unwrap(), 2);
    let left: Vec<_> = outbox.messages().await.into_iter().map(|m| m.id).collect();
    assert_eq!(left, std::slice::from_ref(&middle.id));

    outbox.record(&[delivered(&middle)]).await;
    assert_eq!(store.oldest_undelivered().await.unwrap(), None);
    assert_eq!(store.forget_messages(after_all).await.unwrap(), 1);
    assert!(outbox.messages().await.is_empty());
}

/// A message waiting for its retry holds up no newer one: the newer ones are due at once,
/// in commit order; it is due again, before them, once its time comes; and an endpoint
/// whose only pending message waits is not leased until then.
async fn a_message_waiting_for_its_retry_holds_up_no_newer_one(backend: Backend) {
    let Some((_database, outbox, [first, second, third])) = three_messages(backend).await else {
        return;
    };
    let (store, endpoint) = (&outbox.store, &outbox.endpoint);
    let now = Timestamp::now();
    let later = |hours: i64| now.plus_micros(hours * 3_600_000_000).unwrap();
    let lease = async |at: Timestamp| {
        let leased = store.lease_endpoints("me", at, later(24), 64).await;
        leased
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let due = async |at: Timestamp, limit: u32| {
        let found = store.due_messages(endpoint, "me", at, later(24), limit);
        let found = found.await.unwrap().expect("the lease is held");
        found.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    // Held by "me" (`three_messages`): not leased to anyone again before its end.
    assert_eq!(lease(now).await, Vec::<WebhookId>::new());

    // The first fails, and waits an hour for its retry.
    let waiting = (MessageStatus::Pending, 1, Some(later(1)));
    outbox.record(&[outcome(&first, 500, waiting)]).await;
    assert_eq!(due(now, 100).await, [second.id.clone(), third.id.clone()]);
    assert_eq!(due(now, 1).await, vec![second.id.clone()]);
    assert_eq!(
        due(later(2), 100).await,
        [first.id.clone(), second.id.clone(), third.id.clone()]
    );
    assert_eq!(
        due(later(2), 2).await,
        [first.id.clone(), second.id.clone()]
    );

    // The newer two delivered: nothing is due until the first's retry.
    outbox
        .record(&[delivered(&second), delivered(&third)])
        .await;
    assert_eq!(due(now, 100).await, Vec::<MessageId>::new());
    store.release_endpoint(endpoint, "me").await.unwrap();
    assert_eq!(lease(now).await, Vec::<WebhookId>::new());
    assert_eq!(lease(later(2)).await, vec![endpoint.clone()]);
}
