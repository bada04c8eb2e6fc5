//! The WAL checkpointer: copies committed pages into the database on a thread of its own,
//! and has the writer start the WAL over when it grows long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the checkpointer moves committed pages from the WAL into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// The WAL's length, in pages, from which the checkpointer makes the next commit write
/// the WAL from its start again.
const WAL_RESTART_PAGES: i64 = 2048;

/// Copies the WAL into the database in the background (PASSIVE: it never blocks readers
/// or the writer), so that commits only append to the WAL, and says when the WAL is long.
pub(super) fn run_checkpointer(
    conn: &Connection,
    stop: &mpsc::Receiver<()>,
    wal_is_long: &AtomicBool,
) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        }) {
            Ok(pages) => wal_is_long.store(pages >= WAL_RESTART_PAGES, Ordering::Relaxed),
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
