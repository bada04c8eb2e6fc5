//! Webhook delivery (SPEC §8): every change announced to the endpoints subscribed to it,
//! signed as Standard Webhooks says, retried on the schedule (shortened here with
//! `--webhook-retry-schedule`'s setting), in order, and never for a change that did not
//! commit.

mod common;

use std::time::Duration;

use common::receiver::{Received, Receiver};
use common::{Backend, TestServer};
use licensed::domain::delivery::RetrySchedule;
use licensed::http::ServerSettings;
use licensed::jobs::dispatcher::DispatchOptions;
use reqwest::Method;
use serde_json::{Value, json};

/// Four attempts, 100 ms apart.
const SCHEDULE: &str = "100ms,100ms,100ms";
const WAIT: Duration = Duration::from_secs(20);

macro_rules! delivery_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = super::start(crate::common::Backend::Sqlite).await.unwrap();
                    super::$name(server).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(server) = super::start(crate::common::Backend::Postgres).await {
                        super::$name(server).await;
                    }
                }
            )*
        }
    };
}

delivery_tests!(
    every_event_is_delivered_signed_with_its_payload,
    endpoints_get_only_the_events_they_take,
    a_failing_endpoint_is_retried_on_the_schedule_then_given_up,
    a_message_is_sent_again_on_request,
    an_endpoint_answering_410_is_disabled,
    a_refused_change_announces_nothing,
    a_change_is_announced_only_while_an_endpoint_is_enabled,
    concurrent_activations_announce_each_instance_once,
    messages_are_delivered_in_commit_order_with_custom_headers,
    the_rate_limit_spaces_deliveries,
    a_slow_endpoint_holds_up_no_other,
    metrics_count_deliveries_by_result,
    messages_are_listed_page_by_page,
);

async fn start(backend: Backend) -> Option<TestServer> {
    let settings = ServerSettings {
        webhooks: DispatchOptions {
            schedule: RetrySchedule::parse(SCHEDULE).unwrap(),
            ..DispatchOptions::default()
        },
        ..ServerSettings::default()
    };
    TestServer::start_with(backend, settings).await
}

