//! The shared backend: many server processes may use one PostgreSQL database, so every
//! rule that must hold across them is enforced with transactions, locks and constraints.
//!
//! The driver is `tokio-postgres`: statements are prepared once per connection, a pooled
//! connection is handed out without a test query, and requests that need not wait for
//! one another (`BEGIN` and a transaction's first statement, its last one and `COMMIT`)
//! travel together in one round trip. Point reads share a few connections, on which the
//! statements of concurrent requests are pipelined (see `SharedConnections`).

mod ledger;
mod licenses;
mod migrations;
mod tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tls::Tls;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{
    Access, AccountStore, HealthStore, OpenError, PoolUsage, Result, StorageError, StorageOptions,
    admit_key,
};
use crate::domain::auth::{ApiKeyInfo, ApiKeySecret, KeyDigest, Principal};
use crate::domain::ids::{BusinessName, new_id};
use crate::domain::time::Timestamp;

/// Connections taken from the pool for good and shared by point reads. Statements that
/// callers send at once on one `tokio-postgres` client are pipelined: they go out
/// together and PostgreSQL answers them in turn, so one wake-up of its backend serves
/// many requests instead of one. Only short statements ride them, because a statement
/// waits for those ahead of it on its connection. A statement still runs in its own
/// transaction and sees everything committed before it started.
struct SharedConnections {
    slots: Vec<SharedSlot>,
    next: AtomicUsize,
}

/// One shared connection, opened at first use.
#[derive(Default)]
struct SharedSlot(Mutex<Option<Arc<Object>>>);

/// Connections shared by point reads: one per four in the pool, at most two.
const SHARED_PER_POOL: u32 = 4;
const MAX_SHARED: u32 = 2;

impl SharedConnections {
    fn new(pool_size: u32) -> Self {
        let count = (pool_size / SHARED_PER_POOL).min(MAX_SHARED);
        Self {
            slots: (0..count).map(|_| SharedSlot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many of the shared connections are open.
    fn open(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.get().is_some())
            .count()
    }

    /// The next slot in turn, or `None` if the pool is too small to share.
    fn next(&self) -> Option<&SharedSlot> {
        if self.slots.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.slots.get(turn % self.slots.len())
    }
}

impl SharedSlot {
    fn get(&self) -> Option<Arc<Object>> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|conn| !conn.is_closed()).cloned()
    }

    /// Callers holding the connection it replaces keep it until they finish; then it goes
    /// back to the pool, which drops a closed connection.
    fn set(&self, conn: Arc<Object>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }
}

/// A statement's parameters, in order.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];
/// A statement and its parameters.
pub(super) type Sql<'a> = (&'a str, &'a Params<'a>);

pub struct PgStore {
    pool: Pool,
    shared: SharedConnections,
}

/// A connection whose server stops acknowledging what it sent is closed after this long.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection is probed after this long without traffic, then at the interval.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
/// `tokio-postgres`'s own idle time before the first probe.
const DRIVER_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A server that vanishes without closing its connections (a host that dies, a failover
/// that moves its address) would leave them open: TCP gives up on a connection with a
/// statement in flight after about 15 minutes, and never on an idle one, and each request
/// that took one would wait out its timeout. With these settings the kernel closes such
/// a connection within about half a minute, and the pool replaces it. Settings the URL
/// gives (`tcp_user_timeout`, `keepalives`, `keepalives_idle`, `keepalives_interval`) win.
fn notice_silent_servers(config: &mut tokio_postgres::Config) {
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives_idle() == DRIVER_KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
}

/// An error and the errors under it: the pool's says only that a connection failed, and
/// why (a TLS certificate for another host, say) is further down.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let line = error.to_string();
        if !text.ends_with(&line) {
            text = format!("{text}: {line}");
        }
        cause = error.source();
    }
    text
}

