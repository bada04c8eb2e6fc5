//! Seats (SPEC §7): fingerprints, heartbeats and keys whose limit follows the ledger, on
//! every backend. Heartbeat deadlines are waited for in real time, a second or two each.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::{Reply, TestServer, Timed};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    a_live_instances_fingerprint_returns_that_instance,
    invalid_fingerprints_are_400_and_write_nothing,
    concurrent_activations_with_one_fingerprint_make_one_instance,
    products_carry_a_validated_heartbeat_interval,
    keys_inherit_override_or_turn_off_the_interval,
    activation_is_the_first_beat_and_beats_extend_the_deadline,
    a_missed_deadline_frees_the_seat_at_once,
    a_machine_activating_again_counts_out_the_dead_it_deletes,
    the_sweeper_deletes_dead_instances_and_never_live_ones,
    heartbeat_refusals_and_keys_without_an_interval,
    patching_the_interval_starts_recomputes_or_clears_deadlines,
    a_bound_key_follows_its_pairs_quantity_now,
    a_bound_key_follows_a_write_backdated_before_many_entries,
    binding_needs_a_pair_of_the_business_and_no_limit_beside_it,
    patch_binds_and_unbinds,
    future_dated_entries_open_and_close_seats_when_they_take_effect,
    a_decrease_puts_the_newest_instances_over_seat,
    binding_a_key_beyond_the_quantity_puts_instances_over_seat,
    activations_racing_ledger_writes_keep_to_the_seats,
);

/// The interval of the heartbeat tests, in seconds.
const INTERVAL: i64 = 2;

async fn public(server: &TestServer, action: &str, body: Value) -> Reply {
    server
        .call(Method::POST, &format!("/licenses/{action}"), "", Some(body))
        .await
}

async fn product(server: &TestServer, extra: Value) -> String {
    let mut body = json!({"name": "Editor Pro"});
    (body.as_object_mut().unwrap()).extend(extra.as_object().unwrap().clone());
    let reply = server.post("/products", body).await;
    reply.expect(201).json["product_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The body of a key of a new customer for `product_id`, with `extra` fields.
async fn key_body(server: &TestServer, product_id: &str, extra: Value) -> Value {
    let customer = server
        .post(
            "/customers",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    let mut body =
        json!({"customer_id": customer.expect(201).json["customer_id"], "product_id": product_id});
    (body.as_object_mut().unwrap()).extend(extra.as_object().unwrap().clone());
    body
}

/// A license key: its id and the text a customer types.
#[derive(Clone)]
struct Key {
    id: String,
    text: String,
}

impl Key {
    fn of(reply: &Reply) -> Self {
        reply.expect(201);
        Self {
            id: reply.json["id"].as_str().unwrap().to_owned(),
            text: reply.json["key"].as_str().unwrap().to_owned(),
        }
    }

    /// A key of a new product with the `defaults`, issued with `extra` fields.
    async fn issue(server: &TestServer, defaults: Value, extra: Value) -> Self {
        let product_id = product(server, defaults).await;
        Self::issue_for(server, &product_id, extra).await
    }

    async fn issue_for(server: &TestServer, product_id: &str, extra: Value) -> Self {
        let body = key_body(server, product_id, extra).await;
        Self::of(&server.post("/license_keys", body).await)
    }

    /// A key bound to acme's `license`.
    async fn bound(server: &TestServer, license: &str) -> Self {
        Self::issue(server, json!({}), json!({"seats": seats(license)})).await
    }

    fn path(&self) -> String {
        format!("/license_keys/{}", self.id)
    }

    async fn fetch(&self, server: &TestServer) -> Value {
        server.get(&self.path()).await.expect(200).json.clone()
    }

    async fn patch(&self, server: &TestServer, body: Value) -> Reply {
        server.patch(&self.path(), body).await
    }

    async fn instances_count(&self, server: &TestServer) -> u64 {
        self.fetch(server).await["instances_count"]
            .as_u64()
            .unwrap()
    }

    async fn activations_limit(&self, server: &TestServer) -> Value {
        self.fetch(server).await["activations_limit"].clone()
    }

    /// Its instances as listed.
    async fn listed(&self, server: &TestServer) -> Vec<Value> {
        let reply = server
            .get(&format!(
                "/license_key_instances?page_size=100&license_key_id={}",
                self.id
            ))
            .await;
        reply.expect(200).json["items"].as_array().unwrap().clone()
    }

    async fn listed_ids(&self, server: &TestServer) -> Vec<String> {
        (self.listed(server).await.iter())
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Activates it for an instance called `name`, with a fingerprint if given.
    async fn activate(&self, server: &TestServer, name: &str, fingerprint: Option<&str>) -> Reply {
        let mut body = json!({"license_key": self.text, "name": name});
        if let Some(fingerprint) = fingerprint {
            body["fingerprint"] = json!(fingerprint);
        }
        public(server, "activate", body).await
    }

    /// The id of a new instance called `name`.
    async fn activated(&self, server: &TestServer, name: &str) -> String {
        let reply = self.activate(server, name, None).await;
        reply.expect(201).json["id"].as_str().unwrap().to_owned()
    }

    async fn heartbeat(&self, server: &TestServer, instance: &str) -> Reply {
        let body = json!({"license_key": self.text, "license_key_instance_id": instance});
        public(server, "heartbeat", body).await
    }

    async fn valid(&self, server: &TestServer, instance: &str) -> bool {
        let body = json!({"license_key": self.text, "license_key_instance_id": instance});
        let reply = public(server, "validate", body).await;
        reply.expect(200).json["valid"].as_bool().unwrap()
    }

    async fn deactivate(&self, server: &TestServer, instance: &str) -> Reply {
        let body = json!({"license_key": self.text, "license_key_instance_id": instance});
        public(server, "deactivate", body).await
    }
}

/// The binding of a key to acme's `license`.
fn seats(license: &str) -> Value {
    json!({"account_id": "acme", "license_id": license})
}

/// Records a change of acme's `license`, effective `at` (the time of the request if
/// `None`).
async fn ledger(server: &TestServer, license: &str, kind: &str, quantity: Value, at: Option<&str>) {
    let mut body = json!({"accountId": "acme", "licenseId": license, "updateType": kind, "quantity": quantity});
    if let Some(at) = at {
        body["effectiveFrom"] = json!(at);
    }
    server.post("/license_updates", body).await.expect(200);
}

/// Sets acme's `license` to `quantity` from 2024 on.
async fn ledger_from_2024(server: &TestServer, license: &str, quantity: Value) {
    ledger(
        server,
        license,
        "ABSOLUTE",
        quantity,
        Some("2024-01-01T00:00:00Z"),
    )
    .await;
}

#[track_caller]
fn code(reply: &Reply, status: u16) -> String {
    reply.expect(status).json["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {}", reply.text))
        .to_owned()
}

#[track_caller]
fn instant(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    assert!(text.ends_with('Z'), "{text}");
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn millis(ms: i64) -> TimeDelta {
    TimeDelta::milliseconds(ms)
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// Asserts that `at` lies within `slack` of `expected`.
#[track_caller]
fn assert_near(at: DateTime<Utc>, expected: DateTime<Utc>, slack: TimeDelta, what: &str) {
    assert!(
        (at - expected).abs() <= slack,
        "{what}: {at} is not within {slack} of {expected}"
    );
}

/// Asserts that `at` lies in `[from, to]`, both moved by `by`, give or take 50 ms.
#[track_caller]
fn assert_between(at: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>, by: TimeDelta) {
    assert!(
        from + by - millis(50) <= at && at <= to + by + millis(50),
        "{at} is not in [{from}, {to}] + {by}"
    );
}

async fn a_live_instances_fingerprint_returns_that_instance(server: TestServer) {
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 2}),
        json!({}),
    )
    .await;
    let first = key.activate(&server, "laptop", Some("machine-A")).await;
    first.expect(201);
    assert_eq!(first.json["fingerprint"], "machine-A");
    let laptop = first.json["id"].as_str().unwrap().to_owned();

    let again = key
        .activate(&server, "reinstalled", Some("machine-A"))
        .await;
    again.expect(201);
    assert_eq!(again.json["id"], laptop.as_str());
    assert_eq!(again.json["name"], "laptop", "the original name stays");
    assert_eq!(again.json["created_at"], first.json["created_at"]);
    assert_eq!(key.instances_count(&server).await, 1, "no new seat taken");

    let second = key.activate(&server, "desktop", Some("machine-B")).await;
    let desktop = second.expect(201).json["id"].as_str().unwrap().to_owned();
    assert_ne!(desktop, laptop);
    assert_eq!(key.instances_count(&server).await, 2);

    // At the limit, a known machine still gets its instance back; no other one gets in.
    let full = key.activate(&server, "again", Some("machine-A")).await;
    assert_eq!(full.expect(201).json["id"], laptop.as_str());
    let refused = key.activate(&server, "third", Some("machine-C")).await;
    assert_eq!(code(&refused, 422), "LICENSE_KEY_LIMIT_REACHED");
    let refused = key.activate(&server, "fourth", None).await;
    assert_eq!(code(&refused, 422), "LICENSE_KEY_LIMIT_REACHED");
    assert_eq!(key.instances_count(&server).await, 2);

    let fingerprints: HashMap<String, Value> = (key.listed(&server).await.iter())
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["fingerprint"].clone(),
            )
        })
        .collect();
    assert_eq!(
        fingerprints,
        HashMap::from([
            (laptop.clone(), json!("machine-A")),
            (desktop.clone(), json!("machine-B"))
        ])
    );
    let one = server
        .get(&format!("/license_key_instances/{laptop}"))
        .await;
    assert_eq!(one.expect(200).json["fingerprint"], "machine-A");
    assert_eq!(one.json["name"], "laptop");

    // A deactivated instance's fingerprint is free: using it again is a new instance.
    key.deactivate(&server, &laptop).await.expect(200);
    let fresh = key.activate(&server, "laptop", Some("machine-A")).await;
    let fresh_id = fresh.expect(201).json["id"].as_str().unwrap().to_owned();
    assert_ne!(fresh_id, laptop);
    assert_eq!(key.instances_count(&server).await, 2);

    // Fingerprints belong to one key: the same one on another key is its own instance.
    let other = Key::issue(&server, json!({}), json!({})).await;
    let theirs = other.activate(&server, "desktop", Some("machine-B")).await;
    theirs.expect(201);
    assert_ne!(theirs.json["id"], desktop.as_str());
    assert_eq!(theirs.json["license_key_id"], other.id.as_str());
    assert_eq!(other.instances_count(&server).await, 1);
    assert_eq!(key.instances_count(&server).await, 2);

    // Without a fingerprint, instances carry null.
    let bare = other.activate(&server, "bare", None).await;
    assert_eq!(bare.expect(201).json["fingerprint"], Value::Null);
    let bare_id = bare.json["id"].as_str().unwrap();
    let fetched = server
        .get(&format!("/license_key_instances/{bare_id}"))
        .await;
    let fetched = fetched.expect(200);
    assert!(
        fetched.json.get("fingerprint").is_some(),
        "{}",
        fetched.text
    );
    assert_eq!(fetched.json["fingerprint"], Value::Null);
    let listed = other.listed(&server).await;
    let listed_bare = listed.iter().find(|i| i["id"] == bare_id).unwrap();
    assert_eq!(listed_bare.get("fingerprint"), Some(&Value::Null));

    // The key's status comes first: a disabled key gives no instance back.
    key.patch(&server, json!({"disabled": true}))
        .await
        .expect(200);
    let inactive = key.activate(&server, "desktop", Some("machine-B")).await;
    assert_eq!(code(&inactive, 403), "INACTIVE_LICENSE_KEY");
}

