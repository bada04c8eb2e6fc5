//! The writer thread: runs each write in a savepoint of its group's transaction, commits
//! the group once, and only then answers its writes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::checkpoint::{WalState, restart_wal};
use super::error::internal;
use crate::storage::error::{Result, StorageError};

/// Answers a write's caller once its group's commit is known.
type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// A write: runs on the writer's connection inside a savepoint, returns its reply.
pub(super) type WriteJob = Box<dyn FnOnce(&Connection) -> Reply + Send>;
/// The most writes committed together.
const MAX_GROUP: usize = 256;
/// A write's stages, from its caller's side: waiting for the writer, begun by it, or given
/// up by its caller before the writer reached it (and so never run).
const QUEUED: u8 = 0;
const BEGUN: u8 = 1;
const GIVEN_UP: u8 = 2;

/// Where writes wait for the writer thread, and how long each may wait.
pub(super) struct WriteQueue {
    pub(super) jobs: mpsc::Sender<WriteJob>,
    pub(super) timeout: Duration,
}

impl WriteQueue {
    /// Runs `work` atomically on the writer thread; answers after its group commits. A
    /// write whose caller has gone (its request timed out or was cancelled) before the
    /// writer reaches it is not run.
    pub(super) async fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (reply, answer) = oneshot::channel();
        // Whether the writer has begun the job, or its caller has given up waiting: the
        // one that moves it from `QUEUED` first decides whether the job runs.
        let stage = Arc::new(AtomicU8::new(QUEUED));
        let job_stage = stage.clone();
        let job: WriteJob = Box::new(move |conn| {
            let begun =
                job_stage.compare_exchange(QUEUED, BEGUN, Ordering::AcqRel, Ordering::Acquire);
            if begun.is_err() || reply.is_closed() {
                return Box::new(|_| ());
            }
            let result = in_savepoint(conn, work);
            // A write's own error says more than its group's failed commit.
            Box::new(move |committed: Result<()>| {
                let _ = reply.send(result.and_then(|written| committed.map(|()| written)));
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Internal("the SQLite writer thread stopped".into()))?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StorageError::Internal(
                "the SQLite writer dropped a job".into(),
            )),
            Err(_) => {
                match stage.compare_exchange(QUEUED, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Err(StorageError::Unavailable(
                        "the SQLite writer did not reach the write in time; it was not run".into(),
                    )),
                    Err(_) => Err(StorageError::OutcomeUnknown(
                        "the SQLite writer began the write but did not finish it in time".into(),
                    )),
                }
            }
        }
    }
}

/// The writer thread: groups whatever writes are waiting into one transaction.
pub(super) fn run_writer(conn: &Connection, jobs: &mpsc::Receiver<WriteJob>, wal: &WalState) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = begin_group(conn) {
            // The jobs are dropped unrun; their callers get an error.
            tracing::error!(%error, "cannot begin a write transaction");
            continue;
        }
        let replies: Vec<Reply> = group.into_iter().map(|job| job(conn)).collect();
        let committed = if conn.is_autocommit() {
            // SQLite rolled the group back after one of its writes failed (a full disk,
            // say); that write answers with its own error, the others with this one.
            Err("rolled back with its group, after another write's error".to_owned())
        } else {
            conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        };
        if committed.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.clone().map_err(StorageError::Internal));
        }
        wal.restart_if_due(|| restart_wal(conn));
    }
}

/// Begins a group's transaction. One left open, by a COMMIT that failed and a ROLLBACK
/// that failed after it, would refuse every BEGIN from then on: it is rolled back first.
fn begin_group(conn: &Connection) -> rusqlite::Result<()> {
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK")?;
    }
    conn.execute_batch("BEGIN IMMEDIATE")
}

/// Runs one write in a savepoint, so that its failure (or panic) undoes only itself.
fn in_savepoint<R>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    // After a full disk or an I/O error, SQLite may roll back the group's whole
    // transaction. A savepoint would then open a transaction of its own and its RELEASE
    // commit it, while the group's COMMIT fails and answers it as not written.
    if conn.is_autocommit() {
        return Err(internal(
            "the write's group was rolled back by an earlier error",
        ));
    }
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map_err(internal)
    };
    run("SAVEPOINT write")?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(internal("a write panicked")));
    if result.is_err() && conn.is_autocommit() {
        // SQLite rolled back the whole transaction, savepoint included.
        return result;
    }
    let ended = match result {
        Err(_) => run("ROLLBACK TO write").and_then(|_| run("RELEASE write")),
        Ok(_) => run("RELEASE write"),
    };
    if let Err(error) = ended {
        // What the write did can be neither kept nor undone alone: undo the whole group,
        // whose COMMIT then fails and answers every write of it as not written.
        let _ = conn.execute_batch("ROLLBACK");
        return Err(error);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When SQLite rolls back a group's whole transaction (as after a full disk), the
    /// group's later writes are refused: each would otherwise commit on its own, and then
    /// be answered as failed by the group's COMMIT.
    #[test]
    fn a_write_after_its_group_was_rolled_back_is_refused() {
        let conn = group_on_scratch_table();
        let failed = in_savepoint(&conn, |conn| {
            // What SQLite does to the transaction on such an error.
            conn.execute_batch("ROLLBACK").map_err(internal)?;
            Err::<(), _>(internal("database or disk is full"))
        });
        assert!(failed.is_err());
        let next = in_savepoint(&conn, |conn| {
            conn.execute("INSERT INTO t VALUES (1)", [])
                .map_err(internal)
        });
        assert!(next.is_err(), "the next write of the group is refused");
        let rows = rows_of_t(&conn);
        assert_eq!(rows, 0, "and nothing of it was written");
    }

    /// A connection to a scratch table `t`, inside a group's transaction.
    fn group_on_scratch_table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE")
            .unwrap();
        conn
    }

    fn rows_of_t(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    /// A transaction left open by a failed COMMIT and ROLLBACK does not stop the writer:
    /// the next group rolls it back and begins its own.
    #[test]
    fn a_group_begins_after_a_transaction_left_open() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1)")
            .unwrap();
        begin_group(&conn).unwrap();
        assert!(!conn.is_autocommit());
        let rows = rows_of_t(&conn);
        assert_eq!(rows, 0, "what the open transaction held was not committed");
    }

    /// A write whose savepoint cannot be ended (here, because the write ended it itself)
    /// takes its group down, rather than leaving in the group's transaction whatever it did.
    #[test]
    fn a_savepoint_that_cannot_be_ended_rolls_its_group_back() {
        for succeeds in [true, false] {
            let conn = group_on_scratch_table();
            let insert = |conn: &Connection, x: i64| {
                conn.execute("INSERT INTO t VALUES (?1)", [x])
                    .map_err(internal)
            };
            in_savepoint(&conn, |conn| insert(conn, 0)).unwrap();
            let ended_early = in_savepoint(&conn, |conn| {
                insert(conn, 1)?;
                conn.execute_batch("RELEASE write").map_err(internal)?;
                if succeeds {
                    Ok(())
                } else {
                    Err(internal("refused"))
                }
            });
            assert!(ended_early.is_err(), "succeeds: {succeeds}");
            assert!(
                conn.is_autocommit(),
                "the group's transaction is rolled back"
            );
            let rows = rows_of_t(&conn);
            assert_eq!(rows, 0, "nothing of the group is left to commit");
        }
    }
}
