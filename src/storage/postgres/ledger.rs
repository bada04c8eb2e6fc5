//! The ledger on PostgreSQL. A write takes a transaction-scoped advisory lock on its
//! (business, account, license) pair, so concurrent writers to one pair, in any process,
//! resolve one after another; the idempotency key is claimed by a primary-key insert,
//! which makes a concurrent repeat wait for the first request's outcome.
//!
//! A write takes two round trips: `BEGIN`, the lock and the read of the pair's
//! neighbours (which runs once the lock is held, in a snapshot of its own); then the
//! write and `COMMIT`. With an idempotency key, one more: `BEGIN` and the claim first.

use std::sync::LazyLock;

use async_trait::async_trait;
use deadpool_postgres::ClientWrapper;
use rust_decimal::Decimal;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::accounts::admitted_business;
use super::error::classify;
use super::outbox::subscribed;
use super::pool::{Params, query};
use super::tx::Tx;
use super::values::params;
use crate::domain::auth::{Access, Caller, Refusal, admit};
use crate::domain::entry::{LedgerEntry, NewEntry};
use crate::domain::events::Event;
use crate::domain::ids::{AccountId, BusinessId, LicenseId};
use crate::domain::ledger::{
    LaterEntry, Position, Shift, UpdateType, must_fold, plan_insertion, shifted,
};
use crate::domain::metadata::Metadata;
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::storage::columns::{self, Shifts, absolute_of, entry_columns, shifts_query};
use crate::storage::error::{Result, StorageError};
use crate::storage::idempotency;
use crate::storage::listing::{ListEntries, ListedEntry, Param, list_entries};
use crate::storage::rows::{self, Columns, corrupt, timestamp};
use crate::storage::store::{AccountStore, Appended, LedgerStore};

/// The instant and true absolute quantity of the last entry of the pair (`$1` to `$3`)
/// at or before `$4`. The look for shifts covering it finds none in an empty index, for
/// about what a hint that the pair has none would cost to read.
pub(super) static GOVERNING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT effective_from, {} FROM ledger_entries
         WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from <= $4
         ORDER BY effective_from DESC, seq DESC LIMIT 1",
        absolute_of("ledger_entries", Shifts::Postgres)
    )
});

/// The shifts of the pair (`$1` to `$3`).
static SHIFTS: LazyLock<String> = LazyLock::new(|| shifts_query(|n| format!("${n}")));

/// The governing entry's instant and stored quantity in the business of the API key
/// whose digest is `$1`, with the key's check and the count of the business's shifts:
/// while it has none, as nearly every business, the stored quantity is the true one, and
/// the read pays nothing for shifts (looking for them in every read of a quantity cost a
/// fifth of its throughput).
const GOVERNING_FOR_KEY: &str =
    "SELECT k.business_id, k.digest, k.read_only, g.effective_from, g.absolute,
         b.ledger_shifts
     FROM api_keys k
     JOIN businesses b ON b.id = k.business_id
     LEFT JOIN LATERAL (
         SELECT e.effective_from, e.absolute FROM ledger_entries e
         WHERE e.business_id = k.business_id AND e.account_id = $2 AND e.license_id = $3
           AND e.effective_from <= $4
         ORDER BY e.effective_from DESC, e.seq DESC LIMIT 1
     ) g ON TRUE
     WHERE k.digest = $1";

/// The insert of a new entry, its absolute quantity resolved (parameters `$1` to `$9`).
macro_rules! insert_entry {
    () => {
        "INSERT INTO ledger_entries
             (business_id, account_id, license_id, effective_from, update_type, given, absolute, metadata, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    };
}

/// A new entry alone.
const INSERT_ENTRY: &str = insert_entry!();

/// The part the two statements below share: a new entry (`$1` to `$9`), the later
/// entries it re-resolves (`$10`: their seqs, `$11`: their new absolute quantities), and
/// the response stored for its idempotency key (`$12`, `$13`), as common table expressions.
macro_rules! insert_and_resolve {
    () => {
        concat!(
            "WITH inserted AS (",
            insert_entry!(),
            "), resolved AS (
                 UPDATE ledger_entries AS e SET absolute = c.absolute
                 FROM UNNEST($10::BIGINT[], $11::NUMERIC[]) AS c (seq, absolute)
                 WHERE e.seq = c.seq
             ), answered AS (
                 UPDATE ledger_idempotency SET response = $12 WHERE business_id = $1 AND key = $13
             )"
        )
    };
}

