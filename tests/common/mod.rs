//! The test harness: a real server on a random port, on SQLite or on a fresh PostgreSQL
//! database, and helpers to call it. Behaviour tests are written once and run on both
//! backends with [`backend_tests!`].
#![allow(dead_code)]

pub mod browser;
pub mod node;
pub mod process;
pub mod python;
pub mod receiver;

use std::sync::Arc;
use std::time::Duration;

use licensed::domain::auth::ApiKeySecret;
use licensed::domain::ids::BusinessName;
use licensed::http::{self, AppState, ServerSettings};
use licensed::storage::{self, StorageOptions, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

/// The pages of a ledger listing, from the one at `first` on, each next one asked for by
/// its `nextToken` after `then` (query parameters, say `pageSize=3&`, or empty); `fetch`
/// answers a path with its page.
pub async fn ledger_pages(
    first: String,
    then: &str,
    mut fetch: impl AsyncFnMut(String) -> Value,
) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut path = Some(first);
    while let Some(current) = path {
        let page = fetch(current).await;
        path = (page.get("nextToken").and_then(Value::as_str))
            .map(|token| format!("/license_updates?{then}nextToken={token}"));
        pages.push(page);
    }
    pages
}

/// Runs `make(i)` for each `i` in `0..n` as tasks of their own, all at once; their
/// outputs, in order of `i`.
pub async fn concurrently<T, Fut>(n: usize, make: impl Fn(usize) -> Fut) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut outputs = Vec::with_capacity(n);
    for task in tasks {
        outputs.push(task.await.expect("task"));
    }
    outputs
}

/// Asserts that of concurrent activations of a key whose limit is `limit`, exactly
/// `limit` succeeded and every other was refused for the limit.
#[track_caller]
pub fn assert_admitted_up_to_the_limit(statuses: &[u16], limit: usize) {
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        limit,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
}

/// One request of a race between activations of a ledger-bound key and writes to its
/// pair: when it was sent and answered, and its status.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// `None` for an activation; for a ledger write, the change of quantity it makes.
    pub change: Option<i64>,
    pub sent: std::time::Instant,
    pub answered: std::time::Instant,
    pub status: u16,
}

/// Asserts that each activation that succeeded in `race` fitted the seats of a pair whose
/// quantity was `start` before it: it committed between its sending and its answer, so
/// into a state that held at least itself and every success answered before it was
/// sent, and at most `start` plus the increases sent before it was answered, minus the
/// decreases answered before it was sent.
#[track_caller]
pub fn assert_each_activation_fitted(start: i64, race: &[Timed]) {
    for (i, activation) in race.iter().enumerate() {
        if activation.change.is_some() || activation.status != 201 {
            continue;
        }
        let before = |t: &Timed| t.answered < activation.sent;
        let held = 1
            + (race.iter())
                .filter(|t| t.change.is_none() && t.status == 201 && before(t))
                .count() as i64;
        let most: i64 = start
            + (race.iter())
                .filter(|t| t.status == 200)
                .filter_map(|t| match t.change {
                    Some(change) if change > 0 && t.sent < activation.answered => Some(change),
                    Some(change) if change < 0 && before(t) => Some(change),
                    _ => None,
                })
                .sum::<i64>();
        assert!(
            held <= most,
            "activation {i} succeeded into a state of {held} instances over {most} seats: {race:?}"
        );
    }
}

/// The PostgreSQL server tests create their databases on.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Says why a test is skipped, for the caller to return; under `CI=true`, where nothing
/// may be skipped, fails the test instead.
pub fn skip_unless_ci(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("nothing is skipped under CI=true: {reason}");
    }
    eprintln!("skipping: {reason}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own for one test; dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// `None` when PostgreSQL cannot be reached outside CI (the test is then skipped);
    /// under `CI=true` an unreachable PostgreSQL fails the test.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("licensed.db").display());
                Some(Self {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let name = format!("licensed_test_{}", uuid::Uuid::new_v4().simple());
                let created = admin_sql(format!("CREATE DATABASE {name}"));
                match tokio::time::timeout(Duration::from_secs(10), created).await {
                    Ok(Ok(())) => Some(Self {
                        url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                        pg_name: Some(name),
                        _dir: None,
                    }),
                    failure => {
                        skip_unless_ci(&format!(
                            "PostgreSQL unreachable at {PG_ADMIN_URL}: {failure:?}"
                        ));
                        None
                    }
                }
            }
        }
    }
}

impl TestDatabase {
    /// Another URL for a database someone else owns (not dropped with this value).
    pub fn alias(url: String) -> Self {
        Self {
            url,
            pg_name: None,
            _dir: None,
        }
    }
}

impl TestDatabase {
    /// Runs `sql` on this database as its owner, beside the server.
    pub async fn execute(&self, sql: &str) {
        match self.url.strip_prefix("sqlite://") {
            Some(path) => rusqlite::Connection::open(path)
                .and_then(|conn| conn.execute_batch(sql))
                .unwrap(),
            None => run_sql(&self.url, sql.to_owned()).await.unwrap(),
        }
    }

