//! Behaviour of the license-updates ledger over HTTP, on every backend.

mod common;

use std::collections::HashSet;

use common::{Reply, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    absolute_and_relative_updates_resolve_to_absolute_quantities,
    a_backdated_entry_re_resolves_later_relative_entries,
    a_write_that_would_go_negative_is_refused_and_nothing_is_written,
    quantities_are_exact_decimals,
    idempotent_repeats_return_the_original_response,
    concurrent_idempotent_repeats_write_once,
    concurrent_relative_updates_on_one_pair_all_count,
    listing_filters_in_both_spellings,
    listing_pages_with_a_signed_next_token,
    listing_sorts,
    page_size_outside_its_range_is_422,
    patch_replaces_metadata_including_the_official_clients_literal_path,
    license_quantity_answers_at_any_instant,
    license_usage_reports_each_days_maximum,
    bad_input_is_400_naming_the_field_and_writes_nothing,
    body_limits_and_content_types,
    authentication_and_read_only_keys,
    businesses_are_isolated,
    operations_endpoints,
);

/// A license update of acme's seats (another pair's with [`Update::of`]): `kind` ABSOLUTE
/// or RELATIVE, of `quantity`, effective `at`.
fn update(kind: &str, quantity: impl Into<Value>, at: &str) -> Update {
    Update(json!({
        "accountId": "acme",
        "licenseId": "seats",
        "updateType": kind,
        "quantity": quantity.into(),
        "effectiveFrom": at,
    }))
}

/// The JSON body of a license update.
#[derive(Clone)]
struct Update(Value);

impl Update {
    fn json(self) -> Value {
        self.0
    }

    /// For `account`'s `license` instead.
    fn of(self, account: &str, license: &str) -> Self {
        self.with("accountId", account).with("licenseId", license)
    }

    /// With `field` (`metadata`, `idempotencyKey`, …) set to `value`.
    fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.0[field] = value.into();
        self
    }

    /// Posts it with the server's admin key and asserts the reply's status.
    async fn post(self, server: &TestServer, status: u16) -> Reply {
        self.post_as(server, &server.key, status).await
    }

    /// Posts it with `key` (none if empty) and asserts the reply's status.
    async fn post_as(self, server: &TestServer, key: &str, status: u16) -> Reply {
        let body = self.0;
        let reply = (server.call(Method::POST, "/license_updates", key, Some(body.clone()))).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "posted {body}; answered {}",
            reply.text
        );
        reply
    }
}

async fn quantity_at(server: &TestServer, account: &str, license: &str, at: &str) -> Value {
    let reply = server
        .get(&format!(
            "/license_quantity?accountId={account}&licenseId={license}&at={at}"
        ))
        .await;
    reply.expect(200);
    reply.json["quantity"].clone()
}

async fn all_entries(server: &TestServer, query: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/license_updates?pageSize=50&{query}"))
        .await;
    reply.expect(200);
    assert!(reply.json.get("nextToken").is_none(), "more than one page");
    reply.json["data"].as_array().unwrap().clone()
}

async fn absolute_and_relative_updates_resolve_to_absolute_quantities(server: TestServer) {
    let first = update("ABSOLUTE", 10, "2024-01-01T00:00:00Z")
        .post(&server, 200)
        .await;
    assert_eq!(first.json["quantity"], json!(10));
    assert_eq!(first.json["effectiveFrom"], "2024-01-01T00:00:00Z");
    assert!(first.json["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(
        first.json.get("metadata").is_none(),
        "absent metadata must be omitted: {}",
        first.text
    );
    let keys: HashSet<_> = first.json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "licenseId",
            "accountId",
            "quantity",
            "effectiveFrom",
            "createdAt"
        ]
        .map(String::from)
        .into()
    );

    let second = update("RELATIVE", -3, "2024-02-01T00:00:00Z")
        .post(&server, 200)
        .await;
    assert_eq!(second.json["quantity"], json!(7));
    let third = update("ABSOLUTE", 4, "2024-03-01T00:00:00Z")
        .post(&server, 200)
        .await;
    assert_eq!(third.json["quantity"], json!(4));

    assert_eq!(
        quantity_at(&server, "acme", "seats", "2023-12-31T23:59:59Z").await,
        json!(0)
    );
    assert_eq!(
        quantity_at(&server, "acme", "seats", "2024-01-01T00:00:00Z").await,
        json!(10)
    );
    assert_eq!(
        quantity_at(&server, "acme", "seats", "2024-02-15T00:00:00Z").await,
        json!(7)
    );
    assert_eq!(
        quantity_at(&server, "acme", "seats", "2030-01-01T00:00:00Z").await,
        json!(4)
    );
    // Another license of the same account is independent.
    assert_eq!(
        quantity_at(&server, "acme", "addons", "2030-01-01T00:00:00Z").await,
        json!(0)
    );
}

