//! The SQLite backup: with `--sqlite-backup`, a copy of the database written when the
//! server starts and then at every interval, for operators to take away while it runs.

use std::path::PathBuf;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::domain::time::Timestamp;
use crate::storage::Store;

/// What the backups of this process did, for `/metrics`.
pub struct BackupCounts {
    /// Whether this process takes backups at all: the metrics are shown only then.
    pub enabled: AtomicBool,
    /// When the last backup was written, in Unix seconds; 0 before the first.
    pub last_success: AtomicU64,
    pub failures: AtomicU64,
}

pub static BACKUPS: BackupCounts = BackupCounts {
    enabled: AtomicBool::new(false),
    last_success: AtomicU64::new(0),
    failures: AtomicU64::new(0),
};

/// Starts the backups to `to` (checked by `check_backup_path`): one now, then one
/// `every` after the last ended; they stop once the store is dropped.
pub fn spawn(to: PathBuf, every: Duration, store: Weak<dyn Store>) {
    BACKUPS.enabled.store(true, Ordering::Relaxed);
    tokio::spawn(async move {
        loop {
            let Some(store) = store.upgrade() else { return };
            let started = Instant::now();
            let path = to.clone();
            // On a thread of its own rather than the runtime's blocking pool, which the
            // runtime waits for at exit: a signal stops the server at once, not after the
            // copy, which the next one clears away.
            let (done, written) = tokio::sync::oneshot::channel();
            let copying = std::thread::Builder::new()
                .name("sqlite-backup".into())
                .spawn(move || done.send(store.back_up(&path).map_err(|e| e.to_string())));
            let written = match copying {
                Ok(_) => written
                    .await
                    .unwrap_or_else(|_| Err("the copy's thread ended without an answer".into())),
                Err(error) => Err(format!("cannot start the copy's thread: {error}")),
            };
            let shown = to.display();
            match written {
                Ok(bytes) => {
                    let now = Timestamp::now().micros() / 1_000_000;
                    BACKUPS.last_success.store(now as u64, Ordering::Relaxed);
                    let ms = started.elapsed().as_millis();
                    tracing::info!(to = %shown, bytes, ms, "database backed up");
                }
                Err(error) => {
                    BACKUPS.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(to = %shown, %error, "the database could not be backed up; the last backup stays");
                }
            }
            // Counted from the end of a copy, not its start: copies that take longer than
            // the interval still leave the writer time to start the WAL over between them.
            tokio::time::sleep(every).await;
        }
    });
}
