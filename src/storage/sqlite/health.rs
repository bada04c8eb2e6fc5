//! Whether the SQLite store is ready, and how many connections it holds.

use std::path::Path;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::SqliteStore;
use crate::storage::error::{Result, StorageError};
use crate::storage::store::{HealthStore, PoolUsage};

#[async_trait]
impl HealthStore for SqliteStore {
    /// Ready when a table reads and the writer thread answers within the timeout: a
    /// writer stuck on its disk fails every write, and `SELECT 1` would not notice.
    async fn ping(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM settings", [], |_| Ok(()))
                .map_err(|e| StorageError::Unavailable(e.to_string()))
        })?;
        self.write(|_| Ok(())).await
    }

    fn back_up(&self, to: &Path) -> Result<u64> {
        self.write_backup(to)
    }

    fn stop_backups(&self) {
        self.copying.stop();
    }

    fn connections(&self) -> PoolUsage {
        // A read holds its thread's connection only while it runs, on that thread; the
        // writer's connection is always open, and counted as in use.
        let readers = self.readers_open.load(Ordering::Relaxed);
        PoolUsage {
            open: readers + 1,
            idle: readers,
            shared: 0,
        }
    }
}