impl PgStore {
    pub async fn open(options: &StorageOptions) -> Result<Self, OpenError> {
        let tls = Tls::from_url(&options.url)?;
        let mut config: tokio_postgres::Config = tls
            .url
            .parse()
            .map_err(|e| OpenError::Failed(format!("invalid PostgreSQL URL: {e}")))?;
        tls.configure(&mut config)?;
        config.connect_timeout(options.timeout);
        notice_silent_servers(&mut config);
        // A connection that lost its server is noticed by the driver and never handed out
        // again; a per-checkout test query would cost a round trip on every request.
        let manager = Manager::from_config(
            config,
            tls.connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections as usize)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| OpenError::Failed(e.to_string()))?;
        let mut conn = pool.get().await.map_err(|e| {
            OpenError::Failed(format!("cannot connect to PostgreSQL: {}", with_causes(&e)))
        })?;
        migrations::run(&mut conn).await?;
        drop(conn);
        let shared = SharedConnections::new(options.max_connections);
        Ok(Self { pool, shared })
    }

    async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one statement on a pooled connection, returning its rows.
    async fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        query(&*self.conn().await?, sql, params).await
    }

    /// Runs one statement that reads at most one row, by key: on a shared connection,
    /// where it travels with other requests' statements (see [`SharedConnections`]).
    async fn query_opt(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        match self.shared.next() {
            Some(slot) => query_opt(&*self.shared_conn(slot).await?, sql, params).await,
            None => query_opt(&*self.conn().await?, sql, params).await,
        }
    }

    /// Runs one statement that changes at most one row and returns it, on a pooled
    /// connection: a change may wait for a row's lock, and on a shared connection every
    /// read queued behind it would wait too.
    async fn change_one(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(sql).await.map_err(classify)?;
        conn.query_opt(&statement, params)
            .await
            .map_err(classify_commit)
    }

    /// The connection in a shared slot, replacing one that has lost its server.
    async fn shared_conn(&self, slot: &SharedSlot) -> Result<Arc<Object>> {
        if let Some(conn) = slot.get() {
            return Ok(conn);
        }
        let conn = Arc::new(self.conn().await?);
        slot.set(conn.clone());
        Ok(conn)
    }

    /// Runs one statement that changes rows on a pooled connection, returning how many
    /// it changed.
    async fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(sql).await.map_err(classify)?;
        conn.execute(&statement, params)
            .await
            .map_err(classify_commit)
    }
}

pub(super) async fn query(
    client: &ClientWrapper,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.query(&statement, params).await.map_err(classify)
}

pub(super) async fn query_opt(
    client: &ClientWrapper,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.query_opt(&statement, params).await.map_err(classify)
}

pub(super) async fn query_one(
    client: &ClientWrapper,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.query_one(&statement, params).await.map_err(classify)
}

pub(super) async fn execute(client: &ClientWrapper, sql: &str, params: &Params<'_>) -> Result<u64> {
    let statement = client.prepare_cached(sql).await.map_err(classify)?;
    client.execute(&statement, params).await.map_err(classify)
}

/// Starts a [`Tx`]: its statements, all of which find the rows they change by key, run
/// the generic plan each prepared statement keeps for its connection. PostgreSQL would
/// otherwise plan anew, on every execution, a statement whose generic plan it estimates
/// costlier than a plan for the values at hand, as it does the ledger's write (its
/// `UNNEST` of re-resolved entries is estimated at 100 rows when its values are unknown):
/// ingestion spent about a tenth of its CPU planning. READ COMMITTED whatever the
/// database's default: a statement that follows a lock must see what the lock's previous
/// holder committed, which a snapshot taken before the wait (REPEATABLE READ) would not.
const BEGIN: &str =
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL plan_cache_mode = force_generic_plan";

/// A transaction on a pooled connection, ended by [`Tx::finish`] or [`Tx::commit_with`].
/// Dropped before that (a request cancelled by its timeout), it closes its connection
/// instead of returning it to the pool, and PostgreSQL rolls the transaction back.
pub(super) struct Tx {
    conn: Option<Object>,
}

impl Tx {
    /// Takes a connection; the transaction starts with [`Tx::begin_with`].
    pub async fn open(store: &PgStore) -> Result<Self> {
        Ok(Self {
            conn: Some(store.conn().await?),
        })
    }

    /// Sends `BEGIN` and the transaction's first statement in one round trip, and
    /// returns that statement's rows.
    pub async fn begin_with(&self, first: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let begin = async { self.batch_execute(BEGIN).await.map_err(classify) };
        let (_, rows) = tokio::try_join!(begin, query(self, first, params))?;
        Ok(rows)
    }

    /// Sends `BEGIN` and the transaction's first two statements in one round trip, and
    /// returns their rows. The second runs once the first is done, in a snapshot of its
    /// own: it sees what another transaction committed while the first waited for a lock.
    pub async fn begin_with_two(
        &self,
        first: Sql<'_>,
        second: Sql<'_>,
    ) -> Result<(Vec<Row>, Vec<Row>)> {
        let begin = async { self.batch_execute(BEGIN).await.map_err(classify) };
        let (_, rows) = tokio::try_join!(begin, self.two(first, second))?;
        Ok(rows)
    }

