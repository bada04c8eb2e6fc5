//! The engine under every store: connections taken from the pool, a few of them shared by
//! point reads, and the helpers that run one prepared statement on a connection.

use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Object};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::error::{classify, classify_commit, pool_error};
use super::shared::SharedSlot;
use crate::storage::error::Result;

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
    /// where it travels with other requests' statements (see [`SharedConnections`](super::shared::SharedConnections)).
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