/// A new endpoint at `url` with the `extra` fields: its id and secret.
async fn subscribe(server: &TestServer, url: &str, extra: Value) -> (String, String) {
    let mut body = json!({"url": url});
    (body.as_object_mut().unwrap()).extend(extra.as_object().unwrap().clone());
    let created = server.post("/webhooks", body).await;
    let id = created.expect(201).json["id"].as_str().unwrap().to_owned();
    let secret = server.get(&format!("/webhooks/{id}/secret")).await;
    let secret = secret.expect(200).json["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, secret)
}

/// A license key of a new product with the product fields `product`: its id and text.
async fn issue_key(server: &TestServer, product: Value) -> (String, String) {
    let mut body = json!({"name": "Editor"});
    (body.as_object_mut().unwrap()).extend(product.as_object().unwrap().clone());
    let product = server.post("/products", body).await;
    let product_id = product.expect(201).json["product_id"].clone();
    let customer = server
        .post(
            "/customers",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    let customer_id = customer.expect(201).json["customer_id"].clone();
    let key = server
        .post(
            "/license_keys",
            json!({"customer_id": customer_id, "product_id": product_id}),
        )
        .await;
    key.expect(201);
    (
        key.json["id"].as_str().unwrap().to_owned(),
        key.json["key"].as_str().unwrap().to_owned(),
    )
}

async fn licenses(server: &TestServer, action: &str, body: Value) -> common::Reply {
    (server.call(Method::POST, &format!("/licenses/{action}"), "", Some(body))).await
}

async fn ledger(server: &TestServer, quantity: i64, update_type: &str) -> common::Reply {
    let body = json!({
        "accountId": "acme", "licenseId": "seats", "quantity": quantity, "updateType": update_type,
    });
    server.post("/license_updates", body).await
}

fn types(received: &[Received]) -> Vec<String> {
    (received.iter())
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn messages(server: &TestServer, endpoint: &str, query: &str) -> Vec<Value> {
    let listed = server
        .get(&format!("/webhooks/{endpoint}/messages{query}"))
        .await;
    listed.expect(200).json["data"].as_array().unwrap().clone()
}

/// Waits until the endpoint's messages with that status number `n`.
async fn wait_for_status(
    server: &TestServer,
    endpoint: &str,
    status: &str,
    n: usize,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = messages(server, endpoint, &format!("?status={status}")).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} {status} messages: {found:#?}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn every_event_is_delivered_signed_with_its_payload(server: TestServer) {
    let receiver = Receiver::ok().await;
    let (_, secret) = subscribe(&server, &receiver.url, json!({})).await;
    let (key_id, key) = issue_key(&server, json!({"heartbeat_interval": 1})).await;
    let patched = server
        .patch(
            &format!("/license_keys/{key_id}"),
            json!({"activations_limit": 5}),
        )
        .await;
    patched.expect(200);
    // The same PATCH again changes nothing: it is answered, and not announced.
    (server.patch(
        &format!("/license_keys/{key_id}"),
        json!({"activations_limit": 5}),
    ))
    .await
    .expect(200);
    let first = licenses(
        &server,
        "activate",
        json!({"license_key": key, "name": "laptop"}),
    )
    .await;
    let first_id = first.expect(201).json["id"].clone();
    licenses(
        &server,
        "deactivate",
        json!({"license_key": key, "license_key_instance_id": first_id}),
    )
    .await
    .expect(200);
    let doomed = licenses(
        &server,
        "activate",
        json!({"license_key": key, "name": "tablet"}),
    )
    .await;
    let doomed_id = doomed.expect(201).json["id"].clone();
    let entry = ledger(&server, 7, "ABSOLUTE").await;
    entry.expect(200);

    // The tablet never beats: it dies within its second, and the sweeper announces it.
    let received = receiver.wait_for(7, WAIT).await;
    assert_eq!(
        types(&received),
        [
            "license_key.created",
            "license_key.updated",
            "license_key_instance.created",
            "license_key_instance.deleted",
            "license_key_instance.created",
            "license_update.created",
            "license_key_instance.deleted",
        ]
    );
    let bodies: Vec<Value> = received.iter().map(Received::json).collect();
    for (delivery, body) in received.iter().zip(&bodies) {
        assert!(delivery.signed_with(&secret), "{body}");
        assert!(delivery.id().starts_with("msg_"));
        assert_eq!(delivery.header("content-type"), "application/json");
        let sent: i64 = delivery.header("webhook-timestamp").parse().unwrap();
        assert!((sent - chrono::Utc::now().timestamp()).abs() < 60);
        let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            fields,
            ["business_id", "data", "timestamp", "type"],
            "{body}"
        );
        assert_eq!(body["business_id"], patched.json["business_id"]);
    }
    let ids: std::collections::HashSet<&str> = received.iter().map(Received::id).collect();
    assert_eq!(ids.len(), 7, "each event has its own id");

    let created = &bodies[0]["data"];
    assert_eq!(created["payload_type"], "LicenseKey");
    assert_eq!(created["id"], json!(key_id));
    assert_eq!(created["key"], json!(key));
    assert_eq!(created["activations_limit"], Value::Null);
    assert_eq!(bodies[1]["data"]["activations_limit"], 5);
    let instance = &bodies[2]["data"];
    assert_eq!(instance["payload_type"], "LicenseKeyInstance");
    assert_eq!(instance["id"], first_id);
    assert_eq!(instance["name"], "laptop");
    assert_eq!(instance.get("reason"), None);
    assert_eq!(bodies[3]["data"]["id"], first_id);
    assert_eq!(bodies[3]["data"]["reason"], "deactivated");
    let update = &bodies[5]["data"];
    assert_eq!(update["payload_type"], "LicenseUpdate");
    assert_eq!(
        (
            &update["accountId"],
            &update["licenseId"],
            &update["quantity"]
        ),
        (&json!("acme"), &json!("seats"), &json!(7))
    );
    assert_eq!(update["createdAt"], entry.json["createdAt"]);
    assert_eq!(bodies[6]["data"]["id"], doomed_id);
    assert_eq!(bodies[6]["data"]["reason"], "heartbeat");
}

async fn endpoints_get_only_the_events_they_take(server: TestServer) {
    let all = Receiver::ok().await;
    let ledger_only = Receiver::ok().await;
    let off = Receiver::ok().await;
    subscribe(&server, &all.url, json!({})).await;
    subscribe(
        &server,
        &ledger_only.url,
        json!({"filter_types": ["license_update.created"]}),
    )
    .await;
    let (off_id, _) = subscribe(&server, &off.url, json!({"disabled": true})).await;
    issue_key(&server, json!({})).await;
    ledger(&server, 3, "ABSOLUTE").await.expect(200);

    let everything = all.wait_for(2, WAIT).await;
    assert_eq!(
        types(&everything),
        ["license_key.created", "license_update.created"]
    );
    let entries = ledger_only.wait_for(1, WAIT).await;
    assert_eq!(types(&entries), ["license_update.created"]);
    // The same event carries the same id to every endpoint.
    assert_eq!(entries[0].id(), everything[1].id());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ledger_only.received().len(), 1);
    assert!(off.received().is_empty());
    assert_eq!(messages(&server, &off_id, "").await, Vec::<Value>::new());

    // Another business's changes reach none of these endpoints.
    let other = server.new_key("other", false).await;
    let body = json!({"accountId": "a", "licenseId": "l", "quantity": 1, "updateType": "ABSOLUTE"});
    (server.call(Method::POST, "/license_updates", &other, Some(body)))
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(all.received().len(), 2);
}

async fn a_failing_endpoint_is_retried_on_the_schedule_then_given_up(server: TestServer) {
    // One endpoint never answers well; the other fails twice, then gets through.
    let receiver = Receiver::start(|_, _| 503).await;
    let flaky = Receiver::start(|_, n| if n < 2 { 500 } else { 204 }).await;
    let (failing_id, _) = subscribe(&server, &receiver.url, json!({})).await;
    let (flaky_id, secret) = subscribe(&server, &flaky.url, json!({})).await;
    ledger(&server, 1, "ABSOLUTE").await.expect(200);

    let attempts = flaky.wait_for(3, WAIT).await;
    assert_eq!(
        attempts.iter().map(|a| a.answered).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    assert!(attempts.iter().all(|a| a.id() == attempts[0].id()));
    assert!(attempts.iter().all(|a| a.signed_with(&secret)));
    for pair in attempts.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(100));
    }
    let delivered = wait_for_status(&server, &flaky_id, "delivered", 1).await;
    let codes: Vec<&Value> = (delivered[0]["attempts"].as_array().unwrap().iter())
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(204)]);
    assert_eq!(delivered[0]["next_attempt_at"], Value::Null);
    assert_eq!(delivered[0]["payload"]["type"], "license_update.created");

    // Four attempts, then the message has failed.
    let failed = wait_for_status(&server, &failing_id, "failed", 1).await;
    assert_eq!(failed[0]["attempts"].as_array().unwrap().len(), 4);
    assert_eq!(receiver.received().len(), 4);
    assert_eq!(
        messages(&server, &failing_id, "?status=pending")
            .await
            .len(),
        0
    );
    assert_eq!(
        messages(&server, &failing_id, "?status=delivered")
            .await
            .len(),
        0
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        4,
        "nothing after the last attempt"
    );
}

