//! The SQLite backup: with `--sqlite-backup`, a copy of the database written when the
//! server starts and then at every interval, for operators to take away while it runs.

use std::path::PathBuf;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// The backups of a running server, until [`Backups::stop`].
pub struct Backups {
    store: Weak<dyn Store>,
    stopping: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Backups {
    /// Interrupts the copy being written, if any, and waits until its thread has let go
    /// of the store: a server stopped in the middle of a copy then closes its database as
    /// one file, with no write-ahead log left beside it.
    pub async fn stop(self) {
        let _ = self.stopping.send(true);
        if let Some(store) = self.store.upgrade() {
            store.stop_backups();
        }
        let _ = self.task.await;
    }
}

/// Starts the backups to `to` (checked by `check_backup_path`): one now, then one
/// `every` after the last ended, until they are stopped or the store is dropped.
pub fn spawn(to: PathBuf, every: Duration, store: Weak<dyn Store>) -> Backups {
    BACKUPS.enabled.store(true, Ordering::Relaxed);
    let (stopping, mut stopped) = watch::channel(false);
    let weak = store.clone();
    let task = tokio::spawn(async move {
        loop {
            let Some(store) = store.upgrade() else { return };
            let started = Instant::now();
            let path = to.clone();
            // On a thread of its own rather than the runtime's blocking pool, which the
            // runtime waits for at exit: a signal stops the server at once, not after the
            // copy, which the next one clears away. The thread lets go of the store before
            // it answers, so that the answer means the store can close.
            let (done, written) = tokio::sync::oneshot::channel();
            let copying = std::thread::Builder::new()
                .name("sqlite-backup".into())
                .spawn(move || {
                    let written = store.back_up(&path).map_err(|e| e.to_string());
                    drop(store);
                    done.send(written)
                });
            let written = match copying {
                Ok(_) => written
                    .await
                    .unwrap_or_else(|_| Err("the copy's thread ended without an answer".into())),
                Err(error) => Err(format!("cannot start the copy's thread: {error}")),
            };
            if *stopped.borrow() {
                // Interrupted by the stop, or finished: either way, not a failure to report.
                return;
            }
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
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
        }
    });
    Backups {
        store: weak,
        stopping,
        task,
    }
}
