//! Copies of the database taken while the server runs. The server holds its file alone
//! (see `connect`), so no other program can copy it consistently: the server writes the
//! copy, from a read transaction of its own, which no write waits for.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::SqliteStore;
use super::connect::{connect, parse_path};
use crate::storage::error::{Result, StorageError};

/// Whether the database `url` names can be backed up to the file `to`: refused for
/// anything but a SQLite file, for the database's own files, and for a place that cannot
/// be written to (tried once, so that a mistake stops the start).
pub fn check_backup_path(url: &str, to: &Path) -> std::result::Result<(), String> {
    if !url.starts_with("sqlite:") || url == "sqlite::memory:" {
        return Err(
            "--sqlite-backup copies a SQLite database file; back PostgreSQL up with pg_dump".into(),
        );
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
    let same_directory = match (
        fs::canonicalize(directory),
        fs::canonicalize(directory_of(&database)),
    ) {
        (Ok(one), Ok(other)) => one == other,
        _ => false,
    };
    let name = |path: &Path| path.file_name().map(|n| n.to_string_lossy().into_owned());
    if let (true, Some(name), Some(database)) = (same_directory, name(to), name(&database))
        && (name.strip_prefix(&database))
            .is_some_and(|suffix| ["", "-wal", "-shm", "-journal"].contains(&suffix))
    {
        return Err(refused("that is one of the database's own files"));
    }
    if to.is_dir() {
        return Err(refused("that is a directory; name the file to write"));
    }
    let partial = partial(to);
    File::create(&partial)
        .and_then(|_| fs::remove_file(&partial))
        .map_err(|e| refused(&e.to_string()))
}

impl SqliteStore {
    /// Writes a copy of the database as it is now to `to`, whole or not at all: into a
    /// file beside it first, synced, then renamed over it, so that `to` is always a
    /// database that opens. Blocks for as long as the copy takes; returns its size.
    pub(super) fn write_backup(&self, to: &Path) -> Result<u64> {
        // While the copy reads its snapshot, the writer does not start the WAL over.
        struct Counted<'a>(&'a SqliteStore);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.wal.backups.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.wal.backups.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(self);
        copy(&self.path, to).map_err(StorageError::Internal)
    }
}

fn copy(database: &Path, to: &Path) -> std::result::Result<u64, String> {
    let partial = partial(to);
    // What a copy cut short left, its journal included: SQLite would take a journal
    // beside the new copy for one of its own and play it back into it.
    for suffix in ["", "-journal"] {
        let mut left = partial.clone().into_os_string();
        left.push(suffix);
        match fs::remove_file(&left) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                return Err(format!(
                    "cannot remove {}: {error}",
                    Path::new(&left).display()
                ));
            }
            _ => {}
        }
    }
    // A connection of this process shares the server's lock on the file.
    let conn = connect(database).map_err(|e| e.to_string())?;
    let target = partial.to_str().ok_or("the path is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| e.to_string())?;
    drop(conn);
    let synced = File::open(&partial).and_then(|file| {
        file.sync_all()?;
        file.metadata()
    });
    let size = synced
        .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?
        .len();
    fs::rename(&partial, to).map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    // The rename is durable once the directory is.
    File::open(directory_of(to))
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("cannot sync the directory of {}: {e}", to.display()))?;
    Ok(size)
}

/// The file a copy is written to before it replaces the backup.
fn partial(to: &Path) -> PathBuf {
    let mut name = to.to_owned().into_os_string();
    name.push(".partial");
    PathBuf::from(name)
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