async fn a_backdated_entry_re_resolves_later_relative_entries(server: TestServer) {
    for (kind, quantity, at) in [
        ("ABSOLUTE", 10, "2024-01-01T00:00:00Z"),
        ("RELATIVE", 2, "2024-03-01T00:00:00Z"),
        ("ABSOLUTE", 1, "2024-04-01T00:00:00Z"),
        ("RELATIVE", 1, "2024-05-01T00:00:00Z"),
    ] {
        update(kind, quantity, at).post(&server, 200).await;
    }
    // A future-dated entry is accepted like any other.
    update("RELATIVE", 5, "2099-01-01T00:00:00Z")
        .post(&server, 200)
        .await;
    let backdated = update("RELATIVE", 5, "2024-02-01T00:00:00Z")
        .post(&server, 200)
        .await;
    assert_eq!(backdated.json["quantity"], json!(15));

    let entries = all_entries(&server, "_sort=effective_from:asc").await;
    let quantities: Vec<_> = entries.iter().map(|e| e["quantity"].clone()).collect();
    assert_eq!(
        quantities,
        [
            json!(10),
            json!(15),
            json!(17),
            json!(1),
            json!(2),
            json!(7)
        ]
    );
}

async fn a_write_that_would_go_negative_is_refused_and_nothing_is_written(server: TestServer) {
    update("ABSOLUTE", 5, "2024-01-01T00:00:00Z")
        .post(&server, 200)
        .await;
    update("RELATIVE", -4, "2024-03-01T00:00:00Z")
        .post(&server, 200)
        .await;

    // Its own quantity would be negative.
    let own = update("RELATIVE", -6, "2024-02-01T00:00:00Z")
        .post(&server, 400)
        .await;
    assert!(
        own.message().contains("negative at 2024-02-01T00:00:00Z"),
        "{}",
        own.text
    );
    assert_eq!(
        own.json.as_object().unwrap().len(),
        1,
        "ledger errors carry only a message"
    );

    // A later entry's quantity would be negative.
    let later = update("ABSOLUTE", 3, "2024-02-01T00:00:00Z")
        .post(&server, 400)
        .await;
    assert!(
        later.message().contains("2024-03-01T00:00:00Z"),
        "{}",
        later.text
    );

    assert_eq!(all_entries(&server, "").await.len(), 2);
    assert_eq!(
        quantity_at(&server, "acme", "seats", "2024-03-02T00:00:00Z").await,
        json!(1)
    );
}

async fn quantities_are_exact_decimals(server: TestServer) {
    update("RELATIVE", 0.1, "2024-01-01T00:00:00Z")
        .post(&server, 200)
        .await;
    let sum = update("RELATIVE", 0.2, "2024-01-02T00:00:00Z")
        .post(&server, 200)
        .await;
    assert!(sum.text.contains("\"quantity\":0.3,"), "{}", sum.text);

    // Sent as raw text to avoid any float on the client side. However many digits it
    // is written with, a quantity is read by its value.
    let ten_with_zeros = format!("10.{}", "0".repeat(40));
    for (license, sent, answered) in [
        ("exact", "123456789012.345678", "123456789012.345678"),
        ("zeros", ten_with_zeros.as_str(), "10"),
    ] {
        let raw = server
            .client
            .post(format!("{}/license_updates", server.url))
            .bearer_auth(&server.key)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"accountId":"acme","licenseId":"{license}","updateType":"ABSOLUTE","quantity":{sent},"effectiveFrom":"2024-01-01T00:00:00Z"}}"#
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(raw.contains(&format!("\"quantity\":{answered},")), "{raw}");
    }
    let whole = update("ABSOLUTE", 7.0, "2024-01-01T00:00:00Z")
        .of("acme", "whole")
        .post(&server, 200)
        .await;
    assert!(
        whole.text.contains("\"quantity\":7,"),
        "integers print without a fraction: {}",
        whole.text
    );
}

async fn idempotent_repeats_return_the_original_response(server: TestServer) {
    let body = update("RELATIVE", 3, "2024-01-01T00:00:00Z").with("idempotencyKey", "order-17");
    let first = body.clone().post(&server, 200).await;
    // A later backdated entry changes the entry's quantity, not the replayed response.
    update("ABSOLUTE", 100, "2023-01-01T00:00:00Z")
        .post(&server, 200)
        .await;
    let repeat = body.clone().post(&server, 200).await;
    assert_eq!(repeat.json, first.json);
    assert_eq!(all_entries(&server, "").await.len(), 2);

    // An omitted effectiveFrom is part of the request: a retry that omits it is a repeat.
    let mut undated = json!({"accountId": "acme", "licenseId": "addons", "updateType": "ABSOLUTE", "quantity": 1, "idempotencyKey": "undated"});
    let a = Update(undated.clone()).post(&server, 200).await;
    let b = Update(undated.clone()).post(&server, 200).await;
    assert_eq!(a.json, b.json);

    undated["quantity"] = json!(2);
    let conflict = Update(undated).post(&server, 409).await;
    assert_eq!(conflict.header("x-should-retry"), Some("false"));
    assert!(conflict.message().contains("idempotencyKey"));
    assert_eq!(all_entries(&server, "").await.len(), 3);

    // Keys are per business.
    let other = server.new_key("beta", false).await;
    let elsewhere = body.post_as(&server, &other, 200).await;
    assert_ne!(elsewhere.json["createdAt"], first.json["createdAt"]);
}

