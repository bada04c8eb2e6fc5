//! The webhook outbox on PostgreSQL: events recorded by the writes that make them, sent
//! with the write's last statement and its `COMMIT`; and the dispatcher's leases, which
//! processes take with `FOR NO KEY UPDATE SKIP LOCKED` (which the key-share locks of
//! messages being inserted for the endpoint do not block) so that one at a time delivers an
//! endpoint's messages, and a killed process's successor takes over when its lease ends.

use std::sync::LazyLock;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::pool::Params;
use crate::domain::delivery::{Message, MessageStatus, Outcome};
use crate::domain::events::Event;
use crate::domain::ids::{BusinessId, MessageId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::Endpoint;
use crate::storage::columns::{
    MESSAGE_COLUMNS, OLDEST_UNDELIVERED, WEBHOOK_COLUMNS, forget_messages_query, json_text,
    recent_messages_query, retry_message_query,
};
use crate::storage::error::Result;
use crate::storage::rows::{self, Columns};
use crate::storage::store::OutboxStore;

/// Records events (`$1` to `$5`: their ids, businesses, types, bodies and instants, one
/// array element per event) for every enabled endpoint of their business that takes their
/// type, in the order given. An endpoint being deleted, or changed through the API (which
/// locks it `FOR UPDATE`), by a transaction not yet committed is waited for, then read as
/// that transaction left it: without the lock, the message's foreign key failed the whole
/// write once the deletion committed.
pub(super) const RECORD: &str = "INSERT INTO webhook_messages
         (id, endpoint_id, event_type, body, created_at, status, tries, next_attempt_at, attempts)
     SELECT ev.id, e.id, ev.event_type, ev.body, ev.created_at, 'pending', 0, ev.created_at, '[]'
     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[]) WITH ORDINALITY
         AS ev (id, business_id, event_type, body, created_at, n)
     JOIN webhook_endpoints e ON e.business_id = ev.business_id AND NOT e.disabled
         AND (e.filter_types = '[]' OR e.filter_types::jsonb ? ev.event_type)
     ORDER BY ev.n, e.id
     FOR KEY SHARE OF e";

/// Whether the business that the SQL expression `$business` names has an enabled endpoint:
/// read by a write with its first statements, so that a write in a business with none,
/// most writes, neither renders its events nor sends [`RECORD`], whose execution alone
/// cost ingestion 13% of its throughput.
macro_rules! subscribed {
    ($business:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM webhook_endpoints WHERE business_id = ",
            $business,
            " AND NOT disabled)"
        )
    };
}
pub(super) use subscribed;

/// Events as [`RECORD`]'s parameters.
pub(super) struct Recorded {
    ids: Vec<String>,
    businesses: Vec<String>,
    types: Vec<&'static str>,
    bodies: Vec<String>,
    instants: Vec<i64>,
}

impl Recorded {
    pub fn of(events: Vec<Event>) -> Self {
        let mut recorded = Self {
            ids: Vec::with_capacity(events.len()),
            businesses: Vec::with_capacity(events.len()),
            types: Vec::with_capacity(events.len()),
            bodies: Vec::with_capacity(events.len()),
            instants: Vec::with_capacity(events.len()),
        };
        for event in events {
            recorded.ids.push(event.id.into_string());
            recorded.businesses.push(event.business_id.into_string());
            recorded.types.push(event.event_type.as_str());
            recorded.bodies.push(event.body);
            recorded.instants.push(event.timestamp.micros());
        }
        recorded
    }

    pub fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.ids,
            &self.businesses,
            &self.types,
            &self.bodies,
            &self.instants,
        ]
    }
}

/// The listing of an endpoint's recent messages (`$1` to `$4`), and of those older than a
/// message (`$5`).
pub(super) static RECENT_MESSAGES: LazyLock<String> =
    LazyLock::new(|| recent_messages_query(false, message_parameter));
pub(super) static OLDER_MESSAGES: LazyLock<String> =
    LazyLock::new(|| recent_messages_query(true, message_parameter));

fn message_parameter(n: usize) -> String {
    match n {
        3 => "$3::TEXT".to_owned(),
        _ => format!("${n}"),
    }
}

