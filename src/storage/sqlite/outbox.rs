//! The webhook outbox on SQLite: events recorded by the writes that make them, in their
//! transaction, and the dispatcher's leases and outcomes. One writer commits in order, so
//! `seq` is the commit order.

use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, named_params, params};

use super::SqliteStore;
use super::error::internal;
use crate::domain::delivery::{Message, MessageStatus, Outcome};
use crate::domain::events::Event;
use crate::domain::ids::{BusinessId, MessageId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{Endpoint, EventType};
use crate::storage::columns::{
    MESSAGE_COLUMNS, OLDEST_UNDELIVERED, WEBHOOK_COLUMNS, forget_messages_query, json_text,
    recent_messages_query, retry_message_query,
};
use crate::storage::error::Result;
use crate::storage::rows;
use crate::storage::store::OutboxStore;

/// Records the event `render` makes for every enabled endpoint of the business that
/// takes `event_type`; renders it only if there is one.
pub(super) fn announce(
    tx: &Connection,
    business_id: &BusinessId,
    event_type: EventType,
    render: impl FnOnce() -> Event,
) -> Result<()> {
    let endpoints: Vec<String> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id FROM webhook_endpoints
                 WHERE business_id = ?1 AND NOT disabled
                   AND (filter_types = '[]' OR instr(filter_types, '\"' || ?2 || '\"') > 0)",
            )
            .map_err(internal)?;
        let ids = stmt
            .query_map(params![business_id, event_type.as_str()], |r| r.get(0))
            .map_err(internal)?;
        ids.collect::<rusqlite::Result<_>>().map_err(internal)?
    };
    if endpoints.is_empty() {
        return Ok(());
    }
    let event = render();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO webhook_messages (id, endpoint_id, event_type, body, created_at, status,
                 tries, next_attempt_at, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?5, '[]')",
        )
        .map_err(internal)?;
    for endpoint in endpoints {
        insert
            .execute(params![
                event.id.as_str(),
                endpoint,
                event.event_type.as_str(),
                event.body,
                event.timestamp.micros(),
            ])
            .map_err(internal)?;
    }
    Ok(())
}

/// Lets go of every endpoint's lease. One process owns the file, so a lease found when it
/// opens was left by one that is gone (killed before it gave the lease up): its endpoints'
/// deliveries resume at once rather than when the lease would have ended.
pub(super) fn release_leases(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IS NOT NULL",
        [],
    )
}

/// The endpoints a process may lease at `:now`: enabled, not leased by anyone, with a
/// message due: one on its first attempt (due once recorded), or a retry whose time has
/// come, each found from its own index (migration 0015). From the endpoints' side, so that
/// a leased endpoint's backlog is not read.
pub(super) const LEASABLE: &str = "FROM webhook_endpoints e
    WHERE NOT e.disabled AND (e.lease_until IS NULL OR e.lease_until < :now)
      AND (EXISTS (
               SELECT 1 FROM webhook_messages m
               WHERE m.endpoint_id = e.id AND m.status = 'pending' AND m.tries = 0)
           OR EXISTS (
               SELECT 1 FROM webhook_messages m
               WHERE m.endpoint_id = e.id AND m.status = 'pending' AND m.tries > 0
                 AND m.next_attempt_at <= :now))";

/// Endpoint `?1`'s first `?3` messages due at `?2`, in commit order: the first attempts
/// in theirs, the retries in the order they are due, each read from its own index
/// (migration 0015), so that neither read walks past messages that are not due.
pub(super) static DUE_MESSAGES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM (
             SELECT * FROM (
                 SELECT * FROM webhook_messages
                 WHERE endpoint_id = ?1 AND status = 'pending' AND tries = 0
                 ORDER BY seq LIMIT ?3)
             UNION ALL
             SELECT * FROM (
                 SELECT * FROM webhook_messages
                 WHERE endpoint_id = ?1 AND status = 'pending' AND tries > 0
                   AND next_attempt_at <= ?2
                 ORDER BY next_attempt_at LIMIT ?3))
         ORDER BY seq LIMIT ?3"
    )
});

/// The listing of an endpoint's recent messages (`?1` to `?4`), and of those older than a
/// message (`?5`).
pub(super) static RECENT_MESSAGES: LazyLock<String> =
    LazyLock::new(|| recent_messages_query(false, |n| format!("?{n}")));
pub(super) static OLDER_MESSAGES: LazyLock<String> =
    LazyLock::new(|| recent_messages_query(true, |n| format!("?{n}")));

/// A message due again (`?1` to `?5`).
pub(super) static RETRY_MESSAGE: LazyLock<String> =
    LazyLock::new(|| retry_message_query(|n| format!("?{n}")));

/// The retention's delete, `?1` the cutoff.
pub(super) static FORGET: LazyLock<String> =
    LazyLock::new(|| forget_messages_query(|n| format!("?{n}")));

