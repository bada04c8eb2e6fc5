//! The planner's statistics of young tables, gathered by the server as they grow.
//!
//! Each connection keeps its prepared statements and their generic plans (see `tx`), and
//! PostgreSQL plans them anew only when something invalidates them, such as an `ANALYZE`
//! of a table they read. On a new database those plans are made while the tables are
//! empty: a pair's reads then scan the whole ledger (migration 0005 analyzed it empty, so
//! the planner believes it), and they keep doing so as it grows, until autovacuum's
//! `ANALYZE` (a minute at the earliest, never where it is off) or a closed connection.
//! So every process looks each second for a table of its schema that has grown to twice
//! the pages it had when last analyzed (and to ten pages at least: below that PostgreSQL
//! assumes ten pages for a table never analyzed), and analyzes it. Growth by doubling
//! costs a table about a dozen analyses before it holds a million rows; past that, plans no
//! longer change with its size, and autovacuum (a share of rows changed) keeps them current.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use tokio::task::AbortHandle;

use super::error::{classify, pool_error};
use crate::storage::error::Result;
use crate::storage::rows::corrupt;

/// How often a process looks for tables to analyze.
const TICK: Duration = Duration::from_secs(1);

/// The tables of the server's schema to analyze now: grown to twice their pages at the
/// last analysis and to ten pages at least, under a million rows, and owned by this role
/// (`ANALYZE` skips another's table with a warning, which would repeat every tick).
const GROWN: &str = "SELECT format('%I.%I', n.nspname, c.relname)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples < 1000000
       AND pg_relation_size(c.oid) >= current_setting('block_size')::BIGINT * GREATEST(10, 2 * c.relpages)
       AND pg_has_role(c.relowner, 'USAGE')
     ORDER BY c.relname";

/// Taken, without waiting, by the process whose turn it is to analyze; held until its
/// transaction ends.
pub(super) const TURN: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('licensed table statistics', 0))";

/// The task that analyzes the store's growing tables, stopped when dropped.
pub(super) struct StatisticsTask(AbortHandle);

impl StatisticsTask {
    /// Starts the task; its first look is one tick from now, so that a short command
    /// (`licensed api-key create`) never analyzes.
    pub fn spawn(pool: Pool) -> Self {
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now() + TICK;
            let mut tick = tokio::time::interval_at(start, TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match analyze_grown(&pool).await {
                    Ok(tables) => {
                        if !tables.is_empty() {
                            tracing::debug!(?tables, "analyzed tables that had grown");
                        }
                        if failing {
                            tracing::info!("table statistics are gathered again");
                        }
                        failing = false;
                    }
                    Err(error) => {
                        // Logged once until it works again: an unavailable database is
                        // already reported by every request.
                        if !failing {
                            tracing::warn!(%error, "table statistics could not be gathered; will retry");
                        }
                        failing = true;
                    }
                }
            }
        });
        Self(task.abort_handle())
    }
}

impl Drop for StatisticsTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Analyzes the tables that have grown, if any and if no other process is doing so; the
/// tables analyzed.
///
/// Neither this process nor another waits: the advisory lock is only tried, and
/// `SKIP_LOCKED` passes over a table whose lock `ANALYZE` cannot take at once (autovacuum
/// or an operator at work on it). Most ticks find nothing and run the one read.
pub(super) async fn analyze_grown(pool: &Pool) -> Result<Vec<String>> {
    let mut conn = pool.get().await.map_err(pool_error)?;
    if grown(&conn).await?.is_empty() {
        return Ok(Vec::new());
    }
    let tx = conn.transaction().await.map_err(classify)?;
    let turn: bool = (tx.query_one(TURN, &[]).await)
        .map_err(classify)?
        .try_get(0)
        .map_err(corrupt)?;
    // Read again under the lock: a process that just analyzed has updated `relpages`.
    let tables = if turn { grown(&tx).await? } else { Vec::new() };
    if !tables.is_empty() {
        let sql = format!("ANALYZE (SKIP_LOCKED) {}", tables.join(", "));
        tx.batch_execute(&sql).await.map_err(classify)?;
    }
    tx.commit().await.map_err(classify)?;
    Ok(tables)
}

/// The tables to analyze now, each as a quoted, schema-qualified name.
async fn grown(client: &impl GenericClient) -> Result<Vec<String>> {
    let rows = client.query(GROWN, &[]).await.map_err(classify)?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(corrupt))
        .collect()
}
