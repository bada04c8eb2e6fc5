//! License and machine files (SPEC §6), issued by the server and checked as an app
//! checks them, with the `licensed-verify` crate.

mod common;

use std::time::{Duration, SystemTime};

use common::process::licensed;
use common::{Backend, Reply, TestDatabase, TestServer};
use licensed_verify::{Error, FileKind, PublicKey, verify_license_file};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    a_license_file_round_trips_plain_and_encrypted,
    a_machine_file_opens_only_with_its_fingerprint,
    issuing_is_refused_as_validation_refuses,
    one_changed_byte_anywhere_fails_verification,
    files_expire_and_a_clock_set_back_is_caught,
    the_public_route_answers_signed_on_request,
);

/// A key of a new product and customer: its id and its text.
async fn issue_key(server: &TestServer, extra: Value) -> (String, String) {
    let product = server
        .post(
            "/products",
            json!({"name": "Editor", "metadata": {"tier": "pro"}}),
        )
        .await;
    let customer = server
        .post(
            "/customers",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    let mut body = json!({
        "customer_id": customer.expect(201).json["customer_id"],
        "product_id": product.expect(201).json["product_id"],
        "activations_limit": 3,
    });
    (body.as_object_mut().unwrap()).extend(extra.as_object().unwrap().clone());
    let key = server.post("/license_keys", body).await;
    let key = &key.expect(201).json;
    (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

/// The active public key of the server key's business, with its id.
async fn public_key(server: &TestServer) -> PublicKey {
    let listed = server.get("/signing_keys").await;
    let items = listed.expect(200).json["items"].as_array().unwrap().clone();
    let active = items.iter().find(|k| k["active"] == true).unwrap();
    PublicKey::parse(active["public_key_pem"].as_str().unwrap())
        .unwrap()
        .with_key_id(active["key_id"].as_str().unwrap())
}

async fn public(server: &TestServer, path: &str, body: Value) -> Reply {
    let response = server
        .client
        .post(format!("{}/licenses/{path}", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    Reply::from(response).await
}

async fn file_of(server: &TestServer, key_id: &str, body: Value) -> Reply {
    let path = format!("/license_keys/{key_id}/license_file");
    server.post(&path, body).await
}

async fn activate(server: &TestServer, key: &str, fingerprint: Option<&str>) -> String {
    let mut body = json!({"license_key": key, "name": "laptop"});
    if let Some(fingerprint) = fingerprint {
        body["fingerprint"] = json!(fingerprint);
    }
    let reply = public(server, "activate", body).await;
    reply.expect(201).json["id"].as_str().unwrap().to_owned()
}

fn now() -> SystemTime {
    SystemTime::now()
}

async fn a_license_file_round_trips_plain_and_encrypted(server: TestServer) {
    let public_key = public_key(&server).await;
    let (key_id, key) = issue_key(&server, json!({})).await;

    let reply = file_of(&server, &key_id, json!({})).await;
    reply.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/x-pem-file"));
    let text = &reply.text;
    assert!(text.starts_with("-----BEGIN LICENSE FILE-----\n"), "{text}");
    assert!(text.ends_with("-----END LICENSE FILE-----\n"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let body = &lines[1..lines.len() - 1];
    assert!(body[..body.len() - 1].iter().all(|l| l.len() == 76));
    assert!((1..=76).contains(&body[body.len() - 1].len()));

    let contents = verify_license_file(text, &public_key, &key, None, now()).unwrap();
    let payload = &contents.payload;
    let attributes = &payload.data.attributes;
    assert_eq!(payload.data.kind, "licenses");
    assert_eq!(payload.data.id, key_id);
    assert_eq!(attributes.key, key);
    assert_eq!(attributes.status, "active");
    assert_eq!(attributes.max_machines, Some(3));
    assert_eq!(attributes.expiry, None);
    assert_eq!(attributes.customer["email"], "ada@example.com");
    assert_eq!(attributes.product["name"], "Editor");
    assert_eq!(attributes.metadata, json!({"tier": "pro"}));
    assert_eq!(attributes.seats, Value::Null);
    assert!(payload.included.is_empty());
    assert_eq!(payload.meta.ttl, 2_629_746, "a month by default");
    assert_eq!(
        payload.meta.expiry - payload.meta.issued,
        chrono::Duration::seconds(2_629_746)
    );
    assert_eq!(Some(payload.meta.key_id.as_str()), public_key.key_id());

    // Encrypted: only the license key opens it; the signature still verifies without it.
    let reply = file_of(&server, &key_id, json!({"encrypt": true, "ttl": 3600})).await;
    let file = licensed_verify::LicenseFile::parse(&reply.expect(200).text).unwrap();
    assert_eq!(file.kind(), FileKind::License);
    assert!(file.is_encrypted());
    file.verify(&public_key).unwrap();
    let opened = verify_license_file(&reply.text, &public_key, &key, None, now()).unwrap();
    assert_eq!(opened.payload.meta.ttl, 3600);
    assert!(matches!(
        file.decrypt("SOME-OTHER-KEY", None),
        Err(Error::DecryptionFailed)
    ));
    // The key as a customer may type it, in small letters with spaces around, opens it too.
    let typed = format!(" {} ", key.to_ascii_lowercase());
    verify_license_file(&reply.text, &public_key, &typed, None, now()).unwrap();

    // An app asks for its own with the key alone; another business's key does not verify it.
    let own = public(&server, "license_file", json!({"license_key": key})).await;
    verify_license_file(&own.expect(200).text, &public_key, &key, None, now()).unwrap();
    let other = server.new_key("other", false).await;
    let theirs = server
        .call(Method::GET, "/signing_keys", &other, None)
        .await;
    let their_key = theirs.expect(200).json["items"][0]["public_key_hex"].clone();
    let their_key = PublicKey::parse(their_key.as_str().unwrap()).unwrap();
    assert!(matches!(
        verify_license_file(&own.text, &their_key, &key, None, now()),
        Err(Error::BadSignature)
    ));
    // Nor can that business issue a file for this key.
    let path = format!("/license_keys/{key_id}/license_file");
    let foreign = server
        .call(Method::POST, &path, &other, Some(json!({})))
        .await;
    assert_eq!(foreign.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");
}

async fn a_machine_file_opens_only_with_its_fingerprint(server: TestServer) {
    let public_key = public_key(&server).await;
    let (key_id, key) = issue_key(&server, json!({})).await;
    let instance = activate(&server, &key, Some("machine-A")).await;

    let request = json!({"license_key": key, "license_key_instance_id": instance, "encrypt": true});
    let reply = public(&server, "license_file", request).await;
    let text = &reply.expect(200).text;
    assert!(text.starts_with("-----BEGIN MACHINE FILE-----\n"), "{text}");
    let contents = verify_license_file(text, &public_key, &key, Some("machine-A"), now()).unwrap();
    let machine = contents.payload.machine().unwrap();
    assert_eq!(machine.id, instance);
    assert_eq!(machine.attributes.fingerprint.as_deref(), Some("machine-A"));
    assert_eq!(machine.attributes.name.as_deref(), Some("laptop"));
    for wrong in [Some("machine-B"), None] {
        let refused = verify_license_file(text, &public_key, &key, wrong, now());
        assert!(
            matches!(
                refused,
                Err(Error::DecryptionFailed | Error::FingerprintRequired)
            ),
            "{refused:?}"
        );
    }

    // The API issues the same for the key's id; plain, it names its machine too.
    let reply = file_of(
        &server,
        &key_id,
        json!({"license_key_instance_id": instance}),
    )
    .await;
    let plain = verify_license_file(
        &reply.expect(200).text,
        &public_key,
        &key,
        Some("machine-A"),
        now(),
    );
    assert_eq!(plain.unwrap().payload.machine().unwrap().id, instance);

    // An instance without a fingerprint gets a plain machine file, not an encrypted one.
    let bare = activate(&server, &key, None).await;
    let refused = file_of(
        &server,
        &key_id,
        json!({"license_key_instance_id": bare, "encrypt": true}),
    )
    .await;
    let refused = refused.expect(422);
    assert_eq!(refused.json["code"], "INSTANCE_WITHOUT_FINGERPRINT");
    assert!(refused.message().contains("fingerprint"));
    let plain = file_of(&server, &key_id, json!({"license_key_instance_id": bare})).await;
    assert!(
        plain
            .expect(200)
            .text
            .starts_with("-----BEGIN MACHINE FILE-----")
    );
}

async fn issuing_is_refused_as_validation_refuses(server: TestServer) {
    let (key_id, key) = issue_key(&server, json!({})).await;
    let (other_id, other_key) = issue_key(&server, json!({})).await;
    let theirs = activate(&server, &other_key, Some("m")).await;

    let unknown = public(
        &server,
        "license_file",
        json!({"license_key": "NO-SUCH-KEY"}),
    )
    .await;
    assert_eq!(unknown.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");
    let unknown = file_of(&server, "lic_nosuchkey", json!({})).await;
    assert_eq!(unknown.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");
    // Another key's instance, and one deactivated, are no instances of this key.
    let request = json!({"license_key": key, "license_key_instance_id": theirs});
    let foreign = public(&server, "license_file", request).await;
    assert_eq!(foreign.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");
    let gone = activate(&server, &key, Some("g")).await;
    let deactivate = json!({"license_key": key, "license_key_instance_id": gone});
    public(&server, "deactivate", deactivate).await.expect(200);
    let request = json!({"license_key_instance_id": gone});
    file_of(&server, &key_id, request).await.expect(404);

    for bad in [
        json!({"ttl": 3599}),
        json!({"ttl": 31_556_953}),
        json!({"ttl": "long"}),
        json!({"encrypt": "yes"}),
        json!({"license_key_instance_id": ""}),
        json!({"unknown": 1}),
    ] {
        let reply = file_of(&server, &key_id, bad.clone()).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
        assert!(!reply.message().is_empty());
    }
    // Below the range, not whole, or past it: each told the range itself.
    for ttl in [json!(-1), json!(1.5), json!(3599), json!(5_000_000_000_u64)] {
        let reply = file_of(&server, &key_id, json!({"ttl": ttl})).await;
        assert_eq!(
            reply.expect(400).message(),
            format!(
                "invalid `ttl`: must be a whole number from 3600 to 31556952 seconds, got {ttl}"
            )
        );
    }
    let reply = file_of(&server, &key_id, json!({"ttl": 31_556_952})).await;
    reply.expect(200);

    // A disabled key, then an expired one: 403, on both routes.
    let disabled = server
        .patch(
            &format!("/license_keys/{other_id}"),
            json!({"disabled": true}),
        )
        .await;
    disabled.expect(200);
    let refused = file_of(&server, &other_id, json!({})).await;
    assert_eq!(refused.expect(403).json["code"], "INACTIVE_LICENSE_KEY");
    let refused = public(&server, "license_file", json!({"license_key": other_key})).await;
    assert_eq!(refused.expect(403).json["code"], "INACTIVE_LICENSE_KEY");
    let past = json!({"expires_at": "2020-01-01T00:00:00Z"});
    server
        .patch(&format!("/license_keys/{key_id}"), past)
        .await
        .expect(200);
    let refused = public(&server, "license_file", json!({"license_key": key})).await;
    assert_eq!(refused.expect(403).json["code"], "INACTIVE_LICENSE_KEY");

    // A read-only API key reads; it does not issue.
    let reader = server.new_key("alpha", true).await;
    let path = format!("/license_keys/{key_id}/license_file");
    let refused = server
        .call(Method::POST, &path, &reader, Some(json!({})))
        .await;
    refused.expect(403);
}

async fn one_changed_byte_anywhere_fails_verification(server: TestServer) {
    let public_key = public_key(&server).await;
    let (_, key) = issue_key(&server, json!({})).await;
    let instance = activate(&server, &key, Some("machine-A")).await;
    for encrypt in [false, true] {
        let request =
            json!({"license_key": key, "license_key_instance_id": instance, "encrypt": encrypt});
        let reply = public(&server, "license_file", request).await;
        let text = reply.expect(200).text.clone();
        verify_license_file(&text, &public_key, &key, Some("machine-A"), now()).unwrap();
        let bytes = text.as_bytes();
        for at in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            // Another printable character, so the text stays text.
            changed[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            let verdict =
                verify_license_file(&changed, &public_key, &key, Some("machine-A"), now());
            assert!(
                verdict.is_err(),
                "byte {at} ({:?}) changed, and the file still verified",
                bytes[at] as char
            );
        }
    }
}

async fn files_expire_and_a_clock_set_back_is_caught(server: TestServer) {
    let public_key = public_key(&server).await;
    let (key_id, key) = issue_key(&server, json!({"expires_at": "2999-01-01T00:00:00Z"})).await;
    let reply = file_of(&server, &key_id, json!({"ttl": 3600})).await;
    let text = &reply.expect(200).text;
    let contents = verify_license_file(text, &public_key, &key, None, now()).unwrap();
    let issued = SystemTime::from(contents.payload.meta.issued);
    assert_eq!(
        contents
            .payload
            .data
            .attributes
            .expiry
            .unwrap()
            .to_rfc3339(),
        "2999-01-01T00:00:00+00:00",
        "the key's own expiry"
    );

    let after = issued + Duration::from_secs(3601);
    assert!(matches!(
        verify_license_file(text, &public_key, &key, None, after),
        Err(Error::Expired { .. })
    ));
    let set_back = issued - Duration::from_secs(6 * 60);
    assert!(matches!(
        verify_license_file(text, &public_key, &key, None, set_back),
        Err(Error::ClockBehind { .. })
    ));
    // Within the tolerance of two clocks, it holds.
    let slightly_behind = issued - Duration::from_secs(60);
    verify_license_file(text, &public_key, &key, None, slightly_behind).unwrap();
}

async fn the_public_route_answers_signed_on_request(server: TestServer) {
    let public_key = public_key(&server).await;
    let (_, key) = issue_key(&server, json!({})).await;
    let body = json!({"license_key": key}).to_string();
    let response = server
        .client
        .post(format!("{}/licenses/license_file", server.url))
        .header("content-type", "application/json")
        .header("Licensed-Nonce", "n-0123")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    let (date, signature) = (header("date"), header("licensed-signature"));
    let answer = response.bytes().await.unwrap();
    let verified = licensed_verify::verify_response(
        &public_key,
        "POST",
        "/licenses/license_file",
        "n-0123",
        &date,
        body.as_bytes(),
        &answer,
        &signature,
    );
    assert_eq!(verified.unwrap(), public_key.key_id().unwrap());
    let text = String::from_utf8(answer.to_vec()).unwrap();
    verify_license_file(&text, &public_key, &key, None, now()).unwrap();
}

/// After a rotation, files issued before verify with the old public key, and new ones
/// carry the new key's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_files_verifiable() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        let url = database.url.clone();
        let run = |args: &[&str]| {
            let out = licensed()
                .args(args)
                .env("LICENSED_DATABASE_URL", &url)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        run(&["migrate"]);
        let server = TestServer::start_on(
            TestDatabase::alias(url.clone()),
            backend,
            Default::default(),
        )
        .await;
        let old_key = public_key(&server).await;
        let (key_id, key) = issue_key(&server, json!({})).await;
        let old_file = file_of(&server, &key_id, json!({}))
            .await
            .expect(200)
            .text
            .clone();

        // SQLite serves one process at a time: the server stops while the CLI rotates.
        server.stop().await;
        run(&["signing-key", "rotate", "--business", "alpha"]);
        let server = TestServer::start_on(
            TestDatabase::alias(url.clone()),
            backend,
            Default::default(),
        )
        .await;
        let new_key = public_key(&server).await;
        assert_ne!(new_key.key_id(), old_key.key_id());
        let new_file = file_of(&server, &key_id, json!({}))
            .await
            .expect(200)
            .text
            .clone();

        let old = verify_license_file(&old_file, &old_key, &key, None, now()).unwrap();
        assert_eq!(Some(old.payload.meta.key_id.as_str()), old_key.key_id());
        let new = verify_license_file(&new_file, &new_key, &key, None, now()).unwrap();
        assert_eq!(Some(new.payload.meta.key_id.as_str()), new_key.key_id());
        for (file, key_for) in [(&old_file, &new_key), (&new_file, &old_key)] {
            assert!(verify_license_file(file, key_for, &key, None, now()).is_err());
        }
        server.stop().await;
    }
}
