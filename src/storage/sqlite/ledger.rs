//! The ledger on SQLite. Writes are serialized by the writer thread and an immediate
//! transaction, so resolution sees a stable pair.

use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use rust_decimal::Decimal;

use super::SqliteStore;
use super::error::internal;
use super::known_keys::principal_of_key;
use super::outbox::announce;
use super::shifts::{self, read_with, shifts_of};
use crate::domain::auth::{Caller, admit};
use crate::domain::entry::{LedgerEntry, NewEntry};
use crate::domain::events::Event;
use crate::domain::ids::{AccountId, BusinessId, LicenseId};
use crate::domain::ledger::{LaterEntry, Position, Shift, plan_insertion, shifted};
use crate::domain::metadata::Metadata;
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::domain::webhooks::EventType;
use crate::storage::columns::{self, Shifts, absolute_of, entry_columns};
use crate::storage::error::Result;
use crate::storage::idempotency;
use crate::storage::listing::{EntrySort, ListEntries, ListedEntry, Param, list_entries};
use crate::storage::rows::{self, corrupt};
use crate::storage::store::{Appended, LedgerStore};

#[async_trait]
impl LedgerStore for SqliteStore {
    /// A key not yet known is checked in the write's own job, on the writer's connection,
    /// whose cache is warm (a read connection would first drop its cache, stale after every
    /// commit), and remembered once that write has committed.
    async fn append_entry(&self, caller: &Caller, entry: &NewEntry) -> Result<Appended> {
        let (entry, fingerprint) = (entry.clone(), fingerprint_if_keyed(entry));
        let (key, access) = match caller {
            Caller::Business(business_id) => {
                let business_id = business_id.clone();
                return self
                    .write(move |tx| append(tx, &business_id, &entry, fingerprint))
                    .await;
            }
            Caller::Key(key, access) => (*key, *access),
        };
        if let Some(principal) = self.known_keys.get(key) {
            let business_id = admit(Some(principal), access)?.business_id;
            return self
                .write(move |tx| append(tx, &business_id, &entry, fingerprint))
                .await;
        }
        let revokes = self.known_keys.revokes();
        let (principal, appended) = self
            .write(move |tx| {
                let principal = admit(principal_of_key(tx, key)?, access)?;
                let appended = append(tx, &principal.business_id, &entry, fingerprint)?;
                Ok((principal, appended))
            })
            .await?;
        self.known_keys.remember(key, &principal, revokes);
        Ok(appended)
    }

    async fn list_entries(
        &self,
        business_id: &BusinessId,
        query: &ListEntries,
    ) -> Result<Vec<ListedEntry>> {
        self.read(|conn| {
            read_with(shifts::any, |shifts| {
                let (sql, params) = listing(conn, business_id, query, shifts)?;
                let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
                let rows = stmt
                    .query_map(params_from_iter(&params), |r| Ok(rows::listed_entry(r)))
                    .map_err(internal)?;
                let wanted = query.limit as usize;
                rows.take(wanted)
                    .map(|row| row.map_err(internal)?)
                    .collect()
            })
        })
    }

    async fn update_metadata(
        &self,
        business_id: &BusinessId,
        (account, license): (&AccountId, &LicenseId),
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<Option<LedgerEntry>> {
        let args = (
            business_id.to_owned(),
            account.as_str().to_owned(),
            license.as_str().to_owned(),
            columns::json_text(metadata)?,
        );
        let ids = (business_id.clone(), account.clone(), license.clone());
        self.write(move |tx| {
            let (business_id, account, license, metadata) = args;
            // On the writer, which alone adds shifts: the record is up to date.
            let shifts = match shifts::may_have(&ids.0, (&ids.1, &ids.2)) {
                true => Shifts::Sqlite,
                false => Shifts::Absent,
            };
            let sql = format!(
                "UPDATE ledger_entries SET metadata = ?5 WHERE seq = (
                     SELECT seq FROM ledger_entries
                     WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from = ?4
                     ORDER BY seq DESC LIMIT 1)
                 RETURNING {}",
                entry_columns(shifts)
            );
            let row = tx
                .query_row(&sql, params![business_id, account, license, at.micros(), metadata], |r| Ok(rows::listed_entry(r)))
                .optional()
                .map_err(internal)?;
            row.transpose().map(|listed| listed.map(|l| l.entry))
        })
        .await
    }

