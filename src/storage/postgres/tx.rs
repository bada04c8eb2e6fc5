//! The transaction: `BEGIN` travels with its first statement and `COMMIT` with its last,
//! and a transaction dropped before it ends closes its connection.

use deadpool_postgres::{ClientWrapper, Object, Pool};
use tokio_postgres::Row;

use super::PgStore;
use super::error::{classify, classify_commit, pool_error};
use super::outbox::{RECORD, Recorded};
use super::pool::{Params, Sql, query};
use crate::domain::events::Event;
use crate::storage::error::Result;

/// Starts a [`Tx`]: its statements, all of which find the rows they change by key, run
/// the generic plan each prepared statement keeps for its connection. PostgreSQL would
/// otherwise plan anew, on every execution, a statement whose generic plan it estimates
/// costlier than a plan for the values at hand, as it does the ledger's write (its
/// `UNNEST` of re-resolved entries is estimated at 100 rows when its values are unknown),
/// and ingestion would spend much of its CPU planning the same statement again and again.
/// READ COMMITTED whatever the database's default: a statement that follows a lock must
/// see what the lock's previous holder committed, which a snapshot taken before the wait
/// (REPEATABLE READ) would not.
const BEGIN: &str =
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL plan_cache_mode = force_generic_plan";

/// A transaction on a pooled connection, ended by [`Tx::finish`] or [`Tx::commit_with`].
/// Dropped before that (a request cancelled by its timeout), it closes its connection
/// instead of returning it to the pool, and PostgreSQL rolls the transaction back.
pub(super) struct Tx {
    conn: Option<Object>,
}

impl Tx {
    /// Takes a connection; the transaction starts with [`Tx::begin_with`].
    pub async fn open(store: &PgStore) -> Result<Self> {
        Self::open_on(&store.pool).await
    }

    /// [`Tx::open`] for a task that holds the pool rather than the store.
    pub async fn open_on(pool: &Pool) -> Result<Self> {
        Ok(Self {
            conn: Some(pool.get().await.map_err(pool_error)?),
        })
    }

    /// Sends `BEGIN` and the transaction's first statement in one round trip, and
    /// returns that statement's rows.
    pub async fn begin_with(&self, first: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let begin = async { self.batch_execute(BEGIN).await.map_err(classify) };
        let (_, rows) = tokio::try_join!(begin, query(self, first, params))?;
        Ok(rows)
    }

    /// Sends `BEGIN` and the transaction's first two statements in one round trip, and
    /// returns their rows. The second runs once the first is done, in a snapshot of its
    /// own: it sees what another transaction committed while the first waited for a lock.
    pub async fn begin_with_two(
        &self,
        first: Sql<'_>,
        second: Sql<'_>,
    ) -> Result<(Vec<Row>, Vec<Row>)> {
        let begin = async { self.batch_execute(BEGIN).await.map_err(classify) };
        let (_, rows) = tokio::try_join!(begin, self.two(first, second))?;
        Ok(rows)
    }

    /// Sends two statements in one round trip, as [`Tx::begin_with_two`] does within a
    /// transaction already begun.
    pub async fn two(&self, first: Sql<'_>, second: Sql<'_>) -> Result<(Vec<Row>, Vec<Row>)> {
        // Both prepared before either is sent: each request then leaves when its future is
        // first polled, so the statements run in the order they are written.
        let (first_statement, second_statement) =
            tokio::try_join!(self.prepare_cached(first.0), self.prepare_cached(second.0))
                .map_err(classify)?;
        tokio::try_join!(
            self.query(&first_statement, first.1),
            self.query(&second_statement, second.1),
        )
        .map_err(classify)
    }

    /// Commits after `Ok`, rolls back after `Err` (unless [`Tx::commit_with`] already
    /// ended the transaction), and returns the connection to the pool.
    pub async fn finish<R>(mut self, outcome: Result<R>) -> Result<R> {
        let Some(conn) = self.conn.take() else {
            return outcome;
        };
        match outcome {
            Ok(value) => {
                conn.batch_execute("COMMIT")
                    .await
                    .map_err(classify_commit)?;
                Ok(value)
            }
            Err(error) => {
                // The request's own error says more than a failed rollback, which can only
                // mean a lost connection (and the pool drops those).
                let _ = conn.batch_execute("ROLLBACK").await;
                Err(error)
            }
        }
    }

    /// Rolls the transaction back, and returns the connection to the pool.
    pub async fn roll_back(mut self) {
        if let Some(conn) = self.conn.take() {
            // As in `finish`: a failed rollback means a lost connection, which the pool drops.
            let _ = conn.batch_execute("ROLLBACK").await;
        }
    }

    /// Runs `last`, then commits, in one round trip; after a failed `last`, PostgreSQL
    /// answers the `COMMIT` with a rollback. Either way the transaction is over.
    pub async fn commit_with(&mut self, last: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let statement = self.prepare_cached(last).await.map_err(classify)?;
        let (rows, committed) =
            tokio::join!(self.query(&statement, params), self.batch_execute("COMMIT"));
        self.conn = None;
        let rows = rows.map_err(classify_commit)?;
        committed.map_err(classify_commit)?;
        Ok(rows)
    }

    /// Runs `last`, records `events` in the outbox, and commits, in one round trip, as
    /// [`Tx::commit_with`] does: a change and its events commit together or not at all.
    pub async fn commit_with_events(
        &mut self,
        last: &str,
        params: &Params<'_>,
        events: Vec<Event>,
    ) -> Result<Vec<Row>> {
        if events.is_empty() {
            return self.commit_with(last, params).await;
        }
        let recorded = Recorded::of(events);
        let record_params = recorded.params();
        let (statement, record) =
            tokio::try_join!(self.prepare_cached(last), self.prepare_cached(RECORD))
                .map_err(classify)?;
        let (rows, written, committed) = tokio::join!(
            self.query(&statement, params),
            self.execute(&record, &record_params),
            self.batch_execute("COMMIT")
        );
        self.conn = None;
        let rows = rows.map_err(classify_commit)?;
        written.map_err(classify_commit)?;
        committed.map_err(classify_commit)?;
        Ok(rows)
    }
}

impl std::ops::Deref for Tx {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        self.conn
            .as_ref()
            .expect("a transaction's connection until it ends")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached from the pool, the connection closes when dropped here.
            drop(Object::take(conn));
        }
    }
}
