//! The schema's migrations, embedded in the binary and applied in order at start.

use deadpool_postgres::{Client, GenericClient};

use crate::storage::error::OpenError;

/// Version N is the same step on both backends, and a step one backend does not need is a
/// comment-only file on that side, so that the next migration takes the same number on
/// both. Versions 4 and 5 came before that rule and differ: here, 4 dropped the ledger's
/// foreign key to its business and 5 added the license listing index; SQLite's 4 to 6
/// changed only its own indexes (its pair index covering the absolute quantity, the
/// validity index, its pair index with the account first) and its 7 is the license
/// listing index. Versions 6 and 7 here change nothing and bring the numbering level.
/// An applied migration is never edited or renumbered: databases record its version.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_license_keys.sql")),
    (3, include_str!("migrations/0003_ledger_write_indexes.sql")),
    (
        4,
        include_str!("migrations/0004_ledger_entries_unreferenced_business.sql"),
    ),
    (5, include_str!("migrations/0005_license_listing_index.sql")),
    (
        6,
        include_str!("migrations/0006_no_change_sqlite_only_index.sql"),
    ),
    (
        7,
        include_str!("migrations/0007_no_change_license_listing_index_was_0005.sql"),
    ),
];

/// Applies the migrations not yet applied, all in one transaction. Processes starting
/// together take turns on an advisory lock: the first applies, the others find it done.
/// A start that finds every migration applied takes no lock and runs no DDL, so a role
/// with privileges on the tables alone can serve a database its owner migrated.
pub async fn run(client: &mut Client) -> Result<(), OpenError> {
    if pending(&*client).await?.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('licensed schema migrations', 0));
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         );",
    )
    .await
    .map_err(failed)?;
    for (version, sql) in pending(&tx).await? {
        tx.batch_execute(sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &crate::domain::time::Timestamp::now().micros()],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// The migrations the database lacks, in order; an error if a newer version of this
/// program has migrated it.
async fn pending(client: &impl GenericClient) -> Result<Vec<(i32, &'static str)>, OpenError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    let applied: Vec<i32> = if exists {
        let rows = (client
            .query("SELECT version FROM schema_migrations", &[])
            .await)
            .map_err(failed)?;
        rows.iter().map(|row| row.get(0)).collect()
    } else {
        Vec::new()
    };
    let known = MIGRATIONS.len();
    if let Some(&newest) = applied.iter().max().filter(|&&v| v as usize > known) {
        return Err(OpenError::newer_schema(newest.into(), known));
    }
    Ok((MIGRATIONS.iter().copied())
        .filter(|(version, _)| !applied.contains(version))
        .collect())
}

fn failed(error: tokio_postgres::Error) -> OpenError {
    OpenError::Failed(format!("migrations: {error}"))
}
