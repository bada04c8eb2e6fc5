//! What happens when things go wrong: the server killed mid-write, stopped with requests
//! in flight, cut off from PostgreSQL, or held by slow clients.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::Served;
use common::receiver::Receiver;
use common::{Backend, TestDatabase, TestServer};
use licensed::http::ServerSettings;
use rand::Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_KEY: &str = "lsk_resilience-admin";

async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let response = client
        .post(format!("{url}{path}"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn get(client: &reqwest::Client, url: &str, path: &str) -> Value {
    let response = client
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Every entry of one pair, in ledger order, following `nextToken`.
async fn ledger(client: &reqwest::Client, url: &str, license: &str) -> Vec<Value> {
    let first = format!("/license_updates?licenseId={license}&_sort=effective_from:asc");
    let pages = common::ledger_pages(first, "", async |path| get(client, url, &path).await).await;
    (pages
        .iter()
        .flat_map(|page| page["data"].as_array().unwrap()))
    .cloned()
    .collect()
}

/// Acknowledged writes keep arriving while the server is killed with SIGKILL at a random
/// moment; after a restart every acknowledged write is there and the invariants hold.
async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    let server = Served::start(&database.url, Some(ADMIN_KEY));
    let url = server.url.clone();
    let (_, customer) = post(
        &client,
        &url,
        "/customers",
        json!({"email": "c@example.com", "name": "C"}),
    )
    .await
    .unwrap();
    let (_, product) = post(
        &client,
        &url,
        "/products",
        json!({"name": "P", "license_key_activations_limit": 100_000}),
    )
    .await
    .unwrap();
    let (_, key) = post(
        &client,
        &url,
        "/license_keys",
        json!({"customer_id": customer["customer_id"], "product_id": product["product_id"]}),
    )
    .await
    .unwrap();
    let key_text = key["key"].as_str().unwrap().to_owned();

    let acked_entries = Arc::new(Mutex::new(Vec::<i64>::new()));
    let acked_instances = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer: i64| {
            let (client, url, key_text) = (client.clone(), url.clone(), key_text.clone());
            let (entries, instances) = (acked_entries.clone(), acked_instances.clone());
            tokio::spawn(async move {
                for n in 0i64.. {
                    let second = writer * 1_000_000 + n;
                    let result = if n % 2 == 0 {
                        let body = json!({"accountId": "acme", "licenseId": "seats", "updateType": "RELATIVE", "quantity": 1,
                            "effectiveFrom": "2024-01-01T00:00:00Z", "metadata": {"write": second.to_string()}});
                        post(&client, &url, "/license_updates", body).await.map(|(status, _)| {
                            if status == 200 {
                                entries.lock().unwrap().push(second);
                            }
                        })
                    } else {
                        let body = json!({"license_key": key_text, "name": format!("m{second}")});
                        post(&client, &url, "/licenses/activate", body).await.map(|(status, reply)| {
                            if status == 201 {
                                instances.lock().unwrap().push(reply["id"].as_str().unwrap().to_owned());
                            }
                        })
                    };
                    if result.is_err() {
                        return; // the server is gone
                    }
                }
            })
        })
        .collect();
    let delay = rand::thread_rng().gen_range(300..900);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked_entries = acked_entries.lock().unwrap().clone();
    let acked_instances = acked_instances.lock().unwrap().clone();
    assert!(
        !acked_entries.is_empty() && !acked_instances.is_empty(),
        "nothing was written before the kill"
    );

    let restarted = Served::start(&database.url, None);
    let entries = ledger(&client, &restarted.url, "seats").await;
    let written: std::collections::HashSet<i64> = entries
        .iter()
        .map(|e| e["metadata"]["write"].as_str().unwrap().parse().unwrap())
        .collect();
    for second in &acked_entries {
        assert!(
            written.contains(second),
            "acknowledged write {second} was lost ({backend:?})"
        );
    }
    // Every entry's quantity is still its place in the ledger: resolution was never half-done.
    let quantities: Vec<i64> = entries
        .iter()
        .map(|e| e["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(quantities, (1..=entries.len() as i64).collect::<Vec<_>>());

    let key_now = get(
        &client,
        &restarted.url,
        &format!("/license_keys/{}", key["id"].as_str().unwrap()),
    )
    .await;
    let mut listed = Vec::new();
    for page in 0.. {
        let items = get(
            &client,
            &restarted.url,
            &format!(
                "/license_key_instances?license_key_id={}&page_size=100&page_number={page}",
                key["id"].as_str().unwrap()
            ),
        )
        .await;
        let items = items["items"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        listed.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        key_now["instances_count"].as_u64().unwrap(),
        listed.len() as u64,
        "instances_count matches its instances"
    );
    for instance in &acked_instances {
        assert!(
            listed.contains(instance),
            "acknowledged activation {instance} was lost ({backend:?})"
        );
    }
    println!(
        "{backend:?}: killed after {delay} ms; {} entries and {} activations acknowledged, all present",
        acked_entries.len(),
        acked_instances.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_on_sqlite() {
    for _ in 0..2 {
        acknowledged_writes_survive_sigkill(Backend::Sqlite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    for _ in 0..2 {
        acknowledged_writes_survive_sigkill(Backend::Postgres).await;
    }
}

/// SIGTERM with requests in flight: each accepted request completes, the process exits
/// 0, and exactly the acknowledged writes are in the database.
async fn sigterm_lets_requests_in_flight_finish(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    let server = Served::start(&database.url, Some(ADMIN_KEY));
    let url = server.url.clone();
    let requests: Vec<_> = (0..40)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let body = json!({"accountId": "acme", "licenseId": "seats", "updateType": "RELATIVE", "quantity": 1,
                    "effectiveFrom": "2024-01-01T00:00:00Z", "idempotencyKey": format!("k{n}")});
                client.post(format!("{url}/license_updates")).bearer_auth(ADMIN_KEY).json(&body).send().await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.signal_terminate();
    let mut acknowledged = 0;
    for request in requests {
        match request.await.unwrap() {
            Ok(response) => {
                assert_eq!(
                    response.status().as_u16(),
                    200,
                    "an accepted request completes"
                );
                response.json::<Value>().await.expect("a complete body");
                acknowledged += 1;
            }
            // Arrived after the listener closed: never accepted, so never half-done.
            Err(error) => assert!(error.is_connect() || error.is_request(), "{error:?}"),
        }
    }
    assert_eq!(server.wait().code(), Some(0));
    let restarted = Served::start(&database.url, None);
    let entries = ledger(&client, &restarted.url, "seats").await;
    assert_eq!(
        entries.len(),
        acknowledged,
        "exactly the acknowledged writes are there"
    );
    println!("{backend:?}: {acknowledged} of 40 requests were in flight at SIGTERM and completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_requests_in_flight_finish_on_sqlite() {
    sigterm_lets_requests_in_flight_finish(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_requests_in_flight_finish_on_postgres() {
    sigterm_lets_requests_in_flight_finish(Backend::Postgres).await;
}

/// A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones
/// refused) and restored: an outage of the database as the server sees it.
struct Proxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Forwarding nothing, closing nothing: a database that stops answering.
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    async fn start(target: &'static str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (up2, generation2, frozen2) = (up.clone(), generation.clone(), frozen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refused, as by a stopped server
                    continue;
                }
                let born = generation2.load(Ordering::SeqCst);
                let (generation, frozen) = (generation2.clone(), frozen2.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.split();
                    let (mut ro, mut wo) = outbound.split();
                    let cut = async {
                        while generation.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    let freeze = async {
                        while !frozen.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                        _ = cut => {}
                        // Both connections stay open, and nothing crosses them.
                        _ = freeze => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
            frozen,
        }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// SIGTERM while the database has stopped answering (its connections open, silent): the
/// server waits for its webhook deliveries a bounded time, not for ever, and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_server_while_the_database_is_silent() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let proxied = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let mut served = Served::start_with(&proxied, Some(ADMIN_KEY), &[]);
    // The dispatcher polls the outbox every 100 ms: one of its reads is soon left hanging.
    proxy.freeze();
    tokio::time::sleep(Duration::from_millis(500)).await;
    served.signal_terminate();
    let exited = served.exits_within(Duration::from_secs(45));
    assert!(exited.expect("the server exits").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_fast_and_service_resumes_by_itself() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let proxied = TestDatabase::alias(format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        proxy.port
    ));
    let timeout = Duration::from_millis(1000);
    let server = TestServer::start_on_with_timeout(
        proxied,
        Backend::Postgres,
        ServerSettings::default(),
        timeout,
    )
    .await;
    let body =
        json!({"accountId": "acme", "licenseId": "seats", "updateType": "ABSOLUTE", "quantity": 1});
    server
        .post("/license_updates", body.clone())
        .await
        .expect(200);
    // Point reads take the shared connections in turn: four open every one of them (at
    // most two), so that the outage below has them to close.
    for _ in 0..4 {
        server
            .get("/license_quantity?accountId=acme&licenseId=seats")
            .await
            .expect(200);
    }
    server
        .call(reqwest::Method::GET, "/readyz", "", None)
        .await
        .expect(200);

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/license_updates", "/license_keys", "/readyz"] {
        let started = Instant::now();
        let reply = if path == "/readyz" {
            server.call(reqwest::Method::GET, path, "", None).await
        } else {
            server.get(path).await
        };
        reply.expect(503);
        assert!(reply.message().contains("database"), "{}", reply.text);
        assert!(
            started.elapsed() < timeout * 3,
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let write = server.post("/license_updates", body.clone()).await;
    write.expect(503);
    server
        .call(reqwest::Method::GET, "/healthz", "", None)
        .await
        .expect(200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.call(reqwest::Method::GET, "/readyz", "", None).await;
        if reply.status.as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.post("/license_updates", body).await.expect(200);
    // A point read (the quantity, and every request's API key) rides one of the
    // connections shared by such reads: the outage closed them, and new ones serve.
    let quantity = server
        .get("/license_quantity?accountId=acme&licenseId=seats")
        .await;
    quantity.expect(200);
    assert_eq!(quantity.json["quantity"], 1, "{}", quantity.text);
    let listed = server.get("/license_updates").await;
    assert_eq!(
        listed.json["data"].as_array().unwrap().len(),
        2,
        "the refused write left nothing behind"
    );
}

/// A process that could not give up an endpoint's lease while PostgreSQL was away gives it
/// up once PostgreSQL is back: the endpoint's deliveries resume then, not when the lease
/// would have ended (in an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_deliveries_resume_after_an_outage_not_after_the_lease() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let proxy = Arc::new(Proxy::start("127.0.0.1:5432").await);
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let proxied = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    // The first delivery cuts the database off before it is answered: its outcome cannot
    // be recorded, nor the lease given up.
    let cutter = proxy.clone();
    let receiver = Receiver::start(move |_, n| {
        if n == 0 {
            cutter.cut();
            std::thread::sleep(Duration::from_millis(300));
        }
        200
    })
    .await;
    let flags = [
        "--webhook-lease-seconds",
        "3600",
        "--webhook-retry-schedule",
        "200ms,200ms",
    ];
    let served = Served::start_with(&proxied, Some(ADMIN_KEY), &flags);
    let client = reqwest::Client::new();
    let subscribed = post(
        &client,
        &served.url,
        "/webhooks",
        json!({"url": receiver.url}),
    )
    .await;
    assert_eq!(subscribed.unwrap().0, 201);
    let entry = |n: u32| json!({"accountId": "acme", "licenseId": "seats", "updateType": "ABSOLUTE", "quantity": n});
    let written = post(&client, &served.url, "/license_updates", entry(1)).await;
    assert_eq!(written.unwrap().0, 200);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();

    let deadline = Instant::now() + Duration::from_secs(10);
    while (post(&client, &served.url, "/license_updates", entry(2)).await)
        .map_or(true, |(status, _)| status != 200)
    {
        assert!(Instant::now() < deadline, "the server did not write again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(receiver.received().iter()).any(|r| r.json()["data"]["quantity"] == 2) {
        assert!(Instant::now() < deadline, "not delivered after the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database that refuses new connections (here: `ALLOW_CONNECTIONS false`; as well a
/// dropped database, a changed password, a role that may no longer log in) is an outage
/// too: 503 naming the database and the server's reason in the log, not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_connections_is_503_and_service_resumes() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let key = "lsk_refusing-database-test-admin-key-0123";
    let mut served = Served::start(&database.url, Some(key));
    let (client, url) = (reqwest::Client::new(), served.url.clone());
    let get = |path: &str| {
        let request = client.get(format!("{url}{path}")).bearer_auth(key);
        async move { common::Reply::from(request.send().await.unwrap()).await }
    };
    get("/license_updates").await.expect(200);
    let admin = common::connect(common::PG_ADMIN_URL).await.unwrap();
    let refuse = |allow: bool| {
        format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {allow};
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
    };
    admin.batch_execute(&refuse(false)).await.unwrap();
    for path in ["/license_updates", "/readyz"] {
        let reply = get(path).await;
        reply.expect(503);
        assert!(reply.message().contains("database"), "{}", reply.text);
    }
    // The operator reads PostgreSQL's own reason in the log.
    served.wait_for("is not currently accepting connections");
    admin.batch_execute(&refuse(true)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("/license_updates").await.status.as_u16() != 200 {
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served.terminate().code(), Some(0));
}

/// A scrape answers while the database holds the outbox locked: a Prometheus scrape
/// that timed out would hide the outage it should show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_while_the_outbox_is_locked() {
    let Some(server) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    server
        .call(reqwest::Method::GET, "/metrics", "", None)
        .await
        .expect(200);
    let holder = server.database.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE webhook_messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // Waiting for the lock, the scrape would run into the request timeout: a 503.
    let scraped = server
        .call(reqwest::Method::GET, "/metrics", "", None)
        .await;
    scraped.expect(200);
    assert!(
        scraped.text.contains("http_requests_total"),
        "{}",
        scraped.text
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_timeout_is_408_and_ends_the_connection() {
    let settings = ServerSettings {
        request_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Headers promise a body that never comes: the client is late, not the server.
    let request = format!(
        "POST /license_updates HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        server.key
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // The whole answer, up to the connection's end.
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("an answer, then the connection closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.contains("the request body did not arrive within 500 ms; nothing was written"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let entries = server.get("/license_updates").await;
    assert_eq!(entries.json["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_slower_than_the_timeout_is_503() {
    let settings = ServerSettings {
        request_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let Some(server) = TestServer::start_with(Backend::Postgres, settings).await else {
        return;
    };
    // The ledger locked: a write runs over the timeout once its body has arrived.
    let holder = server.database.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE ledger_entries IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let response = server
        .post(
            "/license_updates",
            json!({"accountId": "acme", "licenseId": "seats", "updateType": "RELATIVE", "quantity": 1}),
        )
        .await;
    response.expect(503);
    assert!(
        response
            .message()
            .contains("did not complete within 500 ms"),
        "{}",
        response.message()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    // Headers begun and never finished; nothing at all; the start of an HTTP/2 preface.
    let openings: [&[u8]; 3] = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"",
        b"PRI * HTTP/2.0\r\n",
    ];
    let started = Instant::now();
    let connections = openings.map(|opening| {
        let address = address.clone();
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.write_all(opening).await.unwrap();
            let mut buffer = [0u8; 1024];
            // The server closes the connection (read returns 0 or an error) instead of
            // waiting forever.
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await
            .is_ok()
        })
    });
    for (connection, opening) in connections.into_iter().zip(openings) {
        let closed = connection.await.unwrap();
        assert!(
            closed,
            "still open after 20 s: {:?}",
            String::from_utf8_lossy(opening)
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed too early: {:?}",
        started.elapsed()
    );
}

/// One answer read from `stream`: its head, then as many body bytes as it declares.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = (text[..end].lines())
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if answer.len() >= end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut buffer).await.expect("an answer");
        assert!(read > 0, "the connection ended mid-answer: {text:?}");
        answer.extend_from_slice(&buffer[..read]);
    }
}

/// A request refused before its body is read (no key, a read-only key, a wrong content
/// type, an unknown route, a method the route does not take, a malformed nonce) still has
/// its body read out, whenever it arrives: the client's next request on the connection is
/// answered, where the connection used to be dropped under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_its_body_is_read_keeps_its_connection() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    let read_only = server.new_key("alpha", true).await;
    let body = r#"{"license_key":"K"}"#;
    let refusals = [
        (
            "/license_updates",
            "Authorization: Bearer wrong\r\nContent-Type: application/json",
            "401",
        ),
        (
            "/customers",
            &format!("Authorization: Bearer {read_only}\r\nContent-Type: application/json"),
            "403",
        ),
        ("/licenses/validate", "Content-Type: text/plain", "415"),
        ("/no/such/route", "Content-Type: application/json", "404"),
        ("/healthz", "Content-Type: application/json", "405"),
        (
            "/licenses/validate",
            "Content-Type: application/json\r\nLicensed-Nonce: a b",
            "400",
        ),
    ];
    for (path, headers, status) in refusals {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\n{headers}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body comes after the refusal could have been sent.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(body.as_bytes()).await.unwrap();
        let refused = read_answer(&mut stream).await;
        assert!(
            refused.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {refused}"
        );
        assert!(!refused.contains("connection: close"), "{path}: {refused}");
        let next = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
        stream.write_all(next.as_bytes()).await.unwrap();
        let answered = read_answer(&mut stream).await;
        assert!(
            answered.starts_with("HTTP/1.1 200"),
            "after {path}: {answered}"
        );
    }

    // A client that waits to be asked for its body (`Expect: 100-continue`) is refused
    // without being asked; one that closes the connection after the request is answered
    // without waiting for its body.
    for (header, status) in [
        ("Expect: 100-continue", "401"),
        ("Connection: close", "401"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /license_updates HTTP/1.1\r\nHost: {address}\r\n{header}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let refused = read_answer(&mut stream).await;
        assert!(
            refused.starts_with(&format!("HTTP/1.1 {status}")),
            "{header}: {refused}"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{header}");
    }

    // A body that does not come: the refusal says that the connection ends.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /license_updates HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer, then the connection closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
