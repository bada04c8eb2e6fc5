//! The shared backend: many server processes may use one PostgreSQL database, so every
//! rule that must hold across them is enforced with transactions, locks and constraints.
//!
//! The driver is `tokio-postgres`: statements are prepared once per connection, a pooled
//! connection is handed out without a test query, and requests that need not wait for
//! one another (`BEGIN` and a transaction's first statement, its last one and `COMMIT`)
//! travel together in one round trip (see `tx`). Point reads share a few connections, on
//! which the statements of concurrent requests are pipelined (see `pool`).

mod accounts;
mod batches;
mod connect;
mod console;
mod error;
mod health;
mod ledger;
mod licenses;
mod migrate;
mod outbox;
mod pool;
mod shared;
mod statistics;
#[cfg(test)]
mod tests;
mod tls;
mod tx;
mod values;
mod webhooks;

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::storage::error::{OpenError, Result};
use crate::storage::store::StorageOptions;
use error::not_connected;
use licenses::ActivationBatches;
use shared::SharedConnections;
use statistics::StatisticsTask;

pub struct PgStore {
    pool: Pool,
    shared: SharedConnections,
    /// Activations waiting for their key, gathered per key (see `batches`).
    activations: Arc<ActivationBatches>,
    /// Analyzes the tables while they are young and growing (see `statistics`).
    _statistics: StatisticsTask,
}

impl PgStore {
    pub async fn open(options: &StorageOptions) -> Result<Self, OpenError> {
        let pool = connect::pool(options)?;
        let mut conn = pool.get().await.map_err(|e| {
            OpenError::Failed(format!(
                "cannot connect to PostgreSQL: {}",
                not_connected(&e)
            ))
        })?;
        migrate::run(&mut conn, options.create_schema).await?;
        drop(conn);
        let shared = SharedConnections::new(options.max_connections);
        Ok(Self {
            _statistics: StatisticsTask::spawn(pool.clone()),
            pool,
            shared,
            activations: Arc::default(),
        })
    }
}
