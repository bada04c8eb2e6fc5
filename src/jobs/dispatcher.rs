//! The webhook dispatcher: delivers the outbox's messages. Every `serve` process runs
//! one. It leases endpoints that have messages due, one process per endpoint at a time,
//! and delivers each endpoint's messages in their order from a task of its own, so a slow
//! or failing endpoint holds up no other. A lease that is not renewed (its process was
//! killed) ends, and another process takes the endpoint over. A server that stops
//! finishes the attempts in flight, records them and gives its leases up ([`Deliveries::stop`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};
use tokio_util::task::TaskTracker;

use crate::domain::delivery::{AttemptLog, Message, MessageStatus, Outcome, RetrySchedule};
use crate::domain::ids::{WebhookId, new_id};
use crate::domain::signing::{self, MasterKey};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{Endpoint, WebhookSecret};
use crate::jobs::delivery::{Attempt, Delivery, DeliveryClient, DeliveryOptions};
use crate::storage::Store;

/// How often the dispatcher looks for due messages when it found none.
const POLL: Duration = Duration::from_millis(100);
/// Endpoints one process delivers to at once.
const MAX_ENDPOINTS: usize = 64;
/// Messages read per batch, and outcomes recorded together at most.
const BATCH: u32 = 100;
/// Outcomes wait at most this long to be recorded.
const RECORD_AFTER: Duration = Duration::from_millis(200);
/// How soon a lease that could not be given up is tried again.
const RELEASE_AGAIN: Duration = Duration::from_millis(500);
/// How long delivered and failed messages are kept for `GET /webhooks/{id}/messages`.
const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    pub schedule: RetrySchedule,
    pub deny_private: bool,
    /// How long a process holds an endpoint without renewing its lease: a killed
    /// process's endpoints are taken over when it ends.
    pub lease: Duration,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            deny_private: false,
            lease: Duration::from_secs(60),
        }
    }
}

impl DispatchOptions {
    /// An attempt's timeout: 15 s, or a third of the lease if that is less. No attempt
    /// starts with less than half the lease left, so each ends while its process still
    /// holds the endpoint, and no two processes attempt one message at once.
    pub fn timeout(&self) -> Duration {
        DeliveryOptions::TIMEOUT.min(self.lease / 3)
    }
}

/// Where an endpoint's URL points, for the logs: its scheme, host and port, not its path
/// or query, which may carry a token of the receiver's.
fn origin(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| "?".into(), |url| url.origin().ascii_serialization())
}

/// Attempts by result since the process started, for `/metrics`.
#[derive(Debug)]
pub struct DeliveryCounts {
    pub delivered: AtomicU64,
    /// Failed attempts of messages that will be tried again.
    pub retrying: AtomicU64,
    /// Messages given up: the schedule ran out, or the endpoint answered 410.
    pub failed: AtomicU64,
}

/// The process's attempts, whichever dispatcher made them.
pub static DELIVERIES: DeliveryCounts = DeliveryCounts {
    delivered: AtomicU64::new(0),
    retrying: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

/// The deliveries of a running server, until [`Deliveries::stop`].
pub struct Deliveries {
    stopping: watch::Sender<bool>,
    tasks: TaskTracker,
}

impl Deliveries {
    /// Leases no more endpoints and starts no more attempts; waits, at most `within`, for
    /// the attempts in flight (each within its timeout) to be recorded and the leases to be
    /// given up, so that a server stopped on purpose does not make them again once
    /// restarted (unless the database could not record them in time). A database that
    /// stops answering without refusing would otherwise hold the stop for ever.
    pub async fn stop(&self, within: Duration) {
        let _ = self.stopping.send(true);
        self.tasks.close();
        if tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "webhook deliveries did not stop within {} s (the database does not answer): \
                 the attempts not recorded are made again after a restart",
                within.as_secs()
            );
        }
    }
}

