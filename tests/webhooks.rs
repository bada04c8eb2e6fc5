//! Webhook endpoints (SPEC §8): created, read, listed a page at a time, changed and
//! deleted through `/webhooks`, with their secrets and custom headers; checked where they
//! enter, kept per business, and their secrets sealed under the master key.

mod common;

use base64::Engine;
use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    an_endpoint_is_created_read_changed_and_deleted,
    endpoints_are_listed_a_page_at_a_time,
    the_secret_is_32_random_bytes_and_sealed_under_the_master_key,
    custom_headers_are_added_and_credentials_hidden,
    bad_input_is_refused_naming_the_problem,
    read_only_keys_read_and_other_businesses_see_nothing,
    the_openapi_document_describes_the_webhook_routes,
);

async fn create(server: &TestServer, body: Value) -> Value {
    let created = server.post("/webhooks", body).await;
    created.expect(201);
    created.json.clone()
}

async fn an_endpoint_is_created_read_changed_and_deleted(server: TestServer) {
    let minimal = create(&server, json!({"url": "https://example.com/hook"})).await;
    let id = minimal["id"].as_str().unwrap();
    assert!(id.starts_with("wh_"), "{minimal}");
    assert_eq!(minimal["url"], "https://example.com/hook");
    assert_eq!(minimal["description"], "");
    assert_eq!(minimal["disabled"], false);
    assert_eq!(minimal["filter_types"], json!([]));
    assert_eq!(minimal["metadata"], json!({}));
    assert_eq!(minimal["rate_limit"], Value::Null);
    assert_eq!(minimal["created_at"], minimal["updated_at"]);
    let mut fields: Vec<&String> = minimal.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "created_at",
            "description",
            "disabled",
            "filter_types",
            "id",
            "metadata",
            "rate_limit",
            "updated_at",
            "url"
        ],
        "no secret or headers in WebhookDetails"
    );

    let full = create(
        &server,
        json!({
            "url": "http://10.0.0.7:8080/licensed",
            "description": "billing",
            "disabled": true,
            "filter_types": ["license_update.created", "license_key.created"],
            "headers": {"X-Env": "prod"},
            "metadata": {"team": "ops"},
            "rate_limit": 5,
        }),
    )
    .await;
    assert_eq!(full["description"], "billing");
    assert_eq!(full["disabled"], true);
    assert_eq!(
        full["filter_types"],
        json!(["license_key.created", "license_update.created"])
    );
    assert_eq!(full["metadata"], json!({"team": "ops"}));
    assert_eq!(full["rate_limit"], 5);

    let full_id = full["id"].as_str().unwrap();
    let read = server.get(&format!("/webhooks/{full_id}")).await;
    assert_eq!(read.expect(200).json, full);

    let patched = server
        .patch(
            &format!("/webhooks/{full_id}"),
            json!({"disabled": false, "filter_types": [], "rate_limit": null, "url": "https://example.org/x"}),
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.json["disabled"], false);
    assert_eq!(patched.json["filter_types"], json!([]));
    assert_eq!(patched.json["rate_limit"], Value::Null);
    assert_eq!(patched.json["url"], "https://example.org/x");
    assert_eq!(patched.json["description"], "billing", "absent: unchanged");
    assert_eq!(patched.json["metadata"], json!({"team": "ops"}));
    assert_eq!(patched.json["created_at"], full["created_at"]);
    assert_ne!(patched.json["updated_at"], full["updated_at"]);
    let reread = server.get(&format!("/webhooks/{full_id}")).await;
    assert_eq!(reread.expect(200).json, patched.json);

    // An idempotency key answers the first endpoint again, and creates nothing.
    let first = create(
        &server,
        json!({"url": "https://example.com/a", "idempotency_key": "once"}),
    )
    .await;
    let again = create(
        &server,
        json!({"url": "https://example.com/a", "idempotency_key": "once"}),
    )
    .await;
    assert_eq!(first, again);
    let other = server
        .post(
            "/webhooks",
            json!({"url": "https://example.com/b", "idempotency_key": "once"}),
        )
        .await;
    assert_eq!(other.expect(409).json["code"], "CONFLICT");
    assert_eq!(other.header("x-should-retry"), Some("false"));
    let listed = server.get("/webhooks?limit=100").await;
    let urls: Vec<&Value> = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["url"])
        .collect();
    assert_eq!(
        urls.iter()
            .filter(|u| **u == "https://example.com/a")
            .count(),
        1
    );
    assert!(!urls.iter().any(|u| *u == "https://example.com/b"));

    let deleted = server
        .call(
            Method::DELETE,
            &format!("/webhooks/{id}"),
            &server.key,
            None,
        )
        .await;
    deleted.expect(204);
    server.get(&format!("/webhooks/{id}")).await.expect(404);
    let twice = server
        .call(
            Method::DELETE,
            &format!("/webhooks/{id}"),
            &server.key,
            None,
        )
        .await;
    assert_eq!(twice.expect(404).json["code"], "NOT_FOUND");
    let missing = server
        .patch("/webhooks/wh_nothing", json!({"disabled": true}))
        .await;
    missing.expect(404);
    server.get("/webhooks/wh_nothing/secret").await.expect(404);
    server.get("/webhooks/wh_nothing/headers").await.expect(404);
}