async fn invalid_fingerprints_are_400_and_write_nothing(server: TestServer) {
    let key = Key::issue(&server, json!({}), json!({})).await;
    let long = "f".repeat(256);
    let invalid = [
        json!(""),
        json!(long),
        json!("machine A"),
        json!("machine\u{7}A"),
        json!("machine\tA"),
        json!("machine\nA"),
        json!("machine\u{7f}A"),
        json!("machine\u{a0}A"),
        json!(42),
    ];
    for fingerprint in invalid {
        let body = json!({"license_key": key.text, "name": "x", "fingerprint": fingerprint});
        let reply = public(&server, "activate", body).await;
        assert_eq!(code(&reply, 400), "BAD_REQUEST", "{fingerprint}");
        assert!(
            reply.message().contains("fingerprint"),
            "{fingerprint}: {}",
            reply.text
        );
    }
    assert_eq!(key.instances_count(&server).await, 0);
    assert_eq!(key.listed(&server).await, Vec::<Value>::new());

    // The bounds themselves are fine.
    let longest = "f".repeat(255);
    for fingerprint in ["x", longest.as_str(), "mac:00-1A-2B/ünïcode"] {
        let reply = key.activate(&server, "ok", Some(fingerprint)).await;
        assert_eq!(reply.expect(201).json["fingerprint"], fingerprint);
    }
    assert_eq!(key.instances_count(&server).await, 3);
}

async fn concurrent_activations_with_one_fingerprint_make_one_instance(server: TestServer) {
    let server = Arc::new(server);
    // The limit leaves room for each of them, or for one only: either way one instance.
    for limit in [8, 8, 1] {
        let key = Key::issue(
            &server,
            json!({"license_key_activations_limit": limit}),
            json!({}),
        )
        .await;
        let replies = common::concurrently(8, |i| {
            let (server, key) = (server.clone(), key.clone());
            async move { (key.activate(&server, &format!("m{i}"), Some("one-machine"))).await }
        })
        .await;
        for reply in &replies {
            reply.expect(201);
        }
        let ids: HashSet<_> = replies.iter().map(|r| r.json["id"].clone()).collect();
        assert_eq!(
            ids.len(),
            1,
            "every answer carries the one instance: {ids:?}"
        );
        assert_eq!(key.instances_count(&server).await, 1);
        let listed = key.listed_ids(&server).await;
        assert_eq!(listed.len(), 1);
        assert!(ids.contains(&json!(listed[0])));
    }
}