    /// Sends two statements in one round trip, as [`Tx::begin_with_two`] does within a
    /// transaction already begun.
    pub async fn two(&self, first: Sql<'_>, second: Sql<'_>) -> Result<(Vec<Row>, Vec<Row>)> {
        // Both prepared before either is sent: each request then leaves when its future is
        // first polled, so the statements run in the order they are written.
        let (first_statement, second_statement) =
            tokio::try_join!(self.prepare_cached(first.0), self.prepare_cached(second.0))
                .map_err(classify)?;
        tokio::try_join!(
            self.query(&first_statement, first.1),
            self.query(&second_statement, second.1),
        )
        .map_err(classify)
    }

    /// Commits after `Ok`, rolls back after `Err` (unless [`Tx::commit_with`] already
    /// ended the transaction), and returns the connection to the pool.
    pub async fn finish<R>(mut self, outcome: Result<R>) -> Result<R> {
        let Some(conn) = self.conn.take() else {
            return outcome;
        };
        match outcome {
            Ok(value) => {
                conn.batch_execute("COMMIT")
                    .await
                    .map_err(classify_commit)?;
                Ok(value)
            }
            Err(error) => {
                // The request's own error says more than a failed rollback, which can only
                // mean a lost connection (and the pool drops those).
                let _ = conn.batch_execute("ROLLBACK").await;
                Err(error)
            }
        }
    }

    /// Runs `last`, then commits, in one round trip; after a failed `last`, PostgreSQL
    /// answers the `COMMIT` with a rollback. Either way the transaction is over.
    pub async fn commit_with(&mut self, last: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let statement = self.prepare_cached(last).await.map_err(classify)?;
        let (rows, committed) =
            tokio::join!(self.query(&statement, params), self.batch_execute("COMMIT"));
        self.conn = None;
        let rows = rows.map_err(classify_commit)?;
        committed.map_err(classify_commit)?;
        Ok(rows)
    }
}

impl std::ops::Deref for Tx {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        self.conn
            .as_ref()
            .expect("a transaction's connection until it ends")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached from the pool, the connection closes when dropped here.
            drop(Object::take(conn));
        }
    }
}

/// Binds the shared listing queries' parameters, in order.
pub(super) fn params<'a>(params: &'a [super::sql::Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| match param {
            super::sql::Param::Text(text) => text as &(dyn ToSql + Sync),
            super::sql::Param::Int(int) => int as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Maps a driver error: a lost connection or a server that cannot serve is an outage;
/// anything else is a failure.
pub(super) fn classify(error: tokio_postgres::Error) -> StorageError {
    let outage = match error.code() {
        None => {
            error.is_closed()
                || std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>())
        }
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    };
    if outage {
        StorageError::Unavailable(error.to_string())
    } else {
        StorageError::Internal(error.to_string())
    }
}

/// Maps the error of a round trip that carried a commit (a `COMMIT`, or a statement that
/// commits on its own): after a lost connection, whether PostgreSQL committed is unknown.
pub(super) fn classify_commit(error: tokio_postgres::Error) -> StorageError {
    match classify(error) {
        StorageError::Unavailable(reason) => StorageError::OutcomeUnknown(reason),
        other => other,
    }
}

fn pool_error(error: PoolError) -> StorageError {
    match error {
        PoolError::Backend(error) => classify(error),
        PoolError::Timeout(_) => {
            StorageError::Unavailable("no database connection became available in time".into())
        }
        PoolError::Closed => StorageError::Unavailable("the connection pool is closed".into()),
        other => StorageError::Internal(other.to_string()),
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn authenticate(&self, digest: KeyDigest) -> Result<Option<Principal>> {
        let row = self
            .query_opt(
                "SELECT k.business_id, k.digest, k.read_only, b.brand_id FROM api_keys k
                 JOIN businesses b ON b.id = k.business_id WHERE k.digest = $1",
                &[&&digest.0[..]],
            )
            .await?;
        row.map_or(Ok(None), |row| principal_of(&row, digest))
    }

    async fn ensure_business(&self, name: &BusinessName) -> Result<String> {
        let conn = self.conn().await?;
        execute(
            &conn,
            "INSERT INTO businesses (id, name, brand_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[
                &new_id("bus"),
                &name.as_str(),
                &new_id("brnd"),
                &Timestamp::now().micros(),
            ],
        )
        .await?;
        // A statement of its own, so that it sees a business another process just created.
        query_one(
            &conn,
            "SELECT id FROM businesses WHERE name = $1",
            &[&name.as_str()],
        )
        .await?
        .try_get(0)
        .map_err(super::sql::corrupt)
    }

    async fn create_api_key(
        &self,
        business_id: &str,
        digest: KeyDigest,
        read_only: bool,
    ) -> Result<String> {
        insert_api_key(&*self.conn().await?, business_id, digest, read_only).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        use super::sql::{corrupt, timestamp};
        let rows = self.query(super::sql::LIST_API_KEYS, &[]).await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKeyInfo {
                    id: row.try_get(0).map_err(corrupt)?,
                    business: row.try_get(1).map_err(corrupt)?,
                    read_only: row.try_get(2).map_err(corrupt)?,
                    created_at: timestamp(row.try_get(3).map_err(corrupt)?)?,
                })
            })
            .collect()
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        Ok(self
            .execute("DELETE FROM api_keys WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    async fn bootstrap(&self, digest: KeyDigest) -> Result<bool> {
        let tx = Tx::open(self).await?;
        let outcome = async {
            // Of several processes starting together, only the one whose insert lands
            // bootstraps.
            let first = !tx
                .begin_with(
                    "INSERT INTO settings (name, value) VALUES ('bootstrapped', '1')
                     ON CONFLICT (name) DO NOTHING RETURNING 1",
                    &[],
                )
                .await?
                .is_empty();
            let empty: bool = query_one(&tx, "SELECT NOT EXISTS (SELECT 1 FROM businesses)", &[])
                .await?
                .try_get(0)
                .map_err(super::sql::corrupt)?;
            if !(first && empty) {
                return Ok(false);
            }
            let business_id = new_id("bus");
            execute(
                &tx,
                "INSERT INTO businesses (id, name, brand_id, created_at) VALUES ($1, 'default', $2, $3)",
                &[&business_id, &new_id("brnd"), &Timestamp::now().micros()],
            )
            .await?;
            insert_api_key(&tx, &business_id, digest, false).await?;
            Ok(true)
        }
        .await;
        tx.finish(outcome).await
    }

    async fn token_secret(&self) -> Result<Vec<u8>> {
        let conn = self.conn().await?;
        execute(
            &conn,
            "INSERT INTO settings (name, value) VALUES ('token_secret', $1) ON CONFLICT (name) DO NOTHING",
            &[&ApiKeySecret::generate().expose()],
        )
        .await?;
        let secret: String = query_one(
            &conn,
            "SELECT value FROM settings WHERE name = 'token_secret'",
            &[],
        )
        .await?
        .try_get(0)
        .map_err(super::sql::corrupt)?;
        Ok(secret.into_bytes())
    }
}

