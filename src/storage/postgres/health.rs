//! Whether the database answers, and how many connections the store holds.

use std::path::Path;

use async_trait::async_trait;

use super::PgStore;
use crate::storage::error::{Result, StorageError};
use crate::storage::store::{HealthStore, PoolUsage};

#[async_trait]
impl HealthStore for PgStore {
    async fn ping(&self) -> Result<()> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(())
    }

    fn back_up(&self, _: &Path) -> Result<u64> {
        // `serve` refuses --sqlite-backup on PostgreSQL before it opens a store.
        Err(StorageError::Internal(
            "PostgreSQL is backed up with pg_dump".into(),
        ))
    }

    fn stop_backups(&self) {}

    fn connections(&self) -> PoolUsage {
        let status = self.pool.status();
        PoolUsage {
            open: status.size,
            idle: status.available,
            shared: self.shared.open(),
        }
    }
}