    /// The one integer `sql` answers on this database, read beside the server.
    pub async fn count(&self, sql: &str) -> i64 {
        match self.url.strip_prefix("sqlite://") {
            Some(path) => rusqlite::Connection::open(path)
                .and_then(|conn| conn.query_row(sql, [], |row| row.get(0)))
                .unwrap(),
            None => (self.connect().await.query_one(sql, &[]).await.unwrap()).get(0),
        }
    }

    /// A PostgreSQL connection of the test's own to this database, to hold locks with.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await.unwrap()
    }
}

/// Returns once a session of `client`'s database waits for a lock (one the test holds,
/// say); fails if none does within 10 s.
pub async fn until_a_session_waits_for_a_lock(client: &tokio_postgres::Client) {
    let waiting_for_a_lock = "SELECT count(*) FROM pg_stat_activity \
        WHERE wait_event_type = 'Lock' AND datname = current_database()";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client
        .query_one(waiting_for_a_lock, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no session waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A PostgreSQL connection, its connection task spawned.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Runs one statement as PostgreSQL's administrator.
async fn admin_sql(sql: String) -> Result<(), tokio_postgres::Error> {
    run_sql(PG_ADMIN_URL, sql).await
}

async fn run_sql(url: &str, sql: String) -> Result<(), tokio_postgres::Error> {
    connect(url).await?.batch_execute(&sql).await
}

/// Runs one statement as PostgreSQL's administrator from a `Drop`, which runs outside any
/// runtime guarantee: on a thread with a runtime of its own.
fn admin_sql_on_drop(sql: String) {
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let _ = runtime.block_on(admin_sql(sql));
    })
    .join();
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            admin_sql_on_drop(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A PostgreSQL login role of its own for one test, dropped when the test ends. Declare
/// it before the databases it is granted privileges in, so that they are dropped first.
pub struct TestRole(pub String);

impl TestRole {
    pub async fn create() -> Self {
        let name = format!("licensed_role_{}", uuid::Uuid::new_v4().simple());
        admin_sql(format!("CREATE ROLE {name} LOGIN"))
            .await
            .unwrap();
        Self(name)
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        admin_sql_on_drop(format!("DROP ROLE IF EXISTS {}", self.0));
    }
}

pub async fn open_store(url: &str) -> Arc<dyn Store> {
    open_store_with(url, Duration::from_secs(5)).await
}

pub async fn open_store_with(url: &str, timeout: Duration) -> Arc<dyn Store> {
    storage::open(&StorageOptions {
        url: url.to_owned(),
        timeout,
        max_connections: 8,
        create_schema: true,
    })
    .await
    .expect("open the database")
}

/// A running server with an admin key of business `alpha`.
pub struct TestServer {
    pub url: String,
    pub key: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub backend: Backend,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub database: TestDatabase,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, ServerSettings::default()).await
    }

    pub async fn start_with(backend: Backend, settings: ServerSettings) -> Option<Self> {
        let database = TestDatabase::create(backend).await?;
        Some(Self::start_on(database, backend, settings).await)
    }

    pub async fn start_on(
        database: TestDatabase,
        backend: Backend,
        settings: ServerSettings,
    ) -> Self {
        Self::start_on_with_timeout(database, backend, settings, Duration::from_secs(5)).await
    }

    /// With `timeout` as the database timeout.
    pub async fn start_on_with_timeout(
        database: TestDatabase,
        backend: Backend,
        settings: ServerSettings,
        timeout: Duration,
    ) -> Self {
        let store = open_store_with(&database.url, timeout).await;
        let state = AppState::new(store.clone(), &settings)
            .await
            .expect("state");
        let app = http::router(state, &settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            http::serve(listener, app, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        let mut server = Self {
            url,
            key: String::new(),
            store,
            client: reqwest::Client::new(),
            backend,
            stop: Some(stop),
            task: Some(task),
            database,
        };
        server.key = server.new_key("alpha", false).await;
        server
    }

    /// A new API key of the named business (created if needed).
    pub async fn new_key(&self, business: &str, read_only: bool) -> String {
        let business_id = self
            .store
            .ensure_business(&BusinessName::parse(business).unwrap())
            .await
            .expect("business");
        let key = ApiKeySecret::generate();
        self.store
            .create_api_key(&business_id, key.digest(), read_only)
            .await
            .expect("key");
        key.expose().to_owned()
    }

    /// Sends a request with `key` (none if empty) and a JSON body if given.
    pub async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, &self.key.clone(), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, &self.key.clone(), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, &self.key.clone(), Some(body))
            .await
    }

    /// Stops accepting and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error message, asserting the body has the shape of the route's error schema.
    #[track_caller]
    pub fn message(&self) -> String {
        self.json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {}", self.text))
            .to_owned()
    }
}

/// Runs each named `async fn(Backend)` once with SQLite and once with PostgreSQL; the
/// function skips a backend that is not there.
#[macro_export]
macro_rules! backend_store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Runs each named `async fn(TestServer)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::common::TestServer::start($crate::common::Backend::Sqlite).await.unwrap();
                    super::$name(server).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(server) = $crate::common::TestServer::start($crate::common::Backend::Postgres).await {
                        super::$name(server).await;
                    }
                }
            )*
        }
    };
}