async fn endpoints_are_listed_a_page_at_a_time(server: TestServer) {
    let empty = server.get("/webhooks").await;
    assert_eq!(
        empty.expect(200).json,
        json!({"data": [], "iterator": null, "done": true})
    );
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = create(&server, json!({"url": format!("https://example.com/{i}")})).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/webhooks?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = server.get(&path).await;
        page.expect(200);
        pages += 1;
        let data = page.json["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        if page.json["done"] == true {
            assert_eq!(page.json["iterator"], Value::Null);
            break;
        }
        let iterator = page.json["iterator"].as_str().unwrap();
        path = format!("/webhooks?limit=2&iterator={iterator}");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "each endpoint once, oldest first");

    let all = server.get("/webhooks").await;
    assert_eq!(all.expect(200).json["data"].as_array().unwrap().len(), 5);
    assert_eq!(all.json["done"], true);
    server.get("/webhooks?limit=0").await.expect(422);
    server.get("/webhooks?limit=101").await.expect(422);
    server.get("/webhooks?limit=x").await.expect(400);
    let bad = server.get("/webhooks?iterator=nonsense").await;
    assert!(
        bad.expect(400).message().contains("iterator"),
        "{}",
        bad.text
    );
}

fn secret_bytes(reply: &Value) -> Vec<u8> {
    let secret = reply["secret"].as_str().unwrap();
    let encoded = secret.strip_prefix("whsec_").expect(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap()
}

async fn the_secret_is_32_random_bytes_and_sealed_under_the_master_key(server: TestServer) {
    let a = create(&server, json!({"url": "https://example.com/a"})).await;
    let b = create(&server, json!({"url": "https://example.com/b"})).await;
    let path = |e: &Value| format!("/webhooks/{}/secret", e["id"].as_str().unwrap());
    let secret = server.get(&path(&a)).await;
    secret.expect(200);
    assert_eq!(secret.json.as_object().unwrap().len(), 1);
    let bytes = secret_bytes(&secret.json);
    assert_eq!(bytes.len(), 32);
    assert_eq!(server.get(&path(&a)).await.json, secret.json, "stable");
    assert_ne!(secret_bytes(&server.get(&path(&b)).await.json), bytes);

    // With a master key, the secret is stored sealed and read back in clear.
    let master = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let sealed = TestServer::start_with(
        server.backend,
        licensed::http::ServerSettings {
            master_key: Some(licensed::domain::signing::MasterKey::parse(&master).unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c = create(&sealed, json!({"url": "https://example.com/c"})).await;
    let read = sealed.get(&path(&c)).await;
    assert_eq!(secret_bytes(&read.expect(200).json).len(), 32);
    let sealed_rows = match sealed.backend {
        Backend::Sqlite => {
            "SELECT count(*) FROM webhook_endpoints WHERE substr(secret, 1, 1) = x'01' AND length(secret) > 33"
        }
        Backend::Postgres => {
            "SELECT count(*) FROM webhook_endpoints WHERE get_byte(secret, 0) = 1 AND length(secret) > 33"
        }
    };
    assert_eq!(sealed.database.count(sealed_rows).await, 1);
    let clear_rows = match server.backend {
        Backend::Sqlite => {
            "SELECT count(*) FROM webhook_endpoints WHERE substr(secret, 1, 1) = x'00'"
        }
        Backend::Postgres => "SELECT count(*) FROM webhook_endpoints WHERE get_byte(secret, 0) = 0",
    };
    assert_eq!(server.database.count(clear_rows).await, 2);

    // A master key set later seals the secrets stored in clear at start, as it does the
    // signing keys; they read back the same.
    let master_key = licensed::domain::signing::MasterKey::parse(&master).unwrap();
    licensed::storage::keyring::prepare(server.store.as_ref(), Some(&master_key))
        .await
        .unwrap();
    assert_eq!(server.database.count(clear_rows).await, 0);
    let resealed = TestServer::start_on(
        common::TestDatabase::alias(server.database.url.clone()),
        server.backend,
        licensed::http::ServerSettings {
            master_key: Some(master_key),
            ..Default::default()
        },
    )
    .await;
    let after = resealed.get(&path(&a)).await;
    assert_eq!(secret_bytes(&after.expect(200).json), bytes);
    // Without the master key now, the server refuses to start rather than fail later.
    let refused = licensed::storage::keyring::prepare(server.store.as_ref(), None).await;
    assert!(refused.unwrap_err().to_string().contains("webhook secrets"));
}

async fn custom_headers_are_added_and_credentials_hidden(server: TestServer) {
    let created = create(
        &server,
        json!({"url": "https://example.com/h", "headers": {"X-Env": "prod", "Authorization": "Bearer s3cret"}}),
    )
    .await;
    let path = format!("/webhooks/{}/headers", created["id"].as_str().unwrap());
    let read = server.get(&path).await;
    assert_eq!(
        read.expect(200).json,
        json!({"headers": {"x-env": "prod"}, "sensitive": ["authorization"]})
    );
    assert!(!read.text.contains("s3cret"));

    let patched = server
        .patch(
            &path,
            json!({"headers": {"x-env": "staging", "X-Team": "ops"}}),
        )
        .await;
    patched.expect(204);
    let reread = server.get(&path).await;
    assert_eq!(
        reread.expect(200).json,
        json!({"headers": {"x-env": "staging", "x-team": "ops"}, "sensitive": ["authorization"]})
    );

    let bad_name = server
        .patch(&path, json!({"headers": {"bad name": "x"}}))
        .await;
    assert!(
        bad_name.expect(400).message().contains("header"),
        "{}",
        bad_name.text
    );
    // What each delivery sets, or what would misdescribe its plain body or connection.
    for name in [
        "Webhook-Signature",
        "Host",
        "Content-Encoding",
        "Upgrade",
        "TE",
        "Expect",
    ] {
        let reserved = server.patch(&path, json!({"headers": {name: "x"}})).await;
        let message = reserved.expect(400).message();
        assert!(message.contains(&name.to_ascii_lowercase()), "{message}");
    }
    let many: serde_json::Map<String, Value> =
        (0..18).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let too_many = server.patch(&path, json!({"headers": many})).await;
    assert!(
        too_many.expect(400).message().contains("headers"),
        "{}",
        too_many.text
    );
    assert_eq!(server.get(&path).await.json, reread.json, "nothing written");
    server
        .patch(&path, json!({"headers": {}, "extra": 1}))
        .await
        .expect(400);
}

async fn bad_input_is_refused_naming_the_problem(server: TestServer) {
    let refused = |body: Value, needle: &'static str| {
        let server = &server;
        async move {
            let reply = server.post("/webhooks", body.clone()).await;
            reply.expect(400);
            assert!(reply.message().contains(needle), "{body} -> {}", reply.text);
        }
    };
    refused(json!({"url": "ftp://example.com/x"}), "url").await;
    // A scheme in capitals is the same scheme, kept in lower case.
    let upper = create(&server, json!({"url": "HTTPS://Example.com/Hook"})).await;
    assert_eq!(upper["url"], "https://Example.com/Hook");
    let path = format!("/webhooks/{}", upper["id"].as_str().unwrap());
    (server.call(Method::DELETE, &path, &server.key, None))
        .await
        .expect(204);
    refused(json!({"url": "https://u:p@example.com/x"}), "credentials").await;
    refused(
        json!({"url": "https://example.com", "filter_types": [5]}),
        "filter_types[0]",
    )
    .await;
    refused(json!({"url": "example.com"}), "url").await;
    refused(json!({"url": "http://[oops/"}), "host").await;
    for port in ["0", "99999", "x"] {
        let url = format!("http://127.0.0.1:{port}/h");
        refused(json!({ "url": url }), "no valid port").await;
    }
    refused(
        json!({"url": format!("https://example.com/{}", "a".repeat(2040))}),
        "2048",
    )
    .await;
    refused(
        json!({"url": "https://example.com", "filter_types": ["payment.succeeded"]}),
        "filter_types",
    )
    .await;
    refused(
        json!({"url": "https://example.com", "colour": "red"}),
        "colour",
    )
    .await;
    // Below the range, past it, or not whole: each told the range itself.
    for limit in [json!(0), json!(-1), json!(1.5), json!(10_001)] {
        refused(
            json!({"url": "https://example.com", "rate_limit": limit}),
            "must be a whole number from 1 to 10000 deliveries per second",
        )
        .await;
    }
    refused(json!({"description": "no url"}), "url").await;
    let ok_length = format!("https://example.com/{}", "a".repeat(2048 - 20));
    assert_eq!(ok_length.len(), 2048);
    create(&server, json!({"url": ok_length})).await;

    let listed = server.get("/webhooks").await;
    assert_eq!(listed.expect(200).json["data"].as_array().unwrap().len(), 1);
    let id = listed.json["data"][0]["id"].as_str().unwrap();
    let patch = server
        .patch(&format!("/webhooks/{id}"), json!({"url": "mailto:a@b.c"}))
        .await;
    assert!(
        patch.expect(400).message().contains("url"),
        "{}",
        patch.text
    );
}

async fn read_only_keys_read_and_other_businesses_see_nothing(server: TestServer) {
    let created = create(&server, json!({"url": "https://example.com/r"})).await;
    let id = created["id"].as_str().unwrap();
    let one = format!("/webhooks/{id}");
    let headers = format!("/webhooks/{id}/headers");
    let secret = format!("/webhooks/{id}/secret");
    let writes = [
        (
            Method::POST,
            "/webhooks",
            Some(json!({"url": "https://e.com"})),
        ),
        (Method::PATCH, &one, Some(json!({"disabled": true}))),
        (
            Method::PATCH,
            &headers,
            Some(json!({"headers": {"x-a": "b"}})),
        ),
        (Method::DELETE, &one, None),
    ];

    // A read-only key of the same business reads all but the secret, and writes nothing.
    let reader = server.new_key("alpha", true).await;
    for (path, status) in [
        (&*one, 200),
        ("/webhooks", 200),
        (&headers, 200),
        (&secret, 403),
    ] {
        let reply = server.call(Method::GET, path, &reader, None).await;
        assert_eq!(reply.status, status, "GET {path}: {}", reply.text);
    }
    for (method, path, body) in writes.clone() {
        let reply = server.call(method.clone(), path, &reader, body).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text);
    }
    assert_eq!(server.get(&one).await.expect(200).json, created);

    // Another business finds nothing, neither to read nor to change.
    let other = server.new_key("other", false).await;
    for path in [&one, &secret, &headers] {
        let reply = server.call(Method::GET, path, &other, None).await;
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.text);
    }
    for (method, path, body) in writes.into_iter().skip(1) {
        let reply = server.call(method.clone(), path, &other, body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
    }
    let listed = server.call(Method::GET, "/webhooks", &other, None).await;
    assert_eq!(listed.expect(200).json["data"], json!([]));
    assert_eq!(server.get(&one).await.expect(200).json, created);
    let anonymous = server.client.get(format!("{}/webhooks", server.url));
    assert_eq!(anonymous.send().await.unwrap().status(), 401);
}

async fn the_openapi_document_describes_the_webhook_routes(server: TestServer) {
    let doc = server.call(Method::GET, "/openapi.json", "", None).await;
    doc.expect(200);
    let paths = &doc.json["paths"];
    for (path, method, statuses) in [
        ("/webhooks", "post", &["201", "400", "401", "403"][..]),
        ("/webhooks", "get", &["200", "400", "401", "422"]),
        ("/webhooks/{id}", "get", &["200", "404"]),
        ("/webhooks/{id}", "patch", &["200", "400", "403", "404"]),
        ("/webhooks/{id}", "delete", &["204", "403", "404"]),
        ("/webhooks/{id}/secret", "get", &["200", "403", "404"]),
        ("/webhooks/{id}/headers", "get", &["200", "404"]),
        (
            "/webhooks/{id}/headers",
            "patch",
            &["204", "400", "403", "404"],
        ),
        (
            "/webhooks/{id}/messages",
            "get",
            &["200", "400", "404", "422"],
        ),
        (
            "/webhooks/{id}/messages/{msg_id}/retry",
            "post",
            &["202", "403", "404"],
        ),
    ] {
        let responses = &paths[path][method]["responses"];
        for status in statuses {
            assert!(
                responses.get(status).is_some(),
                "{method} {path}: no {status}"
            );
        }
    }
    let details = &doc.json["components"]["schemas"]["WebhookDetails"];
    let required = details["required"].as_array().unwrap();
    for field in [
        "id",
        "url",
        "description",
        "disabled",
        "filter_types",
        "metadata",
        "rate_limit",
    ] {
        assert!(required.contains(&json!(field)), "WebhookDetails.{field}");
    }
    let url = &doc.json["components"]["schemas"]["WebhookUrl"];
    assert_eq!(url["maxLength"], 2048, "{url}");
    let types = &doc.json["components"]["schemas"]["FilterTypes"];
    assert_eq!(types["uniqueItems"], true, "{types}");
}
