//! The columns each query selects, in the order the decoders of `rows.rs` read them,
//! and how a value that is neither text nor a number is written into its column;
//! written once for both backends.

use crate::domain::license::{KeyDuration, KeyStatus};
use crate::storage::error::{Result, StorageError};
use crate::storage::listing::status_condition;

/// How a query adds to an entry's stored absolute quantity the shifts covering it
/// (see [`crate::domain::ledger::Shift`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shifts {
    /// The pair has none: the stored quantity is the true one.
    Absent,
    /// SQLite keeps decimals as text: `ledger_add` (registered on every connection)
    /// adds the deltas exactly.
    Sqlite,
    Postgres,
}

/// The true absolute quantity of the `ledger_entries` row that `entry` names (the table
/// or an alias): the stored one plus the deltas of the shifts covering its position.
pub fn absolute_of(entry: &str, shifts: Shifts) -> String {
    let covering = format!(
        "FROM ledger_shifts s
         WHERE s.business_id = {entry}.business_id AND s.account_id = {entry}.account_id
           AND s.license_id = {entry}.license_id
           AND ({entry}.effective_from, {entry}.seq) > (s.from_at, s.from_seq)
           AND ({entry}.effective_from, {entry}.seq) < (s.to_at, s.to_seq)"
    );
    match shifts {
        Shifts::Absent => format!("{entry}.absolute"),
        Shifts::Sqlite => {
            format!("ledger_add({entry}.absolute, (SELECT group_concat(s.delta) {covering}))")
        }
        Shifts::Postgres => {
            format!("{entry}.absolute + COALESCE((SELECT sum(s.delta) {covering}), 0)")
        }
    }
}

/// The columns every entry query selects, in the order backends decode them.
pub fn entry_columns(shifts: Shifts) -> String {
    format!(
        "seq, account_id, license_id, {}, effective_from, metadata, created_at",
        absolute_of("ledger_entries", shifts)
    )
}

/// The shifts of the pair (`p(1)`, `p(2)`, `p(3)`), decoded by
/// [`rows::shift`](crate::storage::rows::shift).
pub fn shifts_query(p: impl Fn(usize) -> String) -> String {
    format!(
        "SELECT from_at, from_seq, to_at, to_seq, delta FROM ledger_shifts
         WHERE business_id = {} AND account_id = {} AND license_id = {}",
        p(1),
        p(2),
        p(3)
    )
}

/// Every API key with its business's name, for `licensed api-key list`.
pub const LIST_API_KEYS: &str = "SELECT k.id, b.name, k.read_only, k.created_at FROM api_keys k
     JOIN businesses b ON b.id = k.business_id ORDER BY b.name, k.created_at, k.id";

pub const SIGNING_KEY_COLUMNS: &str =
    "id, business_id, public_key, private_key, active, created_at";
pub const WEBHOOK_COLUMNS: &str = "id, business_id, url, description, disabled, filter_types, \
     headers, metadata, rate_limit, secret, idempotency_key, idempotency_digest, created_at, \
     updated_at";
/// A webhook message, decoded by [`rows::message`](crate::storage::rows::message).
pub const MESSAGE_COLUMNS: &str =
    "id, endpoint_id, event_type, body, created_at, status, tries, next_attempt_at, attempts, seq";
/// A console session, decoded by [`rows::console_session`](crate::storage::rows::console_session).
pub const SESSION_COLUMNS: &str = "digest, api_key_digest, csrf_token, created_at, last_seen_at";
pub const CUSTOMER_COLUMNS: &str =
    "id, business_id, email, name, phone_number, metadata, created_at, preferred_locale";
pub const PRODUCT_COLUMNS: &str = "id, business_id, name, description, license_key_activations_limit, \
     license_key_duration_count, license_key_duration_interval, license_key_activation_message, \
     metadata, created_at, updated_at, details, heartbeat_interval";
/// A key as stored. Its `instances_count` may still count instances that died since the
/// last sweep, and a key bound to seats stores no limit: reads use [`license_key_columns_at`],
/// writes remove the dead first and read the seats under the pair's lock.
pub const LICENSE_KEY_COLUMNS: &str = "id, business_id, key, customer_id, product_id, source, \
     activations_limit, instances_count, disabled, expires_at, payment_id, subscription_id, created_at, \
     heartbeat_interval, seats_account_id, seats_license_id";