async fn a_message_is_sent_again_on_request(server: TestServer) {
    let receiver = Receiver::start(|_, n| if n < 4 { 500 } else { 200 }).await;
    let (id, _) = subscribe(&server, &receiver.url, json!({})).await;
    ledger(&server, 2, "ABSOLUTE").await.expect(200);
    let failed = wait_for_status(&server, &id, "failed", 1).await;
    let msg = failed[0]["id"].as_str().unwrap();

    let retried = server
        .post(&format!("/webhooks/{id}/messages/{msg}/retry"), json!({}))
        .await;
    assert_eq!(retried.expect(202).json["status"], "pending");
    let delivered = wait_for_status(&server, &id, "delivered", 1).await;
    assert_eq!(delivered[0]["attempts"].as_array().unwrap().len(), 5);
    assert_eq!(receiver.received()[4].id(), msg);

    for (path, status) in [
        (format!("/webhooks/{id}/messages/msg_nope/retry"), 404),
        (format!("/webhooks/wh_nope/messages/{msg}/retry"), 404),
    ] {
        server.post(&path, json!({})).await.expect(status);
    }
    server.get("/webhooks/wh_nope/messages").await.expect(404);
    for query in ["?status=lost", "?limit=0", "?limit=101", "?limit=x"] {
        let reply = server.get(&format!("/webhooks/{id}/messages{query}")).await;
        assert!(
            [400, 422].contains(&reply.status.as_u16()),
            "{query}: {}",
            reply.text
        );
    }
    let reader = server.new_key("default", true).await;
    let path = format!("/webhooks/{id}/messages/{msg}/retry");
    (server.call(Method::POST, &path, &reader, Some(json!({}))))
        .await
        .expect(403);
    let other = server.new_key("other", false).await;
    (server.call(Method::POST, &path, &other, Some(json!({}))))
        .await
        .expect(404);
    let listed = format!("/webhooks/{id}/messages");
    (server.call(Method::GET, &listed, &other, None))
        .await
        .expect(404);
}

