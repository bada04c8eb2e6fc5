//! Signing keys: one active Ed25519 key per business, listed by `GET /signing_keys`,
//! shown and rotated by `licensed signing-key`, and sealed at rest under the master key.

mod common;

use std::process::{Command, Stdio};

use base64::Engine;
use common::process::licensed;
use common::{Backend, TestDatabase, TestServer};
use reqwest::Method;
use serde_json::Value;

backend_tests!(every_business_has_one_active_key_and_no_private_half_is_shown);

async fn every_business_has_one_active_key_and_no_private_half_is_shown(server: TestServer) {
    let listed = server.get("/signing_keys").await;
    listed.expect(200);
    let items = listed.json["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{}", listed.json);
    let key = &items[0];
    assert_eq!(key["algorithm"], "ed25519");
    assert_eq!(key["active"], true);
    assert!(key["key_id"].as_str().unwrap().starts_with("sk_"));
    let hex = key["public_key_hex"].as_str().unwrap();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let pem = key["public_key_pem"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    // The PEM holds the same 32 bytes, after the 12-byte SPKI header of an Ed25519 key.
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let from_pem: String = der[12..].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(from_pem, hex);
    let fields: Vec<&String> = key.as_object().unwrap().keys().collect();
    assert_eq!(fields.len(), 6, "only public fields: {fields:?}");

    // Read-only keys may read it; another business has a key of its own.
    let reader = server.new_key("alpha", true).await;
    let as_reader = server
        .call(Method::GET, "/signing_keys", &reader, None)
        .await;
    assert_eq!(as_reader.expect(200).json["items"], listed.json["items"]);
    let other = server.new_key("other", false).await;
    let theirs = server
        .call(Method::GET, "/signing_keys", &other, None)
        .await;
    let their_items = theirs.expect(200).json["items"].as_array().unwrap().clone();
    assert_eq!(their_items.len(), 1);
    assert_ne!(their_items[0]["public_key_hex"], key["public_key_hex"]);

    let anonymous = server.client.get(format!("{}/signing_keys", server.url));
    assert_eq!(anonymous.send().await.unwrap().status(), 401);
}

/// Runs `licensed` with these arguments on the database, with `LICENSED_MASTER_KEY` set
/// when given; its exit code, stdout and stderr.
fn run(url: &str, master: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = licensed();
    command.args(args).env("LICENSED_DATABASE_URL", url);
    if let Some(master) = master {
        command.env("LICENSED_MASTER_KEY", master);
    }
    let out = command.output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

fn master(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// `signing-key show`'s lines: id, hex, then the PEM.
fn shown(stdout: &str) -> (String, String) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 5, "{stdout}");
    assert_eq!(lines[2], "-----BEGIN PUBLIC KEY-----", "{stdout}");
    (lines[0].to_owned(), lines[1].to_owned())
}

/// Serves the database until it listens (then stops it) or exits; whether it listened,
/// and what it wrote to stderr.
fn serve_briefly(url: &str, master: Option<&str>) -> (bool, String) {
    let mut command = licensed();
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url])
        .env("LICENSED_LOG", "info")
        .env("LICENSED_BOOTSTRAP_API_KEY", "lsk_signing-test")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(master) = master {
        command.env("LICENSED_MASTER_KEY", master);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut listened = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("listening on http://") {
            listened = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (listened, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_show_and_rotate_on_the_command_line() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        let url = database.url.clone();
        let (code, _, stderr) = run(&url, None, &["migrate"]);
        assert_eq!(code, Some(0), "{stderr}");
        let (code, _, stderr) = run(&url, None, &["api-key", "create", "--business", "acme"]);
        assert_eq!(code, Some(0), "{stderr}");

        let (code, first, stderr) = run(&url, None, &["signing-key", "show", "--business", "acme"]);
        assert_eq!(code, Some(0), "{backend:?}: {stderr}");
        let (first_id, first_hex) = shown(&first);
        assert!(first_id.starts_with("sk_"));
        let (_, again, _) = run(&url, None, &["signing-key", "show", "--business", "acme"]);
        assert_eq!(again, first, "show makes no new key");

        let (code, rotated, stderr) =
            run(&url, None, &["signing-key", "rotate", "--business", "acme"]);
        assert_eq!(code, Some(0), "{stderr}");
        let (new_id, new_hex) = shown(&rotated);
        assert_ne!(new_id, first_id);
        assert_ne!(new_hex, first_hex);
        let (_, now_shown, _) = run(&url, None, &["signing-key", "show", "--business", "acme"]);
        assert_eq!(now_shown, rotated);

        let (code, _, stderr) = run(&url, None, &["signing-key", "show", "--business", "nobody"]);
        assert_eq!(code, Some(1));
        assert!(stderr.contains("no business named `nobody`"), "{stderr}");

        // The API lists both, the new one active.
        let (listened, log) = serve_briefly(&url, None);
        assert!(listened, "{log}");
        assert!(log.contains("LICENSED_MASTER_KEY is not set"), "{log}");
        let served = TestServer::start_on(
            TestDatabase::alias(url.clone()),
            backend,
            Default::default(),
        )
        .await;
        let key = served.new_key("acme", true).await;
        let listed = served.call(Method::GET, "/signing_keys", &key, None).await;
        let items = listed.expect(200).json["items"].as_array().unwrap().clone();
        let summary: Vec<(Value, Value)> = items
            .iter()
            .map(|k| (k["key_id"].clone(), k["active"].clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Value::from(first_id.clone()), Value::from(false)),
                (Value::from(new_id.clone()), Value::from(true)),
            ]
        );
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_keys_are_sealed_under_the_master_key() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            continue;
        };
        let url = database.url.clone();
        // Keys made in clear are sealed when the server starts with a master key.
        let (code, _, stderr) = run(&url, None, &["migrate"]);
        assert_eq!(code, Some(0), "{stderr}");
        let (code, _, stderr) = run(&url, None, &["api-key", "create", "--business", "acme"]);
        assert_eq!(code, Some(0), "{stderr}");
        let (_, clear, _) = run(&url, None, &["signing-key", "show", "--business", "acme"]);
        let (listened, log) = serve_briefly(&url, Some(&master(1)));
        assert!(listened, "{backend:?}: {log}");
        assert!(!log.contains("LICENSED_MASTER_KEY is not set"), "{log}");

        // From then on, the keys open with that master key only.
        let (code, with_key, stderr) = run(
            &url,
            Some(&master(1)),
            &["signing-key", "show", "--business", "acme"],
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(with_key, clear, "sealing keeps the key");
        let (listened, log) = serve_briefly(&url, Some(&master(2)));
        assert!(!listened, "a wrong master key must stop serve: {log}");
        assert!(
            log.contains("LICENSED_MASTER_KEY does not open the signing keys"),
            "{log}"
        );
        let (listened, log) = serve_briefly(&url, None);
        assert!(!listened, "a missing master key must stop serve: {log}");
        assert!(log.contains("set LICENSED_MASTER_KEY"), "{log}");
        let (code, _, stderr) = run(
            &url,
            Some(&master(2)),
            &["signing-key", "rotate", "--business", "acme"],
        );
        assert_eq!(code, Some(1), "no rotation under a wrong master key");
        assert!(stderr.contains("does not open"), "{stderr}");
        for text in [&log, &stderr] {
            assert!(!text.contains(&master(1)), "the master key is never shown");
        }

        let (code, _, stderr) = run(
            &url,
            Some("too short"),
            &["signing-key", "show", "--business", "acme"],
        );
        assert_eq!(code, Some(2));
        assert!(stderr.contains("32 bytes"), "{stderr}");
    }
}

#[test]
fn the_master_key_is_a_known_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_licensed"))
        .args(["migrate", "--database-url", "sqlite::memory:"])
        .env("LICENSED_MASTER_KEY", master(3))
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("unknown environment variable"), "{stderr}");
}
