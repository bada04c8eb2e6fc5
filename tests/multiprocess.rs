//! Several `licensed serve` processes sharing one PostgreSQL database: every invariant
//! holds across them, in repeated trials.

mod common;

use std::sync::Arc;

use common::process::Served;
use common::{Backend, TestDatabase, concurrently};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "lsk_multiprocess-admin";
const TRIALS: usize = 3;

/// The addresses of the processes, shared by the tasks that call them.
struct Cluster {
    urls: Vec<String>,
    client: reqwest::Client,
}

/// Keeps the processes and their database alive until dropped.
struct Running {
    _servers: Vec<Served>,
    _database: TestDatabase,
}

impl Cluster {
    /// `None` when PostgreSQL is unreachable outside CI.
    async fn start(processes: usize) -> Option<(Arc<Self>, Running)> {
        let database = TestDatabase::create(Backend::Postgres).await?;
        let servers: Vec<Served> = (0..processes)
            .map(|_| Served::start(&database.url, Some(ADMIN_KEY)))
            .collect();
        let cluster = Self {
            urls: servers.iter().map(|s| s.url.clone()).collect(),
            client: reqwest::Client::new(),
        };
        Some((
            Arc::new(cluster),
            Running {
                _servers: servers,
                _database: database,
            },
        ))
    }

    /// Sends to process `i % n`, so requests spread over every process.
    async fn send(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Value,
        auth: bool,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.urls[i % self.urls.len()]);
        let mut request = self.client.request(method, url).json(&body);
        if auth {
            request = request.bearer_auth(ADMIN_KEY);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        self.send(i, reqwest::Method::POST, path, body, true).await
    }

    /// Activates `key` for an instance named after `i`, without an API key.
    async fn activate(&self, i: usize, key: &str) -> (u16, Value) {
        let body = json!({"license_key": key, "name": format!("m{i}")});
        (self.send(i, reqwest::Method::POST, "/licenses/activate", body, false)).await
    }

    async fn get(&self, i: usize, path: &str) -> Value {
        self.send(i, reqwest::Method::GET, path, Value::Null, true)
            .await
            .1
    }

    /// A key of a new customer and product with the given activation limit.
    async fn key(&self, limit: u32) -> (String, String) {
        let (_, customer) = self
            .post(
                0,
                "/customers",
                json!({"email": "c@example.com", "name": "C"}),
            )
            .await;
        let (_, product) = self
            .post(
                1,
                "/products",
                json!({"name": "P", "license_key_activations_limit": limit}),
            )
            .await;
        let (status, key) = self
            .post(0, "/license_keys", json!({"customer_id": customer["customer_id"], "product_id": product["product_id"]}))
            .await;
        assert_eq!(status, 201, "{key}");
        (
            key["id"].as_str().unwrap().to_owned(),
            key["key"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_activations_through_two_processes_admit_exactly_the_limit() {
    let Some((cluster, _running)) = Cluster::start(2).await else {
        return;
    };
    for _ in 0..TRIALS {
        let (id, key) = cluster.key(7).await;
        let results = concurrently(50, |i| {
            let cluster = cluster.clone();
            let key = key.clone();
            async move { cluster.activate(i, &key).await }
        })
        .await;
        let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        common::assert_admitted_up_to_the_limit(&statuses, 7);
        let fetched = cluster.get(1, &format!("/license_keys/{id}")).await;
        assert_eq!(fetched["instances_count"], json!(7));
        let listed = cluster
            .get(
                0,
                &format!("/license_key_instances?page_size=100&license_key_id={id}"),
            )
            .await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_lowered_while_three_processes_activate_are_never_exceeded() {
    let Some((cluster, _running)) = Cluster::start(3).await else {
        return;
    };
    for _ in 0..TRIALS {
        let (id, key) = cluster.key(30).await;
        let results = concurrently(60, |i| {
            let cluster = cluster.clone();
            let (id, key) = (id.clone(), key.clone());
            async move {
                if i % 6 == 0 {
                    cluster
                        .send(
                            i,
                            reqwest::Method::PATCH,
                            &format!("/license_keys/{id}"),
                            json!({"activations_limit": 3 + i / 6}),
                            true,
                        )
                        .await
                } else {
                    cluster.activate(i, &key).await
                }
            }
        })
        .await;
        assert!(
            results.iter().all(|(s, _)| [200, 201, 422].contains(s)),
            "{results:?}"
        );
        let fetched = cluster.get(2, &format!("/license_keys/{id}")).await;
        let count = fetched["instances_count"].as_u64().unwrap();
        assert!(
            count <= fetched["activations_limit"].as_u64().unwrap(),
            "{fetched}"
        );
        let listed = cluster
            .get(
                0,
                &format!("/license_key_instances?page_size=100&license_key_id={id}"),
            )
            .await;
        assert_eq!(listed["items"].as_array().unwrap().len() as u64, count);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_from_many_clients_writes_once() {
    let Some((cluster, _running)) = Cluster::start(3).await else {
        return;
    };
    for trial in 0..TRIALS {
        let body = json!({"accountId": "acme", "licenseId": format!("seats-{trial}"), "updateType": "RELATIVE",
            "quantity": 1, "effectiveFrom": "2024-01-01T00:00:00Z", "idempotencyKey": format!("order-{trial}")});
        let results = concurrently(30, |i| {
            let cluster = cluster.clone();
            let body = body.clone();
            async move { cluster.post(i, "/license_updates", body).await }
        })
        .await;
        for (status, reply) in &results {
            assert_eq!(*status, 200, "{reply}");
            assert_eq!(
                reply, &results[0].1,
                "every repeat returns the original response"
            );
        }
        let listed = cluster
            .get(1, &format!("/license_updates?licenseId=seats-{trial}"))
            .await;
        assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_relative_updates_on_one_account_all_count() {
    let Some((cluster, _running)) = Cluster::start(3).await else {
        return;
    };
    for trial in 0..TRIALS {
        let license = format!("seats-{trial}");
        let results = concurrently(60, |i| {
            let cluster = cluster.clone();
            let license = license.clone();
            async move {
                let at = format!("2024-01-0{}T00:00:00Z", 1 + i % 4);
                cluster
                    .post(i, "/license_updates", json!({"accountId": "acme", "licenseId": license, "updateType": "RELATIVE", "quantity": 1, "effectiveFrom": at}))
                    .await
            }
        })
        .await;
        assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
        let quantity = cluster
            .get(
                2,
                &format!(
                    "/license_quantity?accountId=acme&licenseId={license}&at=2025-01-01T00:00:00Z"
                ),
            )
            .await;
        assert_eq!(quantity["quantity"], json!(60));
        // Each page from another process: a token works on any of them.
        let mut asked = 0;
        let first = format!("/license_updates?licenseId={license}&_sort=effective_from:asc");
        let pages = common::ledger_pages(first, "", async |path| {
            asked += 1;
            cluster.get(asked, &path).await
        })
        .await;
        let all: Vec<i64> = (pages
            .iter()
            .flat_map(|page| page["data"].as_array().unwrap()))
        .map(|e| e["quantity"].as_i64().unwrap())
        .collect();
        assert_eq!(
            all,
            (1..=60).collect::<Vec<_>>(),
            "each entry's quantity is its place in the ledger"
        );
    }
}
