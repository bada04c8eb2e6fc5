//! Copies of the database taken while the server runs. The server holds its file alone
//! (see `connect`), so no other program can copy it consistently: the server writes the
//! copy, from a read transaction of its own, which no write waits for.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::SqliteStore;
use super::connect::{connect, directory_of, parse_path};
use crate::storage::error::{Result, StorageError};

/// Whether the database `url` names can be backed up to the file `to`: refused for
/// PostgreSQL, for the database's own files, and for a place that cannot be written to
/// (tried once, so that a mistake stops the start).
pub fn check_backup_path(url: &str, to: &Path) -> std::result::Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(
            "--sqlite-backup copies a SQLite database file; back PostgreSQL up with pg_dump".into(),
        );
    }
    if url == "sqlite::memory:" {
        return Err("--sqlite-backup copies a database file; sqlite::memory: has none".into());
    }
    if !url.starts_with("sqlite:") {
        // Opening the database names what is wrong with such a URL.
        return Ok(());
    }
    let database = parse_path(url).map_err(|e| e.to_string())?;
    let refused = |why: &str| format!("cannot back up to {}: {why}", to.display());
    if to.to_str().is_none() {
        return Err(refused("the path is not UTF-8"));
    }
    let directory = directory_of(to);
    if !directory.is_dir() {
        return Err(refused(&format!(
            "there is no directory {}",
            directory.display()
        )));
    }
    if to.is_dir() {
        return Err(refused("that is a directory; name the file to write"));
    }
    let partial = partial(to);
    let written = [
        to.to_owned(),
        with_suffix(&partial, "-journal"),
        partial.clone(),
    ];
    let own = ["", "-wal", "-shm", "-journal"].map(|suffix| with_suffix(&database, suffix));
    if (written.iter()).any(|file| own.iter().any(|own| same_file(file, own))) {
        return Err(refused(
            "the copy would be written over the database's own files",
        ));
    }
    File::create(&partial)
        .and_then(|_| fs::remove_file(&partial))
        .map_err(|e| refused(&e.to_string()))
}

/// Whether the two paths name one file: by identity when both exist (a link, another
/// mount of the directory), else by name in the same directory.
fn same_file(one: &Path, other: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let identity = |path: &Path| fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
    if let (Some(one), Some(other)) = (identity(one), identity(other)) {
        return one == other;
    }
    if one.file_name() != other.file_name() {
        return false;
    }
    let directory = identity(directory_of(one));
    directory.is_some() && directory == identity(directory_of(other))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.to_owned().into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether copies were stopped, for a server that stops: a copy being written is ended,
/// since its connection would otherwise keep the WAL from being folded into the database as
/// the store closes.
#[derive(Default)]
pub(super) struct Copying {
    stopped: Arc<AtomicBool>,
}

impl Copying {
    /// Ends the copy being written, if any, and refuses those asked for after.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Runs `copy` on `conn`, unless copies were stopped; ended by [`Self::stop`]. SQLite
    /// looks at the flag as the copy runs (an interrupt sent just before the statement
    /// starts would be lost, as SQLite clears it then).
    fn run<T>(
        &self,
        conn: &rusqlite::Connection,
        copy: impl FnOnce() -> rusqlite::Result<T>,
    ) -> std::result::Result<T, String> {
        let stopped = Arc::clone(&self.stopped);
        conn.progress_handler(1000, Some(move || stopped.load(Ordering::Relaxed)));
        if self.stopped.load(Ordering::Relaxed) {
            return Err("the server is stopping".into());
        }
        copy().map_err(|e| e.to_string())
    }
}

impl SqliteStore {
    /// Writes a copy of the database as it is now to `to`, whole or not at all: into a
    /// file beside it first, synced, then renamed over it, so that `to` is always a
    /// database that opens. Blocks for as long as the copy takes; returns its size.
    pub(super) fn write_backup(&self, to: &Path) -> Result<u64> {
        let _reading = self.wal.backup();
        copy(&self.path, to, &self.copying).map_err(StorageError::Internal)
    }
}

fn copy(database: &Path, to: &Path, copying: &Copying) -> std::result::Result<u64, String> {
    let partial = partial(to);
    // What a copy cut short left, its journal included: SQLite would take a journal
    // beside the new copy for one of its own and play it back into it.
    for left in [partial.clone(), with_suffix(&partial, "-journal")] {
        match fs::remove_file(&left) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {error}", left.display()));
            }
            _ => {}
        }
    }
    // The copy holds what the database holds: it is made empty with the database's
    // permissions first, which `VACUUM INTO` keeps (it would otherwise create it readable
    // by all).
    let permissions = fs::metadata(database)
        .map_err(|e| e.to_string())?
        .permissions();
    File::create(&partial)
        .and_then(|_| fs::set_permissions(&partial, permissions))
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    // An absolute path, which SQLite cannot read as a `file:` URI.
    let target = std::path::absolute(&partial).map_err(|e| e.to_string())?;
    let target = target.to_str().ok_or("the path is not UTF-8")?;
    // A connection of this process shares the server's lock on the file.
    let conn = connect(database).map_err(|e| e.to_string())?;
    copying.run(&conn, || conn.execute("VACUUM INTO ?1", [target]))?;
    drop(conn);
    let synced = File::open(&partial).and_then(|file| {
        file.sync_all()?;
        file.metadata()
    });
    let size = synced
        .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?
        .len();
    fs::rename(&partial, to).map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    // The rename is durable once the directory is; some file systems cannot sync a
    // directory (SQLite ignores that too), and the copy is in place all the same.
    match File::open(directory_of(to)).and_then(|dir| dir.sync_all()) {
        Err(error)
            if !matches!(
                error.kind(),
                ErrorKind::InvalidInput | ErrorKind::Unsupported
            ) =>
        {
            Err(format!(
                "cannot sync the directory of {}: {error}",
                to.display()
            ))
        }
        _ => Ok(size),
    }
}

/// The file a copy is written to before it replaces the backup.
fn partial(to: &Path) -> PathBuf {
    with_suffix(to, ".partial")
}