/// A new entry, the later entries it re-resolves, and its idempotency key's response.
const INSERT_ENTRY_AND_RESOLVE: &str = concat!(insert_and_resolve!(), " SELECT 1");

/// [`INSERT_ENTRY_AND_RESOLVE`] that also records a shift (`$14` to `$18`: its from and
/// to positions and delta, or nulls), or deletes the pair's shifts (`$19`), folded, and
/// counts the business's shifts that many more (`$20`, negative after a fold).
const INSERT_ENTRY_AND_SHIFT: &str = concat!(
    insert_and_resolve!(),
    ", shifted AS (
         INSERT INTO ledger_shifts
             (business_id, account_id, license_id, from_at, from_seq, to_at, to_seq, delta)
         SELECT $1, $2, $3, $14::BIGINT, $15::BIGINT, $16::BIGINT, $17::BIGINT, $18::NUMERIC
         WHERE $14::BIGINT IS NOT NULL
     ), folded AS (
         DELETE FROM ledger_shifts
         WHERE $19::BOOLEAN AND business_id = $1 AND account_id = $2 AND license_id = $3
     ), counted AS (
         UPDATE businesses SET ledger_shifts = ledger_shifts + $20::BIGINT WHERE id = $1
     )
     SELECT 1"
);

/// The pair's lock, held until the transaction ends: writers of one pair take turns.
macro_rules! lock_pair {
    () => {
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0))"
    };
}
pub(super) const LOCK_PAIR: &str = lock_pair!();

/// [`LOCK_PAIR`], and whether the business (`$1`) has an endpoint to announce the write to.
const LOCK_PAIR_AND_SUBSCRIBED: &str = concat!(lock_pair!(), ", ", subscribed!("$1"));

/// The read of a new entry's neighbours at `$4` in the pair (`$2`, `$3`) of the business
/// that `$business` selects: the entry governing `$4` (if any), then the entries after it
/// that the new entry can affect, up to and including the instant of the next ABSOLUTE one
/// (found in the index of ABSOLUTE entries), with their stored quantities; and the pair's
/// shifts, as rows whose `to_at` is not null (`seq`, `effective_from`, `absolute`: the
/// shift's `from_seq`, `from_at`, `delta`). Unordered: sorting thousands of later entries
/// here cost more than reading them, and [`decode_neighbours`] sorts them.
macro_rules! neighbours_in {
    ($business:literal) => {
        concat!(
            "(SELECT FALSE AS later, seq, effective_from, update_type, absolute,
                     NULL::BIGINT AS to_at, NULL::BIGINT AS to_seq FROM ledger_entries
              WHERE business_id = ", $business, " AND account_id = $2 AND license_id = $3 AND effective_from <= $4
              ORDER BY effective_from DESC, seq DESC LIMIT 1)
             UNION ALL
             (SELECT TRUE, seq, effective_from, update_type, absolute, NULL, NULL FROM ledger_entries
              WHERE business_id = ", $business, " AND account_id = $2 AND license_id = $3 AND effective_from > $4
                AND effective_from <= COALESCE((
                    SELECT effective_from FROM ledger_entries
                    WHERE business_id = ", $business, " AND account_id = $2 AND license_id = $3
                      AND effective_from > $4 AND update_type = 'ABSOLUTE'
                    ORDER BY effective_from LIMIT 1), 9223372036854775807))
             UNION ALL
             (SELECT FALSE, from_seq, from_at, NULL, delta, to_at, to_seq FROM ledger_shifts
              WHERE business_id = ", $business, " AND account_id = $2 AND license_id = $3)"
        )
    };
}

/// The listing query and its parameters. A license alone is named as the license index
/// names it, by an expression (see migration 0005); with an account, the pair index
/// serves.
pub(super) fn listing<'a>(
    business_id: &'a BusinessId,
    query: &'a ListEntries,
) -> (String, Vec<Param<'a>>) {
    let license = match query.account_id {
        None => "(license_id || '')",
        Some(_) => "license_id",
    };
    list_entries(
        business_id,
        query,
        |n| format!("${n}"),
        ("ledger_entries", license),
        Shifts::Postgres,
    )
}

/// A new entry's neighbours in the business `$1`.
const NEIGHBOURS: &str = neighbours_in!("$1");

