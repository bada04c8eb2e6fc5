//! The ledger's shifts on SQLite: which pairs may have some, the SQL function that adds
//! them to a stored quantity, and their reads and writes.
//!
//! One process owns the database, so a record in memory says which pairs may have
//! shifts, and a pair that has none (nearly all) is read as before, without a look at
//! the shifts. A pair enters the record before the write that gives it a shift commits,
//! and stays in it: a reader that checks the record after its read began cannot have
//! read a shift's effect without the shift. The record is the process's, over every
//! database it opened: a pair noted for one is only read more carefully in another.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, RwLock};

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, params};
use rust_decimal::Decimal;

use super::error::internal;
use crate::domain::ids::{AccountId, BusinessId, LicenseId};
use crate::domain::ledger::{Position, Shift, fold, must_fold};
use crate::storage::columns::{Shifts, shifts_query};
use crate::storage::error::Result;
use crate::storage::rows;

/// Whether any pair may have shifts: while none does, reads skip the record.
static ANY: AtomicBool = AtomicBool::new(false);
/// Hashes of the pairs that may have shifts (a collision only makes a read careful).
static PAIRS: LazyLock<RwLock<HashSet<u64>>> = LazyLock::new(Default::default);

fn pair_hash(business_id: &BusinessId, (account, license): (&AccountId, &LicenseId)) -> u64 {
    let mut hasher = DefaultHasher::new();
    (business_id.as_str(), account.as_str(), license.as_str()).hash(&mut hasher);
    hasher.finish()
}

/// Whether any pair may have shifts.
pub(super) fn any() -> bool {
    ANY.load(Ordering::Acquire)
}

/// Whether the pair may have shifts.
pub(super) fn may_have(business_id: &BusinessId, pair: (&AccountId, &LicenseId)) -> bool {
    any()
        && PAIRS
            .read()
            .is_ok_and(|pairs| pairs.contains(&pair_hash(business_id, pair)))
}

fn note(hash: u64) {
    if let Ok(mut pairs) = PAIRS.write() {
        pairs.insert(hash);
    }
    ANY.store(true, Ordering::Release);
}

/// Notes the pairs that have shifts in the database, when it is opened.
pub(super) fn load(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare("SELECT DISTINCT business_id, account_id, license_id FROM ledger_shifts")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut hasher = DefaultHasher::new();
        let (b, a, l): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        (b.as_str(), a.as_str(), l.as_str()).hash(&mut hasher);
        note(hasher.finish());
    }
    Ok(())
}

/// Runs `read` taking shifts in if `may_have` says so; if it said not, and says so once
/// the read is done, no shift the read could see was left out. Otherwise reads again,
/// taking them in.
pub(super) fn read_with<R>(
    may_have: impl Fn() -> bool,
    mut read: impl FnMut(Shifts) -> Result<R>,
) -> Result<R> {
    if may_have() {
        return read(Shifts::Sqlite);
    }
    let plain = read(Shifts::Absent)?;
    if may_have() {
        return read(Shifts::Sqlite);
    }
    Ok(plain)
}

/// Registers `ledger_add(stored, deltas)`: the stored quantity (decimal text) plus the
/// comma-separated deltas (null: none), exactly.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "ledger_add",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let stored: String = ctx.get(0)?;
            let Some(deltas) = ctx.get::<Option<String>>(1)? else {
                return Ok(stored);
            };
            let number = |text: &str| {
                Decimal::from_str_exact(text)
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
            };
            let mut sum = number(&stored)?;
            for delta in deltas.split(',') {
                sum += number(delta)?;
            }
            Ok(sum.normalize().to_string())
        },
    )
}

/// The pair's shifts.
pub(super) fn shifts_of(
    conn: &Connection,
    business_id: &BusinessId,
    (account, license): (&AccountId, &LicenseId),
) -> Result<Vec<Shift>> {
    let mut stmt = conn
        .prepare_cached(&shifts_query(|n| format!("?{n}")))
        .map_err(internal)?;
    let shifts = stmt
        .query_map(
            params![business_id, account.as_str(), license.as_str()],
            |r| Ok(rows::shift(r, 0)),
        )
        .map_err(internal)?;
    shifts.map(|shift| shift.map_err(internal)?).collect()
}

/// Records a shift of the pair, which had `before` shifts; past the most a pair keeps,
/// folds them all into its entries.
pub(super) fn add(
    tx: &Connection,
    business_id: &BusinessId,
    pair @ (account, license): (&AccountId, &LicenseId),
    shift: &Shift,
    before: &[Shift],
) -> Result<()> {
    note(pair_hash(business_id, pair));
    tx.prepare_cached(
        "INSERT INTO ledger_shifts
             (business_id, account_id, license_id, from_at, from_seq, to_at, to_seq, delta)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            business_id,
            account.as_str(),
            license.as_str(),
            shift.from.at,
            shift.from.seq,
            shift.to.at,
            shift.to.seq,
            shift.delta.to_string(),
        ])
    })
    .map_err(internal)?;
    if !must_fold(before.len() + 1) {
        return Ok(());
    }
    let shifts: Vec<Shift> = before.iter().chain([shift]).cloned().collect();
    let first = (shifts.iter()).map(|s| s.from.at).min().unwrap_or(i64::MIN);
    let entries = stored_from(tx, business_id, pair, first)?;
    let mut update = tx
        .prepare_cached("UPDATE ledger_entries SET absolute = ?2 WHERE seq = ?1")
        .map_err(internal)?;
    for (seq, stored) in fold(&entries, &shifts) {
        update
            .execute(params![seq, stored.normalize().to_string()])
            .map_err(internal)?;
    }
    tx.prepare_cached(
        "DELETE FROM ledger_shifts WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![business_id, account.as_str(), license.as_str()]))
    .map_err(internal)?;
    Ok(())
}

/// The positions and stored quantities of the pair's entries from the instant `first` on.
fn stored_from(
    conn: &Connection,
    business_id: &BusinessId,
    (account, license): (&AccountId, &LicenseId),
    first: i64,
) -> Result<Vec<(Position, Decimal)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT effective_from, seq, absolute FROM ledger_entries
             WHERE business_id = ?1 AND account_id = ?2 AND license_id = ?3 AND effective_from >= ?4",
        )
        .map_err(internal)?;
    let entries = stmt
        .query_map(
            params![business_id, account.as_str(), license.as_str(), first],
            |r| Ok(rows::stored_at(r, 0)),
        )
        .map_err(internal)?;
    entries.map(|entry| entry.map_err(internal)?).collect()
}
