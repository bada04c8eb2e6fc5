//! Opening the database: the file a URL names, and a connection with its pragmas.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::storage::error::OpenError;

/// The file a `sqlite://` URL names, if it does not exist (`sqlite::memory:` always does).
pub fn missing_file(url: &str) -> Option<PathBuf> {
    if url == "sqlite::memory:" || !url.starts_with("sqlite:") {
        return None;
    }
    parse_path(url).ok().filter(|path| !path.exists())
}

pub(super) fn parse_path(url: &str) -> Result<PathBuf, OpenError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() {
        return Err(OpenError::Failed(format!("`{url}` names no file")));
    }
    Ok(PathBuf::from(path))
}

pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    configure(open_file(path)?)
}

/// The file, not yet accessed. One process owns it: "unix-excl" holds an exclusive lock
/// on it from the first access until the last connection closes, so each read
/// transaction takes no file lock (and the WAL index lives in memory), and a second
/// process is refused.
fn open_file(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), "unix-excl")
}

fn configure(conn: Connection) -> rusqlite::Result<Connection> {
    // WAL lets readers proceed during a write; synchronous=FULL makes every commit durable
    // on power loss, not only on a crash of the process.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    super::shifts::register(&conn)?;
    Ok(conn)
}

/// How long opening waits for another process to let go of the file.
const WAIT_FOR_FILE: Duration = Duration::from_secs(5);

/// The process's first connection, which takes the file's lock: if another process holds
/// it, tried again every 100 ms for up to [`WAIT_FOR_FILE`], between awaits, so that a
/// signal stops the wait at once.
pub(super) async fn first_connection(path: &Path) -> Result<Connection, OpenError> {
    // The first access takes the lock: if another process holds it, at once an error
    // rather than a wait inside SQLite, which no signal could end.
    let first = when_free(|| {
        let conn = open_file(path)?;
        conn.busy_timeout(Duration::ZERO)?;
        configure(conn)
    });
    first.await.map_err(|e| open_failed("open", path, &e))
}

/// `attempt`'s outcome once it does not find the file busy, tried every 100 ms for up to
/// [`WAIT_FOR_FILE`]; then the last busy error.
pub(super) async fn when_free<T>(attempt: impl Fn() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + WAIT_FOR_FILE;
    loop {
        match attempt() {
            Err(error) if is_busy(&error) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done => return done,
        }
    }
}

pub(super) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Commits once, rewriting the schema version as it is. While the WAL holds no commit,
/// as after every open, SQLite reads the database file's size with a system call at the
/// start of each read transaction; after a commit it takes the size from the WAL.
pub(super) fn commit_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    conn.pragma_update(None, "user_version", version)
}

pub(super) fn open_failed(doing: &str, path: &Path, error: &rusqlite::Error) -> OpenError {
    let directory = directory_of(path);
    let path = path.display();
    OpenError::Failed(if is_busy(error) {
        format!(
            "the SQLite database {path} is in use by another process: a SQLite database \
             serves one process at a time (stop the other one, or use PostgreSQL to run several)"
        )
    } else if error.sqlite_error_code() == Some(ErrorCode::CannotOpen) && !directory.is_dir() {
        // SQLite makes the file, not the directories it is in.
        format!(
            "cannot {doing} SQLite database {path}: there is no directory {}",
            directory.display()
        )
    } else {
        format!("cannot {doing} SQLite database {path}: {error}")
    })
}

/// The directory a file is in: `.` for a bare file name.
pub(super) fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
