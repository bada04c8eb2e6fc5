//! The schema's migrations, embedded in the binary and applied in order at start.

use deadpool_postgres::ClientWrapper;

const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_license_keys.sql")),
    (3, include_str!("migrations/0003_ledger_write_indexes.sql")),
    (
        4,
        include_str!("migrations/0004_ledger_entries_unreferenced_business.sql"),
    ),
    (5, include_str!("migrations/0005_license_listing_index.sql")),
];

/// Applies the migrations not yet applied, all in one transaction. Processes starting
/// together take turns on an advisory lock: the first applies, the others find it done.
pub async fn run(client: &mut ClientWrapper) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('licensed schema migrations', 0));
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &crate::domain::time::Timestamp::now().micros()],
        )
        .await?;
    }
    tx.commit().await
}