    /// For an API key, the key and the quantity on one pooled connection.
    async fn quantity_at(
        &self,
        caller: &Caller,
        pair: (&AccountId, &LicenseId),
        at: Timestamp,
    ) -> Result<Option<(Timestamp, Quantity)>> {
        self.read(|conn| match caller {
            Caller::Business(business_id) => governing(conn, business_id, pair, at),
            Caller::Key(key, access) => {
                let principal = admit(self.known_keys.principal(conn, *key)?, *access)?;
                governing(conn, &principal.business_id, pair, at)
            }
        })
    }

    async fn history(
        &self,
        business_id: &BusinessId,
        pair: (&AccountId, &LicenseId),
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(Quantity, Vec<(Timestamp, Quantity)>)> {
        self.read(|conn| {
            // One read transaction for both statements: a write committed between them
            // would give a report that mixes two states of the ledger.
            // The shifts are read in it too, if the pair may have some once it has begun.
            let snapshot = conn.unchecked_transaction().map_err(internal)?;
            let initial = stored_governing(&snapshot, business_id, pair, start)?;
            let mut stmt = snapshot
                .prepare_cached(
                    "SELECT effective_from, seq, absolute FROM ledger_entries
                     WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3
                       AND effective_from > ?4 AND effective_from < ?5
                     ORDER BY effective_from, seq",
                )
                .map_err(internal)?;
            let changes = stmt
                .query_map(
                    params![
                        business_id,
                        pair.0.as_str(),
                        pair.1.as_str(),
                        start.micros(),
                        end.micros()
                    ],
                    |r| Ok(rows::stored_at(r, 0)),
                )
                .map_err(internal)?;
            let changes = changes
                .map(|change| change.map_err(internal)?)
                .collect::<Result<Vec<_>>>()?;
            let shifts = match shifts::may_have(business_id, pair) {
                true => shifts_of(&snapshot, business_id, pair)?,
                false => Vec::new(),
            };
            let initial =
                initial.map_or(Ok(Quantity::ZERO), |stored| true_absolute(stored, &shifts))?;
            let changes = (changes.into_iter())
                .map(|stored| {
                    Ok((
                        rows::timestamp(stored.0.at)?,
                        true_absolute(stored, &shifts)?,
                    ))
                })
                .collect::<Result<_>>()?;
            Ok((initial, changes))
        })
    }
}

/// The fingerprint of a write that carries an idempotency key, computed by its caller:
/// the writer thread, which every write waits for, has enough to do.
fn fingerprint_if_keyed(entry: &NewEntry) -> Option<[u8; 32]> {
    entry.idempotency_key.as_ref().map(|_| entry.fingerprint())
}

/// `fingerprint` is [`fingerprint_if_keyed`]'s; without it, a keyed write computes its own.
fn append(
    tx: &Connection,
    business_id: &BusinessId,
    entry: &NewEntry,
    fingerprint: Option<[u8; 32]>,
) -> Result<Appended> {
    let claim = (entry.idempotency_key.as_ref())
        .map(|key| (key, fingerprint.unwrap_or_else(|| entry.fingerprint())));
    if let Some((key, fingerprint)) = claim {
        let earlier: Option<(Vec<u8>, String)> = tx
            .prepare_cached(
                "SELECT fingerprint, response FROM ledger_idempotency WHERE business_id = ?1 AND key = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![business_id, key.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(internal)?;
        if let Some((stored, response)) = earlier {
            return idempotency::replay(&stored, Some(&response), &fingerprint);
        }
    }

    let now = Timestamp::now();
    let at = entry.effective_from.unwrap_or(now);
    let pair = (&entry.account_id, &entry.license_id);
    // Most entries go after their pair's last one: its quantity is the prior one and nothing
    // follows to re-resolve. Reading the last entry settles that in one index search; an
    // entry placed before it needs the entry governing its instant and the later ones.
    // A pair with shifts has them read first, to take in.
    let shifts = match shifts::may_have(business_id, pair) {
        true => shifts_of(tx, business_id, pair)?,
        false => Vec::new(),
    };
    let (prior, later, next_absolute) =
        match stored_governing(tx, business_id, pair, Timestamp::LAST)? {
            None => (Quantity::ZERO, Vec::new(), None),
            Some(last) if last.0.at <= at.micros() => {
                (true_absolute(last, &shifts)?, Vec::new(), None)
            }
            Some(_) => {
                let prior = stored_governing(tx, business_id, pair, at)?;
                let next_absolute = next_absolute(tx, business_id, pair, at)?;
                let until = next_absolute.unwrap_or(Position::END);
                (
                    prior.map_or(Ok(Quantity::ZERO), |stored| true_absolute(stored, &shifts))?,
                    later_entries(tx, business_id, pair, (at, until), &shifts)?,
                    next_absolute,
                )
            }
        };
    let plan = plan_insertion(
        prior,
        (at, entry.update_type, entry.quantity),
        &later,
        next_absolute,
        &shifts,
    )?;

    let metadata = entry
        .metadata
        .as_ref()
        .map(columns::json_text)
        .transpose()?;
    tx.prepare_cached(
        "INSERT INTO ledger_entries
             (business_id, account_id, license_id, effective_from, update_type, given, absolute, metadata, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            business_id,
            entry.account_id.as_str(),
            entry.license_id.as_str(),
            at.micros(),
            entry.update_type.as_str(),
            entry.quantity.to_string(),
            plan.stored.normalize().to_string(),
            metadata,
            now.micros(),
        ])
    })
    .map_err(internal)?;
    let mut update = tx
        .prepare_cached("UPDATE ledger_entries SET absolute = ?2 WHERE seq = ?1")
        .map_err(internal)?;
    for (seq, stored) in &plan.rewrites {
        update
            .execute(params![seq, stored.normalize().to_string()])
            .map_err(internal)?;
    }
    if let Some(shift) = &plan.shift {
        shifts::add(tx, business_id, pair, shift, &shifts)?;
    }