async fn products_carry_a_validated_heartbeat_interval(server: TestServer) {
    for bad in [
        json!(0),
        json!(2_592_001),
        json!("x"),
        json!(-1),
        json!(1.5),
    ] {
        let reply = server
            .post("/products", json!({"name": "P", "heartbeat_interval": bad}))
            .await;
        assert_eq!(code(&reply, 400), "BAD_REQUEST", "{bad}");
        assert!(
            reply.message().contains("heartbeat_interval"),
            "{}",
            reply.text
        );
    }
    assert_eq!(server.get("/products").await.json["items"], json!([]));

    let plain = server.post("/products", json!({"name": "Plain"})).await;
    assert_eq!(
        plain.expect(201).json.get("heartbeat_interval"),
        Some(&Value::Null)
    );
    for bound in [1, 2_592_000] {
        let reply = server
            .post(
                "/products",
                json!({"name": "Bound", "heartbeat_interval": bound}),
            )
            .await;
        assert_eq!(reply.expect(201).json["heartbeat_interval"], json!(bound));
    }
    let hourly = product(&server, json!({"heartbeat_interval": 3600})).await;
    let path = format!("/products/{hourly}");
    assert_eq!(
        server.get(&path).await.expect(200).json["heartbeat_interval"],
        json!(3600)
    );

    let cleared = server
        .patch(&path, json!({"heartbeat_interval": null}))
        .await;
    assert_eq!(cleared.expect(200).json["heartbeat_interval"], Value::Null);
    assert_eq!(
        server.get(&path).await.json["heartbeat_interval"],
        Value::Null
    );
    let set = server.patch(&path, json!({"heartbeat_interval": 60})).await;
    assert_eq!(set.expect(200).json["heartbeat_interval"], json!(60));
    let renamed = server.patch(&path, json!({"name": "Renamed"})).await;
    assert_eq!(
        renamed.expect(200).json["heartbeat_interval"],
        json!(60),
        "an absent interval is unchanged"
    );
    let refused = server.patch(&path, json!({"heartbeat_interval": 0})).await;
    assert!(refused.expect(400).message().contains("heartbeat_interval"));
    assert_eq!(
        server.get(&path).await.json["heartbeat_interval"],
        json!(60)
    );

    let listed = server.get("/products?page_size=100").await;
    let intervals: HashMap<String, Value> = (listed.expect(200).json["items"].as_array())
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["product_id"].as_str().unwrap().to_owned(),
                p["heartbeat_interval"].clone(),
            )
        })
        .collect();
    assert_eq!(intervals.len(), 4);
    assert_eq!(intervals[&hourly], json!(60));
    assert_eq!(
        intervals[plain.json["product_id"].as_str().unwrap()],
        Value::Null
    );
}

async fn keys_inherit_override_or_turn_off_the_interval(server: TestServer) {
    let hourly = product(&server, json!({"heartbeat_interval": 3600})).await;
    let inherits = Key::issue_for(&server, &hourly, json!({})).await;
    let overrides = Key::issue_for(&server, &hourly, json!({"heartbeat_interval": 60})).await;
    let off = Key::issue_for(&server, &hourly, json!({"heartbeat_interval": null})).await;
    assert_eq!(
        inherits.fetch(&server).await["heartbeat_interval"],
        json!(3600)
    );
    assert_eq!(
        overrides.fetch(&server).await["heartbeat_interval"],
        json!(60)
    );
    let fetched_off = off.fetch(&server).await;
    assert_eq!(fetched_off.get("heartbeat_interval"), Some(&Value::Null));

    for bad in [json!(0), json!(2_592_001), json!("x")] {
        let body = key_body(&server, &hourly, json!({"heartbeat_interval": bad})).await;
        let reply = server.post("/license_keys", body).await;
        assert!(
            reply.expect(400).message().contains("heartbeat_interval"),
            "{}",
            reply.text
        );
    }
    let on_plain = Key::issue(&server, json!({}), json!({"heartbeat_interval": 30})).await;
    assert_eq!(
        on_plain.fetch(&server).await["heartbeat_interval"],
        json!(30)
    );

    let patched = inherits
        .patch(&server, json!({"heartbeat_interval": 120}))
        .await;
    assert_eq!(patched.expect(200).json["heartbeat_interval"], json!(120));
    let untouched = inherits.patch(&server, json!({"disabled": false})).await;
    assert_eq!(untouched.expect(200).json["heartbeat_interval"], json!(120));
    let refused = inherits
        .patch(&server, json!({"heartbeat_interval": 0}))
        .await;
    assert!(refused.expect(400).message().contains("heartbeat_interval"));
    let cleared = inherits
        .patch(&server, json!({"heartbeat_interval": null}))
        .await;
    assert_eq!(cleared.expect(200).json["heartbeat_interval"], Value::Null);
    assert_eq!(
        inherits.fetch(&server).await["heartbeat_interval"],
        Value::Null
    );

    // A key takes its product's interval when it is created, not later.
    server
        .patch(
            &format!("/products/{hourly}"),
            json!({"heartbeat_interval": 7}),
        )
        .await
        .expect(200);
    assert_eq!(
        overrides.fetch(&server).await["heartbeat_interval"],
        json!(60)
    );
    assert_eq!(off.fetch(&server).await["heartbeat_interval"], Value::Null);
    let later = Key::issue_for(&server, &hourly, json!({})).await;

    let listed = server
        .get(&format!("/license_keys?page_size=100&product_id={hourly}"))
        .await;
    let intervals: HashMap<String, Value> = (listed.expect(200).json["items"].as_array())
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_owned(),
                k["heartbeat_interval"].clone(),
            )
        })
        .collect();
    assert_eq!(
        intervals,
        HashMap::from([
            (inherits.id, Value::Null),
            (overrides.id, json!(60)),
            (off.id, Value::Null),
            (later.id, json!(7)),
        ])
    );
}

