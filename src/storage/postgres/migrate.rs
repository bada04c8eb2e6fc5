//! The schema's migrations, embedded in the binary and applied in order at start.

use deadpool_postgres::{Client, GenericClient};

use crate::storage::error::OpenError;

/// Version N is the same step on both backends. A step one backend does not need takes
/// no file on that side, and its number is skipped there: numbers are versions, not a
/// count, and a skipped one costs a database nothing (no version to record, no owner
/// needed to migrate it). Versions 4 and 5 came before that rule and differ: here, 4
/// dropped the ledger's foreign key to its business and 5 added the license listing
/// index; SQLite's 4 to 6 changed only its own indexes and its 7 is the license listing
/// index. So this side skips 6 and 7, and from 8 to 14 both take the same steps; 15 is
/// this side's alone (the pending messages' index, see its file), and this side's 16 and
/// 17 are SQLite's 15 and 16. An applied migration is never edited or renumbered:
/// databases record its version.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_license_keys.sql")),
    (3, include_str!("migrations/0003_ledger_write_indexes.sql")),
    (
        4,
        include_str!("migrations/0004_ledger_entries_unreferenced_business.sql"),
    ),
    (5, include_str!("migrations/0005_license_listing_index.sql")),
    (8, include_str!("migrations/0008_product_details.sql")),
    (9, include_str!("migrations/0009_seats.sql")),
    (10, include_str!("migrations/0010_signing_keys.sql")),
    (11, include_str!("migrations/0011_webhook_endpoints.sql")),
    (12, include_str!("migrations/0012_webhook_messages.sql")),
    (13, include_str!("migrations/0013_console_sessions.sql")),
    (14, include_str!("migrations/0014_ledger_shifts.sql")),
    (
        15,
        include_str!("migrations/0015_webhook_pending_order.sql"),
    ),
    (16, include_str!("migrations/0016_webhook_due_indexes.sql")),
    (
        17,
        include_str!("migrations/0017_webhook_messages_fewer_indexes.sql"),
    ),
    (
        18,
        include_str!("migrations/0018_customers_locale_and_email_case.sql"),
    ),
    (19, include_str!("migrations/0019_license_keys_as_read.sql")),
    (
        20,
        include_str!("migrations/0020_webhook_message_ids_by_bytes.sql"),
    ),
];

/// Applies the migrations not yet applied, all in one transaction. Processes starting
/// together take turns on an advisory lock: the first applies, the others find it done.
/// A start that finds every migration applied takes no lock and runs no DDL, so a role
/// with privileges on the tables alone can serve a database its owner migrated. Without
/// `create_schema`, a database with no schema at all is refused.
pub async fn run(client: &mut Client, create_schema: bool) -> Result<(), OpenError> {
    let lacking = pending(&*client).await?;
    if lacking.is_empty() {
        return Ok(());
    }
    if !create_schema && lacking.len() == MIGRATIONS.len() {
        return Err(OpenError::no_schema());
    }
    let tx = client.transaction().await.map_err(failed)?;
    // A process that waited on the lock finds the table made; PostgreSQL's notice that it
    // skipped making it again is not worth a log line, nor are the migrations' own notices
    // (an index or table already gone, say): the setting lasts the transaction.
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('licensed schema migrations', 0));
         SET LOCAL client_min_messages = warning;
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
        // Another program's table of that name (Rails', say) has versions of another
        // type: the database is then not this program's.
        (rows.iter())
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                OpenError::Failed(
                    "its schema_migrations table is not licensed's: is the URL the right database?"
                        .into(),
                )
            })?
    } else {
        Vec::new()
    };
    // The newest version known is the last one's number, not the count: numbers skip.
    let known = MIGRATIONS.last().map_or(0, |&(version, _)| version);
    if let Some(&newest) = applied.iter().max().filter(|&&v| v > known) {
        return Err(OpenError::newer_schema(newest.into(), known as usize));
    }
    Ok((MIGRATIONS.iter().copied())
        .filter(|(version, _)| !applied.contains(version))
        .collect())
}

fn failed(error: tokio_postgres::Error) -> OpenError {
    OpenError::Failed(format!("migrations: {error}"))
}