pub const INSTANCE_COLUMNS: &str = "id, business_id, license_key_id, name, created_at, \
     fingerprint, last_heartbeat_at, heartbeat_expires_at";

/// A key's columns as read at the instant the placeholder `now` binds: then the count of
/// its instances dead at that instant, and, for a key bound to seats, its pair's quantity
/// then (null if the pair has no entry by then), with its `shifts`. Decoded by
/// [`rows::license_key_at`](crate::storage::rows::license_key_at).
pub fn license_key_columns_at(now: &str, shifts: Shifts) -> String {
    let seats = absolute_of("seat", shifts);
    format!(
        "{LICENSE_KEY_COLUMNS}, \
         CASE WHEN heartbeat_interval IS NULL THEN 0 ELSE (
             SELECT count(*) FROM license_key_instances dead
             WHERE dead.license_key_id = license_keys.id AND dead.heartbeat_expires_at <= {now}) END, \
         CASE WHEN seats_account_id IS NULL THEN NULL ELSE (
             SELECT {seats} FROM ledger_entries seat
             WHERE seat.business_id = license_keys.business_id
               AND seat.account_id = license_keys.seats_account_id
               AND seat.license_id = license_keys.seats_license_id AND seat.effective_from <= {now}
             ORDER BY seat.effective_from DESC, seat.seq DESC LIMIT 1) END"
    )
}

/// After a key's heartbeat interval changed (`?2`, seconds, or null: off) at `?3`, every
/// live instance of key `?1` keeps its last beat, or beats now if it had none, and is due
/// one new interval after it; with no interval, neither. SQLite's text; PostgreSQL's
/// differs only in its typed placeholders.
pub const RETIME_INSTANCES: &str = "UPDATE license_key_instances SET
         last_heartbeat_at = CASE WHEN ?2 IS NULL THEN NULL ELSE COALESCE(last_heartbeat_at, ?3) END,
         heartbeat_expires_at = COALESCE(last_heartbeat_at, ?3) + ?2 * 1000000
     WHERE license_key_id = ?1";

/// How a product's key duration is stored: `(count, interval name)`.
pub fn duration_columns(duration: Option<KeyDuration>) -> (Option<i64>, Option<String>) {
    match duration {
        Some(d) => (
            Some(i64::from(d.count)),
            serde_json::to_value(d.interval)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
        ),
        None => (None, None),
    }
}

/// A value as the JSON text a column stores (metadata, a product's details).
pub fn json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StorageError::Internal(format!("unstorable value: {e}")))
}

/// The overview's counts for business `b` at `now` (`day_ago` = now − 24 h), decoded by
/// [`rows::overview`](crate::storage::rows::overview); `p` names a placeholder.
pub fn overview_query(p: impl Fn(usize) -> String) -> String {
    let (b, now, day_ago) = (p(1), p(2), p(3));
    let [active, expired, disabled] = [KeyStatus::Active, KeyStatus::Expired, KeyStatus::Disabled]
        .map(|s| status_condition(s, &now));
    format!(
        "SELECT
             (SELECT count(*) FROM customers WHERE business_id = {b}),
             (SELECT count(*) FROM license_keys WHERE business_id = {b} AND {active}),
             (SELECT count(*) FROM license_keys WHERE business_id = {b} AND {expired}),
             (SELECT count(*) FROM license_keys WHERE business_id = {b} AND {disabled}),
             (SELECT count(*) FROM license_key_instances WHERE business_id = {b} AND created_at >= {day_ago})
               + (SELECT count(*) FROM departed_instances WHERE business_id = {b} AND created_at >= {day_ago}),
             (SELECT count(*) FROM (SELECT DISTINCT account_id, license_id FROM ledger_entries
                  WHERE business_id = {b}) pairs)"
    )
}