async fn activation_is_the_first_beat_and_beats_extend_the_deadline(server: TestServer) {
    let interval = TimeDelta::seconds(INTERVAL);
    let key = Key::issue(&server, json!({"heartbeat_interval": INTERVAL}), json!({})).await;
    let beaten = async {
        let sent = Utc::now();
        let activated = key.activate(&server, "beats", None).await;
        let answered = Utc::now();
        activated.expect(201);
        let created = instant(&activated.json["created_at"]);
        assert_between(created, sent, answered, TimeDelta::zero());
        let first_deadline = instant(&activated.json["heartbeat_expires_at"]);
        assert_near(
            first_deadline,
            created + interval,
            millis(50),
            "first deadline",
        );
        assert_near(
            instant(&activated.json["last_heartbeat_at"]),
            created,
            millis(50),
            "activation is the first beat",
        );
        let id = activated.json["id"].as_str().unwrap().to_owned();
        let path = format!("/license_key_instances/{id}");
        let fetched = server.get(&path).await;
        assert_eq!(
            fetched.expect(200).json["heartbeat_expires_at"],
            activated.json["heartbeat_expires_at"]
        );
        assert_eq!(
            fetched.json["last_heartbeat_at"],
            activated.json["last_heartbeat_at"]
        );

        sleep_until(created + millis(1200)).await;
        let sent = Utc::now();
        let beat = key.heartbeat(&server, &id).await;
        let answered = Utc::now();
        beat.expect(200);
        let fields: HashSet<_> = beat.json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            fields,
            HashSet::from(["valid".to_owned(), "heartbeat_expires_at".to_owned()])
        );
        assert_eq!(beat.json["valid"], json!(true));
        let deadline = instant(&beat.json["heartbeat_expires_at"]);
        assert_between(deadline, sent, answered, interval);
        let fetched = server.get(&path).await;
        assert_eq!(
            fetched.expect(200).json["heartbeat_expires_at"],
            beat.json["heartbeat_expires_at"]
        );
        assert_near(
            instant(&fetched.json["last_heartbeat_at"]),
            deadline - interval,
            millis(50),
            "the last beat",
        );

        // Past the first deadline, the beat keeps it alive.
        sleep_until(first_deadline + millis(300)).await;
        assert!(key.valid(&server, &id).await);
        assert!(key.listed_ids(&server).await.contains(&id));
    };
    let reinstalled = async {
        let activated = key.activate(&server, "reinstalls", Some("fp-1")).await;
        let id = activated.expect(201).json["id"].clone();
        let first_deadline = instant(&activated.json["heartbeat_expires_at"]);
        sleep_until(first_deadline - millis(800)).await;
        let sent = Utc::now();
        let again = key.activate(&server, "reinstalled", Some("fp-1")).await;
        let answered = Utc::now();
        assert_eq!(again.expect(201).json["id"], id);
        let deadline = instant(&again.json["heartbeat_expires_at"]);
        assert_between(deadline, sent, answered, interval);
        sleep_until(first_deadline + millis(300)).await;
        assert!(key.valid(&server, id.as_str().unwrap()).await);
    };
    tokio::join!(beaten, reinstalled);
    assert_eq!(key.instances_count(&server).await, 2);
}

async fn a_missed_deadline_frees_the_seat_at_once(server: TestServer) {
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 1, "heartbeat_interval": 1}),
        json!({}),
    )
    .await;
    let activated = key.activate(&server, "gone", Some("fp-gone")).await;
    let dead = activated.expect(201).json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = instant(&activated.json["heartbeat_expires_at"]);
    let refused = key.activate(&server, "waiting", None).await;
    assert_eq!(code(&refused, 422), "LICENSE_KEY_LIMIT_REACHED");

    sleep_until(deadline + millis(100)).await;
    assert_eq!(key.instances_count(&server).await, 0);
    assert!(!key.valid(&server, &dead).await);
    let late = key.heartbeat(&server, &dead).await;
    assert_eq!(code(&late, 404), "LICENSE_KEY_INSTANCE_DEAD");
    server
        .get(&format!("/license_key_instances/{dead}"))
        .await
        .expect(404);
    assert_eq!(key.listed(&server).await, Vec::<Value>::new());

    let taken = key.activate(&server, "waiting", None).await;
    let taker = taken.expect(201).json["id"].as_str().unwrap().to_owned();
    assert_eq!(key.instances_count(&server).await, 1);
    assert_eq!(key.listed_ids(&server).await, [taker]);
    // Deleted or not, the dead instance's id is remembered as dead.
    let late = key.heartbeat(&server, &dead).await;
    assert_eq!(code(&late, 404), "LICENSE_KEY_INSTANCE_DEAD");
    assert!(!key.valid(&server, &dead).await);
    // Its fingerprint belongs to no live instance any more: the seat is taken.
    let returning = key.activate(&server, "gone", Some("fp-gone")).await;
    assert_eq!(code(&returning, 422), "LICENSE_KEY_LIMIT_REACHED");
    key.deactivate(&server, &dead).await.expect(404);
}

async fn a_machine_activating_again_counts_out_the_dead_it_deletes(server: TestServer) {
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 3, "heartbeat_interval": 1}),
        json!({}),
    )
    .await;
    let dying = key.activate(&server, "dying", None).await;
    let death = instant(&dying.expect(201).json["heartbeat_expires_at"]);
    sleep_until(death - millis(500)).await;
    let machine = key.activate(&server, "machine", Some("fp-machine")).await;
    let machine = machine.expect(201).json["id"].as_str().unwrap().to_owned();

    sleep_until(death + millis(100)).await;
    let again = key.activate(&server, "machine", Some("fp-machine")).await;
    assert_eq!(again.expect(201).json["id"], json!(machine));
    assert_eq!(key.listed_ids(&server).await, [machine]);
    assert_eq!(key.instances_count(&server).await, 1);
    // The count the limit is checked against is the live one: two seats are left.
    key.activated(&server, "second").await;
    key.activated(&server, "third").await;
    let over = key.activate(&server, "fourth", None).await;
    assert_eq!(code(&over, 422), "LICENSE_KEY_LIMIT_REACHED");
}

async fn the_sweeper_deletes_dead_instances_and_never_live_ones(server: TestServer) {
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 3, "heartbeat_interval": INTERVAL}),
        json!({}),
    )
    .await;
    let activated = key.activate(&server, "kept", None).await;
    let kept = activated.expect(201).json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut deadline = instant(&activated.json["heartbeat_expires_at"]);
    let doomed = [
        key.activated(&server, "doomed-1").await,
        key.activated(&server, "doomed-2").await,
    ];
    let rows = |instance: String| {
        let database = &server.database;
        async move {
            (database.count(&format!(
                "SELECT count(*) FROM license_key_instances WHERE id = '{instance}'"
            )))
            .await
        }
    };

    let beating = async {
        for _ in 0..4 {
            // A beat 300 ms before the deadline, each time: alive throughout.
            sleep_until(deadline - millis(300)).await;
            let beat = key.heartbeat(&server, &kept).await;
            assert_eq!(beat.expect(200).json["valid"], json!(true));
            let next = instant(&beat.json["heartbeat_expires_at"]);
            assert!(next > deadline, "{next} after {deadline}");
            deadline = next;
            assert!(key.valid(&server, &kept).await);
            assert!(key.listed_ids(&server).await.contains(&kept));
        }
    };
    let sweeping = async {
        let first = server
            .get(&format!("/license_key_instances/{}", doomed[1]))
            .await;
        let death = instant(&first.expect(200).json["heartbeat_expires_at"]);
        // No activation of this key from now on: only the sweeper deletes them.
        sleep_until(death + millis(1300)).await;
        for instance in &doomed {
            assert_eq!(rows(instance.clone()).await, 0, "{instance} not deleted");
            let late = key.heartbeat(&server, instance).await;
            assert_eq!(code(&late, 404), "LICENSE_KEY_INSTANCE_DEAD");
        }
        assert_eq!(key.listed_ids(&server).await, std::slice::from_ref(&kept));
        assert_eq!(key.instances_count(&server).await, 1);
    };
    tokio::join!(beating, sweeping);
    assert_eq!(rows(kept.clone()).await, 1);
    assert_eq!(key.listed_ids(&server).await, [kept]);
    assert_eq!(key.instances_count(&server).await, 1);
}

