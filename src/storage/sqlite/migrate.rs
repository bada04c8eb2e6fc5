//! The schema: the migrations in order, and applying those a database lacks.

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::connect::{is_busy, open_failed, when_free};
use crate::storage::error::OpenError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_license_keys.sql"),
    include_str!("migrations/0003_ledger_write_indexes.sql"),
    include_str!("migrations/0004_pair_index_covers_quantity.sql"),
    include_str!("migrations/0005_validity_index.sql"),
    include_str!("migrations/0006_pair_index_account_first.sql"),
    include_str!("migrations/0007_license_listing_index.sql"),
    include_str!("migrations/0008_product_details.sql"),
    include_str!("migrations/0009_seats.sql"),
    include_str!("migrations/0010_signing_keys.sql"),
    include_str!("migrations/0011_webhook_endpoints.sql"),
    include_str!("migrations/0012_webhook_messages.sql"),
    include_str!("migrations/0013_console_sessions.sql"),
    include_str!("migrations/0014_ledger_shifts.sql"),
    include_str!("migrations/0015_webhook_due_indexes.sql"),
    include_str!("migrations/0016_webhook_messages_fewer_indexes.sql"),
    include_str!("migrations/0017_customers_locale_and_email_case.sql"),
    include_str!("migrations/0018_license_keys_as_read.sql"),
];

/// Whether the file has never had the schema, read without writing to it (the store's
/// first connection sets the journal mode, which writes); `false` if it cannot be read
/// so, and [`migrate`] then decides. A file that another process holds is waited for as
/// the first connection waits, and refused as in use after that one wait.
pub(super) async fn has_no_schema(path: &std::path::Path) -> Result<bool, OpenError> {
    let version = when_free(|| {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        schema_version(&conn)
    });
    match version.await {
        Ok(version) => Ok(version == 0),
        Err(error) if is_busy(&error) => Err(open_failed("read", path, &error)),
        Err(_) => Ok(false),
    }
}

/// The number of migrations applied, kept in SQLite's `user_version`.
fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Applies the migrations the database lacks; refuses one that a newer version migrated.
pub(super) fn migrate(
    conn: &mut Connection,
    path: &std::path::Path,
    create_schema: bool,
) -> Result<(), OpenError> {
    let failed = |error: rusqlite::Error| open_failed("migrate", path, &error);
    let applied = schema_version(conn).map_err(failed)?;
    if applied > MIGRATIONS.len() as i64 {
        return Err(OpenError::newer_schema(applied, MIGRATIONS.len()));
    }
    if applied == 0 && !create_schema {
        return Err(OpenError::no_schema());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        apply_migration(conn, sql, index + 1).map_err(failed)?;
    }
    Ok(())
}

fn apply_migration(conn: &mut Connection, sql: &str, version: usize) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(sql)?;
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()
}