async fn concurrent_idempotent_repeats_write_once(server: TestServer) {
    let body = update("RELATIVE", 1, "2024-01-01T00:00:00Z").with("idempotencyKey", "burst");
    let server = std::sync::Arc::new(server);
    let replies = common::concurrently(32, |_| {
        let server = server.clone();
        let body = body.clone();
        async move { body.post(&server, 200).await }
    })
    .await;
    for reply in &replies {
        assert_eq!(reply.json, replies[0].json);
    }
    assert_eq!(all_entries(&server, "").await.len(), 1);
}

async fn concurrent_relative_updates_on_one_pair_all_count(server: TestServer) {
    let server = std::sync::Arc::new(server);
    common::concurrently(40, |i| {
        let server = server.clone();
        async move {
            // Spread over a few instants, including ties, arriving in any order.
            let at = format!("2024-01-0{}T00:00:00Z", 1 + i % 3);
            update("RELATIVE", 1, &at).post(&server, 200).await
        }
    })
    .await;
    assert_eq!(
        quantity_at(&server, "acme", "seats", "2024-02-01T00:00:00Z").await,
        json!(40)
    );
    let mut quantities: Vec<i64> = all_entries(&server, "_sort=effective_from:asc")
        .await
        .iter()
        .map(|e| e["quantity"].as_i64().unwrap())
        .collect();
    let listed = quantities.clone();
    quantities.sort();
    assert_eq!(listed, quantities, "quantities grow along the ledger");
    assert_eq!(quantities, (1..=40).collect::<Vec<_>>());
}

async fn listing_filters_in_both_spellings(server: TestServer) {
    for (account, license, at) in [
        ("a1", "seats", "2024-01-01T00:00:00Z"),
        ("a1", "addons", "2024-01-01T00:00:00Z"),
        ("a2", "seats", "2024-01-02T00:00:00Z"),
    ] {
        update("ABSOLUTE", 1, at)
            .of(account, license)
            .post(&server, 200)
            .await;
    }
    assert_eq!(all_entries(&server, "").await.len(), 3);
    assert_eq!(all_entries(&server, "account_id=a1").await.len(), 2);
    assert_eq!(all_entries(&server, "accountId=a1").await.len(), 2);
    assert_eq!(all_entries(&server, "licenseId=seats").await.len(), 2);
    assert_eq!(all_entries(&server, "license_id=seats").await.len(), 2);
    assert_eq!(
        all_entries(&server, "account_id=a1&licenseId=seats")
            .await
            .len(),
        1
    );
    assert_eq!(
        all_entries(&server, "effectiveFrom=2024-01-01T00:00:00.000000%2B0000")
            .await
            .len(),
        2
    );
    assert_eq!(
        all_entries(&server, "effectiveFrom=2024-01-02T00:00:00&licenseId=seats")
            .await
            .len(),
        1
    );
    server
        .get("/license_updates?account_id=a1&accountId=a2")
        .await
        .expect(400);
    let bad = server.get("/license_updates?effectiveFrom=tomorrow").await;
    assert!(bad.expect(400).message().contains("effectiveFrom"));
    let long = server
        .get(&format!("/license_updates?account_id={}", "x".repeat(51)))
        .await;
    assert!(long.expect(400).message().contains("account_id"));
}

async fn listing_pages_with_a_signed_next_token(server: TestServer) {
    for i in 0..7 {
        update("RELATIVE", 1, &format!("2024-01-0{}T00:00:00Z", 1 + i % 2))
            .post(&server, 200)
            .await;
    }
    update("ABSOLUTE", 1, "2024-01-01T00:00:00Z")
        .of("other", "seats")
        .post(&server, 200)
        .await;

    let first = "/license_updates?account_id=acme&pageSize=3&_sort=effective_from";
    let pages = common::ledger_pages(first.to_owned(), "pageSize=3&", async |path| {
        server.get(&path).await.expect(200).json.clone()
    })
    .await;
    let mut seen = Vec::new();
    for entry in pages
        .iter()
        .flat_map(|page| page["data"].as_array().unwrap())
    {
        assert_eq!(entry["accountId"], "acme", "the token carries the filter");
        seen.push(entry["quantity"].as_i64().unwrap());
    }
    assert_eq!(pages.len(), 3);
    // effective_from descending: the four on Jan 1 first? No: descending puts Jan 2 first.
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=7).collect::<Vec<_>>(),
        "every entry exactly once"
    );
    sorted.reverse();
    assert_eq!(
        seen, sorted,
        "descending by effective_from, ties by arrival"
    );

    // A full page at the end: no token on the last page.
    let exact = server
        .get("/license_updates?account_id=other&pageSize=1")
        .await;
    assert!(exact.expect(200).json.get("nextToken").is_none());

    let first = server.get("/license_updates?pageSize=2").await;
    let token = first.json["nextToken"].as_str().unwrap().to_owned();
    // The next page keeps the size the first asked for, unless it asks for another.
    for (asked, expected) in [("", 2), ("&pageSize=5", 5)] {
        let next = (server.get(&format!("/license_updates?nextToken={token}{asked}"))).await;
        assert_eq!(
            next.expect(200).json["data"].as_array().unwrap().len(),
            expected
        );
    }
    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let reply = server
        .get(&format!(
            "/license_updates?nextToken={}",
            String::from_utf8(tampered).unwrap()
        ))
        .await;
    assert!(reply.expect(400).message().contains("nextToken"));
    server
        .get("/license_updates?nextToken=%%%")
        .await
        .expect(400);
    server.get("/license_updates?nextToken=").await.expect(400);
    let mismatch = server
        .get(&format!(
            "/license_updates?nextToken={token}&account_id=other"
        ))
        .await;
    assert!(mismatch.expect(400).message().contains("nextToken"));
    // Repeating the same filter with the token is fine.
    server
        .get(&format!(
            "/license_updates?nextToken={token}&_sort=created_at:desc"
        ))
        .await
        .expect(200);
    // Another business cannot use the token to see this one's entries.
    let other = server.new_key("beta", false).await;
    let foreign = server
        .call(
            Method::GET,
            &format!("/license_updates?nextToken={token}"),
            &other,
            None,
        )
        .await;
    assert_eq!(foreign.expect(200).json["data"], json!([]));
}