async fn heartbeat_refusals_and_keys_without_an_interval(server: TestServer) {
    let unknown = public(
        &server,
        "heartbeat",
        json!({"license_key": "NO-SUCH-KEY", "license_key_instance_id": "lki_x"}),
    )
    .await;
    assert_eq!(code(&unknown, 404), "LICENSE_KEY_NOT_FOUND");

    let timed = Key::issue(&server, json!({"heartbeat_interval": 3600}), json!({})).await;
    let instance = timed.activated(&server, "a").await;
    let stranger = timed.heartbeat(&server, "lki_never_seen").await;
    assert_eq!(code(&stranger, 404), "LICENSE_KEY_NOT_FOUND");
    assert!(
        stranger.message().contains("no current activation"),
        "{}",
        stranger.text
    );
    assert!(
        !unknown.message().contains("activation"),
        "{}",
        unknown.text
    );
    let other = Key::issue(&server, json!({"heartbeat_interval": 3600}), json!({})).await;
    let theirs = other.activated(&server, "b").await;
    let foreign = timed.heartbeat(&server, &theirs).await;
    assert_eq!(code(&foreign, 404), "LICENSE_KEY_NOT_FOUND");
    timed.deactivate(&server, &instance).await.expect(200);
    let deactivated = timed.heartbeat(&server, &instance).await;
    assert_eq!(code(&deactivated, 404), "LICENSE_KEY_NOT_FOUND");
    let incomplete = public(&server, "heartbeat", json!({"license_key": timed.text})).await;
    assert!(
        (incomplete.expect(400).message()).contains("license_key_instance_id"),
        "{}",
        incomplete.text
    );

    let untimed = Key::issue(&server, json!({}), json!({})).await;
    let activated = untimed.activate(&server, "c", None).await;
    activated.expect(201);
    assert_eq!(
        activated.json.get("heartbeat_expires_at"),
        Some(&Value::Null)
    );
    assert_eq!(activated.json.get("last_heartbeat_at"), Some(&Value::Null));
    let id = activated.json["id"].as_str().unwrap().to_owned();
    let beat = untimed.heartbeat(&server, &id).await;
    assert_eq!(
        beat.expect(200).json,
        json!({"valid": true, "heartbeat_expires_at": null})
    );

    // The answer says what validation would: false for a disabled or expired key.
    untimed
        .patch(&server, json!({"disabled": true}))
        .await
        .expect(200);
    let beat = untimed.heartbeat(&server, &id).await;
    assert_eq!(beat.expect(200).json["valid"], json!(false));
    let still = timed.activated(&server, "d").await;
    timed
        .patch(&server, json!({"expires_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect(200);
    let beat = timed.heartbeat(&server, &still).await;
    assert_eq!(beat.expect(200).json["valid"], json!(false));
}

async fn patching_the_interval_starts_recomputes_or_clears_deadlines(server: TestServer) {
    let interval = TimeDelta::seconds(INTERVAL);
    let instance = |key: Key, id: String| {
        let server = &server;
        async move {
            let reply = server.get(&format!("/license_key_instances/{id}")).await;
            assert_eq!(reply.status.as_u16(), 200, "{} of {}", reply.text, key.id);
            reply.json
        }
    };
    let turned_on = async {
        let key = Key::issue(&server, json!({}), json!({})).await;
        let id = key.activated(&server, "a").await;
        let before = instance(key.clone(), id.clone()).await;
        assert_eq!(before["heartbeat_expires_at"], Value::Null);
        let sent = Utc::now();
        key.patch(&server, json!({"heartbeat_interval": INTERVAL}))
            .await
            .expect(200);
        let answered = Utc::now();
        let after = instance(key.clone(), id.clone()).await;
        let deadline = instant(&after["heartbeat_expires_at"]);
        assert_between(deadline, sent, answered, interval);
        assert_between(
            instant(&after["last_heartbeat_at"]),
            sent,
            answered,
            TimeDelta::zero(),
        );
        // Without a beat it now dies.
        sleep_until(deadline + millis(100)).await;
        assert!(!key.valid(&server, &id).await);
        assert_eq!(key.instances_count(&server).await, 0);
    };
    let shortened = async {
        let key = Key::issue(&server, json!({"heartbeat_interval": 3600}), json!({})).await;
        let id = key.activated(&server, "b").await;
        let lengthened = key.activated(&server, "c").await;
        let created = instant(&instance(key.clone(), id.clone()).await["created_at"]);
        sleep_until(created + millis(1200)).await;
        key.heartbeat(&server, &lengthened).await.expect(200);
        // A deadline recomputed from the last beat: one second after it is past.
        key.patch(&server, json!({"heartbeat_interval": 1}))
            .await
            .expect(200);
        assert!(!key.valid(&server, &id).await);
        let late = key.heartbeat(&server, &id).await;
        assert_eq!(code(&late, 404), "LICENSE_KEY_INSTANCE_DEAD");
        assert!(key.valid(&server, &lengthened).await);
        assert_eq!(key.instances_count(&server).await, 1);
        // Longer again, from the last beat, which is more than a second old by now.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let beat = key.heartbeat(&server, &lengthened).await;
        let last = instant(&beat.expect(200).json["heartbeat_expires_at"]) - TimeDelta::seconds(1);
        key.patch(&server, json!({"heartbeat_interval": 3600}))
            .await
            .expect(200);
        let after = instance(key.clone(), lengthened.clone()).await;
        assert_near(
            instant(&after["heartbeat_expires_at"]),
            last + TimeDelta::seconds(3600),
            millis(50),
            "recomputed from the last beat",
        );
        assert_eq!(key.listed_ids(&server).await, [lengthened]);
    };
    let turned_off = async {
        let key = Key::issue(&server, json!({"heartbeat_interval": 1}), json!({})).await;
        let id = key.activated(&server, "d").await;
        key.patch(&server, json!({"heartbeat_interval": null}))
            .await
            .expect(200);
        let after = instance(key.clone(), id.clone()).await;
        assert_eq!(after["heartbeat_expires_at"], Value::Null);
        assert_eq!(after["last_heartbeat_at"], Value::Null);
        // Well past the old deadline, it lives on.
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        assert!(key.valid(&server, &id).await);
        assert_eq!(key.listed_ids(&server).await, std::slice::from_ref(&id));
        assert_eq!(key.instances_count(&server).await, 1);
        let beat = key.heartbeat(&server, &id).await;
        assert_eq!(
            beat.expect(200).json,
            json!({"valid": true, "heartbeat_expires_at": null})
        );
    };
    tokio::join!(turned_on, shortened, turned_off);
}

async fn a_bound_key_follows_its_pairs_quantity_now(server: TestServer) {
    ledger_from_2024(&server, "seats", json!(2.5)).await;
    // The product's own limit gives way to the ledger's.
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 10}),
        json!({"seats": seats("seats")}),
    )
    .await;
    let fetched = key.fetch(&server).await;
    assert_eq!(fetched["activations_limit"], json!(2), "2.5 rounds down");
    assert_eq!(fetched["seats"], seats("seats"));
    let listed = server.get("/license_keys?page_size=100").await;
    let item = (listed.expect(200).json["items"].as_array().unwrap().iter())
        .find(|k| k["id"] == key.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["seats"], seats("seats"));
    assert_eq!(item["activations_limit"], json!(2));

    key.activated(&server, "one").await;
    key.activated(&server, "two").await;
    let full = key.activate(&server, "three", None).await;
    assert_eq!(code(&full, 422), "LICENSE_KEY_LIMIT_REACHED");

    // A seat bought now opens an activation now.
    ledger(&server, "seats", "RELATIVE", json!(1), None).await;
    assert_eq!(key.activations_limit(&server).await, json!(3));
    key.activated(&server, "three").await;
    let full = key.activate(&server, "four", None).await;
    assert_eq!(code(&full, 422), "LICENSE_KEY_LIMIT_REACHED");
    assert_eq!(key.instances_count(&server).await, 3);

    // Less than one seat is none.
    ledger_from_2024(&server, "fraction", json!(0.75)).await;
    let none = Key::bound(&server, "fraction").await;
    assert_eq!(none.activations_limit(&server).await, json!(0));
    let refused = none.activate(&server, "x", None).await;
    assert_eq!(code(&refused, 422), "LICENSE_KEY_LIMIT_REACHED");

    let unbound = Key::issue(&server, json!({}), json!({})).await;
    let fetched = unbound.fetch(&server).await;
    assert_eq!(fetched.get("seats"), Some(&Value::Null));
}