#[async_trait]
impl HealthStore for PgStore {
    async fn ping(&self) -> Result<()> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(())
    }

    fn connections(&self) -> PoolUsage {
        let status = self.pool.status();
        PoolUsage {
            open: status.size,
            idle: status.available,
            shared: self.shared.open(),
        }
    }
}

/// The principal in a row that starts with `business_id, digest, read_only, brand_id` of
/// an `api_keys` row found by `digest`, if the digests match.
fn principal_of(row: &Row, digest: KeyDigest) -> Result<Option<Principal>> {
    let Some(read_only) = read_only_of(row, digest)? else {
        return Ok(None);
    };
    Ok(Some(Principal {
        business_id: row.try_get(0).map_err(super::sql::corrupt)?,
        read_only,
        brand_id: row.try_get(3).map_err(super::sql::corrupt)?,
    }))
}

/// The business of the key in a row that starts with `business_id, digest, read_only` of
/// an `api_keys` row found by `digest`, if the key allows `access`.
fn admitted_business(row: Option<&Row>, digest: KeyDigest, access: Access) -> Result<String> {
    admit_key(
        row.map_or(Ok(None), |row| read_only_of(row, digest))?,
        access,
    )?;
    let row = row.ok_or(StorageError::UnknownApiKey)?;
    row.try_get(0).map_err(super::sql::corrupt)
}

/// Whether the key is read-only, in a row that starts with `business_id, digest,
/// read_only` of an `api_keys` row found by `digest`; `None` if the digests differ.
fn read_only_of(row: &Row, digest: KeyDigest) -> Result<Option<bool>> {
    let stored: &[u8] = row.try_get(1).map_err(super::sql::corrupt)?;
    if !digest.matches(stored) {
        return Ok(None);
    }
    row.try_get(2).map(Some).map_err(super::sql::corrupt)
}

