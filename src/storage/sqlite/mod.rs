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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::entry::{Metadata, NewEntry};
    use crate::domain::ids::{AccountId, LicenseId};
    use crate::domain::ledger::UpdateType;
    use crate::storage::sql::{EntrySort, ListEntries};
    use crate::storage::{AccountStore, LedgerStore};

    /// A store on a private file, with one business; returns the business's id too.
    async fn store_with_business() -> (SqliteStore, String) {
        let options = StorageOptions {
            url: "sqlite::memory:".into(),
            timeout: Duration::from_secs(30),
            max_connections: 1,
        };
        let store = SqliteStore::open(&options.url, &options).await.unwrap();
        let business = store
            .ensure_business(&BusinessName::parse("test").unwrap())
            .await
            .unwrap();
        (store, business)
    }

    /// The pair every entry of [`add`] goes to.
    fn acme_seats() -> (AccountId, LicenseId) {
        (
            AccountId::parse("acme").unwrap(),
            LicenseId::parse("seats").unwrap(),
        )
    }

    /// A RELATIVE entry of `quantity`, effective now, on [`acme_seats`].
    fn add(quantity: &str) -> NewEntry {
        let (account_id, license_id) = acme_seats();
        NewEntry {
            account_id,
            license_id,
            update_type: UpdateType::Relative,
            quantity: quantity.parse().unwrap(),
            effective_from: None,
            metadata: None,
            idempotency_key: None,
        }
    }

    /// A key is looked up again until it exists (unknown keys are not remembered); a key
    /// found by a write or a read then serves both, and a read-only one still cannot write.
    #[tokio::test]
    async fn api_keys_are_remembered_once_found() {
        let (store, business) = store_with_business().await;
        let (admin, reader) = (KeyDigest::of("lsk_admin"), KeyDigest::of("lsk_reader"));
        assert_eq!(store.authenticate(admin).await.unwrap(), None);
        store.create_api_key(&business, admin, false).await.unwrap();
        store.create_api_key(&business, reader, true).await.unwrap();

        let (account, license) = acme_seats();
        let pair = (&account, &license);
        let entry = add("2");
        // The first write finds the admin key in the writer's job, the second remembers it.
        for _ in 0..2 {
            store.append_entry_for_key(admin, &entry).await.unwrap();
        }
        // The read finds the read-only key; the write then refuses it from memory.
        let now = Timestamp::now();
        let (_, quantity) = store
            .quantity_at_for_key(reader, pair, now)
            .await
            .unwrap()
            .expect("two writes");
        assert_eq!(quantity.to_string(), "4");
        assert!(matches!(
            store.append_entry_for_key(reader, &entry).await,
            Err(StorageError::ReadOnlyApiKey)
        ));
        let principal = store.authenticate(admin).await.unwrap().expect("created");
        assert_eq!(principal.business_id, business);
        assert!(matches!(
            store
                .quantity_at_for_key(KeyDigest::of("lsk_unknown"), pair, now)
                .await,
            Err(StorageError::UnknownApiKey)
        ));
    }

    #[test]
    fn a_key_read_before_a_revoke_is_not_remembered_after_it() {
        let known = KnownKeys::default();
        let digest = KeyDigest::of("lsk_admin");
        let principal = Principal {
            business_id: "bus_1".into(),
            brand_id: "brnd_1".into(),
            read_only: false,
        };
        let before = known.revokes();
        known.forget_all();
        known.remember(digest, &principal, before);
        assert_eq!(known.get(digest), None);
        known.remember(digest, &principal, known.revokes());
        assert_eq!(known.get(digest), Some(principal));
    }

    #[tokio::test]
    async fn a_revoked_key_is_not_remembered() {
        let (store, business) = store_with_business().await;
        let admin = KeyDigest::of("lsk_admin");
        let id = store.create_api_key(&business, admin, false).await.unwrap();
        let (account, license) = acme_seats();
        let pair = (&account, &license);
        let now = Timestamp::now();
        store.quantity_at_for_key(admin, pair, now).await.unwrap();

        assert!(store.revoke_api_key(&id).await.unwrap());
        assert!(matches!(
            store.quantity_at_for_key(admin, pair, now).await,
            Err(StorageError::UnknownApiKey)
        ));
        assert!(matches!(
            store.append_entry_for_key(admin, &add("1")).await,
            Err(StorageError::UnknownApiKey)
        ));
        assert!(!store.revoke_api_key(&id).await.unwrap());
    }

    /// Each listing reads the index [`ledger::listing`] names for its filters and order;
    /// left to itself, SQLite would walk all of the business's entries for some of them,
    /// reading each one's row.
    #[tokio::test]
    async fn a_filtered_listing_reads_the_index_of_its_filters() {
        use EntrySort::{CreatedAt, EffectiveFrom};
        let (store, business) = store_with_business().await;
        let (account, license) = acme_seats();
        // More entries of `license` than its listing by effective time would sort.
        let seeded = business.clone();
        store
            .write(move |tx| {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO ledger_entries (business_id, account_id, license_id, \
                         effective_from, update_type, given, absolute, created_at) \
                         VALUES (?1, 'acme', 'seats', ?2, 'ABSOLUTE', '1', '1', ?2)",
                    )
                    .map_err(internal)?;
                for at in 0..=ledger::FEW_ENTRIES {
                    insert.execute(params![seeded, at]).map_err(internal)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let rare = LicenseId::parse("rare").unwrap();
        let instant = Timestamp::now();
        let (a, l, at) = (Some(&account), Some(&license), Some(instant));
        // (filters, sort, the index that must serve them)
        let cases = [
            (a, None, None, CreatedAt, "pair"),
            (a, l, None, EffectiveFrom, "pair"),
            (None, l, None, CreatedAt, "license"),
            (None, l, None, EffectiveFrom, "effective"),
            (None, Some(&rare), None, EffectiveFrom, "license"),
            (None, l, at, CreatedAt, "effective"),
            (None, None, at, CreatedAt, "effective"),
            (None, None, at, EffectiveFrom, "effective"),
            (None, None, None, CreatedAt, "created"),
            (None, None, None, EffectiveFrom, "effective"),
        ];
        for (account, license, effective_from, sort, index) in cases {
            let query = ListEntries {
                account_id: account.cloned(),
                license_id: license.cloned(),
                effective_from,
                sort,
                descending: true,
                after: Some((5, 6)),
                limit: 50,
            };
            let (sql, plan) = store
                .read(|conn| {
                    let (sql, params) = ledger::listing(conn, &business, &query)?;
                    let mut stmt = conn
                        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                        .map_err(internal)?;
                    let steps = stmt
                        .query_map(rusqlite::params_from_iter(&params), |r| r.get(3))
                        .map_err(internal)?;
                    let plan: Vec<String> = steps
                        .map(|step| step.map_err(internal))
                        .collect::<Result<_>>()?;
                    Ok((sql, plan))
                })
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains(&format!("INDEX ledger_entries_by_{index} "))),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("SCAN")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// Keeps the writer busy for 300 ms, from about 50 ms after the call: the writes
    /// made meanwhile wait in its queue, and make one group.
    async fn hold_the_writer(store: &Arc<SqliteStore>) -> tokio::task::JoinHandle<Result<()>> {
        let store = store.clone();
        let busy = tokio::spawn(async move {
            (store.write(|_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            }))
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        busy
    }

    /// The quantity of [`acme_seats`] now.
    async fn quantity_now(store: &SqliteStore, business: &str) -> String {
        let (account, license) = acme_seats();
        let (_, quantity) = store
            .quantity_at(business, (&account, &license), Timestamp::now())
            .await
            .unwrap()
            .expect("a write");
        quantity.to_string()
    }

    /// A write given up by its caller while it waited for the writer never happens.
    #[tokio::test]
    async fn a_write_abandoned_before_it_runs_is_not_written() {
        let (store, business) = store_with_business().await;
        let store = Arc::new(store);
        // Keeps the writer busy while the next write waits in its queue.
        let busy = hold_the_writer(&store).await;
        let entry = add("1");
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            store.append_entry(&business, &entry),
        );
        assert!(
            abandoned.await.is_err(),
            "the write waited behind the busy one"
        );
        busy.await.unwrap().unwrap();
        store.append_entry(&business, &entry).await.unwrap();
        assert_eq!(
            quantity_now(&store, &business).await,
            "1",
            "only the write still awaited happened"
        );
    }

    /// When SQLite rolls a group back, the write that failed answers with its own error,
    /// the group's others fail without being written, and the writer goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_rolled_back_answers_each_write_and_the_writer_goes_on() {
        let (store, business) = store_with_business().await;
        let store = Arc::new(store);
        // Holds the writer, so that the next two writes make one group.
        let busy = hold_the_writer(&store).await;
        let failing = store.write(|conn| {
            // What SQLite does to the transaction on a full disk.
            conn.execute_batch("ROLLBACK").map_err(internal)?;
            Err::<(), _>(internal("database or disk is full"))
        });
        let entry = add("1");
        let other = store.append_entry(&business, &entry);
        let (failing, other) = tokio::join!(failing, other);
        busy.await.unwrap().unwrap();
        let failing = failing.unwrap_err().to_string();
        assert!(failing.contains("disk is full"), "{failing}");
        assert!(
            other.is_err(),
            "the other write of the group is not acknowledged"
        );

        store.append_entry(&business, &entry).await.unwrap();
        assert_eq!(
            quantity_now(&store, &business).await,
            "1",
            "only the write after the group happened"
        );
    }

    /// A store on a scratch database whose writes are waited for `timeout`.
    async fn scratch_store_waiting(timeout: Duration) -> Arc<SqliteStore> {
        let options = StorageOptions {
            url: "sqlite::memory:".into(),
            timeout,
            max_connections: 1,
        };
        Arc::new(SqliteStore::open(&options.url, &options).await.unwrap())
    }

    /// A write whose wait runs out before the writer reaches it is never run, and says
    /// so; one the writer has begun may still commit, and says that instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_write_says_whether_it_may_take_effect() {
        let store = scratch_store_waiting(Duration::from_millis(300)).await;
        let insert = |x: i64| {
            move |conn: &Connection| {
                conn.execute("INSERT INTO t VALUES (?1)", [x])
                    .map(drop)
                    .map_err(internal)
            }
        };
        store
            .write(|conn| {
                conn.execute_batch("CREATE TABLE t (x INTEGER)")
                    .map_err(internal)
            })
            .await
            .unwrap();
        let begun = tokio::spawn({
            let store = store.clone();
            async move {
                let slow = insert(1);
                store
                    .write(move |conn| {
                        std::thread::sleep(Duration::from_millis(600));
                        slow(conn)
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = store.write(insert(2)).await;
        assert!(
            matches!(queued, Err(StorageError::Unavailable(_))),
            "{queued:?}"
        );
        let begun = begun.await.unwrap();
        assert!(
            matches!(begun, Err(StorageError::OutcomeUnknown(_))),
            "{begun:?}"
        );
        // Once the writer is free again, the begun write has committed and the other not.
        while store.write(|_| Ok(())).await.is_err() {}
        let written: String = store
            .read(|conn| {
                conn.query_row("SELECT group_concat(x) FROM t", [], |row| row.get(0))
                    .map_err(internal)
            })
            .unwrap();
        assert_eq!(written, "1");
    }

    /// The store is not ready while its writer cannot take a write in time.
    #[tokio::test]
    async fn readiness_waits_for_the_writer() {
        let store = scratch_store_waiting(Duration::from_millis(500)).await;
        store.ping().await.unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let busy = store.write(move |_| {
            std::thread::sleep(Duration::from_millis(1500));
            let _ = done.send(());
            Ok(())
        });
        assert!(busy.await.is_err(), "the busy write itself times out");
        assert!(matches!(
            store.ping().await,
            Err(StorageError::Unavailable(_))
        ));
        // Once the writer is free (or if it never ran the busy write), the store is ready.
        let _ = tokio::task::spawn_blocking(move || finished.recv()).await;
        store.ping().await.unwrap();
    }

    /// Under a steady stream of commits the WAL starts over, rather than holding every
    /// page ever written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        const WRITERS: usize = 16;
        const WRITES_EACH: usize = 400;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let url = format!("sqlite://{}", path.display());
        let options = StorageOptions {
            url: url.clone(),
            timeout: Duration::from_secs(30),
            max_connections: 1,
        };
        let store = Arc::new(SqliteStore::open(&url, &options).await.unwrap());
        let business = store
            .ensure_business(&BusinessName::parse("wal").unwrap())
            .await
            .unwrap();
        // 8 KB of metadata per entry: the WAL holds at least that much per write it keeps.
        let metadata: Metadata = (0..16)
            .map(|i| (format!("k{i}"), "x".repeat(500)))
            .collect();
        let metadata_bytes = (WRITERS * WRITES_EACH * 16 * 500) as u64;
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, business, metadata) =
                    (store.clone(), business.clone(), metadata.clone());
                tokio::spawn(async move {
                    for _ in 0..WRITES_EACH {
                        let entry = NewEntry {
                            account_id: AccountId::parse(format!("account-{writer}")).unwrap(),
                            license_id: LicenseId::parse("seats").unwrap(),
                            update_type: UpdateType::Relative,
                            quantity: "1".parse().unwrap(),
                            effective_from: None,
                            metadata: Some(metadata.clone()),
                            idempotency_key: None,
                        };
                        store.append_entry(&business, &entry).await.unwrap();
                    }
                })
            })
            .collect();
        let wal = dir.path().join("wal.db-wal");
        let mut largest = 0;
        while !tasks.iter().all(|t| t.is_finished()) {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            largest < metadata_bytes / 2,
            "the WAL reached {largest} bytes for {metadata_bytes} bytes of metadata written"
        );
    }
}