/// A write backdated before many entries records a shift rather than rewrite them: the
/// key's limit, its activations and validations, and the ledger's own figures follow it.
async fn a_bound_key_follows_a_write_backdated_before_many_entries(server: TestServer) {
    ledger_from_2024(&server, "shifted", json!(1)).await;
    for day in 2..=13 {
        let at = format!("2024-01-{day:02}T00:00:00Z");
        ledger(&server, "shifted", "RELATIVE", json!(0), Some(&at)).await;
    }
    let key = Key::bound(&server, "shifted").await;
    assert_eq!(key.activations_limit(&server).await, json!(1));
    let first = key.activated(&server, "one").await;
    let full = key.activate(&server, "two", None).await;
    assert_eq!(code(&full, 422), "LICENSE_KEY_LIMIT_REACHED");

    let before_them = Some("2024-01-01T12:00:00Z");
    ledger(&server, "shifted", "RELATIVE", json!(2), before_them).await;
    assert_eq!(key.activations_limit(&server).await, json!(3));
    let listed = server.get("/license_keys?page_size=100").await;
    let item = (listed.expect(200).json["items"].as_array().unwrap().iter())
        .find(|k| k["id"] == key.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["activations_limit"], json!(3));
    key.activated(&server, "two").await;
    let third = key.activated(&server, "three").await;
    let full = key.activate(&server, "four", None).await;
    assert_eq!(code(&full, 422), "LICENSE_KEY_LIMIT_REACHED");

    let quantity = server
        .get("/license_quantity?accountId=acme&licenseId=shifted")
        .await;
    assert_eq!(quantity.expect(200).json["quantity"], json!(3));
    let listed = server
        .get("/license_updates?accountId=acme&licenseId=shifted&_sort=effective_from:asc")
        .await;
    let quantities: Vec<Value> = (listed.expect(200).json["data"].as_array().unwrap().iter())
        .map(|e| e["quantity"].clone())
        .collect();
    let mut expected = vec![json!(1), json!(3)];
    expected.extend(std::iter::repeat_n(json!(3), 12));
    assert_eq!(quantities, expected);

    // A decrease before them all puts the newest instance over seat.
    ledger(&server, "shifted", "RELATIVE", json!(-1), before_them).await;
    assert_eq!(key.activations_limit(&server).await, json!(2));
    assert!(key.valid(&server, &first).await);
    assert!(!key.valid(&server, &third).await);
}

async fn binding_needs_a_pair_of_the_business_and_no_limit_beside_it(server: TestServer) {
    let product_id = product(&server, json!({})).await;
    let create = |extra: Value| {
        let (server, product_id) = (&server, product_id.clone());
        async move {
            let body = key_body(server, &product_id, extra).await;
            server.post("/license_keys", body).await
        }
    };
    let missing = create(json!({"seats": seats("never-recorded")})).await;
    assert!(
        missing.expect(404).message().contains("never-recorded"),
        "{}",
        missing.text
    );

    let beta = server.new_key("beta", false).await;
    let theirs = json!({"accountId": "acme", "licenseId": "theirs", "updateType": "ABSOLUTE", "quantity": 5});
    (server.call(Method::POST, "/license_updates", &beta, Some(theirs)))
        .await
        .expect(200);
    create(json!({"seats": seats("theirs")})).await.expect(404);

    ledger_from_2024(&server, "ours", json!(5)).await;
    let both = create(json!({"seats": seats("ours"), "activations_limit": 3})).await;
    assert_eq!(code(&both, 400), "BAD_REQUEST");
    let shapeless = create(json!({"seats": {"account_id": "acme"}})).await;
    assert!(shapeless.expect(400).message().contains("license_id"));
    assert_eq!(
        server.get("/license_keys").await.json["items"],
        json!([]),
        "nothing written"
    );

    let key = Key::of(&create(json!({"activations_limit": 2})).await);
    let patch_missing = key
        .patch(&server, json!({"seats": seats("never-recorded")}))
        .await;
    patch_missing.expect(404);
    key.patch(&server, json!({"seats": seats("theirs")}))
        .await
        .expect(404);
    let patch_both = key
        .patch(
            &server,
            json!({"seats": seats("ours"), "activations_limit": 3}),
        )
        .await;
    assert_eq!(code(&patch_both, 400), "BAD_REQUEST");
    // Refused for what it asks, before the pair is looked up.
    for body in [
        json!({"seats": seats("never-recorded"), "activations_limit": 3}),
        json!({"seats": seats("theirs"), "activations_limit": 3}),
    ] {
        assert_eq!(
            code(&key.patch(&server, body.clone()).await, 400),
            "BAD_REQUEST"
        );
        assert_eq!(code(&create(body).await, 400), "BAD_REQUEST");
    }
    let unchanged = key.fetch(&server).await;
    assert_eq!(unchanged["seats"], Value::Null);
    assert_eq!(unchanged["activations_limit"], json!(2));
}