    let written = entry.written(plan.absolute, at, now);
    if let Some((key, fingerprint)) = claim {
        let response = idempotency::stored_response(&written)?;
        tx.prepare_cached(
            "INSERT INTO ledger_idempotency (business_id, key, fingerprint, response) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![business_id, key.as_str(), &fingerprint[..], response])
        })
        .map_err(internal)?;
    }
    announce(tx, business_id, EventType::LicenseUpdateCreated, || {
        Event::license_update_created(business_id, &written)
    })?;
    Ok(Appended::Created(written))
}

/// The listing query and its parameters, with the index that holds the entries its
/// filters select. Without statistics, SQLite prefers an index in the listing's order, and
/// walked all of the business's entries reading each one's account, license or instant:
/// one page cost a read of the whole ledger. So an account's listing reads the pair index
/// (all of the account's entries, then sorted), and a listing at one instant reads that
/// instant's entries. A license's entries by creation come from the license index in that
/// order. By effective time, a license with few entries is read whole from the license
/// index and sorted; a license with more is found often enough in a walk of the
/// effective-time index. (A second license index, in effective order, would serve both
/// at a cost to every write.)
pub(super) fn listing<'a>(
    conn: &Connection,
    business_id: &'a BusinessId,
    query: &'a ListEntries,
    shifts: Shifts,
) -> Result<(String, Vec<Param<'a>>)> {
    let index = match (
        &query.account_id,
        &query.license_id,
        query.effective_from,
        query.sort,
    ) {
        (Some(_), ..) => Some("ledger_entries_by_pair"),
        (None, Some(_), None, EntrySort::CreatedAt) => Some("ledger_entries_by_license"),
        (None, Some(license), None, EntrySort::EffectiveFrom) => {
            if has_few_entries(conn, business_id, license)? {
                Some("ledger_entries_by_license")
            } else {
                Some("ledger_entries_by_effective")
            }
        }
        (None, _, Some(_), _) => Some("ledger_entries_by_effective"),
        (None, None, None, _) => None,
    };
    let source = match index {
        Some(index) => format!("ledger_entries INDEXED BY {index}"),
        None => "ledger_entries".to_owned(),
    };
    Ok(list_entries(
        business_id,
        query,
        |n| format!("?{n}"),
        (&source, "license_id"),
        shifts,
    ))
}

/// The most entries of a license that its listing by effective time reads whole and
/// sorts, while reading and sorting them stays quick. A license with more is common enough
/// to walk for: on average, at least one in every (the business's entries / 5 000) of the
/// walk is the license's.
pub(super) const FEW_ENTRIES: i64 = 5_000;