async fn an_endpoint_answering_410_is_disabled(server: TestServer) {
    let receiver = Receiver::start(|_, _| 410).await;
    let (id, _) = subscribe(&server, &receiver.url, json!({})).await;
    ledger(&server, 1, "ABSOLUTE").await.expect(200);
    ledger(&server, 2, "ABSOLUTE").await.expect(200);
    let failed = wait_for_status(&server, &id, "failed", 1).await;
    assert_eq!(failed[0]["attempts"][0]["status_code"], 410);
    let endpoint = server.get(&format!("/webhooks/{id}")).await;
    assert_eq!(endpoint.expect(200).json["disabled"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "nothing more once disabled");
    assert_eq!(messages(&server, &id, "?status=pending").await.len(), 1);
}

async fn a_refused_change_announces_nothing(server: TestServer) {
    let receiver = Receiver::ok().await;
    let (id, _) = subscribe(&server, &receiver.url, json!({})).await;
    let (_, key) = issue_key(&server, json!({"license_key_activations_limit": 1})).await;
    let activate = json!({"license_key": key, "name": "one"});
    licenses(&server, "activate", activate.clone())
        .await
        .expect(201);
    let over = licenses(
        &server,
        "activate",
        json!({"license_key": key, "name": "two"}),
    )
    .await;
    over.expect(422);
    ledger(&server, -5, "RELATIVE").await.expect(400);
    ledger(&server, 4, "ABSOLUTE").await.expect(200);

    let received = receiver.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        types(&receiver.received()),
        [
            "license_key.created",
            "license_key_instance.created",
            "license_update.created"
        ]
    );
    assert_eq!(received[2].json()["data"]["quantity"], 4);
    assert_eq!(messages(&server, &id, "").await.len(), 3);
}