async fn patch_binds_and_unbinds(server: TestServer) {
    ledger_from_2024(&server, "seats", json!(4)).await;
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 10}),
        json!({}),
    )
    .await;
    key.activated(&server, "a").await;
    key.activated(&server, "b").await;

    let bound = key.patch(&server, json!({"seats": seats("seats")})).await;
    assert_eq!(bound.expect(200).json["seats"], seats("seats"));
    assert_eq!(bound.json["activations_limit"], json!(4));
    ledger(&server, "seats", "RELATIVE", json!(1), None).await;
    assert_eq!(key.activations_limit(&server).await, json!(5));

    let alone = key.patch(&server, json!({"activations_limit": 6})).await;
    assert_eq!(code(&alone, 400), "BAD_REQUEST");
    let other_field = key.patch(&server, json!({"disabled": false})).await;
    assert_eq!(other_field.expect(200).json["seats"], seats("seats"));
    assert_eq!(key.activations_limit(&server).await, json!(5));

    // Unbinding keeps the figure as a fixed limit that the ledger no longer moves.
    let unbound = key.patch(&server, json!({"seats": null})).await;
    assert_eq!(unbound.expect(200).json["seats"], Value::Null);
    assert_eq!(unbound.json["activations_limit"], json!(5));
    ledger(&server, "seats", "RELATIVE", json!(10), None).await;
    assert_eq!(key.activations_limit(&server).await, json!(5));

    key.patch(&server, json!({"seats": seats("seats")}))
        .await
        .expect(200);
    assert_eq!(key.activations_limit(&server).await, json!(15));
    let below = key
        .patch(&server, json!({"seats": null, "activations_limit": 1}))
        .await;
    assert_eq!(
        code(&below, 422),
        "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT"
    );
    assert_eq!(
        key.fetch(&server).await["seats"],
        seats("seats"),
        "nothing written"
    );
    let fixed = key
        .patch(&server, json!({"seats": null, "activations_limit": 7}))
        .await;
    assert_eq!(fixed.expect(200).json["seats"], Value::Null);
    assert_eq!(fixed.json["activations_limit"], json!(7));
    let fetched = key.fetch(&server).await;
    assert_eq!(fetched["activations_limit"], json!(7));
    assert_eq!(fetched["instances_count"], json!(2));
}

async fn future_dated_entries_open_and_close_seats_when_they_take_effect(server: TestServer) {
    let opening = async {
        ledger_from_2024(&server, "opening", json!(1)).await;
        let key = Key::bound(&server, "opening").await;
        key.activated(&server, "first").await;
        let from = Utc::now() + TimeDelta::seconds(2);
        ledger(
            &server,
            "opening",
            "RELATIVE",
            json!(1),
            Some(&rfc3339(from)),
        )
        .await;
        assert_eq!(key.activations_limit(&server).await, json!(1));
        let early = key.activate(&server, "second", None).await;
        assert_eq!(code(&early, 422), "LICENSE_KEY_LIMIT_REACHED");
        sleep_until(from + millis(200)).await;
        assert_eq!(key.activations_limit(&server).await, json!(2));
        key.activated(&server, "second").await;
        assert_eq!(key.instances_count(&server).await, 2);
    };
    let closing = async {
        ledger_from_2024(&server, "closing", json!(2)).await;
        let key = Key::bound(&server, "closing").await;
        let older = key.activated(&server, "older").await;
        let newer = key.activated(&server, "newer").await;
        let from = Utc::now() + TimeDelta::seconds(2);
        ledger(
            &server,
            "closing",
            "RELATIVE",
            json!(-1),
            Some(&rfc3339(from)),
        )
        .await;
        assert_eq!(key.activations_limit(&server).await, json!(2));
        assert!(key.valid(&server, &newer).await);
        sleep_until(from + millis(200)).await;
        assert_eq!(key.activations_limit(&server).await, json!(1));
        assert!(key.valid(&server, &older).await);
        assert!(!key.valid(&server, &newer).await);
        assert_eq!(key.instances_count(&server).await, 2);
    };
    tokio::join!(opening, closing);
}

async fn a_decrease_puts_the_newest_instances_over_seat(server: TestServer) {
    ledger_from_2024(&server, "seats", json!(3)).await;
    let product_id = product(&server, json!({"heartbeat_interval": 3600})).await;
    let key = Key::issue_for(&server, &product_id, json!({"seats": seats("seats")})).await;
    let mut instances = Vec::new();
    for name in ["oldest", "middle", "newest"] {
        instances.push(key.activated(&server, name).await);
    }
    let [oldest, middle, newest] = instances.try_into().unwrap();

    ledger(&server, "seats", "RELATIVE", json!(-2), None).await;
    assert_eq!(key.activations_limit(&server).await, json!(1));
    assert!(key.valid(&server, &oldest).await);
    assert!(!key.valid(&server, &middle).await);
    assert!(!key.valid(&server, &newest).await);
    let key_alone = public(&server, "validate", json!({"license_key": key.text})).await;
    assert_eq!(key_alone.expect(200).json, json!({"valid": true}));
    for (instance, valid) in [(&oldest, true), (&middle, false), (&newest, false)] {
        let beat = key.heartbeat(&server, instance).await;
        assert_eq!(beat.expect(200).json["valid"], json!(valid), "{instance}");
    }
    assert_eq!(
        key.instances_count(&server).await,
        3,
        "over seat still counts"
    );
    assert_eq!(key.listed_ids(&server).await.len(), 3);
    let full = key.activate(&server, "another", None).await;
    assert_eq!(code(&full, 422), "LICENSE_KEY_LIMIT_REACHED");
    // A machine file is issued as validation answers: not for an instance over seat.
    for (instance, status) in [(&oldest, 200), (&newest, 422)] {
        let body = json!({"license_key": key.text, "license_key_instance_id": instance});
        let file = public(&server, "license_file", body).await;
        assert_eq!(file.status, status, "{instance}: {}", file.text);
    }
    let unbind = key.patch(&server, json!({"seats": null})).await;
    assert_eq!(
        code(&unbind, 422),
        "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT"
    );
    // The client sent no limit: it is told the figure that would be kept, and what to send.
    let told = unbind.message();
    assert!(
        told.starts_with("unbinding keeps the seats' figure (1)"),
        "{told}"
    );
    assert!(told.contains("send `activations_limit`"), "{told}");

    // The seat left by the oldest goes to the next oldest.
    key.deactivate(&server, &oldest).await.expect(200);
    assert!(key.valid(&server, &middle).await);
    assert!(!key.valid(&server, &newest).await);
    assert_eq!(key.instances_count(&server).await, 2);

    // Seats returning make them valid again, and one more fits.
    ledger(&server, "seats", "RELATIVE", json!(2), None).await;
    assert!(key.valid(&server, &middle).await);
    assert!(key.valid(&server, &newest).await);
    key.activated(&server, "another").await;
    assert_eq!(key.instances_count(&server).await, 3);
}