/// Starts the dispatcher; it stops once the store is dropped, or at [`Deliveries::stop`].
/// `Err` if the HTTP client cannot be built (no TLS roots).
pub fn spawn(
    store: Weak<dyn Store>,
    master_key: Option<MasterKey>,
    options: DispatchOptions,
) -> anyhow::Result<Deliveries> {
    let client = DeliveryClient::new(DeliveryOptions {
        deny_private: options.deny_private,
        timeout: options.timeout(),
    })?;
    let (stopping, stopped) = watch::channel(false);
    let tasks = TaskTracker::new();
    let dispatcher = Arc::new(Dispatcher {
        owner: new_id("dsp"),
        client,
        master_key,
        options,
        busy: Mutex::new(HashSet::new()),
        stopped,
        tasks: tasks.clone(),
    });
    tasks.spawn(dispatcher.run(store));
    Ok(Deliveries { stopping, tasks })
}

struct Dispatcher {
    /// This process's name on its leases.
    owner: String,
    client: DeliveryClient,
    master_key: Option<MasterKey>,
    options: DispatchOptions,
    /// The endpoints this process is delivering to. Held while leasing, and while a task
    /// gives its lease up and leaves: a lease is never taken for an endpoint whose task is
    /// leaving (that lease would have no task until it ended).
    busy: Mutex<HashSet<WebhookId>>,
    /// True once the server stops.
    stopped: watch::Receiver<bool>,
    /// The run loop and every endpoint's task, waited for when the server stops.
    tasks: TaskTracker,
}