/// A key issued and changed, and an instance dead of a missed heartbeat, while the
/// business's only endpoint is disabled are recorded for no one; the same once it is
/// enabled reach it.
async fn a_change_is_announced_only_while_an_endpoint_is_enabled(server: TestServer) {
    let receiver = Receiver::ok().await;
    let (id, _) = subscribe(&server, &receiver.url, json!({"disabled": true})).await;
    let issue_and_change_a_key = async || {
        let (key_id, key) = issue_key(&server, json!({"heartbeat_interval": 1})).await;
        let path = format!("/license_keys/{key_id}");
        let limit = json!({"activations_limit": 5});
        server.patch(&path, limit).await.expect(200);
        let body = json!({"license_key": key, "name": "laptop"});
        let activated = licenses(&server, "activate", body).await;
        let instance = activated.expect(201).json["id"].clone();
        let body = json!({"license_key": key, "license_key_instance_id": instance});
        licenses(&server, "deactivate", body).await.expect(200);
        // Never beats: dead within its second, and swept a quarter of a second later.
        let body = json!({"license_key": key, "name": "tablet"});
        licenses(&server, "activate", body).await.expect(201);
    };
    issue_and_change_a_key().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(messages(&server, &id, "").await, Vec::<Value>::new());

    let enable = json!({"disabled": false});
    (server.patch(&format!("/webhooks/{id}"), enable).await).expect(200);
    issue_and_change_a_key().await;
    assert_eq!(
        types(&receiver.wait_for(6, WAIT).await),
        [
            "license_key.created",
            "license_key.updated",
            "license_key_instance.created",
            "license_key_instance.deleted",
            "license_key_instance.created",
            "license_key_instance.deleted",
        ]
    );
}