async fn binding_a_key_beyond_the_quantity_puts_instances_over_seat(server: TestServer) {
    ledger_from_2024(&server, "seats", json!(1)).await;
    let key = Key::issue(
        &server,
        json!({"license_key_activations_limit": 5}),
        json!({}),
    )
    .await;
    let oldest = key.activated(&server, "oldest").await;
    let middle = key.activated(&server, "middle").await;
    let newest = key.activated(&server, "newest").await;

    let bound = key.patch(&server, json!({"seats": seats("seats")})).await;
    assert_eq!(bound.expect(200).json["activations_limit"], json!(1));
    assert_eq!(bound.json["instances_count"], json!(3));
    assert!(key.valid(&server, &oldest).await);
    assert!(!key.valid(&server, &middle).await);
    assert!(!key.valid(&server, &newest).await);
    let full = key.activate(&server, "another", None).await;
    assert_eq!(code(&full, 422), "LICENSE_KEY_LIMIT_REACHED");

    ledger(&server, "seats", "ABSOLUTE", json!(3), None).await;
    for instance in [&oldest, &middle, &newest] {
        assert!(key.valid(&server, instance).await);
    }
    let unbound = key.patch(&server, json!({"seats": null})).await;
    assert_eq!(unbound.expect(200).json["activations_limit"], json!(3));
}

async fn activations_racing_ledger_writes_keep_to_the_seats(server: TestServer) {
    const START: i64 = 8;
    let server = Arc::new(server);
    // Decreases only, then decreases and increases mixed.
    for (trial, increases) in [(0, 0), (1, 0), (2, 3)] {
        let license = format!("race-{trial}");
        ledger_from_2024(&server, &license, json!(START)).await;
        let key = Key::bound(&server, &license).await;
        let decreases = 5;
        let race = common::concurrently(30 + decreases + increases, |i| {
            let (server, key, license) = (server.clone(), key.clone(), license.clone());
            async move {
                let change = match i {
                    i if i < decreases => Some(-1),
                    i if i < decreases + increases => Some(1),
                    _ => None,
                };
                let sent = Instant::now();
                let reply = match change {
                    Some(change) => {
                        let body = json!({"accountId": "acme", "licenseId": license, "updateType": "RELATIVE", "quantity": change});
                        server.post("/license_updates", body).await
                    }
                    None => key.activate(&server, &format!("m{i}"), None).await,
                };
                let timed = Timed {
                    change,
                    sent,
                    answered: Instant::now(),
                    status: reply.status.as_u16(),
                };
                (timed, reply.text)
            }
        })
        .await;
        for (timed, text) in &race {
            let expected: &[u16] = if timed.change.is_some() {
                &[200]
            } else {
                &[201, 422]
            };
            assert!(expected.contains(&timed.status), "{timed:?}: {text}");
        }
        let race: Vec<Timed> = race.into_iter().map(|(timed, _)| timed).collect();
        common::assert_each_activation_fitted(START, &race);
        let succeeded = race.iter().filter(|t| t.status == 201).count() as i64;
        let end = START - decreases as i64 + increases as i64;
        assert!(succeeded <= START + increases as i64, "{succeeded}");
        // A refusal saw every seat taken, and there were never fewer than this.
        let fewest = START - decreases as i64;
        assert!(
            succeeded >= fewest,
            "refused while seats were free: {succeeded}"
        );
        assert_eq!(key.activations_limit(&server).await, json!(end));

        // Settled: exactly the seats left are taken now.
        let more = common::concurrently(6, |i| {
            let (server, key) = (server.clone(), key.clone());
            async move { key.activate(&server, &format!("late{i}"), None).await }
        })
        .await;
        let statuses: Vec<u16> = more.iter().map(|r| r.status.as_u16()).collect();
        let free = (end - succeeded).max(0) as usize;
        common::assert_admitted_up_to_the_limit(&statuses, free);
        let total = succeeded as usize + free;
        let listed = key.listed_ids(&server).await;
        assert_eq!(listed.len(), total);
        assert_eq!(key.instances_count(&server).await as usize, total);
        let mut valid = 0;
        for instance in &listed {
            valid += usize::from(key.valid(&server, instance).await);
        }
        assert_eq!(valid, total.min(end as usize), "valid instances");
    }
}

/// An activation held up between its seat check and its commit (by a lock the test
/// takes on the business row, which its new instance refers to) keeps its pair's ledger
/// writes waiting: a decrease that committed meanwhile would leave the activation
/// committing into a state with more instances than seats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_decrease_cannot_commit_inside_an_activation_on_postgres() {
    let Some(server) = TestServer::start(common::Backend::Postgres).await else {
        return;
    };
    ledger_from_2024(&server, "seats", json!(2)).await;
    let key = Key::bound(&server, "seats").await;
    key.activated(&server, "first").await;

    let holder = server.database.connect().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM businesses WHERE id = \
             (SELECT business_id FROM license_keys WHERE id = '{}') FOR UPDATE",
            key.id
        ))
        .await
        .unwrap();
    let send = |path: &'static str, body: Value, auth: bool| {
        let (client, url, api_key) = (
            server.client.clone(),
            server.url.clone(),
            server.key.clone(),
        );
        tokio::spawn(async move {
            let mut request = client.post(format!("{url}{path}")).json(&body);
            if auth {
                request = request.bearer_auth(api_key);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let activation = send(
        "/licenses/activate",
        json!({"license_key": key.text, "name": "second"}),
        false,
    );
    common::until_a_session_waits_for_a_lock(&holder).await;
    let mut decrease = send(
        "/license_updates",
        json!({"accountId": "acme", "licenseId": "seats", "updateType": "RELATIVE", "quantity": -1}),
        true,
    );
    let during = tokio::time::timeout(std::time::Duration::from_millis(1500), &mut decrease).await;
    let decreased_during_the_hold = during.is_ok();
    holder.batch_execute("COMMIT").await.unwrap();
    let (status, text) = activation.await.unwrap();
    let (decrease_status, decrease_text) = match during {
        Ok(done) => done.unwrap(),
        Err(_) => decrease.await.unwrap(),
    };
    assert_eq!(decrease_status, 200, "{decrease_text}");
    assert!([201, 422].contains(&status), "{text}");
    assert!(
        !(decreased_during_the_hold && status == 201),
        "the activation committed after the decrease left one seat for its one instance: {text}"
    );
    let listed = key.listed(&server).await.len() as u64;
    assert_eq!(key.instances_count(&server).await, listed);
}