/// The retention's delete, `$1` the cutoff.
pub(super) static FORGET: LazyLock<String> =
    LazyLock::new(|| forget_messages_query(|n| format!("${n}")));

/// A message due again (`$1` to `$5`).
pub(super) static RETRY_MESSAGE: LazyLock<String> = LazyLock::new(|| {
    retry_message_query(|n| match n {
        5 => "$5::BIGINT".to_owned(),
        _ => format!("${n}"),
    })
});

/// The attempts' outcomes (`$2` to `$6`: the messages' seqs, their new statuses, tries,
/// next attempts and the attempts' logs), and endpoint `$1` disabled if `$7`, at `$8`,
/// if the lease of owner `$9` until `$10` is still held; whether it is. The endpoint's
/// row stays locked until the outcomes commit, so that no other process takes the lease
/// over meanwhile (without blocking writes, whose messages lock it `FOR KEY SHARE`).
/// The messages are found by their primary key alone: searched by their endpoint too,
/// they were planned, once the endpoint had more messages than the statistics knew of,
/// as a hash of all of them for every batch (40 ms for each 100 recorded behind 14 000).
pub(super) const RECORD_ATTEMPTS: &str = "WITH held AS (
         SELECT id FROM webhook_endpoints
         WHERE id = $1 AND lease_owner = $9 AND lease_until = $10
         FOR NO KEY UPDATE
     ), recorded AS (
         UPDATE webhook_messages m SET status = o.status, tries = o.tries,
             next_attempt_at = o.next, attempts = (m.attempts::jsonb || o.log::jsonb)::text
         FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::TEXT[])
             AS o (seq, status, tries, next, log)
         WHERE m.seq = o.seq AND EXISTS (SELECT 1 FROM held)
     ), disabled AS (
         UPDATE webhook_endpoints SET disabled = TRUE, updated_at = $8
         WHERE id = $1 AND $7 AND EXISTS (SELECT 1 FROM held)
     )
     SELECT EXISTS (SELECT 1 FROM held)";

/// The lease of at most `$4` endpoints by owner `$1` until `$3`: enabled, not leased by
/// anyone at `$2`, with a message due then. Due: a message on its first attempt (due once
/// recorded), or a retry whose time has come, each found from its own index (migration
/// 0016). One `EXISTS` of both, which PostgreSQL looks into for each endpoint and stops at
/// the first found: two `EXISTS` joined by `OR` it may plan as a hash of every endpoint's
/// first attempts, all of a backlog.
pub(super) static LEASE_ENDPOINTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE webhook_endpoints SET lease_owner = $1, lease_until = $3
         WHERE id IN (
             SELECT e.id FROM webhook_endpoints e
             WHERE NOT e.disabled AND (e.lease_until IS NULL OR e.lease_until < $2)
               AND EXISTS (
                   SELECT 1 FROM webhook_messages m
                   WHERE m.endpoint_id = e.id AND m.status = 'pending' AND m.tries = 0
                   UNION ALL
                   SELECT 1 FROM webhook_messages m
                   WHERE m.endpoint_id = e.id AND m.status = 'pending' AND m.tries > 0
                     AND m.next_attempt_at <= $2)
             LIMIT $4 FOR NO KEY UPDATE SKIP LOCKED)
         RETURNING {WEBHOOK_COLUMNS}"
    )
});

/// The renewal of endpoint `$1`'s lease by owner `$2` until `$4`, and its first `$5`
/// messages due at `$3` in commit order, in one statement: no messages without the lease.
/// Read from the two indexes of migration 0016, each in its order: the first attempts by
/// `seq + 0` (see migration 0015), the retries by when they are due, so that neither read
/// walks past messages that are not due.
pub(super) static DUE_MESSAGES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH held AS (
             UPDATE webhook_endpoints SET lease_until = $4
             WHERE id = $1 AND lease_owner = $2 AND NOT disabled
             RETURNING id AS endpoint
         )
         SELECT {MESSAGE_COLUMNS} FROM held
         LEFT JOIN LATERAL (
             (SELECT * FROM webhook_messages
              WHERE endpoint_id = held.endpoint AND status = 'pending' AND tries = 0
              ORDER BY seq + 0 LIMIT $5)
             UNION ALL
             (SELECT * FROM webhook_messages
              WHERE endpoint_id = held.endpoint AND status = 'pending' AND tries > 0
                AND next_attempt_at <= $3
              ORDER BY next_attempt_at LIMIT $5)
             ORDER BY seq LIMIT $5
         ) m ON TRUE
         ORDER BY m.seq"
    )
});

