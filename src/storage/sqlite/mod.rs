//! The embedded backend. Reads run inline on the calling thread, on that thread's own
//! connection, because a hop to another thread costs more than an indexed point read.
//! Writes go to one writer thread: SQLite allows one writer at a time, and queueing them
//! there keeps async workers free while a commit waits for the disk.
//!
//! The writer commits in groups: it takes every write waiting in its queue, runs each in
//! a savepoint of one transaction (a failed write rolls back only its own savepoint),
//! commits once, and only then answers them all. Each write stays atomic and is durable
//! before it is acknowledged, while one disk sync serves many writes under load.

mod checkpoint;
mod connect;
mod error;
mod ledger;
mod licenses;
mod migrate;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use thread_local::ThreadLocal;

use super::{
    AccountStore, HealthStore, OpenError, PoolUsage, Result, StorageError, StorageOptions,
};
use crate::domain::auth::{ApiKeyInfo, KeyDigest, Principal};
use crate::domain::ids::{BusinessName, new_id};
use crate::domain::time::Timestamp;
use checkpoint::run_checkpointer;
use connect::{commit_to_wal, connect, open_failed, parse_path};
use error::internal;
use migrate::migrate;
use writer::{WriteJob, run_writer};

pub use connect::missing_file;

pub struct SqliteStore {
    path: PathBuf,
    /// A read connection per thread that reads. Reads run on the async workers, so each
    /// worker keeps one connection: no lock to take it, and its page cache stays warm in
    /// the caches of the core the worker runs on.
    readers: ThreadLocal<Connection>,
    readers_open: AtomicUsize,
    writer: mpsc::Sender<WriteJob>,
    known_keys: KnownKeys,
    /// Dropped with the store, which ends the checkpointer thread.
    _stop_checkpoints: mpsc::Sender<()>,
    timeout: Duration,
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
        let mut writer_conn = connect(&path).map_err(|e| open_failed("open", &path, &e))?;
        migrate(&mut writer_conn, &path)?;
        commit_to_wal(&writer_conn).map_err(|e| open_failed("write to", &path, &e))?;
        // Checkpoints run on a thread of their own (below), not inside the writer's commits;
        // a larger cache keeps the indexes the writer touches in memory.
        writer_conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384;")
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let checkpointer = connect(&path).map_err(|e| OpenError::Failed(e.to_string()))?;

        let (writer, jobs) = mpsc::channel::<WriteJob>();
        let wal_is_long = Arc::new(AtomicBool::new(false));
        let restart_wal = wal_is_long.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(&writer_conn, &jobs, &restart_wal))
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || run_checkpointer(&checkpointer, &stopped, &wal_is_long))
            .map_err(|e| OpenError::Failed(e.to_string()))?;

        Ok(Self {
            path,
            readers: ThreadLocal::new(),
            readers_open: AtomicUsize::new(0),
            writer,
            known_keys: KnownKeys::default(),
            _stop_checkpoints: stop_checkpoints,
            timeout: options.timeout,
            _scratch: scratch,
        })
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

/// The shared listing queries' parameters, bound as they are.
impl rusqlite::ToSql for super::sql::Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            super::sql::Param::Text(text) => (*text).into(),
            super::sql::Param::Int(int) => (*int).into(),
        })
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn authenticate(&self, digest: KeyDigest) -> Result<Option<Principal>> {
        self.read(|conn| self.known_keys.principal(conn, digest))
    }

    async fn ensure_business(&self, name: &BusinessName) -> Result<String> {
        let name = name.as_str().to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO businesses (id, name, brand_id, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![
                    new_id("bus"),
                    name,
                    new_id("brnd"),
                    Timestamp::now().micros()
                ],
            )
            .map_err(internal)?;
            tx.query_row("SELECT id FROM businesses WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .map_err(internal)
        })
        .await
    }

    async fn create_api_key(
        &self,
        business_id: &str,
        digest: KeyDigest,
        read_only: bool,
    ) -> Result<String> {
        let business_id = business_id.to_owned();
        self.write(move |tx| insert_api_key(tx, &business_id, digest, read_only))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(super::sql::LIST_API_KEYS)
                .map_err(internal)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?))
                })
                .map_err(internal)?;
            rows.map(|row| {
                let (id, business, read_only, created_at) = row.map_err(internal)?;
                Ok(ApiKeyInfo {
                    id,
                    business,
                    read_only,
                    created_at: super::sql::timestamp(created_at)?,
                })
            })
            .collect()
        })
    }

    /// `licensed api-key revoke` cannot run beside a server on the same file (see
    /// `KnownKeys`); a store that revokes a key itself forgets every key it remembers.
    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        let revoked = self
            .write(move |tx| {
                tx.execute("DELETE FROM api_keys WHERE id = ?1", [&id])
                    .map_err(internal)
            })
            .await?;
        self.known_keys.forget_all();
        Ok(revoked > 0)
    }

    async fn bootstrap(&self, digest: KeyDigest) -> Result<bool> {
        self.write(move |tx| {
            let first = tx
                .execute(
                    "INSERT INTO settings (name, value) VALUES ('bootstrapped', '1')
                     ON CONFLICT (name) DO NOTHING",
                    [],
                )
                .map_err(internal)?
                == 1;
            let empty: bool = tx
                .query_row("SELECT NOT EXISTS (SELECT 1 FROM businesses)", [], |r| {
                    r.get(0)
                })
                .map_err(internal)?;
            if !(first && empty) {
                return Ok(false);
            }
            let business_id = new_id("bus");
            tx.execute(
                "INSERT INTO businesses (id, name, brand_id, created_at) VALUES (?1, 'default', ?2, ?3)",
                params![business_id, new_id("brnd"), Timestamp::now().micros()],
            )
            .map_err(internal)?;
            insert_api_key(tx, &business_id, digest, false)?;
            Ok(true)
        })
        .await
    }

    async fn token_secret(&self) -> Result<Vec<u8>> {
        let fresh = crate::domain::auth::ApiKeySecret::generate()
            .expose()
            .to_owned();
        let secret: String = self
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO settings (name, value) VALUES ('token_secret', ?1)
                     ON CONFLICT (name) DO NOTHING",
                    [fresh],
                )
                .map_err(internal)?;
                tx.query_row(
                    "SELECT value FROM settings WHERE name = 'token_secret'",
                    [],
                    |r| r.get(0),
                )
                .map_err(internal)
            })
            .await?;
        Ok(secret.into_bytes())
    }
}

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