impl Dispatcher {
    fn stopping(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Returns once the server stops (never, if its [`Deliveries`] are dropped unstopped).
    async fn until_stopped(&self) {
        if self.stopped.clone().wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    async fn run(self: Arc<Self>, store: Weak<dyn Store>) {
        let mut failing = false;
        let mut forgotten_at = Instant::now();
        loop {
            if self.stopping() {
                return;
            }
            let Some(store) = store.upgrade() else { return };
            let mut busy = self.busy.lock().await;
            let free = MAX_ENDPOINTS.saturating_sub(busy.len());
            let leased = if free == 0 {
                Ok(Vec::new())
            } else {
                let now = Timestamp::now();
                store
                    .lease_endpoints(&self.owner, now, self.lease_end(now), free as u32)
                    .await
            };
            match leased {
                Ok(endpoints) => {
                    if failing {
                        tracing::info!("the webhook dispatcher reaches the database again");
                        failing = false;
                    }
                    for endpoint in endpoints {
                        // A busy endpoint's task holds its lease: it was not leased again.
                        if busy.insert(endpoint.id.clone()) {
                            (self.tasks).spawn(self.clone().deliver_all(store.clone(), endpoint));
                        }
                    }
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "the webhook dispatcher cannot read the outbox; it will retry");
                        failing = true;
                    }
                }
            }
            drop(busy);
            if forgotten_at.elapsed() >= FORGET_EVERY {
                forgotten_at = Instant::now();
                let before = Timestamp::now().plus_micros(-(RETENTION.as_micros() as i64));
                if let Some(before) = before
                    && let Err(error) = store.forget_messages(before).await
                {
                    tracing::warn!(%error, "old webhook messages could not be deleted");
                }
            }
            drop(store);
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = self.until_stopped() => return,
            }
        }
    }

    /// Delivers the endpoint's due messages, batch after batch, until none is due, the
    /// lease is lost or the server stops; then gives the lease up.
    async fn deliver_all(self: Arc<Self>, store: Arc<dyn Store>, endpoint: Endpoint) {
        let id = endpoint.id.clone();
        match signing::open(&endpoint.secret, self.master_key.as_ref()) {
            Ok(secret) => {
                let secret = WebhookSecret::from_bytes(secret);
                let mut pace = Pace::new(&endpoint);
                while !self.stopping()
                    && let Some((batch, until)) = self.next_batch(&store, &id).await
                {
                    let lease = Lease {
                        endpoint: &endpoint,
                        until,
                    };
                    if !self
                        .deliver_batch(&store, lease, &secret, &mut pace, batch)
                        .await
                    {
                        break;
                    }
                }
            }
            // Checked at start: only a secret changed under a running server gets here.
            Err(error) => {
                tracing::error!(endpoint = %id, %error, "the webhook secret cannot be opened; its messages wait");
            }
        }
        self.leave(&store, &id).await;
    }

    /// Gives the endpoint's lease up and forgets it as busy. While the database does not
    /// answer, tries again until the lease would have ended anyway: kept, the lease would
    /// hold the endpoint's deliveries back, this process's included, until its end. A
    /// server that stops does not wait for that: the lease ends by itself.
    async fn leave(&self, store: &Arc<dyn Store>, id: &WebhookId) {
        let ends = Instant::now() + self.options.lease;
        let again = || Instant::now() < ends && !self.stopping();
        loop {
            // Given up with `busy` held, so that no lease is taken for the endpoint between
            // the release and its leaving `busy` (that lease would have no task).
            let mut busy = self.busy.lock().await;
            let failed = store.release_endpoint(id, &self.owner).await.err();
            let Some(error) = failed.filter(|_| again()) else {
                busy.remove(id);
                return;
            };
            drop(busy);
            tracing::warn!(endpoint = %id, %error, "a webhook lease could not be given up; trying again");
            // Without holding `busy`, which the other endpoints' tasks and the leasing
            // need; once the database answers, the release above runs again (and gives up
            // a lease taken meanwhile as well).
            while again() && store.release_endpoint(id, &self.owner).await.is_err() {
                tokio::select! {
                    () = tokio::time::sleep(RELEASE_AGAIN) => {}
                    () = self.until_stopped() => {}
                }
            }
        }
    }

    /// The endpoint's next due messages, and the end of the lease renewed with them; `None`
    /// when none is due or the lease is lost.
    async fn next_batch(
        &self,
        store: &Arc<dyn Store>,
        id: &WebhookId,
    ) -> Option<(Vec<Message>, Timestamp)> {
        let now = Timestamp::now();
        let until = self.lease_end(now);
        match (store.due_messages(id, &self.owner, now, until, BATCH)).await {
            Ok(Some(batch)) if !batch.is_empty() => Some((batch, until)),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(endpoint = %id, %error, "webhook messages could not be read");
                None
            }
        }
    }

    /// Attempts the messages in order, recording outcomes as it goes; false when the
    /// endpoint must be left: it is gone (410), or an outcome could not be recorded. Once
    /// the server stops, no attempt starts: the messages left wait for the next lease.
    async fn deliver_batch(
        &self,
        store: &Arc<dyn Store>,
        lease: Lease<'_>,
        secret: &WebhookSecret,
        pace: &mut Pace,
        batch: Vec<Message>,
    ) -> bool {
        let endpoint = lease.endpoint;
        // The lease was renewed as the batch was read: stop before it runs short.
        let stop_at = Instant::now() + self.options.lease / 2;
        let mut outcomes = Vec::new();
        let mut since = Instant::now();
        for message in batch {
            tokio::select! {
                () = pace.wait() => {}
                () = self.until_stopped() => break,
            }
            if Instant::now() >= stop_at || self.stopping() {
                break;
            }
            let (outcome, gone) = self.attempt(endpoint, secret, &message).await;
            outcomes.push(outcome);
            if gone {
                self.record(store, &lease, &outcomes, true).await;
                return false;
            }
            if outcomes.len() >= BATCH as usize || since.elapsed() >= RECORD_AFTER {
                if !self.record(store, &lease, &outcomes, false).await {
                    return false;
                }
                outcomes.clear();
                since = Instant::now();
            }
        }
        outcomes.is_empty() || self.record(store, &lease, &outcomes, false).await
    }

    /// One attempt of one message, and what it leaves; true if the endpoint is gone.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        secret: &WebhookSecret,
        message: &Message,
    ) -> (Outcome, bool) {
        let at = Timestamp::now();
        let attempt = self
            .client
            .attempt(&Delivery {
                url: endpoint.url.as_str(),
                msg_id: message.id.as_str(),
                body: message.body.as_bytes(),
                secret,
                headers: endpoint.headers.as_map(),
            })
            .await;
        let log = match &attempt {
            Attempt::Answered { status, .. } => AttemptLog {
                at,
                status_code: Some(*status),
                error: None,
            },
            Attempt::Failed { error } => AttemptLog {
                at,
                status_code: None,
                error: Some(error.clone()),
            },
        };
        let gone = attempt.gone();
        let (status, tries, next_attempt_at) = if attempt.delivered() {
            DELIVERIES.delivered.fetch_add(1, Ordering::Relaxed);
            (MessageStatus::Delivered, message.tries, None)
        } else {
            let after =
                (self.options.schedule).after_failure(message.tries, gone, Timestamp::now());
            let counter = match after.0 {
                MessageStatus::Failed => &DELIVERIES.failed,
                _ => &DELIVERIES.retrying,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let answer = match &attempt {
                Attempt::Answered { status, excerpt } => format!("status {status}: {excerpt}"),
                Attempt::Failed { error } => error.clone(),
            };
            let origin = origin(endpoint.url.as_str());
            match after.2 {
                Some(next) => tracing::warn!(endpoint = %endpoint.id, msg_id = %message.id,
                    origin, answer, retry_at = %next, "a webhook delivery failed"),
                None if gone => tracing::warn!(endpoint = %endpoint.id, msg_id = %message.id,
                    origin, "the endpoint answered 410 Gone: it is disabled"),
                None => tracing::warn!(endpoint = %endpoint.id, msg_id = %message.id,
                    origin, answer, "a webhook message failed its last attempt"),
            }
            after
        };
        let outcome = Outcome {
            seq: message.seq,
            log,
            status,
            tries,
            next_attempt_at,
        };
        (outcome, gone)
    }

    fn lease_end(&self, now: Timestamp) -> Timestamp {
        now.plus_micros(self.options.lease.as_micros() as i64)
            .unwrap_or(Timestamp::LAST)
    }

    async fn record(
        &self,
        store: &Arc<dyn Store>,
        lease: &Lease<'_>,
        outcomes: &[Outcome],
        disable: bool,
    ) -> bool {
        let endpoint = lease.endpoint;
        let held = (&*self.owner, lease.until);
        match (store.record_attempts(&endpoint.id, held, outcomes, disable)).await {
            Ok(true) => true,
            // The lease ended before this (a process paused past it, say) and the endpoint
            // was leased again, or deleted: whoever holds it now delivers these messages
            // again and records what it gets.
            Ok(false) => {
                tracing::warn!(endpoint = %endpoint.id, "this process's webhook lease had ended (the endpoint was leased again, or deleted); its last attempts were not recorded");
                false
            }
            Err(error) => {
                // Unrecorded, the messages stay pending and are delivered again.
                tracing::warn!(endpoint = %endpoint.id, %error, "webhook attempts could not be recorded");
                false
            }
        }
    }
}

/// An endpoint as leased for one batch: outcomes are recorded only while that lease holds.
struct Lease<'a> {
    endpoint: &'a Endpoint,
    until: Timestamp,
}

/// An endpoint's `rate_limit`: the earliest instant of its next attempt.
struct Pace {
    interval: Option<Duration>,
    next: Instant,
}

impl Pace {
    fn new(endpoint: &Endpoint) -> Self {
        Self {
            interval: (endpoint.rate_limit).map(|r| Duration::from_secs(1) / r.per_second()),
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next.into()).await;
        }
        self.next = self.next.max(now) + interval;
    }
}