#[async_trait]
impl OutboxStore for PgStore {
    async fn lease_endpoints(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Endpoint>> {
        let params: &Params = &[&owner, &now.micros(), &until.micros(), &i64::from(limit)];
        (self.query(&LEASE_ENDPOINTS, params).await?.iter())
            .map(rows::webhook_endpoint)
            .collect()
    }

    async fn due_messages(
        &self,
        endpoint: &WebhookId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Option<Vec<Message>>> {
        let params: &Params = &[
            &endpoint,
            &owner,
            &now.micros(),
            &until.micros(),
            &i64::from(limit),
        ];
        let found = self.query(&DUE_MESSAGES, params).await?;
        if found.is_empty() {
            return Ok(None);
        }
        let mut messages = Vec::with_capacity(found.len());
        for row in &found {
            // A lease held with nothing due: one row of NULLs.
            if row.text_or_null(0)?.is_some() {
                messages.push(rows::message(row)?);
            }
        }
        Ok(Some(messages))
    }

    async fn record_attempts(
        &self,
        endpoint: &WebhookId,
        (owner, until): (&str, Timestamp),
        outcomes: &[Outcome],
        disable: bool,
    ) -> Result<bool> {
        let seqs: Vec<i64> = outcomes.iter().map(|o| o.seq).collect();
        let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
        let tries: Vec<i64> = outcomes.iter().map(|o| i64::from(o.tries)).collect();
        let next: Vec<Option<i64>> = (outcomes.iter())
            .map(|o| o.next_attempt_at.map(Timestamp::micros))
            .collect();
        let logs = (outcomes.iter())
            .map(|o| json_text(&o.log))
            .collect::<Result<Vec<_>>>()?;
        let held = self
            .change_one(
                RECORD_ATTEMPTS,
                &[
                    &endpoint,
                    &seqs,
                    &statuses,
                    &tries,
                    &next,
                    &logs,
                    &disable,
                    &Timestamp::now().micros(),
                    &owner,
                    &until.micros(),
                ],
            )
            .await?;
        held.map_or(Ok(false), |row| row.flag(0))
    }

    async fn release_endpoint(&self, endpoint: &WebhookId, owner: &str) -> Result<()> {
        self.execute(
            "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_owner = $2",
            &[&endpoint, &owner],
        )
        .await?;
        Ok(())
    }

    async fn messages(
        &self,
        business_id: &BusinessId,
        endpoint: &WebhookId,
        status: Option<MessageStatus>,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>> {
        let status = status.map(MessageStatus::as_str);
        let limit = i64::from(limit);
        let rows = match before.map(MessageId::as_str) {
            None => {
                let params: &Params = &[&business_id, &endpoint, &status, &limit];
                self.query(&RECENT_MESSAGES, params).await?
            }
            Some(before) => {
                let params: &Params = &[&business_id, &endpoint, &status, &limit, &before];
                self.query(&OLDER_MESSAGES, params).await?
            }
        };
        (rows.iter()).map(rows::message).collect()
    }

    async fn retry_message(
        &self,
        business_id: &BusinessId,
        endpoint: &WebhookId,
        id: &MessageId,
        now: Timestamp,
        attempts: u32,
    ) -> Result<Option<Message>> {
        let params: &Params = &[
            &business_id,
            &endpoint,
            &id.as_str(),
            &now.micros(),
            &i64::from(attempts),
        ];
        self.change_one(&RETRY_MESSAGE, params)
            .await?
            .as_ref()
            .map(rows::message)
            .transpose()
    }

    async fn oldest_undelivered(&self) -> Result<Option<Timestamp>> {
        match self.query_opt(OLDEST_UNDELIVERED, &[]).await? {
            Some(row) => rows::timestamp(row.int(0)?).map(Some),
            None => Ok(None),
        }
    }

    async fn forget_messages(&self, before: Timestamp) -> Result<u64> {
        self.execute(&FORGET, &[&before.micros()]).await
    }
}