/// Whether the license has at most [`FEW_ENTRIES`] entries, counted in its index up to
/// one more than that.
fn has_few_entries(
    conn: &Connection,
    business_id: &BusinessId,
    license: &LicenseId,
) -> Result<bool> {
    conn.prepare_cached(
        "SELECT count(*) FROM (
             SELECT 1 FROM ledger_entries INDEXED BY ledger_entries_by_license
             WHERE business_id = ?1 AND license_id = ?2 LIMIT ?3)",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![business_id, license.as_str(), FEW_ENTRIES + 1],
            |row| row.get::<_, i64>(0),
        )
    })
    .map(|count| count <= FEW_ENTRIES)
    .map_err(internal)
}

/// The instant and absolute quantity of the last entry of the pair at or before `at`.
pub(super) fn governing(
    conn: &Connection,
    business_id: &BusinessId,
    (account, license): (&AccountId, &LicenseId),
    at: Timestamp,
) -> Result<Option<(Timestamp, Quantity)>> {
    let read = |shifts: Shifts| {
        let sql = match shifts {
            Shifts::Absent => GOVERNING,
            _ => &GOVERNING_SHIFTED,
        };
        conn.prepare_cached(sql)
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![business_id, account.as_str(), license.as_str(), at.micros()],
                    |r| Ok(rows::absolute_at(r, 0)),
                )
                .optional()
            })
            .map_err(internal)?
            .transpose()
    };
    read_with(|| shifts::may_have(business_id, (account, license)), read)
}

/// The governing entry's read for a pair without shifts, and for one with them.
const GOVERNING: &str = "SELECT effective_from, absolute FROM ledger_entries
     WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from <= ?4
     ORDER BY effective_from DESC, seq DESC LIMIT 1";
static GOVERNING_SHIFTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT effective_from, {} FROM ledger_entries
         WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from <= ?4
         ORDER BY effective_from DESC, seq DESC LIMIT 1",
        absolute_of("ledger_entries", Shifts::Sqlite)
    )
});

/// The position and stored quantity of the last entry of the pair at or before `at`.
fn stored_governing(
    conn: &Connection,
    business_id: &BusinessId,
    (account, license): (&AccountId, &LicenseId),
    at: Timestamp,
) -> Result<Option<(Position, Decimal)>> {
    conn.prepare_cached(
        "SELECT effective_from, seq, absolute FROM ledger_entries
         WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from <= ?4
         ORDER BY effective_from DESC, seq DESC LIMIT 1",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![business_id, account.as_str(), license.as_str(), at.micros()],
            |r| Ok(rows::stored_at(r, 0)),
        )
        .optional()
    })
    .map_err(internal)?
    .transpose()
}

/// The absolute quantity of an entry stored as `(position, stored)`, with the pair's shifts.
fn true_absolute((position, stored): (Position, Decimal), shifts: &[Shift]) -> Result<Quantity> {
    shifted(stored, position, shifts)
        .ok_or_else(|| corrupt(format!("a shifted quantity out of range at {position:?}")))
}

/// Where the pair's first ABSOLUTE entry after `at` stands, if it has one.
fn next_absolute(
    conn: &Connection,
    business_id: &BusinessId,
    (account, license): (&AccountId, &LicenseId),
    at: Timestamp,
) -> Result<Option<Position>> {
    conn.prepare_cached(
        "SELECT effective_from, seq FROM ledger_entries INDEXED BY ledger_entries_absolutes
         WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from > ?4
           AND update_type = 'ABSOLUTE'
         ORDER BY effective_from, seq LIMIT 1",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![business_id, account.as_str(), license.as_str(), at.micros()],
            |r| {
                Ok(Position {
                    at: r.get(0)?,
                    seq: r.get(1)?,
                })
            },
        )
        .optional()
    })
    .map_err(internal)
}

/// The entries after `at` and before `until` (the next ABSOLUTE entry's position), which a
/// new entry at `at` moves, with their true quantities. The pair index holds every column
/// read.
fn later_entries(
    conn: &Connection,
    business_id: &BusinessId,
    (account, license): (&AccountId, &LicenseId),
    (at, until): (Timestamp, Position),
    shifts: &[Shift],
) -> Result<Vec<LaterEntry>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, effective_from, absolute FROM ledger_entries
             WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from > ?4
               AND (effective_from, seq) < (?5, ?6)
             ORDER BY effective_from, seq",
        )
        .map_err(internal)?;
    let entries = stmt
        .query_map(
            params![
                business_id,
                account.as_str(),
                license.as_str(),
                at.micros(),
                until.at,
                until.seq
            ],
            |r| Ok(rows::later_entry(r, 0, shifts)),
        )
        .map_err(internal)?;
    entries.map(|entry| entry.map_err(internal)?).collect()
}
