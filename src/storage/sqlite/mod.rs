//! The embedded backend. Reads run inline on the calling thread, on that thread's own
//! connection, because a hop to another thread costs more than an indexed point read.
//! Writes go to one writer thread: SQLite allows one writer at a time, and queueing them
//! there keeps async workers free while a commit waits for the disk.
//!
//! The writer commits in groups: it takes every write waiting in its queue, runs each in
//! a savepoint of one transaction (a failed write rolls back only its own savepoint),
//! commits once, and only then answers them all. Each write stays atomic and is durable
//! before it is acknowledged, while one disk sync serves many writes under load.

mod accounts;
mod backup;
mod checkpoint;
mod connect;
mod console;
mod error;
mod health;
mod known_keys;
mod ledger;
mod licenses;
mod migrate;
mod outbox;
mod shifts;
#[cfg(test)]
mod tests;
mod values;
mod webhooks;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use thread_local::ThreadLocal;

use crate::storage::error::{OpenError, Result};
use crate::storage::store::StorageOptions;
use checkpoint::{WalState, run_checkpointer};
use connect::{commit_to_wal, connect, first_connection, open_failed, parse_path};
use error::internal;
use known_keys::KnownKeys;
use migrate::{has_no_schema, migrate};
use writer::{WriteJob, WriteQueue, run_writer};

pub use backup::check_backup_path;
pub use connect::missing_file;

pub struct SqliteStore {
    path: PathBuf,
    /// A read connection per thread that reads. Reads run on the async workers, so each
    /// worker keeps one connection: no lock to take it, and its page cache stays warm in
    /// the caches of the core the worker runs on.
    readers: ThreadLocal<Connection>,
    readers_open: AtomicUsize,
    writer: WriteQueue,
    known_keys: KnownKeys,
    /// Shared with the writer and the checkpointer; a backup counts itself in.
    wal: Arc<WalState>,
    copying: backup::Copying,
    /// Closed when the store is dropped, which ends the checkpointer thread.
    stop_checkpoints: mpsc::Sender<()>,
    /// The writer's and the checkpointer's threads, joined when the store is dropped.
    writer_thread: Option<std::thread::JoinHandle<()>>,
    checkpointer_thread: Option<std::thread::JoinHandle<()>>,
    /// Holds the directory of a `sqlite::memory:` database until the store is dropped.
    _scratch: Option<tempfile::TempDir>,
}

impl SqliteStore {
    pub async fn open(url: &str, options: &StorageOptions) -> Result<Self, OpenError> {
        let (path, scratch) = if url == "sqlite::memory:" {
            // A private file rather than SQLite's in-memory mode, so that the writer and
            // the readers share one database exactly as with a file.
            let dir = tempfile::tempdir().map_err(|e| OpenError::Failed(e.to_string()))?;
            (dir.path().join("licensed.db"), Some(dir))
        } else {
            (parse_path(url)?, None)
        };
        if !options.create_schema && has_no_schema(&path).await? {
            return Err(OpenError::no_schema());
        }
        let mut writer_conn = first_connection(&path).await?;
        migrate(&mut writer_conn, &path, options.create_schema)?;
        shifts::load(&writer_conn).map_err(|e| open_failed("read", &path, &e))?;
        outbox::release_leases(&writer_conn).map_err(|e| open_failed("write to", &path, &e))?;
        commit_to_wal(&writer_conn).map_err(|e| open_failed("write to", &path, &e))?;
        // Checkpoints run on a thread of their own (below), not inside the writer's commits;
        // a larger cache keeps the indexes the writer touches in memory. Savepoint journals
        // past 120 KiB (.cargo/config.toml) go to temporary files: kept in memory whatever
        // their size (`temp_store = MEMORY`), the journals of large writes raised the
        // server's peak RSS from 36 to 78-159 MiB in the benchmark.
        writer_conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384;")
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let checkpointer = connect(&path).map_err(|e| OpenError::Failed(e.to_string()))?;

        let (writer, jobs) = mpsc::channel::<WriteJob>();
        let wal = Arc::new(WalState::default());
        let writers_wal = wal.clone();
        let checkpointers_wal = wal.clone();
        let writer_thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(&writer_conn, &jobs, &writers_wal))
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let checkpointer_thread = std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || run_checkpointer(&checkpointer, &stopped, &checkpointers_wal))
            .map_err(|e| OpenError::Failed(e.to_string()))?;

        Ok(Self {
            path,
            readers: ThreadLocal::new(),
            readers_open: AtomicUsize::new(0),
            writer: WriteQueue {
                jobs: writer,
                timeout: options.timeout,
            },
            known_keys: KnownKeys::default(),
            wal,
            copying: backup::Copying::default(),
            writer_thread: Some(writer_thread),
            checkpointer_thread: Some(checkpointer_thread),
            stop_checkpoints,
            _scratch: scratch,
        })
    }

    /// Runs `work` atomically on the writer thread ([`WriteQueue::write`]).
    async fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.writer.write(work).await
    }

    /// Runs `work` inline on this thread's read connection.
    fn read<R>(&self, work: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let conn = self
            .readers
            .get_or_try(|| {
                let conn = connect(&self.path)?;
                self.readers_open.fetch_add(1, Ordering::Relaxed);
                Ok::<_, rusqlite::Error>(conn)
            })
            .map_err(internal)?;
        work(conn)
    }
}

/// Ends the writer and the checkpointer and waits for them, so that their connections are
/// closed before the process can exit: the last connection to close folds the WAL into the
/// database file, which is then whole by itself (as after `api-key create`). One at a time:
/// a connection that closes while another is open leaves the WAL as it is.
impl Drop for SqliteStore {
    fn drop(&mut self) {
        let join = |thread: Option<std::thread::JoinHandle<()>>| {
            if let Some(thread) = thread
                && thread.thread().id() != std::thread::current().id()
            {
                let _ = thread.join();
            }
        };
        // The writer ends once it has committed what was queued.
        self.writer.jobs = mpsc::channel().0;
        join(self.writer_thread.take());
        self.stop_checkpoints = mpsc::channel().0;
        join(self.checkpointer_thread.take());
    }
}