/// A new entry's neighbours in the business of the API key whose digest is `$1`. Sent
/// with the key's check, it also runs for a key refused there; its rows then go unused.
/// It reads the key again, after the pair's lock: one row of NULLs if the pair has no
/// entries, and no row at all if the key was revoked while the write waited for the lock.
const NEIGHBOURS_FOR_KEY: &str = concat!(
    "SELECT n.* FROM api_keys k LEFT JOIN LATERAL (",
    neighbours_in!("k.business_id"),
    ") n ON TRUE WHERE k.digest = $1"
);

#[async_trait]
impl LedgerStore for PgStore {
    /// For an API key that must allow writing, without an idempotency key, the key's
    /// check and the pair's lock are one statement: the lock, under the same name as
    /// `LOCK_PAIR`'s, is taken only for a key that may write. The neighbours' read travels
    /// with it and runs once the lock is held.
    async fn append_entry(&self, caller: &Caller, entry: &NewEntry) -> Result<Appended> {
        let key = match caller {
            Caller::Key(key, Access::Write) if entry.idempotency_key.is_none() => *key,
            Caller::Key(key, access) => {
                let principal = admit(self.authenticate(*key).await?, *access)?;
                return self.append_for(&principal.business_id, entry).await;
            }
            Caller::Business(business_id) => return self.append_for(business_id, entry).await,
        };
        let at = entry.effective_from.unwrap_or_else(Timestamp::now);
        let pair = (entry.account_id.as_str(), entry.license_id.as_str());
        let neighbours_params: &Params = &[&&key.0[..], &pair.0, &pair.1, &at.micros()];
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let (rows, neighbours) = tx
                .begin_with_two(
                    (
                        concat!(
                            "SELECT k.business_id, k.digest, k.read_only,
                                 CASE WHEN NOT k.read_only THEN pg_advisory_xact_lock(
                                     hashtextextended(k.business_id || '/' || $2 || '/' || $3, 0)) END, ",
                            subscribed!("k.business_id"),
                            " FROM api_keys k WHERE k.digest = $1"
                        ),
                        &neighbours_params[..3],
                    ),
                    (NEIGHBOURS_FOR_KEY, neighbours_params),
                )
                .await?;
            let business_id = admitted_business(rows.first(), key, Access::Write)?;
            if neighbours.is_empty() {
                // Revoked after its check read it: the write is refused, as it would
                // have been a moment later (its neighbours were read in no business).
                return Err(Refusal::UnknownKey.into());
            }
            let subscribed = subscribed_in(&rows, 4)?;
            append_locked(&mut tx, &business_id, entry, at, &neighbours, subscribed).await
        }
        .await;
        tx.finish(outcome).await
    }

    async fn list_entries(
        &self,
        business_id: &BusinessId,
        query: &ListEntries,
    ) -> Result<Vec<ListedEntry>> {
        let (sql, bound) = listing(business_id, query);
        let rows = self.query(&sql, &params(&bound)).await?;
        let wanted = query.limit as usize;
        rows.iter().take(wanted).map(rows::listed_entry).collect()
    }

    async fn update_metadata(
        &self,
        business_id: &BusinessId,
        (account, license): (&AccountId, &LicenseId),
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<Option<LedgerEntry>> {
        let sql = format!(
            "UPDATE ledger_entries SET metadata = $5 WHERE seq = (
                 SELECT seq FROM ledger_entries
                 WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from = $4
                 ORDER BY seq DESC LIMIT 1)
             RETURNING {}",
            entry_columns(Shifts::Postgres)
        );
        let metadata = columns::json_text(metadata)?;
        let row = self
            .change_one(
                &sql,
                &[
                    &business_id,
                    &account.as_str(),
                    &license.as_str(),
                    &at.micros(),
                    &metadata,
                ],
            )
            .await?;
        row.as_ref()
            .map(|row| rows::listed_entry(row).map(|listed| listed.entry))
            .transpose()
    }

    /// For an API key, the key's check and the quantity are one statement.
    async fn quantity_at(
        &self,
        caller: &Caller,
        (account, license): (&AccountId, &LicenseId),
        at: Timestamp,
    ) -> Result<Option<(Timestamp, Quantity)>> {
        let (key, access) = match caller {
            Caller::Key(key, access) => (*key, *access),
            Caller::Business(business_id) => {
                return self
                    .query_opt(
                        &GOVERNING,
                        &[
                            business_id,
                            &account.as_str(),
                            &license.as_str(),
                            &at.micros(),
                        ],
                    )
                    .await?
                    .map(|row| rows::absolute_at(&row, 0))
                    .transpose();
            }
        };
        let row = self
            .query_opt(
                GOVERNING_FOR_KEY,
                &[
                    &&key.0[..],
                    &account.as_str(),
                    &license.as_str(),
                    &at.micros(),
                ],
            )
            .await?;
        let business_id = admitted_business(row.as_ref(), key, access)?;
        let Some(row) = row else { return Ok(None) };
        let Some(from) = row.try_get::<_, Option<i64>>(3).map_err(corrupt)? else {
            return Ok(None);
        };
        if row.int(5)? == 0 {
            return Ok(Some((timestamp(from)?, row.quantity(4)?)));
        }
        // The business has shifts: read again, adding them (in one snapshot of its own).
        let pair = (&business_id, &account.as_str(), &license.as_str());
        let params: &Params = &[pair.0, pair.1, pair.2, &at.micros()];
        (self.query_opt(&GOVERNING, params).await?)
            .map(|row| rows::absolute_at(&row, 0))
            .transpose()
    }

    async fn history(
        &self,
        business_id: &BusinessId,
        (account, license): (&AccountId, &LicenseId),
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(Quantity, Vec<(Timestamp, Quantity)>)> {
        let conn = self.conn().await?;
        let (governing, changes, shifts) = tokio::try_join!(
            conn.prepare_cached(&GOVERNING),
            conn.prepare_cached(
                "SELECT effective_from, seq, absolute FROM ledger_entries
                 WHERE business_id = $1 AND account_id = $2 AND license_id = $3
                   AND effective_from > $4 AND effective_from < $5
                 ORDER BY effective_from, seq",
            ),
            conn.prepare_cached(&SHIFTS),
        )
        .map_err(classify)?;
        let (start, end) = (start.micros(), end.micros());
        let before: &Params = &[&business_id, &account.as_str(), &license.as_str(), &start];
        let during: &Params = &[
            &business_id,
            &account.as_str(),
            &license.as_str(),
            &start,
            &end,
        ];
        // One snapshot for the starting quantity and the changes after it; every statement
        // is sent at once, so the transaction ends even if this request is cancelled.
        let (_, initial, rows, shift_rows, _) = tokio::try_join!(
            conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            conn.query_opt(&governing, before),
            conn.query(&changes, during),
            conn.query(&shifts, &before[..3]),
            conn.batch_execute("COMMIT"),
        )
        .map_err(classify)?;
        let shifts = (shift_rows.iter())
            .map(|row| rows::shift(row, 0))
            .collect::<Result<Vec<_>>>()?;
        let initial = match initial {
            Some(row) => rows::absolute_at(&row, 0)?.1,
            None => Quantity::ZERO,
        };
        let changes = (rows.iter())
            .map(|row| {
                let (position, stored) = rows::stored_at(row, 0)?;
                Ok((
                    timestamp(position.at)?,
                    true_absolute(position, stored, &shifts)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok((initial, changes))
    }
}

impl PgStore {
    /// Appends for a business whose key has been checked.
    async fn append_for(&self, business_id: &BusinessId, entry: &NewEntry) -> Result<Appended> {
        let mut tx = Tx::open(self).await?;
        let outcome = append(&mut tx, business_id, entry).await;
        tx.finish(outcome).await
    }
}

/// Claims the idempotency key and locks the pair, reads the neighbours, resolves, and
/// writes and commits; a replay or a refusal leaves the transaction to the caller.
async fn append(tx: &mut Tx, business_id: &BusinessId, entry: &NewEntry) -> Result<Appended> {
    let key = entry.idempotency_key.as_ref().map(|k| k.as_str());
    let at = entry.effective_from.unwrap_or_else(Timestamp::now);
    let pair = (entry.account_id.as_str(), entry.license_id.as_str());
    let params: &Params = &[&business_id, &pair.0, &pair.1, &at.micros()];
    let lock = (LOCK_PAIR_AND_SUBSCRIBED, &params[..3]);
    let (locked, neighbours) = match key {
        None => tx.begin_with_two(lock, (NEIGHBOURS, params)).await?,
        Some(key) => {
            let fingerprint = entry.fingerprint();
            // Blocks while another transaction holds the same key, then sees its outcome.
            // The claim completes before the lock is asked for, so that every writer takes
            // the key before the pair.
            let claimed = !tx
                .begin_with(
                    "INSERT INTO ledger_idempotency (business_id, key, fingerprint) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING RETURNING 1",
                    &[&business_id, &key, &&fingerprint[..]],
                )
                .await?
                .is_empty();
            if !claimed {
                return replay(tx, business_id, key, &fingerprint).await;
            }
            tx.two(lock, (NEIGHBOURS, params)).await?
        }
    };
    let subscribed = subscribed_in(&locked, 1)?;
    append_locked(tx, business_id, entry, at, &neighbours, subscribed).await
}

/// The flag of [`subscribed!`] in column `column` of a statement's one row.
fn subscribed_in(rows: &[Row], column: usize) -> Result<bool> {
    rows.first().map_or(Ok(false), |row| row.flag(column))
}

/// Resolves the new entry at `at` against its neighbours (rows of [`NEIGHBOURS`], read
/// with the pair locked), and writes and commits, with its event if the business has an
/// endpoint (`subscribed`); a refusal leaves the transaction to the caller.
async fn append_locked(
    tx: &mut Tx,
    business_id: &BusinessId,
    entry: &NewEntry,
    at: Timestamp,
    neighbours: &[Row],
    subscribed: bool,
) -> Result<Appended> {
    let idempotency_key = entry.idempotency_key.as_ref().map(|k| k.as_str());
    // `at` is the request's time; `created_at` is read after the lock, so that a pair's
    // entries are created in the order they were written.
    let now = Timestamp::now();
    let (prior, (later, next_absolute), shifts) = decode_neighbours(neighbours)?;
    let mut plan = plan_insertion(
        prior,
        (at, entry.update_type, entry.quantity),
        &later,
        next_absolute,
        &shifts,
    )?;
    // Past the most shifts a pair keeps, they are folded into its entries, this write's
    // with them: the new entry then stores its true quantity, and no shift is recorded.
    let fold = plan.shift.is_some() && must_fold(shifts.len() + 1);
    if fold {
        let all: Vec<Shift> = shifts.iter().chain(&plan.shift).cloned().collect();
        let first = (all.iter()).map(|s| s.from.at).min().unwrap_or(i64::MIN);
        let pair = (entry.account_id.as_str(), entry.license_id.as_str());
        let rows = query(
            tx,
            "SELECT effective_from, seq, absolute FROM ledger_entries
             WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from >= $4",
            &[&business_id, &pair.0, &pair.1, &first],
        )
        .await?;
        let stored = (rows.iter())
            .map(|row| rows::stored_at(row, 0))
            .collect::<Result<Vec<_>>>()?;
        plan.rewrites = crate::domain::ledger::fold(&stored, &all);
        plan.stored = plan.absolute.decimal();
        plan.shift = None;
    }

    let written = entry.written(plan.absolute, at, now);
    let metadata = entry
        .metadata
        .as_ref()
        .map(columns::json_text)
        .transpose()?;
    let (seqs, absolutes): (Vec<i64>, Vec<Decimal>) = plan.rewrites.iter().copied().unzip();
    let response = idempotency_key
        .map(|_| idempotency::stored_response(&written))
        .transpose()?;
    let entry_params: [&(dyn ToSql + Sync); 9] = [
        &business_id,
        &entry.account_id.as_str(),
        &entry.license_id.as_str(),
        &at.micros(),
        &entry.update_type.as_str(),
        &entry.quantity.decimal(),
        &plan.stored,
        &metadata,
        &now.micros(),
    ];
    // One round trip writes the entry (and, if any, the re-resolved later entries, the
    // shift and the response an idempotent repeat will get) and commits. An append with
    // nothing to re-resolve, most writes, runs a plain insert, which PostgreSQL sets up
    // for far less than the statement with several modifying parts.
    let events = match subscribed {
        true => vec![Event::license_update_created(business_id, &written)],
        false => Vec::new(),
    };
    let resolve: [&(dyn ToSql + Sync); 4] = [&seqs, &absolutes, &response, &idempotency_key];
    if plan.shift.is_some() || fold {
        let shift = plan.shift.as_ref();
        let (from_at, from_seq) = (shift.map(|s| s.from.at), shift.map(|s| s.from.seq));
        let (to_at, to_seq) = (shift.map(|s| s.to.at), shift.map(|s| s.to.seq));
        let delta = shift.map(|s| s.delta);
        let counted: i64 = match fold {
            true => -i64::try_from(shifts.len()).unwrap_or(i64::MAX),
            false => 1,
        };
        let extra: [&(dyn ToSql + Sync); 7] = [
            &from_at, &from_seq, &to_at, &to_seq, &delta, &fold, &counted,
        ];
        let params: Vec<_> = (entry_params.into_iter())
            .chain(resolve)
            .chain(extra)
            .collect();
        tx.commit_with_events(INSERT_ENTRY_AND_SHIFT, &params, events)
            .await?;
    } else if seqs.is_empty() && response.is_none() {
        tx.commit_with_events(INSERT_ENTRY, &entry_params, events)
            .await?;
    } else {
        let params: Vec<_> = entry_params.into_iter().chain(resolve).collect();
        tx.commit_with_events(INSERT_ENTRY_AND_RESOLVE, &params, events)
            .await?;
    }
    Ok(Appended::Created(written))
}

/// The response stored for an idempotency key already claimed, if the request matches.
async fn replay(
    client: &ClientWrapper,
    business_id: &BusinessId,
    key: &str,
    fingerprint: &[u8],
) -> Result<Appended> {
    let row = query(
        client,
        "SELECT fingerprint, response FROM ledger_idempotency WHERE business_id = $1 AND key = $2",
        &[&business_id, &key],
    )
    .await?;
    let row = row
        .first()
        .ok_or_else(|| StorageError::Internal("a claimed idempotency key vanished".into()))?;
    let stored: &[u8] = row.try_get(0).map_err(corrupt)?;
    let response: Option<&str> = row.try_get(1).map_err(corrupt)?;
    idempotency::replay(stored, response, fingerprint)
}

/// The absolute quantity just before a new entry (zero if none), the later entries it
/// moves (those before the next ABSOLUTE one) and where that one stands, and the pair's
/// shifts, from the rows of [`NEIGHBOURS`] or [`NEIGHBOURS_FOR_KEY`].
fn decode_neighbours(rows: &[Row]) -> Result<Neighbours> {
    let mut prior = None;
    let mut later = Vec::with_capacity(rows.len());
    let mut shifts = Vec::new();
    for row in rows {
        // `NEIGHBOURS_FOR_KEY`'s row of NULLs stands for no neighbours.
        let Some(later_one) = row.try_get::<_, Option<bool>>(0).map_err(corrupt)? else {
            continue;
        };
        let position = Position {
            at: row.int(2)?,
            seq: row.int(1)?,
        };
        let stored = row.decimal(4)?;
        if let Some(to_at) = row.int_or_null(5)? {
            let to = Position {
                at: to_at,
                seq: row.int(6)?,
            };
            let (from, delta) = (position, stored);
            shifts.push(Shift { from, to, delta });
        } else if later_one {
            let kind = row.text(3)?;
            let absolute = kind == UpdateType::Absolute.as_str();
            later.push((position, absolute, stored));
        } else {
            prior = Some((position, stored));
        }
    }
    let prior = match prior {
        Some((position, stored)) => true_absolute(position, stored, &shifts)?,
        None => Quantity::ZERO,
    };
    later.sort_unstable_by_key(|(position, ..)| *position);
    let next = later.iter().position(|(_, absolute, _)| *absolute);
    let next_absolute = next.map(|i| later[i].0);
    let moved = (later[..next.unwrap_or(later.len())].iter())
        .map(|&(position, _, stored)| {
            Ok(LaterEntry {
                seq: position.seq,
                effective_from: timestamp(position.at)?,
                absolute: true_absolute(position, stored, &shifts)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((prior, (moved, next_absolute), shifts))
}

/// What [`decode_neighbours`] finds.
type Neighbours = (Quantity, (Vec<LaterEntry>, Option<Position>), Vec<Shift>);

/// The absolute quantity of an entry at `position` that stores `stored`, with the pair's
/// shifts.
fn true_absolute(position: Position, stored: Decimal, shifts: &[Shift]) -> Result<Quantity> {
    shifted(stored, position, shifts)
        .ok_or_else(|| corrupt(format!("a shifted quantity out of range at {position:?}")))
}
