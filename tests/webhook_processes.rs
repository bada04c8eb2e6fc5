//! Webhook delivery across processes (SPEC §8): a server killed with SIGKILL in the middle
//! of deliveries loses no committed event once restarted (on SQLite at once, whatever its
//! leases), and invents none; one stopped with SIGTERM records the attempt in flight
//! first; two servers on one PostgreSQL database deliver everything, never attempting one
//! message in both at once.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::process::Served;
use common::receiver::{Received, Receiver};
use common::{Backend, TestDatabase};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "lsk_webhook-processes-admin";
/// Retries 200 ms apart, and leases of `seconds`.
fn flags(seconds: &'static str) -> [&'static str; 4] {
    [
        "--webhook-lease-seconds",
        seconds,
        "--webhook-retry-schedule",
        "200ms,200ms,200ms,200ms",
    ]
}
/// Short leases, so that a killed process's endpoints are taken over within seconds.
const SHORT_LEASES: &str = "3";
/// Leases longer than the test: a restarted SQLite server must not wait for its
/// predecessor's to end (one process owns the file).
const LONG_LEASES: &str = "3600";
const WAIT: Duration = Duration::from_secs(60);

async fn post(client: &reqwest::Client, url: &str, path: &str, body: Value) -> (u16, Value) {
    let reply = client
        .post(format!("{url}{path}"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await;
    match reply {
        Ok(reply) => {
            let status = reply.status().as_u16();
            (status, reply.json().await.unwrap_or(Value::Null))
        }
        // The server was killed while it answered: the write may or may not have committed.
        Err(_) => (0, Value::Null),
    }
}

async fn subscribe(client: &reqwest::Client, url: &str, receiver: &Receiver) {
    let (status, body) = post(client, url, "/webhooks", json!({"url": receiver.url})).await;
    assert_eq!(status, 201, "{body}");
}

/// A ledger entry whose quantity names it.
fn entry(n: usize) -> Value {
    json!({"accountId": "acme", "licenseId": "seats", "quantity": n, "updateType": "ABSOLUTE"})
}

fn quantities(received: &[Received]) -> BTreeSet<i64> {
    (received.iter())
        .map(|r| r.json()["data"]["quantity"].as_i64().unwrap())
        .collect()
}

/// Waits until the receiver holds every quantity of `wanted`.
async fn wait_for_all(receiver: &Receiver, wanted: &BTreeSet<i64>) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let received = receiver.received();
        let got = quantities(&received);
        if wanted.is_subset(&got) {
            return received;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing {:?}",
            wanted.difference(&got).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_delivers_every_committed_event_after_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("licensed.db").display());
    killed_mid_delivery(&url, &flags(LONG_LEASES)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_server_delivers_every_committed_event_after_restart_on_postgres() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    killed_mid_delivery(&database.url, &flags(SHORT_LEASES)).await;
}

async fn killed_mid_delivery(database_url: &str, flags: &[&str]) {
    // Slow enough that deliveries are still under way when the server dies.
    let receiver = Receiver::start(|_, _| {
        std::thread::sleep(Duration::from_millis(5));
        200
    })
    .await;
    let client = reqwest::Client::new();
    let served = Served::start_with(database_url, Some(ADMIN_KEY), flags);
    subscribe(&client, &served.url, &receiver).await;

    // Writes race the kill: those answered 200 committed; the others may or may not have.
    let url = served.url.clone();
    let writes = tokio::spawn({
        let client = client.clone();
        async move {
            let mut committed = BTreeSet::new();
            let mut unknown = BTreeSet::new();
            for n in 1..=400 {
                match post(&client, &url, "/license_updates", entry(n)).await {
                    (200, _) => committed.insert(n as i64),
                    (0, _) => unknown.insert(n as i64),
                    (status, body) => panic!("{status}: {body}"),
                };
            }
            (committed, unknown)
        }
    });
    receiver.wait_for(50, WAIT).await;
    served.kill();
    let (committed, unknown) = writes.await.unwrap();
    let before_restart = receiver.received().len();
    assert!(
        before_restart < 400,
        "the kill came before the last delivery"
    );

    let restarted = Served::start_with(database_url, None, flags);
    let received = wait_for_all(&receiver, &committed).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received_all = receiver.received();
    let got = quantities(&received_all);
    let invented: Vec<&i64> = got
        .iter()
        .filter(|q| !committed.contains(q) && !unknown.contains(q))
        .collect();
    assert!(
        invented.is_empty(),
        "delivered, never written: {invented:?}"
    );
    // Each event keeps its id: a repeat after the restart carries the first one's.
    let mut ids: HashMap<i64, &str> = HashMap::new();
    for r in &received_all {
        let q = r.json()["data"]["quantity"].as_i64().unwrap();
        assert_eq!(*ids.entry(q).or_insert(r.id()), r.id());
    }
    assert!(received.len() >= committed.len());
    drop(restarted);
}

/// SIGTERM while a delivery is in flight: the attempt finishes and is recorded before the
/// process exits, so the server started after it does not make it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_server_records_the_attempt_in_flight_before_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("licensed.db").display());
    let arrived = Arc::new(AtomicBool::new(false));
    // The first delivery is slow; another would be answered, and counted, at once.
    let receiver = Receiver::start({
        let arrived = arrived.clone();
        move |_, n| {
            if n == 0 {
                arrived.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(2));
            }
            200
        }
    })
    .await;
    let client = reqwest::Client::new();
    let mut served = Served::start_with(&url, Some(ADMIN_KEY), &flags(LONG_LEASES));
    subscribe(&client, &served.url, &receiver).await;
    let (status, body) = post(&client, &served.url, "/license_updates", entry(1)).await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !arrived.load(Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "no delivery came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    served.signal_terminate();
    let exited = served.exits_within(Duration::from_secs(30));
    assert!(exited.expect("the process exits").success());
    assert_eq!(receiver.received().len(), 1, "answered before the exit");

    let restarted = Served::start_with(&url, None, &flags(LONG_LEASES));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "delivered again after the restart"
    );
    let get = async |path: String| {
        let reply = client
            .get(format!("{}{path}", restarted.url))
            .bearer_auth(ADMIN_KEY);
        reply.send().await.unwrap().json::<Value>().await.unwrap()
    };
    let endpoint = get("/webhooks".into()).await["data"][0]["id"].clone();
    let messages = get(format!("/webhooks/{}/messages", endpoint.as_str().unwrap())).await;
    let message = &messages["data"][0];
    assert_eq!(message["status"], "delivered", "{messages}");
    assert_eq!(
        message["attempts"].as_array().unwrap().len(),
        1,
        "{messages}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_processes_share_the_deliveries_without_overlap() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let receivers = [
        Receiver::start(|_, _| {
            std::thread::sleep(Duration::from_millis(2));
            200
        })
        .await,
        Receiver::start(|_, n| if n % 5 == 0 { 500 } else { 200 }).await,
        Receiver::ok().await,
    ];
    let client = reqwest::Client::new();
    let servers = [
        Served::start_with(&database.url, Some(ADMIN_KEY), &flags(SHORT_LEASES)),
        Served::start_with(&database.url, Some(ADMIN_KEY), &flags(SHORT_LEASES)),
    ];
    for receiver in &receivers {
        subscribe(&client, &servers[0].url, receiver).await;
    }
    let mut committed = BTreeSet::new();
    let writes = common::concurrently(300, |n| {
        let client = client.clone();
        let url = servers[n % 2].url.clone();
        async move {
            (
                n,
                post(&client, &url, "/license_updates", entry(n + 1)).await,
            )
        }
    })
    .await;
    for (n, (status, body)) in writes {
        assert_eq!(status, 200, "{body}");
        committed.insert(n as i64 + 1);
    }
    for receiver in &receivers {
        let received = wait_for_all(receiver, &committed).await;
        assert!(
            receiver.overlapping().is_empty(),
            "{:?}",
            receiver.overlapping()
        );
        let got = quantities(&received);
        assert_eq!(got, committed);
    }
    // The endpoint that always answers 200 got each message once.
    assert_eq!(receivers[2].received().len(), committed.len());
    drop(servers);
}

/// A failed attempt is logged with its endpoint, its message and where the URL points, but
/// not the URL's path or query, where receivers often put a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_logged_without_the_urls_path_or_query() {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let mut served = Served::start_with(&database.url, Some(ADMIN_KEY), &flags(LONG_LEASES));
    let client = reqwest::Client::new();
    // Nothing listens on port 9 of the loopback: the attempt fails to connect.
    let url = "http://127.0.0.1:9/hooks/PATH-TOKEN?token=QUERY-TOKEN";
    let (status, endpoint) = post(&client, &served.url, "/webhooks", json!({"url": url})).await;
    assert_eq!(status, 201, "{endpoint}");
    let (status, _) = post(&client, &served.url, "/license_updates", entry(1)).await;
    assert_eq!(status, 200);
    let line = served.wait_for("a webhook delivery failed");
    let id = endpoint["id"].as_str().unwrap();
    assert!(line.contains(id) && line.contains("msg_"), "{line}");
    assert!(line.contains("http://127.0.0.1:9"), "{line}");
    assert!(!line.contains("TOKEN"), "{line}");
    assert_eq!(served.terminate().code(), Some(0));
}