/// Whether a key other than `p(1)` reads as `p(1)` (see the store's `key_read_as`), where
/// `capitals` is the key in capitals: the expression of the index of keys as read
/// (migrations SQLite 0018, PostgreSQL 0019), which the query must repeat to be read from
/// it.
pub fn key_read_as_query(capitals: &str, p: impl Fn(usize) -> String) -> String {
    let meant = p(1);
    format!(
        "SELECT EXISTS (
             SELECT 1 FROM license_keys
             WHERE replace(replace(replace({capitals}, 'I', '1'), 'L', '1'), 'O', '0') = {meant}
               AND key <> {meant})"
    )
}

/// The ledger's pairs of business `p(1)`, of account `p(2)` if not null, and with `after`,
/// those after the pair (`p(4)`, `p(5)`), read from there; in order, up to `p(3)`.
pub fn ledger_pairs_query(after: bool, p: impl Fn(usize) -> String) -> String {
    let (b, account, limit) = (p(1), p(2), p(3));
    let after = match after {
        true => format!("AND (account_id, license_id) > ({}, {})", p(4), p(5)),
        false => String::new(),
    };
    format!(
        "SELECT DISTINCT account_id, license_id FROM ledger_entries
         WHERE business_id = {b} AND ({account} IS NULL OR account_id = {account}) {after}
         ORDER BY account_id, license_id LIMIT {limit}"
    )
}

/// The `p(4)` most recent messages of business `p(1)`'s endpoint `p(2)`, with status `p(3)`
/// if not null, and with `older`, those older than message `p(5)`; newest first: in the
/// order of their ids, which are made in order, read from the unique index of those
/// (migrations SQLite 0016, PostgreSQL 0017), from the page's first.
pub fn recent_messages_query(older: bool, p: impl Fn(usize) -> String) -> String {
    let (b, endpoint, status, limit) = (p(1), p(2), p(3), p(4));
    let older = match older {
        true => format!("AND id < {}", p(5)),
        false => String::new(),
    };
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM webhook_messages
         WHERE endpoint_id = (
             SELECT id FROM webhook_endpoints WHERE business_id = {b} AND id = {endpoint})
           AND ({status} IS NULL OR status = {status}) {older}
         ORDER BY id DESC LIMIT {limit}"
    )
}

/// Message `p(3)` of business `p(1)`'s endpoint `p(2)` due again at `p(4)`: a pending one
/// keeps its place in its schedule, a settled one gets the last of `p(5)` attempts.
pub fn retry_message_query(p: impl Fn(usize) -> String) -> String {
    let (b, endpoint, id, at, attempts) = (p(1), p(2), p(3), p(4), p(5));
    format!(
        "UPDATE webhook_messages SET next_attempt_at = {at},
             tries = CASE WHEN status = 'pending' THEN tries ELSE {attempts} - 1 END,
             status = 'pending'
         WHERE endpoint_id = (
             SELECT id FROM webhook_endpoints WHERE business_id = {b} AND id = {endpoint})
           AND id = {id}
         RETURNING {MESSAGE_COLUMNS}"
    )
}

/// When the oldest message still to deliver to an enabled endpoint was made: the first
/// entry of the undelivered index that belongs to one. Written as `min(created_at)` over
/// the join, it was planned on PostgreSQL as a scan of every message kept once the
/// statistics saw most of them pending (86 ms behind 200 000 messages, 1 ms this way); the
/// metric reads it on every scrape.
pub const OLDEST_UNDELIVERED: &str = "SELECT m.created_at FROM webhook_messages m
    WHERE m.status = 'pending' AND EXISTS (
        SELECT 1 FROM webhook_endpoints e WHERE e.id = m.endpoint_id AND NOT e.disabled)
    ORDER BY m.created_at LIMIT 1";

/// Deletes the settled messages recorded before `p(1)`: those before the first message
/// recorded since, in the order of `seq` (the order of their instants, but for writes made
/// in the same moment), read from the table's key: no index of instants for every message
/// to update (migrations SQLite 0016, PostgreSQL 0017).
pub fn forget_messages_query(p: impl Fn(usize) -> String) -> String {
    let before = p(1);
    format!(
        "DELETE FROM webhook_messages
         WHERE seq < coalesce(
                 (SELECT seq FROM webhook_messages WHERE created_at >= {before} ORDER BY seq LIMIT 1),
                 (SELECT max(seq) + 1 FROM webhook_messages))
           AND status <> 'pending'"
    )
}