/// Activations racing for one key's last seats: each instance made is announced once,
/// and a refused activation announces nothing.
async fn concurrent_activations_announce_each_instance_once(server: TestServer) {
    let receiver = Receiver::ok().await;
    let (id, _) = subscribe(
        &server,
        &receiver.url,
        json!({"filter_types": ["license_key_instance.created"]}),
    )
    .await;
    let (_, key) = issue_key(&server, json!({"license_key_activations_limit": 5})).await;
    let server = std::sync::Arc::new(server);
    let replies = common::concurrently(30, |i| {
        let server = server.clone();
        let key = key.clone();
        async move {
            let body = json!({"license_key": key, "name": format!("m{i}")});
            licenses(&server, "activate", body).await
        }
    })
    .await;
    let mut admitted: Vec<String> = (replies.iter())
        .filter(|r| r.status.as_u16() == 201)
        .map(|r| r.json["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(admitted.len(), 5);
    assert!(
        replies
            .iter()
            .all(|r| [201, 422].contains(&r.status.as_u16()))
    );
    receiver.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut announced: Vec<String> = (receiver.received().iter())
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    admitted.sort();
    announced.sort();
    assert_eq!(announced, admitted);
    assert_eq!(messages(&server, &id, "").await.len(), 5);
}

async fn messages_are_delivered_in_commit_order_with_custom_headers(server: TestServer) {
    let receiver = Receiver::ok().await;
    subscribe(
        &server,
        &receiver.url,
        json!({"headers": {"X-Tenant": "acme", "Authorization": "Bearer s3cret"}}),
    )
    .await;
    for quantity in 1..=30 {
        ledger(&server, quantity, "ABSOLUTE").await.expect(200);
    }
    let received = receiver.wait_for(30, WAIT).await;
    let quantities: Vec<i64> = (received.iter())
        .map(|r| r.json()["data"]["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(quantities, (1..=30).collect::<Vec<_>>());
    for delivery in &received {
        assert_eq!(delivery.header("x-tenant"), "acme");
        assert_eq!(delivery.header("authorization"), "Bearer s3cret");
    }
}

async fn the_rate_limit_spaces_deliveries(server: TestServer) {
    let receiver = Receiver::ok().await;
    subscribe(&server, &receiver.url, json!({"rate_limit": 10})).await;
    for quantity in 1..=6 {
        ledger(&server, quantity, "ABSOLUTE").await.expect(200);
    }
    let received = receiver.wait_for(6, WAIT).await;
    // Ten a second: the sixth at least half a second after the first.
    let spread = received[5].at - received[0].at;
    assert!(spread >= Duration::from_millis(450), "{spread:?}");
}

async fn a_slow_endpoint_holds_up_no_other(server: TestServer) {
    let slow = Receiver::start(|_, _| {
        std::thread::sleep(Duration::from_millis(300));
        200
    })
    .await;
    let fast = Receiver::ok().await;
    subscribe(&server, &slow.url, json!({})).await;
    subscribe(&server, &fast.url, json!({})).await;
    for quantity in 1..=10 {
        ledger(&server, quantity, "ABSOLUTE").await.expect(200);
    }
    fast.wait_for(10, WAIT).await;
    assert!(
        slow.received().len() < 10,
        "the fast endpoint had all ten before the slow one"
    );
    slow.wait_for(10, WAIT).await;
}

/// An endpoint's messages, newest first, page after page through the `iterator` of each,
/// each once; the last page says it is.
async fn messages_are_listed_page_by_page(server: TestServer) {
    let receiver = Receiver::ok().await;
    let (endpoint, _) = subscribe(&server, &receiver.url, json!({})).await;
    for quantity in 1..=7 {
        ledger(&server, quantity, "ABSOLUTE").await.expect(200);
    }
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_owned();
    let mut pages = Vec::new();
    loop {
        let page = server
            .get(&format!("/webhooks/{endpoint}/messages{query}"))
            .await;
        let page = page.expect(200).json.clone();
        let data = page["data"].as_array().unwrap();
        seen.extend(
            data.iter()
                .map(|m| m["payload"]["data"]["quantity"].as_i64().unwrap()),
        );
        pages.push((data.len(), page["done"].clone()));
        if page["done"] == true {
            assert_eq!(page["iterator"], Value::Null, "{page}");
            break;
        }
        query = format!("?limit=3&iterator={}", page["iterator"].as_str().unwrap());
    }
    assert_eq!(
        pages,
        [(3, json!(false)), (3, json!(false)), (1, json!(true))]
    );
    assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1]);
    for bad in ["nope", "msg_8EBq", "msg_zzzzzzzzzzzzzzzzzzzzzzzzzz"] {
        let refused = server
            .get(&format!("/webhooks/{endpoint}/messages?iterator={bad}"))
            .await;
        let message = refused.expect(400).message();
        assert!(message.contains("`iterator`"), "{message}");
    }
}

async fn metrics_count_deliveries_by_result(server: TestServer) {
    let receiver = Receiver::start(|_, n| if n == 0 { 500 } else { 200 }).await;
    let (id, _) = subscribe(&server, &receiver.url, json!({})).await;
    ledger(&server, 1, "ABSOLUTE").await.expect(200);
    wait_for_status(&server, &id, "delivered", 1).await;
    let metrics = server.get("/metrics").await.text;
    let value = |name: &str| -> f64 {
        let line = (metrics.lines())
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("webhook_deliveries_total{result=\"delivered\"}") >= 1.0);
    assert!(value("webhook_deliveries_total{result=\"retrying\"}") >= 1.0);
    assert_eq!(value("webhook_oldest_undelivered_seconds"), 0.0);
}

/// `--webhook-deny-private`: a receiver on this machine is refused, and the attempt log
/// says why; the receiver hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_private_refuses_a_local_receiver() {
    let settings = ServerSettings {
        webhooks: DispatchOptions {
            schedule: RetrySchedule::parse("50ms").unwrap(),
            deny_private: true,
            ..DispatchOptions::default()
        },
        ..ServerSettings::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    let receiver = Receiver::ok().await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let (literal, _) = subscribe(&server, &receiver.url, json!({})).await;
    let (named, _) = subscribe(&server, &by_name, json!({})).await;
    ledger(&server, 1, "ABSOLUTE").await.expect(200);
    for (endpoint, said) in [
        (literal, "127.0.0.1 is not a public address (loopback)"),
        (
            named,
            "refused: localhost does not resolve to a public address",
        ),
    ] {
        let failed = wait_for_status(&server, &endpoint, "failed", 1).await;
        let attempts = failed[0]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        for attempt in attempts {
            let error = attempt["error"].as_str().unwrap();
            assert!(error.ends_with(said), "{error}");
            assert_eq!(attempt["status_code"], Value::Null);
        }
    }
    assert!(receiver.received().is_empty());
}