fn messages_where(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(sql).map_err(internal)?;
    let found = stmt
        .query_map(params, |r| Ok(rows::message(r)))
        .map_err(internal)?;
    found.map(|m| m.map_err(internal)?).collect()
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn lease_endpoints(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Endpoint>> {
        // A read first: the writer is not disturbed while nothing is due, or while what
        // is due is already being delivered.
        let due: bool = self.read(|conn| {
            conn.prepare_cached(&format!("SELECT EXISTS (SELECT 1 {LEASABLE})"))
                .and_then(|mut stmt| {
                    stmt.query_row(named_params! {":now": now.micros()}, |r| r.get(0))
                })
                .map_err(internal)
        })?;
        if !due {
            return Ok(Vec::new());
        }
        let owner = owner.to_owned();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "UPDATE webhook_endpoints SET lease_owner = :owner, lease_until = :until
                     WHERE id IN (SELECT e.id {LEASABLE} LIMIT :limit)
                     RETURNING {WEBHOOK_COLUMNS}"
                ))
                .map_err(internal)?;
            let leased = stmt
                .query_map(
                    named_params! {
                        ":owner": owner,
                        ":now": now.micros(),
                        ":until": until.micros(),
                        ":limit": limit,
                    },
                    |r| Ok(rows::webhook_endpoint(r)),
                )
                .map_err(internal)?;
            leased.map(|e| e.map_err(internal)?).collect()
        })
        .await
    }

    async fn due_messages(
        &self,
        endpoint: &WebhookId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Option<Vec<Message>>> {
        // The writer renews the lease; the batch is read beside it, so that reading it
        // takes none of the writer's time. The read sees every outcome recorded so far,
        // as `record_attempts` returns once its write has committed.
        let (id, owner) = (endpoint.clone(), owner.to_owned());
        let held = self
            .write(move |tx| {
                tx.prepare_cached(
                    "UPDATE webhook_endpoints SET lease_until = ?3
                     WHERE id = ?1 AND lease_owner = ?2 AND NOT disabled",
                )
                .and_then(|mut stmt| stmt.execute(params![id, owner, until.micros()]))
                .map_err(internal)
            })
            .await?;
        if held == 0 {
            return Ok(None);
        }
        self.read(|conn| {
            messages_where(conn, &DUE_MESSAGES, params![endpoint, now.micros(), limit])
        })
        .map(Some)
    }

    async fn record_attempts(
        &self,
        endpoint: &WebhookId,
        (owner, until): (&str, Timestamp),
        outcomes: &[Outcome],
        disable: bool,
    ) -> Result<bool> {
        let (endpoint, owner) = (endpoint.clone(), owner.to_owned());
        let outcomes = outcomes.to_vec();
        self.write(move |tx| {
            let held: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (
                         SELECT 1 FROM webhook_endpoints
                         WHERE id = ?1 AND lease_owner = ?2 AND lease_until = ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![endpoint, owner, until.micros()], |r| r.get(0))
                })
                .map_err(internal)?;
            if !held {
                return Ok(false);
            }
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE webhook_messages SET status = ?2, tries = ?3, next_attempt_at = ?4,
                         attempts = json_insert(attempts, '$[#]', json(?5))
                     WHERE seq = ?1",
                )
                .map_err(internal)?;
            for outcome in &outcomes {
                stmt.execute(params![
                    outcome.seq,
                    outcome.status.as_str(),
                    outcome.tries,
                    outcome.next_attempt_at.map(Timestamp::micros),
                    json_text(&outcome.log)?,
                ])
                .map_err(internal)?;
            }
            if disable {
                tx.execute(
                    "UPDATE webhook_endpoints SET disabled = 1, updated_at = ?2 WHERE id = ?1",
                    params![endpoint, Timestamp::now().micros()],
                )
                .map_err(internal)?;
            }
            Ok(true)
        })
        .await
    }

    async fn release_endpoint(&self, endpoint: &WebhookId, owner: &str) -> Result<()> {
        let (endpoint, owner) = (endpoint.clone(), owner.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND lease_owner = ?2",
                params![endpoint, owner],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
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
        self.read(|conn| match before {
            None => messages_where(
                conn,
                &RECENT_MESSAGES,
                params![business_id, endpoint, status, limit],
            ),
            Some(before) => messages_where(
                conn,
                &OLDER_MESSAGES,
                params![business_id, endpoint, status, limit, before.as_str()],
            ),
        })
    }

    async fn retry_message(
        &self,
        business_id: &BusinessId,
        endpoint: &WebhookId,
        id: &MessageId,
        now: Timestamp,
        attempts: u32,
    ) -> Result<Option<Message>> {
        let (business_id, endpoint, id) = (business_id.clone(), endpoint.clone(), id.clone());
        self.write(move |tx| {
            tx.prepare_cached(&RETRY_MESSAGE)
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![business_id, endpoint, id.as_str(), now.micros(), attempts],
                        |r| Ok(rows::message(r)),
                    )
                    .optional()
                })
                .map_err(internal)?
                .transpose()
        })
        .await
    }

    async fn oldest_undelivered(&self) -> Result<Option<Timestamp>> {
        let oldest: Option<i64> = self.read(|conn| {
            conn.prepare_cached(OLDEST_UNDELIVERED)
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
                .map_err(internal)
        })?;
        oldest.map(rows::timestamp).transpose()
    }

    async fn forget_messages(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let forgotten = tx
                .prepare_cached(&FORGET)
                .and_then(|mut stmt| stmt.execute(params![before.micros()]))
                .map_err(internal)?;
            Ok(forgotten as u64)
        })
        .await
    }
}