async fn listing_sorts(server: TestServer) {
    for at in [
        "2024-03-01T00:00:00Z",
        "2024-01-01T00:00:00Z",
        "2024-02-01T00:00:00Z",
    ] {
        update("ABSOLUTE", 1, at).post(&server, 200).await;
    }
    let order = |entries: Vec<Value>, field: &str| -> Vec<String> {
        entries
            .iter()
            .map(|e| e[field].as_str().unwrap().to_owned())
            .collect()
    };
    let default = order(all_entries(&server, "").await, "effectiveFrom");
    assert_eq!(
        default,
        [
            "2024-02-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-03-01T00:00:00Z"
        ],
        "newest arrival first"
    );
    let created_asc = order(
        all_entries(&server, "_sort=created_at:asc").await,
        "effectiveFrom",
    );
    assert_eq!(
        created_asc,
        [
            "2024-03-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-02-01T00:00:00Z"
        ]
    );
    let effective = order(
        all_entries(&server, "_sort=effective_from:asc").await,
        "effectiveFrom",
    );
    assert_eq!(
        effective,
        [
            "2024-01-01T00:00:00Z",
            "2024-02-01T00:00:00Z",
            "2024-03-01T00:00:00Z"
        ]
    );
    let effective_desc = order(
        all_entries(&server, "_sort=effective_from:desc").await,
        "effectiveFrom",
    );
    assert_eq!(
        effective_desc,
        [
            "2024-03-01T00:00:00Z",
            "2024-02-01T00:00:00Z",
            "2024-01-01T00:00:00Z"
        ]
    );
    let bad = server.get("/license_updates?_sort=quantity").await;
    assert!(bad.expect(400).message().contains("_sort"));
    server
        .get("/license_updates?_sort=created_at:sideways")
        .await
        .expect(400);
}

async fn page_size_outside_its_range_is_422(server: TestServer) {
    for size in ["0", "51", "-1", "99999999999999999999"] {
        let reply = server
            .get(&format!("/license_updates?pageSize={size}"))
            .await;
        assert!(reply.expect(422).message().contains("pageSize"));
    }
    let reply = server.get("/license_updates?pageSize=ten").await;
    assert!(reply.expect(400).message().contains("pageSize"));
    server.get("/license_updates?pageSize=1").await.expect(200);
    server.get("/license_updates?pageSize=50").await.expect(200);
}

