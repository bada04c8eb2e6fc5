//! The ledger on PostgreSQL. A write takes a transaction-scoped advisory lock on its
//! (business, account, license) pair, so concurrent writers to one pair, in any process,
//! resolve one after another; the idempotency key is claimed by a primary-key insert,
//! which makes a concurrent repeat wait for the first request's outcome.

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PgStore, bind_all, classify};
use crate::domain::entry::{LedgerEntry, Metadata, NewEntry};
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::ledger::{StoredEntry, UpdateType, resolve_insertion};
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::storage::sql::{
    self, ENTRY_COLUMNS, EntryRow, ListEntries, ListedEntry, corrupt, timestamp,
};
use crate::storage::{Appended, LedgerStore, Result, StorageError};

#[async_trait]
impl LedgerStore for PgStore {
    async fn append_entry(&self, business_id: &str, entry: &NewEntry) -> Result<Appended> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let appended = append(&mut tx, business_id, entry).await?;
        tx.commit().await.map_err(classify)?;
        Ok(appended)
    }

    async fn list_entries(
        &self,
        business_id: &str,
        query: &ListEntries,
    ) -> Result<Vec<ListedEntry>> {
        let (sql, params) = sql::list_entries(business_id, query, |n| format!("${n}"));
        let statement = bind_all(sqlx::query(&sql), params);
        let rows = statement.fetch_all(&self.pool).await.map_err(classify)?;
        rows.iter().map(listed_entry).collect()
    }

    async fn update_metadata(
        &self,
        business_id: &str,
        (account, license): (&AccountId, &LicenseId),
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<Option<LedgerEntry>> {
        let sql = format!(
            "UPDATE ledger_entries SET metadata = $5 WHERE seq = (
                 SELECT seq FROM ledger_entries
                 WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from = $4
                 ORDER BY seq DESC LIMIT 1)
             RETURNING {ENTRY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(business_id)
            .bind(account.as_str())
            .bind(license.as_str())
            .bind(at.micros())
            .bind(serde_json::to_string(metadata).map_err(corrupt)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref()
            .map(|row| listed_entry(row).map(|listed| listed.entry))
            .transpose()
    }

    async fn quantity_at(
        &self,
        business_id: &str,
        pair: (&AccountId, &LicenseId),
        at: Timestamp,
    ) -> Result<Option<(Timestamp, Quantity)>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        governing(&mut conn, business_id, pair, at).await
    }

    async fn history(
        &self,
        business_id: &str,
        pair: (&AccountId, &LicenseId),
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(Quantity, Vec<(Timestamp, Quantity)>)> {
        // One snapshot for the starting quantity and the changes after it.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let initial = governing(&mut tx, business_id, pair, start)
            .await?
            .map_or(Quantity::ZERO, |(_, q)| q);
        let rows: Vec<(i64, Decimal)> = sqlx::query_as(
            "SELECT effective_from, absolute FROM ledger_entries
             WHERE business_id = $1 AND account_id = $2 AND license_id = $3
               AND effective_from > $4 AND effective_from < $5
             ORDER BY effective_from, seq",
        )
        .bind(business_id)
        .bind(pair.0.as_str())
        .bind(pair.1.as_str())
        .bind(start.micros())
        .bind(end.micros())
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let changes = rows
            .into_iter()
            .map(|(at, q)| Ok((timestamp(at)?, quantity_of(q)?)))
            .collect::<Result<_>>()?;
        Ok((initial, changes))
    }
}

async fn append(conn: &mut PgConnection, business_id: &str, entry: &NewEntry) -> Result<Appended> {
    let fingerprint = entry.fingerprint();
    if let Some(key) = &entry.idempotency_key {
        // Blocks while another transaction holds the same key, then sees its outcome.
        let claimed = sqlx::query(
            "INSERT INTO ledger_idempotency (business_id, key, fingerprint) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(business_id)
        .bind(key.as_str())
        .bind(&fingerprint[..])
        .execute(&mut *conn)
        .await
        .map_err(classify)?
        .rows_affected()
            == 1;
        if !claimed {
            let (stored, response): (Vec<u8>, Option<String>) = sqlx::query_as(
                "SELECT fingerprint, response FROM ledger_idempotency WHERE business_id = $1 AND key = $2",
            )
            .bind(business_id)
            .bind(key.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(classify)?;
            return match response {
                Some(response) if stored == fingerprint => Ok(Appended::Replayed(
                    serde_json::from_str(&response).map_err(corrupt)?,
                )),
                _ => Err(StorageError::IdempotencyMismatch),
            };
        }
    }

    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0))")
        .bind(business_id)
        .bind(entry.account_id.as_str())
        .bind(entry.license_id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(classify)?;

    // Read the clock after the lock, so arrival order and `created_at` agree.
    let now = Timestamp::now();
    let at = entry.effective_from.unwrap_or(now);
    let pair = (&entry.account_id, &entry.license_id);
    let (prior, later) = neighbours(conn, business_id, pair, at).await?;
    let insertion = resolve_insertion(prior, at, entry.update_type, entry.quantity, &later)?;

    let written = LedgerEntry {
        license_id: entry.license_id.clone(),
        account_id: entry.account_id.clone(),
        quantity: insertion.absolute,
        effective_from: at,
        metadata: entry.metadata.clone(),
        created_at: now,
    };
    let metadata = entry
        .metadata
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    let (seqs, absolutes): (Vec<i64>, Vec<Decimal>) = insertion
        .changed
        .iter()
        .map(|(seq, q)| (*seq, q.decimal()))
        .unzip();
    let response = entry
        .idempotency_key
        .as_ref()
        .map(|_| serde_json::to_string(&written))
        .transpose()
        .map_err(corrupt)?;
    // One round trip writes the entry, the re-resolved later entries and the response
    // an idempotent repeat will get.
    sqlx::query(
        "WITH inserted AS (
             INSERT INTO ledger_entries
                 (business_id, account_id, license_id, effective_from, update_type, given, absolute, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ), resolved AS (
             UPDATE ledger_entries AS e SET absolute = c.absolute
             FROM UNNEST($10::BIGINT[], $11::NUMERIC[]) AS c (seq, absolute)
             WHERE e.seq = c.seq
         ), answered AS (
             UPDATE ledger_idempotency SET response = $12 WHERE business_id = $1 AND key = $13
         )
         SELECT 1",
    )
    .bind(business_id)
    .bind(entry.account_id.as_str())
    .bind(entry.license_id.as_str())
    .bind(at.micros())
    .bind(entry.update_type.as_str())
    .bind(entry.quantity.decimal())
    .bind(insertion.absolute.decimal())
    .bind(metadata)
    .bind(now.micros())
    .bind(seqs)
    .bind(absolutes)
    .bind(response)
    .bind(entry.idempotency_key.as_ref().map(|k| k.as_str()))
    .execute(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(Appended::Created(written))
}

/// The instant and absolute quantity of the last entry of the pair at or before `at`.
async fn governing(
    conn: &mut PgConnection,
    business_id: &str,
    (account, license): (&AccountId, &LicenseId),
    at: Timestamp,
) -> Result<Option<(Timestamp, Quantity)>> {
    let row: Option<(i64, Decimal)> = sqlx::query_as(
        "SELECT effective_from, absolute FROM ledger_entries
         WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from <= $4
         ORDER BY effective_from DESC, seq DESC LIMIT 1",
    )
    .bind(business_id)
    .bind(account.as_str())
    .bind(license.as_str())
    .bind(at.micros())
    .fetch_optional(conn)
    .await
    .map_err(classify)?;
    row.map(|(at, q)| Ok((timestamp(at)?, quantity_of(q)?)))
        .transpose()
}

/// In one round trip: the absolute quantity just before a new entry at `at` (zero if
/// none) and the entries after it that it can affect: everything up to and including the
/// instant of the next ABSOLUTE entry.
async fn neighbours(
    conn: &mut PgConnection,
    business_id: &str,
    (account, license): (&AccountId, &LicenseId),
    at: Timestamp,
) -> Result<(Quantity, Vec<StoredEntry>)> {
    let rows: Vec<(bool, i64, i64, String, Decimal, Decimal)> = sqlx::query_as(
        "(SELECT FALSE AS later, seq, effective_from, update_type, given, absolute FROM ledger_entries
          WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from <= $4
          ORDER BY effective_from DESC, seq DESC LIMIT 1)
         UNION ALL
         (SELECT TRUE, seq, effective_from, update_type, given, absolute FROM ledger_entries
          WHERE business_id = $1 AND account_id = $2 AND license_id = $3 AND effective_from > $4
            AND effective_from <= COALESCE((
                SELECT MIN(effective_from) FROM ledger_entries
                WHERE business_id = $1 AND account_id = $2 AND license_id = $3
                  AND effective_from > $4 AND update_type = 'ABSOLUTE'), 9223372036854775807))
         ORDER BY later, effective_from, seq",
    )
    .bind(business_id)
    .bind(account.as_str())
    .bind(license.as_str())
    .bind(at.micros())
    .fetch_all(conn)
    .await
    .map_err(classify)?;
    let mut prior = Quantity::ZERO;
    let mut later = Vec::with_capacity(rows.len());
    for (is_later, seq, at, kind, given, absolute) in rows {
        if !is_later {
            prior = quantity_of(absolute)?;
            continue;
        }
        later.push(StoredEntry {
            seq,
            effective_from: timestamp(at)?,
            update_type: UpdateType::parse(&kind)
                .ok_or_else(|| corrupt(format!("update type {kind}")))?,
            given: quantity_of(given)?,
            absolute: quantity_of(absolute)?,
        });
    }
    Ok((prior, later))
}

/// Decodes a row selected with `ENTRY_COLUMNS`.
fn listed_entry(row: &PgRow) -> Result<ListedEntry> {
    let get = |e: sqlx::Error| corrupt(e);
    EntryRow {
        seq: row.try_get(0).map_err(get)?,
        account_id: row.try_get(1).map_err(get)?,
        license_id: row.try_get(2).map_err(get)?,
        absolute: quantity_of(row.try_get(3).map_err(get)?)?,
        effective_from: row.try_get(4).map_err(get)?,
        metadata: row.try_get(5).map_err(get)?,
        created_at: row.try_get(6).map_err(get)?,
    }
    .decode()
}

fn quantity_of(value: Decimal) -> Result<Quantity> {
    Quantity::new(value).map_err(corrupt)
}
