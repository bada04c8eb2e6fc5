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

/// A key of a new customer and of a product made of `product`, issued with `extra`.
async fn seats_key(cluster: &Cluster, product: Value, extra: Value) -> (String, String) {
    let (_, customer) = (cluster.post(
        0,
        "/customers",
        json!({"email": "c@example.com", "name": "C"}),
    ))
    .await;
    let (_, product) = cluster.post(1, "/products", product).await;
    let mut body =
        json!({"customer_id": customer["customer_id"], "product_id": product["product_id"]});
    (body.as_object_mut().unwrap()).extend(extra.as_object().unwrap().clone());
    let (status, key) = cluster.post(2, "/license_keys", body).await;
    assert_eq!(status, 201, "{key}");
    (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

/// The ids of a key's instances, listed by process `i`.
async fn instance_ids(cluster: &Cluster, i: usize, id: &str) -> Vec<String> {
    let path = format!("/license_key_instances?page_size=100&license_key_id={id}");
    let listed = cluster.get(i, &path).await;
    (listed["items"].as_array().unwrap().iter())
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends `/licenses/{action}` for an instance of `key` to process `i`.
async fn instance_call(
    cluster: &Cluster,
    i: usize,
    action: &str,
    key: &str,
    instance: &str,
) -> (u16, Value) {
    let body = json!({"license_key": key, "license_key_instance_id": instance});
    (cluster.send(
        i,
        reqwest::Method::POST,
        &format!("/licenses/{action}"),
        body,
        false,
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activations_through_three_processes_racing_seat_decreases_keep_to_the_seats() {
    const START: i64 = 8;
    const DECREASES: usize = 6;
    const ACTIVATIONS: usize = 30;
    let Some((cluster, _running)) = Cluster::start(3).await else {
        return;
    };
    for trial in 0..TRIALS {
        let license = format!("race-{trial}");
        let (status, entry) = cluster
            .post(
                0,
                "/license_updates",
                json!({"accountId": "acme", "licenseId": license, "updateType": "ABSOLUTE",
                "quantity": START, "effectiveFrom": "2024-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(status, 200, "{entry}");
        let seats = json!({"account_id": "acme", "license_id": license});
        let (id, key) = seats_key(&cluster, json!({"name": "P"}), json!({"seats": seats})).await;
        // Every process reads the key first, as a process that kept what it read would.
        for i in 0..3 {
            let fetched = cluster.get(i, &format!("/license_keys/{id}")).await;
            assert_eq!(fetched["activations_limit"], json!(START), "{fetched}");
        }

        let race = concurrently(ACTIVATIONS + DECREASES, |i| {
            let (cluster, key, license) = (cluster.clone(), key.clone(), license.clone());
            async move {
                let decrease = i % 6 == 0;
                let sent = std::time::Instant::now();
                let (status, reply) = if decrease {
                    let body = json!({"accountId": "acme", "licenseId": license, "updateType": "RELATIVE", "quantity": -1});
                    cluster.post(i, "/license_updates", body).await
                } else {
                    cluster.activate(i, &key).await
                };
                let timed = common::Timed {
                    change: decrease.then_some(-1),
                    sent,
                    answered: std::time::Instant::now(),
                    status,
                };
                (timed, reply)
            }
        })
        .await;
        for (timed, reply) in &race {
            let expected: &[u16] = if timed.change.is_some() {
                &[200]
            } else {
                &[201, 422]
            };
            assert!(expected.contains(&timed.status), "{timed:?}: {reply}");
        }
        let race: Vec<common::Timed> = race.into_iter().map(|(timed, _)| timed).collect();
        common::assert_each_activation_fitted(START, &race);
        let succeeded = race.iter().filter(|t| t.status == 201).count() as i64;
        let end = START - DECREASES as i64;
        assert!(
            succeeded <= START,
            "{succeeded} activations over {START} seats"
        );
        assert!(
            succeeded >= end,
            "refused while seats were free: {succeeded}"
        );
        for i in 0..3 {
            let fetched = cluster.get(i, &format!("/license_keys/{id}")).await;
            assert_eq!(fetched["activations_limit"], json!(end), "{fetched}");
        }

        // Settled: every process sees the seats that are left, and no more.
        let more = concurrently(6, |i| {
            let (cluster, key) = (cluster.clone(), key.clone());
            async move { cluster.activate(i, &key).await.0 }
        })
        .await;
        let free = (end - succeeded).max(0) as usize;
        common::assert_admitted_up_to_the_limit(&more, free);
        let total = succeeded as usize + free;
        let listed = instance_ids(&cluster, 1, &id).await;
        assert_eq!(listed.len(), total);
        for i in 0..3 {
            let fetched = cluster.get(i, &format!("/license_keys/{id}")).await;
            assert_eq!(fetched["instances_count"], json!(total), "{fetched}");
        }
        let mut valid = 0;
        for (i, instance) in listed.iter().enumerate() {
            let (status, reply) = instance_call(&cluster, i, "validate", &key, instance).await;
            assert_eq!(status, 200, "{reply}");
            valid += usize::from(reply["valid"] == json!(true));
        }
        assert_eq!(valid, total.min(end as usize), "instances within the seats");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_sweep_dead_instances_once() {
    const TRIALS: usize = 2;
    let Some((cluster, mut running)) = Cluster::start(2).await else {
        return;
    };
    let rows = async |key_id: &str| {
        (running._database)
            .count(&format!(
                "SELECT count(*) FROM license_key_instances WHERE license_key_id = '{key_id}'"
            ))
            .await
    };
    let instant = |value: &Value| {
        chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let sleep_until = async |at: chrono::DateTime<chrono::Utc>| {
        if let Ok(wait) = (at - chrono::Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
    };
    for _ in 0..TRIALS {
        let product =
            json!({"name": "P", "heartbeat_interval": 2, "license_key_activations_limit": 5});
        // Nothing but the sweepers deletes the dead instances of `quiet`; activations
        // arriving as they die race the sweepers on `busy`.
        let quiet = seats_key(&cluster, product.clone(), json!({})).await;
        let busy = seats_key(&cluster, product, json!({})).await;
        let mut kept = Vec::new();
        let mut doomed = Vec::new();
        let mut death = chrono::Utc::now();
        for (id, key) in [&quiet, &busy] {
            for i in 0..4 {
                let (status, instance) = cluster.activate(i, key).await;
                assert_eq!(status, 201, "{instance}");
                let instance_id = instance["id"].as_str().unwrap().to_owned();
                if i == 0 {
                    kept.push((key.clone(), instance_id));
                } else {
                    death = death.max(instant(&instance["heartbeat_expires_at"]));
                    doomed.push((id.clone(), key.clone(), instance_id));
                }
            }
        }

        let beating = async {
            for round in 0..6 {
                tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                for (key, instance) in &kept {
                    let (status, reply) =
                        instance_call(&cluster, round, "heartbeat", key, instance).await;
                    assert_eq!((status, &reply["valid"]), (200, &json!(true)), "{reply}");
                }
            }
        };
        let dying = async {
            sleep_until(death + chrono::TimeDelta::milliseconds(50)).await;
            let statuses = concurrently(6, |i| {
                let (cluster, key) = (cluster.clone(), busy.1.clone());
                async move { cluster.activate(i, &key).await.0 }
            })
            .await;
            // The dead hold no seat: four join the one kept alive.
            common::assert_admitted_up_to_the_limit(&statuses, 4);
            sleep_until(death + chrono::TimeDelta::milliseconds(1300)).await;
            assert_eq!(
                rows(&quiet.0).await,
                1,
                "the dead of the quiet key are deleted"
            );
            assert_eq!(rows(&busy.0).await, 5);
            for (i, (id, expected)) in [(&quiet.0, 1), (&busy.0, 5)].into_iter().enumerate() {
                for process in [i, i + 1] {
                    assert_eq!(instance_ids(&cluster, process, id).await.len(), expected);
                    let fetched = cluster.get(process, &format!("/license_keys/{id}")).await;
                    assert_eq!(fetched["instances_count"], json!(expected), "{fetched}");
                }
            }
            for (i, (_, key, instance)) in doomed.iter().enumerate() {
                let (status, reply) = instance_call(&cluster, i, "heartbeat", key, instance).await;
                assert_eq!(
                    (status, &reply["code"]),
                    (404, &json!("LICENSE_KEY_INSTANCE_DEAD")),
                    "{reply}"
                );
            }
        };
        tokio::join!(beating, dying);
        for (key, instance) in &kept {
            let (status, reply) = instance_call(&cluster, 1, "validate", key, instance).await;
            assert_eq!((status, &reply["valid"]), (200, &json!(true)), "{reply}");
        }
    }
    for server in &mut running._servers {
        let errors: Vec<_> = (server.logged().iter())
            .filter(|line| line.contains("ERROR"))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
}
