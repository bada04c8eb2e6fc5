//! The WAL checkpointer: copies committed pages into the database on a thread of its own,
//! syncs them there, and has the writer start the WAL over when it grows long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ffi};

/// How often the checkpointer moves committed pages from the WAL into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// The WAL's length, in pages, from which the checkpointer makes the next commit write
/// the WAL from its start again.
const WAL_RESTART_PAGES: i64 = 2048;

/// What the checkpointer, the writer and the backups tell each other about the WAL.
#[derive(Default)]
pub(super) struct WalState {
    /// The WAL is long enough for the writer to start it over.
    pub is_long: AtomicBool,
    /// Backups being written. Each reads one snapshot for as long as its copy takes, and
    /// a restart waits for such a reader (up to the busy timeout) with every write queued
    /// behind it; so the WAL grows while a backup runs, and is started over after. The
    /// writer holds the lock from its look at the count to the end of its restart, so
    /// that no backup begins its read while a restart runs.
    backups: Mutex<usize>,
}

impl WalState {
    /// Runs `restart` if the WAL is long and no backup is reading.
    pub fn restart_if_due(&self, restart: impl FnOnce()) {
        if !self.is_long.load(Ordering::Relaxed) {
            return;
        }
        let backups = lock(&self.backups);
        if *backups == 0 && self.is_long.swap(false, Ordering::Relaxed) {
            restart();
        }
    }

    /// Counts a backup in, once no restart runs, until the guard is dropped.
    pub fn backup(&self) -> BackupReading<'_> {
        *lock(&self.backups) += 1;
        BackupReading(self)
    }
}

/// A backup counted in by [`WalState::backup`].
pub(super) struct BackupReading<'a>(&'a WalState);

impl Drop for BackupReading<'_> {
    fn drop(&mut self) {
        *lock(&self.0.backups) -= 1;
    }
}

// A panic while the lock is held leaves a count that is still whole.
fn lock(backups: &Mutex<usize>) -> std::sync::MutexGuard<'_, usize> {
    backups
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Copies the WAL into the database in the background (PASSIVE: it never blocks readers
/// or the writer), so that commits only append to the WAL, and says when the WAL is long.
///
/// SQLite syncs the database file only after a checkpoint that copied the whole WAL, which
/// a passive one never does while commits keep coming. The pages it copied then waited in
/// the operating system's cache for the writer's restart (below) to sync them all at
/// once: 25–50 ms in the writer thread, every 250 ms, under writes spread over a large
/// index. They are synced here instead, after each pass that copied any, off the writer.
pub(super) fn run_checkpointer(conn: &Connection, stop: &mpsc::Receiver<()>, wal: &WalState) {
    let mut synced_through = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        }) {
            Ok((pages, copied)) => {
                // `copied` counts from the WAL's start, which a restart moves back.
                if copied != synced_through {
                    if let Err(error) = sync_database(conn) {
                        tracing::warn!(%error, "syncing the database after a checkpoint failed");
                    }
                    synced_through = copied;
                }
                wal.is_long
                    .store(pages >= WAL_RESTART_PAGES, Ordering::Relaxed)
            }
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
        }
    }
}

/// Under a steady stream of commits, PASSIVE checkpoints never catch up with the last one,
/// and SQLite starts the WAL over only once every page in it is copied: the WAL would
/// grow without end. The writer, between two groups, copies the rest itself and waits for
/// readers of older pages to finish (RESTART), so that the next commit writes the WAL
/// from its start again.
pub(super) fn restart_wal(conn: &Connection) {
    if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
        tracing::warn!(%error, "WAL checkpoint failed");
    }
}

/// Syncs the connection's database file (`fdatasync`) through SQLite's own handle of it:
/// a second handle of our own would drop the process's lock on the file when closed.
fn sync_database(conn: &Connection) -> rusqlite::Result<()> {
    let failed = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the connection is open and used by this thread alone; SQLITE_FCNTL_FILE_POINTER
    // writes the main database's `sqlite3_file` (owned by the connection, alive as long as
    // it is) into `file`, whose methods SQLite's own pager calls the same way.
    unsafe {
        let code = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        );
        if code != ffi::SQLITE_OK {
            return Err(failed(code));
        }
        let sync = file
            .as_ref()
            .and_then(|file| file.pMethods.as_ref())
            .and_then(|methods| methods.xSync)
            .ok_or_else(|| failed(ffi::SQLITE_MISUSE))?;
        match sync(file, ffi::SQLITE_SYNC_NORMAL) {
            ffi::SQLITE_OK => Ok(()),
            code => Err(failed(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::connect::connect;

    #[test]
    fn the_wal_is_not_started_over_while_a_backup_reads() {
        let wal = WalState::default();
        let restarts = std::cell::Cell::new(0);
        let restart = || restarts.set(restarts.get() + 1);
        wal.is_long.store(true, Ordering::Relaxed);
        let reading = wal.backup();
        wal.restart_if_due(restart);
        assert_eq!(restarts.get(), 0, "not while the backup reads");
        drop(reading);
        wal.restart_if_due(restart);
        assert_eq!(restarts.get(), 1, "once it is written");
        wal.restart_if_due(restart);
        assert_eq!(restarts.get(), 1, "and only once");
    }

    /// The database file is synced through the connection's handle, with nothing to
    /// write and after a checkpoint has copied pages into it.
    #[test]
    fn the_database_file_is_synced_through_the_connections_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.db");
        let conn = connect(&path).unwrap();
        sync_database(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let copied: i64 = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(2))
            .unwrap();
        assert!(copied > 0, "the checkpoint copied the table's pages");
        sync_database(&conn).unwrap();
    }
}