/// API keys found so far, by digest. This process holds the database file exclusively
/// (`unix-excl`), so no other process can revoke a key while it runs, and an API key is
/// never changed once created: a key found in committed data stays as it was until this
/// process revokes one. It is read from the database once.
/// Unknown digests are not remembered (a client could send endless ones).
#[derive(Default)]
struct KnownKeys(RwLock<Known>);

#[derive(Default)]
struct Known {
    keys: HashMap<[u8; 32], Principal>,
    /// How many times this process has revoked keys: a key read before a revoke is not
    /// remembered after it.
    revokes: u64,
}

impl KnownKeys {
    fn get(&self, digest: KeyDigest) -> Option<Principal> {
        self.0.read().ok()?.keys.get(&digest.0).cloned()
    }

    /// Read before looking a key up in the database, and given to [`Self::remember`].
    fn revokes(&self) -> u64 {
        self.0.read().map_or(0, |known| known.revokes)
    }

    fn forget_all(&self) {
        if let Ok(mut known) = self.0.write() {
            known.keys.clear();
            known.revokes += 1;
        }
    }

    /// Call only with a principal read from committed data: a key inserted by a write
    /// that is later rolled back must not be remembered. `revokes_before` is
    /// [`Self::revokes`] from before the read.
    fn remember(&self, digest: KeyDigest, principal: &Principal, revokes_before: u64) {
        if let Ok(mut known) = self.0.write()
            && known.revokes == revokes_before
        {
            known.keys.insert(digest.0, principal.clone());
        }
    }

    /// The key's principal, from memory or else from `conn`, a read connection (which
    /// sees committed data only).
    fn principal(&self, conn: &Connection, digest: KeyDigest) -> Result<Option<Principal>> {
        if let Some(principal) = self.get(digest) {
            return Ok(Some(principal));
        }
        let revokes = self.revokes();
        let found = principal_of_key(conn, digest)?;
        if let Some(principal) = &found {
            self.remember(digest, principal, revokes);
        }
        Ok(found)
    }
}

/// The principal of the API key with that digest, if any.
fn principal_of_key(conn: &Connection, digest: KeyDigest) -> Result<Option<Principal>> {
    let row: Option<(String, Vec<u8>, bool, String)> = conn
        .prepare_cached(
            "SELECT k.business_id, k.digest, k.read_only, b.brand_id FROM api_keys k
             JOIN businesses b ON b.id = k.business_id WHERE k.digest = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([&digest.0[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(internal)?;
    Ok(row.filter(|(_, stored, _, _)| digest.matches(stored)).map(
        |(business_id, _, read_only, brand_id)| Principal {
            business_id,
            brand_id,
            read_only,
        },
    ))
}

fn insert_api_key(
    tx: &Connection,
    business_id: &str,
    digest: KeyDigest,
    read_only: bool,
) -> Result<String> {
    let id = new_id("key");
    tx.execute(
        "INSERT INTO api_keys (id, business_id, digest, read_only, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, business_id, &digest.0[..], read_only, Timestamp::now().micros()],
    )
    .map_err(internal)?;
    Ok(id)
}