async fn insert_api_key(
    client: &ClientWrapper,
    business_id: &str,
    digest: KeyDigest,
    read_only: bool,
) -> Result<String> {
    let id = new_id("key");
    execute(
        client,
        "INSERT INTO api_keys (id, business_id, digest, read_only, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &business_id,
            &&digest.0[..],
            &read_only,
            &Timestamp::now().micros(),
        ],
    )
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(url: &str) -> tokio_postgres::Config {
        let mut config = url.parse().unwrap();
        notice_silent_servers(&mut config);
        config
    }

    #[test]
    fn silent_servers_are_noticed_unless_the_url_says_otherwise() {
        let config = configured("postgres://postgres@127.0.0.1/test");
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(config.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));

        let config = configured(
            "postgres://postgres@127.0.0.1/test?tcp_user_timeout=60&keepalives_idle=120&keepalives_interval=30",
        );
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(60))
        );
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(120));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(30))
        );

        let config = configured("postgres://postgres@127.0.0.1/test?keepalives=0");
        assert!(!config.get_keepalives());
    }

    /// A connection lost while a commit was on its way leaves the write's outcome unknown,
    /// and the error says so rather than "unavailable, retry".
    #[tokio::test]
    async fn a_commit_on_a_lost_connection_may_or_may_not_have_happened() {
        let url = "postgres://postgres@127.0.0.1:5432/test";
        let connect = || async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(connection);
            Some(client)
        };
        let (Some(admin), Some(writer)) = (connect().await, connect().await) else {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "PostgreSQL is required under CI=true"
            );
            eprintln!("skipping: PostgreSQL unreachable at {url}");
            return;
        };
        writer.batch_execute("BEGIN").await.unwrap();
        let pid: i32 = writer
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        // Waits until the backend has gone.
        admin
            .execute("SELECT pg_terminate_backend($1, 10000)", &[&pid])
            .await
            .unwrap();
        let lost = writer.batch_execute("COMMIT").await.unwrap_err();
        let error = classify_commit(lost);
        assert!(
            matches!(error, StorageError::OutcomeUnknown(_)),
            "{error:?}"
        );
        // Outside a commit, the same loss is an outage: nothing was written.
        let lost = writer.batch_execute("SELECT 1").await.unwrap_err();
        let error = classify(lost);
        assert!(matches!(error, StorageError::Unavailable(_)), "{error:?}");
    }

    /// A listing by license alone reads the license index, whose license column is an
    /// expression that the listing must name exactly as the index does.
    #[tokio::test]
    async fn a_license_listing_reads_the_license_index() {
        use crate::domain::ids::LicenseId;
        use crate::storage::sql::{EntrySort, ListEntries};

        let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
        let Ok((admin, connection)) =
            tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await
        else {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "PostgreSQL is required under CI=true"
            );
            eprintln!("skipping: PostgreSQL unreachable at {admin_url}");
            return;
        };
        tokio::spawn(connection);
        let name = format!("licensed_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        // Everything that can fail runs here, so that the database is dropped either way.
        let plans = async {
            let options = StorageOptions {
                url,
                timeout: Duration::from_secs(30),
                max_connections: 2,
            };
            let store = PgStore::open(&options).await.map_err(|e| e.to_string())?;
            let conn = store.conn().await.map_err(|e| e.to_string())?;
            // 100 licenses of 20 entries each, analyzed: one license is 1% of the entries.
            conn.batch_execute(
                "INSERT INTO ledger_entries (business_id, account_id, license_id, effective_from,
                                             update_type, given, absolute, created_at)
                 SELECT 'b', 'a' || i % 7, 'l' || i % 100, i, 'ABSOLUTE', 1, 1, i
                 FROM generate_series(1, 2000) i;
                 ANALYZE ledger_entries;",
            )
            .await
            .map_err(|e| e.to_string())?;
            let license = LicenseId::parse("l7").map_err(|e| e.to_string())?;
            let mut plans = Vec::new();
            for sort in [EntrySort::CreatedAt, EntrySort::EffectiveFrom] {
                let by_license = ListEntries {
                    account_id: None,
                    license_id: Some(license.clone()),
                    effective_from: None,
                    sort,
                    descending: false,
                    after: None,
                    limit: 50,
                };
                let (sql, bound) = ledger::listing("b", &by_license);
                let plan = query(&conn, &format!("EXPLAIN {sql}"), &params(&bound))
                    .await
                    .map_err(|e| e.to_string())?;
                plans.push(plan.iter().map(|row| row.get(0)).collect::<Vec<String>>());
            }
            Ok::<_, String>(plans)
        }
        .await;
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
        let plans = plans.unwrap();
        for plan in plans {
            assert!(
                plan.iter()
                    .any(|step| step.contains("ledger_entries_by_license")),
                "{plan:#?}"
            );
        }
    }
}
