//! The engine under every store: connections taken from the pool, a few of them shared by
//! point reads, and the helpers that run one prepared statement on a connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::{ClientWrapper, Object};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::error::{classify, classify_commit, pool_error};
use crate::storage::Result;

/// Connections taken from the pool for good and shared by point reads. Statements that
/// callers send at once on one `tokio-postgres` client are pipelined: they go out
/// together and PostgreSQL answers them in turn, so one wake-up of its backend serves
/// many requests instead of one. Only short statements ride them, because a statement
/// waits for those ahead of it on its connection. A statement still runs in its own
/// transaction and sees everything committed before it started.
pub(super) struct SharedConnections {
    slots: Vec<SharedSlot>,
    next: AtomicUsize,
}

/// One shared connection, opened at first use.
#[derive(Default)]
struct SharedSlot(Mutex<Option<Arc<Object>>>);

/// Connections shared by point reads: one per four in the pool, at most two.
const SHARED_PER_POOL: u32 = 4;
const MAX_SHARED: u32 = 2;

impl SharedConnections {
    pub(super) fn new(pool_size: u32) -> Self {
        let count = (pool_size / SHARED_PER_POOL).min(MAX_SHARED);
        Self {
            slots: (0..count).map(|_| SharedSlot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many of the shared connections are open.
    pub(super) fn open(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.get().is_some())
            .count()
    }

    /// The next slot in turn, or `None` if the pool is too small to share.
    fn next(&self) -> Option<&SharedSlot> {
        if self.slots.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.slots.get(turn % self.slots.len())
    }
}

impl SharedSlot {
    fn get(&self) -> Option<Arc<Object>> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|conn| !conn.is_closed()).cloned()
    }

    /// Callers holding the connection it replaces keep it until they finish; then it goes
    /// back to the pool, which drops a closed connection.
    fn set(&self, conn: Arc<Object>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }
}

/// A statement's parameters, in order.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];
/// A statement and its parameters.
pub(super) type Sql<'a> = (&'a str, &'a Params<'a>);

impl PgStore {
    pub(super) async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one statement on a pooled connection, returning its rows.
    pub(super) async fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        query(&*self.conn().await?, sql, params).await
    }

    /// Runs one statement that reads at most one row, by key: on a shared connection,
    /// where it travels with other requests' statements (see [`SharedConnections`]).
    pub(super) async fn query_opt(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        match self.shared.next() {
            Some(slot) => query_opt(&*self.shared_conn(slot).await?, sql, params).await,
            None => query_opt(&*self.conn().await?, sql, params).await,
        }
    }

    /// Runs one statement that changes at most one row and returns it, on a pooled
    /// connection: a change may wait for a row's lock, and on a shared connection every
    /// read queued behind it would wait too.
    pub(super) async fn change_one(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(sql).await.map_err(classify)?;
        conn.query_opt(&statement, params)
            .await
            .map_err(classify_commit)
    }

    /// The connection in a shared slot, replacing one that has lost its server.
    async fn shared_conn(&self, slot: &SharedSlot) -> Result<Arc<Object>> {
        if let Some(conn) = slot.get() {
            return Ok(conn);
        }
        let conn = Arc::new(self.conn().await?);
        slot.set(conn.clone());
        Ok(conn)
    }

    /// Runs one statement that changes rows on a pooled connection, returning how many
    /// it changed.
    pub(super) async fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(sql).await.map_err(classify)?;
        conn.execute(&statement, params)
            .await
            .map_err(classify_commit)
    }
}

pub(super) async fn query(
    client: &ClientWrapper,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.query(&statement, params).await.map_err(classify)
}

async fn query_opt(client: &ClientWrapper, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.query_opt(&statement, params).await.map_err(classify)
}

pub(super) async fn query_one(
    client: &ClientWrapper,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.query_one(&statement, params).await.map_err(classify)
}

pub(super) async fn execute(client: &ClientWrapper, sql: &str, params: &Params<'_>) -> Result<u64> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.execute(&statement, params).await.map_err(classify)
}