async fn patch_replaces_metadata_including_the_official_clients_literal_path(server: TestServer) {
    update("ABSOLUTE", 3, "2024-01-01T00:00:00Z")
        .with("metadata", json!({"source": "import"}))
        .post(&server, 200)
        .await;
    update("RELATIVE", 1, "2024-01-01T00:00:00Z")
        .post(&server, 200)
        .await;

    let details = json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00.000000+0000", "metadata": {"note": "latest"}});
    let patched = server
        .patch("/license_updates/seats", details.clone())
        .await;
    patched.expect(200);
    assert_eq!(patched.json["metadata"], json!({"note": "latest"}));
    assert_eq!(
        patched.json["quantity"],
        json!(4),
        "the latest entry at that instant"
    );

    let literal = server
        .patch("/license_updates/%7Blicense_id%7D?licenseId=seats", json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00+00:00", "metadata": {"note": "again"}}))
        .await;
    assert_eq!(
        literal.expect(200).json["metadata"],
        json!({"note": "again"})
    );
    let entries = all_entries(&server, "_sort=created_at:asc").await;
    assert_eq!(
        entries[0]["metadata"],
        json!({"source": "import"}),
        "the earlier entry is untouched"
    );
    assert_eq!(entries[1]["metadata"], json!({"note": "again"}));

    // A licenseId in the query is checked even when the path names the license.
    let long = format!("/license_updates/seats?licenseId={}", "x".repeat(51));
    assert!(
        server
            .patch(&long, details.clone())
            .await
            .expect(400)
            .message()
            .contains("licenseId")
    );
    let differs = server
        .patch("/license_updates/seats?licenseId=other", details.clone())
        .await;
    assert!(differs.expect(400).message().contains("licenseId"));
    server
        .patch("/license_updates/seats?licenseId=seats", details.clone())
        .await
        .expect(200);
    let missing = server
        .patch("/license_updates/%7Blicense_id%7D", details.clone())
        .await;
    assert!(missing.expect(400).message().contains("licenseId"));
    let none = server
        .patch(
            "/license_updates/seats",
            json!({"accountId": "acme", "effectiveFrom": "2024-01-02T00:00:00Z", "metadata": {}}),
        )
        .await;
    none.expect(404);
    assert_eq!(none.json.as_object().unwrap().len(), 1);
    server
        .patch("/license_updates/nope", details.clone())
        .await
        .expect(404);
    let incomplete = server
        .patch(
            "/license_updates/seats",
            json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00Z"}),
        )
        .await;
    assert!(incomplete.expect(400).message().contains("metadata"));
    let not_strings = server.patch("/license_updates/seats", json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00Z", "metadata": {"n": 1}})).await;
    assert!(not_strings.expect(400).message().contains("metadata"));
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let too_many = server
        .patch(
            "/license_updates/seats",
            json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00Z", "metadata": many}),
        )
        .await;
    assert_eq!(
        too_many.expect(400).message(),
        "invalid `metadata`: has 51 keys; at most 50 are allowed"
    );
}

async fn license_quantity_answers_at_any_instant(server: TestServer) {
    let empty = server
        .get("/license_quantity?accountId=acme&licenseId=seats")
        .await;
    empty.expect(200);
    assert_eq!(empty.json["quantity"], json!(0));
    assert_eq!(empty.json["effectiveFrom"], Value::Null);
    update("ABSOLUTE", 2.5, "2024-01-01T12:00:00.5Z")
        .post(&server, 200)
        .await;
    let reply = server
        .get("/license_quantity?account_id=acme&license_id=seats&at=2024-06-01T00:00:00Z")
        .await;
    reply.expect(200);
    assert_eq!(
        reply.json,
        json!({"accountId": "acme", "licenseId": "seats", "at": "2024-06-01T00:00:00Z", "quantity": 2.5, "effectiveFrom": "2024-01-01T12:00:00.500000Z"})
    );
    let missing = server.get("/license_quantity?licenseId=seats").await;
    assert!(missing.expect(400).message().contains("accountId"));
    server
        .get("/license_quantity?accountId=a&licenseId=b&at=soon")
        .await
        .expect(400);
}

async fn license_usage_reports_each_days_maximum(server: TestServer) {
    for (kind, quantity, at) in [
        ("ABSOLUTE", 2, "2024-02-20T00:00:00Z"),
        ("RELATIVE", 3, "2024-03-01T12:00:00Z"),
        ("RELATIVE", -3, "2024-03-01T18:00:00Z"),
        ("ABSOLUTE", 9, "2024-03-02T00:00:00Z"),
        ("ABSOLUTE", 4, "2024-03-02T00:00:00Z"),
    ] {
        update(kind, quantity, at).post(&server, 200).await;
    }
    let reply = server
        .get("/license_usage?accountId=acme&licenseId=seats&start=2024-03-01T00:00:00Z&end=2024-03-04T00:00:00Z")
        .await;
    reply.expect(200);
    assert_eq!(
        reply.json["days"],
        json!([
            {"date": "2024-03-01", "maxQuantity": 5, "endQuantity": 2},
            {"date": "2024-03-02", "maxQuantity": 4, "endQuantity": 4},
            {"date": "2024-03-03", "maxQuantity": 4, "endQuantity": 4},
        ])
    );
    assert_eq!(reply.json["maxQuantityDays"], json!(13));
    // 2×18h + 5×6h + 4×48h
    assert_eq!(
        reply.json["quantitySeconds"],
        json!(2 * 64800 + 5 * 21600 + 4 * 172800)
    );

    let noon = server.get("/license_usage?accountId=acme&licenseId=seats&start=2024-03-01T12:00:00Z&end=2024-03-04T00:00:00Z").await;
    assert!(noon.expect(400).message().contains("start"));
    let reversed = server.get("/license_usage?accountId=acme&licenseId=seats&start=2024-03-04T00:00:00Z&end=2024-03-01T00:00:00Z").await;
    reversed.expect(400);
    let too_long = server.get("/license_usage?accountId=acme&licenseId=seats&start=2000-01-01T00:00:00Z&end=2011-01-01T00:00:00Z").await;
    too_long.expect(422);
    server
        .get("/license_usage?accountId=acme&licenseId=seats&start=2024-03-01T00:00:00Z")
        .await
        .expect(400);
}

async fn bad_input_is_400_naming_the_field_and_writes_nothing(server: TestServer) {
    let valid = update("ABSOLUTE", 1, "2024-01-01T00:00:00Z");
    let with = |field: &str, value: Value| valid.clone().with(field, value);
    let cases = [
        (with("quantity", json!("5")), "quantity"),
        (with("quantity", json!(0.1234567)), "quantity"),
        (with("quantity", json!(1e18)), "quantity"),
        (with("updateType", json!("SOMETIMES")), "updateType"),
        (with("updateType", json!("X".repeat(600))), "updateType"),
        (with("accountId", json!("x".repeat(51))), "accountId"),
        (with("licenseId", json!("")), "licenseId"),
        (with("accountId", json!("   ")), "accountId"),
        (with("effectiveFrom", json!("not a date")), "effectiveFrom"),
        (with("metadata", json!({"k": 1})), "metadata"),
        (with("metadata", json!({"": "v"})), "metadata"),
        (with("metadata", json!({"k": "x".repeat(501)})), "metadata"),
        (with("idempotencyKey", json!(12)), "idempotencyKey"),
        (with("surprise", json!(true)), "surprise"),
        (
            Update(json!({"accountId": "acme", "licenseId": "seats", "quantity": 1})),
            "updateType",
        ),
    ];
    for (body, field) in cases {
        let reply = body.post(&server, 400).await;
        assert!(
            reply.message().contains(field),
            "message should name {field}: {}",
            reply.text
        );
        // Togai's error schema allows messages of up to 500 characters.
        assert!(reply.message().chars().count() <= 500, "{}", reply.text);
    }
    let raw = |text: &'static str| {
        server
            .client
            .post(format!("{}/license_updates", server.url))
            .bearer_auth(&server.key)
            .header("content-type", "application/json")
            .body(text)
    };
    for text in [
        "{",
        "[]",
        "null",
        r#"{"accountId": "acme""#,
        r#"{"quantity": 1e400, "accountId": "a", "licenseId": "b", "updateType": "ABSOLUTE"}"#,
        r#"{"quantity": NaN}"#,
    ] {
        let reply = common::Reply::from(raw(text).send().await.unwrap()).await;
        reply.expect(400);
        reply.message();
    }
    // A key twice in `metadata` is refused, as a field twice in the body is, rather than
    // keeping one of the two values.
    let twice = r#"{"accountId": "a", "licenseId": "b", "updateType": "ABSOLUTE", "quantity": 1,
                    "metadata": {"tier": "pro", "tier": "free"}}"#;
    let reply = common::Reply::from(raw(twice).send().await.unwrap()).await;
    reply.expect(400);
    assert!(
        reply.message().contains("metadata") && reply.message().contains("`tier` twice"),
        "{}",
        reply.text
    );
    let too_precise = with("quantity", serde_json::from_str("1e-30").unwrap());
    let reply = too_precise.post(&server, 400).await;
    assert!(
        reply.message().contains("digits after the decimal point"),
        "{}",
        reply.text
    );

    // A path that does not percent-decode to UTF-8 is named as the problem.
    let reply = server
        .call(
            Method::PATCH,
            "/license_updates/%C3",
            &server.key.clone(),
            Some(json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00Z", "metadata": {}})),
        )
        .await;
    reply.expect(400);
    assert!(reply.message().contains("UTF-8"), "{}", reply.text);
    assert_eq!(
        all_entries(&server, "").await.len(),
        0,
        "nothing was written"
    );
}

async fn body_limits_and_content_types(server: TestServer) {
    let reply = update("ABSOLUTE", 1, "2024-01-01T00:00:00Z")
        .with("metadata", json!({"big": "x".repeat(70 * 1024)}))
        .post(&server, 413)
        .await;
    assert!(reply.message().contains("bytes"));
    // The rest of the body was not read, so the server closes the connection and says so.
    assert_eq!(reply.headers["connection"], "close");

    // A valid update sent with these headers.
    let send = |headers: &[(&'static str, &'static str)]| {
        let mut request = (server.client)
            .post(format!("{}/license_updates", server.url))
            .bearer_auth(&server.key)
            .body(
                update("ABSOLUTE", 1, "2024-01-01T00:00:00Z")
                    .json()
                    .to_string(),
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { common::Reply::from(request.send().await.unwrap()).await }
    };
    let reply = send(&[("content-type", "text/plain")]).await;
    reply.expect(415);
    assert!(reply.message().contains("application/json"));
    assert_eq!(all_entries(&server, "").await.len(), 0);

    // A compressed body is refused by its encoding, not read as malformed JSON; `identity`
    // is no encoding at all.
    let json = ("content-type", "application/json");
    let reply = send(&[json, ("content-encoding", "gzip")]).await;
    reply.expect(415);
    assert!(
        reply.message().contains("Content-Encoding: gzip"),
        "{}",
        reply.text
    );
    assert_eq!(all_entries(&server, "").await.len(), 0);
    // Behind `identity`, in the same header or a second one.
    for encodings in [
        &[json, ("content-encoding", "identity, br")][..],
        &[
            json,
            ("content-encoding", "identity"),
            ("content-encoding", "br"),
        ],
    ] {
        let reply = send(encodings).await;
        reply.expect(415);
        assert!(
            reply.message().contains("Content-Encoding: br"),
            "{}",
            reply.text
        );
    }
    send(&[json, ("content-encoding", "identity")])
        .await
        .expect(200);
}

async fn authentication_and_read_only_keys(server: TestServer) {
    let body = update("ABSOLUTE", 1, "2024-01-01T00:00:00Z");
    let none = server.call(Method::GET, "/license_updates", "", None).await;
    none.expect(401);
    assert!(none.message().contains("API key"));
    server
        .call(Method::GET, "/license_updates", "lsk_not-a-key", None)
        .await
        .expect(401);
    // The scheme's name is case-insensitive; the key is not.
    for (header, expected) in [
        (format!("BEARER {}", server.key), 200),
        (format!("bearer {}", server.key), 200),
        (format!("Bearer {}", server.key.to_uppercase()), 401),
        (format!("Basic {}", server.key), 401),
        (server.key.clone(), 401),
    ] {
        let status = (server.client)
            .get(format!("{}/license_updates", server.url))
            .header("Authorization", &header)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected, "{header}");
    }
    // Two keys: which one calls is not guessed.
    let twice = (server.client)
        .get(format!("{}/license_updates", server.url))
        .header("Authorization", format!("Bearer {}", server.key))
        .header("Authorization", "Bearer lsk_not-a-key")
        .send()
        .await
        .unwrap();
    let twice = Reply::from(twice).await;
    twice.expect(400);
    assert!(
        twice.message().contains("`Authorization`"),
        "{}",
        twice.text
    );
    body.clone().post_as(&server, "", 401).await;

    // A bad request with a bad key is refused for its key, whatever the route checks first.
    let quantity = "/license_quantity?accountId=acme&licenseId=seats";
    for (path, expected) in [(quantity, 401), ("/license_quantity?accountId=acme", 401)] {
        server
            .call(Method::GET, path, "lsk_not-a-key", None)
            .await
            .expect(expected);
    }
    server
        .get("/license_quantity?accountId=acme")
        .await
        .expect(400);
    let no_quantity =
        Update(json!({"accountId": "acme", "licenseId": "seats", "updateType": "ABSOLUTE"}));
    no_quantity
        .clone()
        .post_as(&server, "lsk_not-a-key", 401)
        .await;

    let reader = server.new_key("alpha", true).await;
    body.clone().post_as(&server, &reader, 403).await;
    no_quantity.post_as(&server, &reader, 403).await;
    let idempotent = body.clone().with("idempotencyKey", "read-only");
    idempotent.post_as(&server, &reader, 403).await;
    let details =
        json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00Z", "metadata": {}});
    server
        .call(
            Method::PATCH,
            "/license_updates/seats",
            &reader,
            Some(details),
        )
        .await
        .expect(403);
    body.post(&server, 200).await;
    let listed = server
        .call(Method::GET, "/license_updates", &reader, None)
        .await;
    assert_eq!(listed.expect(200).json["data"].as_array().unwrap().len(), 1);
    server
        .call(
            Method::GET,
            "/license_quantity?accountId=acme&licenseId=seats",
            &reader,
            None,
        )
        .await
        .expect(200);
}

async fn businesses_are_isolated(server: TestServer) {
    update("ABSOLUTE", 5, "2024-01-01T00:00:00Z")
        .with("idempotencyKey", "k1")
        .post(&server, 200)
        .await;
    let other = server.new_key("beta", false).await;
    let list = server
        .call(
            Method::GET,
            "/license_updates?account_id=acme",
            &other,
            None,
        )
        .await;
    assert_eq!(list.expect(200).json["data"], json!([]));
    let quantity = server
        .call(
            Method::GET,
            "/license_quantity?accountId=acme&licenseId=seats",
            &other,
            None,
        )
        .await;
    assert_eq!(quantity.expect(200).json["quantity"], json!(0));
    let details = json!({"accountId": "acme", "effectiveFrom": "2024-01-01T00:00:00Z", "metadata": {"x": "y"}});
    server
        .call(
            Method::PATCH,
            "/license_updates/seats",
            &other,
            Some(details),
        )
        .await
        .expect(404);
    // The other business's RELATIVE update starts from its own zero.
    let relative = update("RELATIVE", 1, "2024-02-01T00:00:00Z")
        .post_as(&server, &other, 200)
        .await;
    assert_eq!(relative.json["quantity"], json!(1));
    assert_eq!(
        quantity_at(&server, "acme", "seats", "2024-03-01T00:00:00Z").await,
        json!(5)
    );
}

async fn operations_endpoints(server: TestServer) {
    let health = server.call(Method::GET, "/healthz", "", None).await;
    health.expect(200);
    server
        .call(Method::GET, "/readyz", "", None)
        .await
        .expect(200);
    let with_id = common::Reply::from(
        server
            .client
            .get(format!("{}/healthz", server.url))
            .header("x-request-id", "req-123")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(with_id.header("x-request-id"), Some("req-123"));
    assert!(
        health
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );

    server.get("/license_updates").await.expect(200);
    // A method outside HTTP's own is counted under one label, not as a metric of its own.
    let invented = Method::from_bytes(b"FROBNICATE").unwrap();
    server
        .call(invented, "/healthz", "", None)
        .await
        .expect(405);
    let metrics = server.call(Method::GET, "/metrics", "", None).await;
    metrics.expect(200);
    assert!(
        metrics.text.contains("method=\"OTHER\""),
        "{}",
        metrics.text
    );
    assert!(!metrics.text.contains("FROBNICATE"));
    assert!(
        metrics.text.contains("http_requests_total{"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("route=\"/license_updates\""));
    assert!(
        metrics
            .text
            .contains("http_request_duration_seconds_bucket")
    );
    assert!(metrics.text.contains("db_connections"));
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "db_connections",
        "webhook_deliveries_total",
        "webhook_oldest_undelivered_seconds",
    ] {
        assert!(
            metrics.text.contains(&format!("# HELP {name} ")),
            "no help for {name}: {}",
            metrics.text
        );
    }

    let doc = server.call(Method::GET, "/openapi.json", "", None).await;
    doc.expect(200);
    assert_eq!(doc.json["openapi"], "3.1.0");
    for path in [
        "/license_updates",
        "/license_updates/{license_id}",
        "/license_quantity",
        "/license_usage",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc.json["paths"].get(path).is_some(), "{path} undocumented");
    }
    for (path, status) in [
        ("/license_updates", "409"),
        ("/license_updates", "408"),
        ("/licenses/activate", "408"),
    ] {
        let responses = &doc.json["paths"][path]["post"]["responses"];
        assert!(responses.get(status).is_some(), "{path}: no {status}");
    }
    // A field always sent, null when empty, is required, so generated clients need not
    // guard against its absence.
    let schemas = &doc.json["components"]["schemas"];
    for (schema, field) in [
        ("LicenseKey", "expires_at"),
        ("LicenseKey", "activations_limit"),
        ("Product", "description"),
        ("Customer", "phone_number"),
        ("LicenseQuantity", "effectiveFrom"),
    ] {
        let required = schemas[schema]["required"].as_array().unwrap();
        assert!(required.contains(&json!(field)), "{schema}.{field}");
    }
    // Metadata is documented with the limits the server enforces.
    let metadata = &schemas["LicenseUpdateRequest"]["properties"]["metadata"];
    assert_eq!(metadata["maxProperties"], 50);
    assert_eq!(metadata["propertyNames"]["maxLength"], 100);
    assert_eq!(metadata["additionalProperties"]["maxLength"], 500);
    // The docs page, and every script and style it loads, come from the server itself.
    let docs = server.call(Method::GET, "/docs", "", None).await;
    docs.expect(200);
    assert!(!docs.text.contains("://"), "the page loads from elsewhere");
    let assets: Vec<&str> = docs
        .text
        .split(['"', '\''])
        .filter(|part| part.ends_with(".js") || part.ends_with(".css"))
        .collect();
    assert!(assets.len() >= 4, "{assets:?}");
    let mut renders_this_document = false;
    for asset in assets {
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        let served = server.call(Method::GET, &path, "", None).await;
        assert!(!served.expect(200).text.is_empty(), "{path}");
        renders_this_document |= served.text.contains("\"url\": \"/openapi.json\"");
    }
    assert!(
        renders_this_document,
        "no script points the page at /openapi.json"
    );

    let unknown = server.call(Method::GET, "/nowhere", "", None).await;
    assert_eq!(unknown.expect(404).json["code"], "NOT_FOUND");
    let wrong_method = server
        .call(Method::DELETE, "/license_updates", &server.key, None)
        .await;
    wrong_method.expect(405);
    wrong_method.message();
}

/// A key revoked while its write waits for the pair's lock: the write is refused and
/// nothing is written, rather than resolved against no entries at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_key_is_revoked_while_it_waits_is_refused_on_postgres() {
    let Some(server) = TestServer::start(common::Backend::Postgres).await else {
        return;
    };
    let writer = server.new_key("beta", false).await;
    update("ABSOLUTE", 10, "2024-01-01T00:00:00Z")
        .post_as(&server, &writer, 200)
        .await;

    let holder = server.database.connect().await;
    holder
        .batch_execute(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(id || '/acme/seats', 0))
             FROM businesses WHERE name = 'beta'",
        )
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let (client, url) = (server.client.clone(), server.url.clone());
        let body = update("RELATIVE", 1, "2024-02-01T00:00:00Z").json();
        async move {
            let response = client
                .post(format!("{url}/license_updates"))
                .bearer_auth(writer)
                .json(&body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    });
    while holder
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server
        .database
        .execute("DELETE FROM api_keys WHERE business_id = (SELECT id FROM businesses WHERE name = 'beta')")
        .await;
    holder.batch_execute("COMMIT").await.unwrap();

    assert_eq!(waiting.await.unwrap(), 401);
    let entries: i64 = holder
        .query_one("SELECT count(*) FROM ledger_entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(entries, 1, "only the seeded entry");
}

/// A database whose default isolation is REPEATABLE READ (some managed services set it)
/// changes nothing: concurrent writes to one pair all count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_count_under_a_repeatable_read_default_on_postgres() {
    let Some(database) = common::TestDatabase::create(common::Backend::Postgres).await else {
        return;
    };
    database
        .execute(
            "DO $$ BEGIN EXECUTE format(
                 'ALTER DATABASE %I SET default_transaction_isolation TO ''repeatable read''',
                 current_database()); END $$",
        )
        .await;
    let server =
        TestServer::start_on(database, common::Backend::Postgres, Default::default()).await;
    concurrent_relative_updates_on_one_pair_all_count(server).await;
}
