//! Signing keys: one active Ed25519 key per business, listed by `GET /signing_keys`,
//! shown and rotated by `licensed signing-key`, and sealed at rest under the master key.

mod common;

use std::process::{Command, Stdio};

use base64::Engine;
use common::process::licensed;
use common::{Backend, TestDatabase, TestServer};
use reqwest::Method;
use serde_json::Value;

backend_tests!(
    every_business_has_one_active_key_and_no_private_half_is_shown,
    answers_are_signed_when_a_nonce_asks,
    bodies_too_large_are_signed_as_empty,
    the_openapi_document_names_the_signature_headers,
);

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
        // Sealing is the server's to do: a command given a master key changes nothing,
        // as a server running without one may share the database.
        let args = ["signing-key", "show", "--business", "acme"];
        let (code, _, stderr) = run(&url, Some(&master(1)), &args);
        assert_eq!(code, Some(1), "{backend:?}: {stderr}");
        assert!(stderr.contains("stored in clear"), "{stderr}");
        assert_eq!(
            run(&url, None, &args).1,
            clear,
            "still in clear, and the same key"
        );
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

        // A business made since has no key yet: a command under a wrong master key, or
        // none, refuses rather than make one no server could open.
        let (code, _, stderr) = run(&url, None, &["api-key", "create", "--business", "newco"]);
        assert_eq!(code, Some(0), "{stderr}");
        for (given, refusal) in [
            (Some(master(2)), "does not open"),
            (None, "set LICENSED_MASTER_KEY"),
        ] {
            for command in ["show", "rotate"] {
                let args = ["signing-key", command, "--business", "newco"];
                let (code, stdout, stderr) = run(&url, given.as_deref(), &args);
                assert_eq!(code, Some(1), "{backend:?} {command}: {stdout}");
                assert!(stderr.contains(refusal), "{stderr}");
            }
        }
        let (listened, log) = serve_briefly(&url, Some(&master(1)));
        assert!(
            listened,
            "the refused commands left every key sealed as before: {log}"
        );
        let (code, newco, stderr) = run(
            &url,
            Some(&master(1)),
            &["signing-key", "show", "--business", "newco"],
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert_ne!(shown(&newco).0, shown(&with_key).0);

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

/// A raw public call with a nonce: status, headers, request body and response body.
async fn signed_call(
    server: &TestServer,
    path: &str,
    body: &str,
    nonce: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = server
        .client
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(nonce) = nonce {
        request = request.header("Licensed-Nonce", nonce);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// The public key of the server key's business.
async fn public_key(server: &TestServer, api_key: &str) -> (String, ed25519_dalek::VerifyingKey) {
    let listed = server
        .call(Method::GET, "/signing_keys", api_key, None)
        .await;
    let key = &listed.json["items"][0];
    let hex = key["public_key_hex"].as_str().unwrap();
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    (
        key_id,
        ed25519_dalek::VerifyingKey::from_bytes(&bytes.try_into().unwrap()).unwrap(),
    )
}

/// Checks a signed answer as an app would; the key id it names, or why it fails.
#[allow(clippy::too_many_arguments)]
fn verify(
    key: &ed25519_dalek::VerifyingKey,
    method: &str,
    path: &str,
    nonce: &str,
    date: &str,
    request_body: &[u8],
    response_body: &[u8],
    header: &str,
) -> Result<String, String> {
    use ed25519_dalek::Verifier;
    use sha2::{Digest, Sha256};
    let field = |name: &str| {
        let start = header
            .find(&format!("{name}=\""))
            .ok_or(format!("no {name}"))?
            + name.len()
            + 2;
        let end = header[start..].find('"').ok_or("unterminated")? + start;
        Ok::<_, String>(header[start..end].to_owned())
    };
    if field("algorithm")? != "ed25519" {
        return Err("algorithm".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let message = [
        "licensed-response-v1".to_owned(),
        format!("{method} {path}"),
        nonce.to_owned(),
        date.to_owned(),
        b64.encode(Sha256::digest(request_body)),
        b64.encode(Sha256::digest(response_body)),
    ]
    .join("\n");
    let signature = b64.decode(field("signature")?).map_err(|e| e.to_string())?;
    let signature = ed25519_dalek::Signature::from_slice(&signature).map_err(|e| e.to_string())?;
    key.verify(message.as_bytes(), &signature)
        .map_err(|e| e.to_string())?;
    field("keyid")
}

async fn answers_are_signed_when_a_nonce_asks(server: TestServer) {
    let (key_id, public) = public_key(&server, &server.key.clone()).await;
    let customer = server
        .post(
            "/customers",
            serde_json::json!({"email": "a@example.com", "name": "A"}),
        )
        .await;
    let product = server
        .post(
            "/products",
            serde_json::json!({"name": "App", "license_key_activations_limit": 1}),
        )
        .await;
    let issued = server
        .post(
            "/license_keys",
            serde_json::json!({"customer_id": customer.json["customer_id"], "product_id": product.json["product_id"]}),
        )
        .await;
    let license_key = issued.json["key"].as_str().unwrap().to_owned();

    let activate = format!(r#"{{"license_key":"{license_key}","name":"m"}}"#);
    let validate = format!(r#"{{"license_key":"{license_key}"}}"#);
    let cases = [
        ("/licenses/activate", activate.clone(), 201),
        ("/licenses/activate", activate, 422),
        ("/licenses/validate", validate.clone(), 200),
        (
            "/licenses/validate",
            r#"{"license_key":"NO-SUCH-KEY"}"#.to_owned(),
            404,
        ),
        ("/licenses/validate", "{not json".to_owned(), 400),
        // Refused before the route: a body one byte over the limit, declared so by its
        // `Content-Length` (refused before any of it is read: signed over none of it),
        // and a route that does not exist.
        (
            "/licenses/validate",
            format!(r#"{{"license_key":"{}"}}"#, "x".repeat(64 * 1024 + 1 - 18)),
            413,
        ),
        ("/licenses/no-such-route", validate.clone(), 404),
        (
            "/licenses/heartbeat",
            r#"{"license_key":"NO-SUCH-KEY","license_key_instance_id":"lki_x"}"#.to_owned(),
            404,
        ),
    ];
    for (path, body, expected) in cases {
        let nonce = format!("n-{expected}-{}", path.len());
        let (status, headers, response) = signed_call(&server, path, &body, Some(&nonce)).await;
        assert_eq!(
            status,
            expected,
            "{path} {body}: {}",
            String::from_utf8_lossy(&response)
        );
        let header = headers["licensed-signature"].to_str().unwrap();
        let date = headers["date"].to_str().unwrap();
        let check = |method: &str, path: &str, nonce: &str, date: &str, req: &[u8], resp: &[u8]| {
            verify(&public, method, path, nonce, date, req, resp, header)
        };
        let received = match expected {
            413 => &b""[..],
            _ => body.as_bytes(),
        };
        assert_eq!(
            check("POST", path, &nonce, date, received, &response),
            Ok(key_id.clone()),
            "{path} {expected}"
        );
        // Any change to what was signed fails: method, path, nonce, date, either body.
        let mut other_response = response.clone();
        other_response.push(b' ');
        let mut other_request = received.to_vec();
        other_request.push(b' ');
        assert!(check("GET", path, &nonce, date, received, &response).is_err());
        assert!(check("POST", "/licenses/other", &nonce, date, received, &response).is_err());
        assert!(check("POST", path, "other", date, received, &response).is_err());
        assert!(
            check(
                "POST",
                path,
                &nonce,
                "Thu, 01 Jan 1970 00:00:00 GMT",
                received,
                &response
            )
            .is_err()
        );
        assert!(check("POST", path, &nonce, date, &other_request, &response).is_err());
        assert!(check("POST", path, &nonce, date, received, &other_response).is_err());
    }

    // Without a nonce, nothing is signed; a bad nonce is refused.
    let (status, headers, _) = signed_call(&server, "/licenses/validate", &validate, None).await;
    assert_eq!(status, 200);
    assert!(headers.get("licensed-signature").is_none());
    for bad in ["has space", &"x".repeat(129)] {
        let (status, headers, body) =
            signed_call(&server, "/licenses/validate", &validate, Some(bad)).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert!(headers.contains_key("x-request-id"), "{headers:?}");
    }
    // Two nonces, or two content types: which one counts is not for the server to guess.
    for (name, second) in [
        ("licensed-nonce", "n-second"),
        ("content-type", "text/plain"),
    ] {
        let twice = (server
            .client
            .post(format!("{}/licenses/validate", server.url)))
        .header("content-type", "application/json")
        .header("licensed-nonce", "n-first")
        .header(name, second)
        .body(validate.clone());
        let response = twice.send().await.unwrap();
        assert_eq!(response.status(), 400, "{name}");
        let text = response.text().await.unwrap();
        assert!(text.contains("is sent more than once"), "{name}: {text}");
    }

    // Another business's key is signed with that business's key, which the first's
    // public key does not verify.
    let other = server.new_key("beta", false).await;
    let (beta_id, beta_public) = public_key(&server, &other).await;
    assert_ne!(beta_id, key_id);
    let call = async |path: &str, body: serde_json::Value| {
        server.call(Method::POST, path, &other, Some(body)).await
    };
    let c = call(
        "/customers",
        serde_json::json!({"email": "b@example.com", "name": "B"}),
    )
    .await;
    let p = call("/products", serde_json::json!({"name": "B app"})).await;
    let k = call(
        "/license_keys",
        serde_json::json!({"customer_id": c.json["customer_id"], "product_id": p.json["product_id"]}),
    )
    .await;
    let body = format!(r#"{{"license_key":"{}"}}"#, k.json["key"].as_str().unwrap());
    let (status, headers, response) =
        signed_call(&server, "/licenses/validate", &body, Some("beta-nonce")).await;
    assert_eq!(status, 200);
    let header = headers["licensed-signature"].to_str().unwrap();
    let date = headers["date"].to_str().unwrap();
    let args = ("POST", "/licenses/validate", "beta-nonce", date);
    assert_eq!(
        verify(
            &beta_public,
            args.0,
            args.1,
            args.2,
            args.3,
            body.as_bytes(),
            &response,
            header
        ),
        Ok(beta_id)
    );
    assert!(
        verify(
            &public,
            args.0,
            args.1,
            args.2,
            args.3,
            body.as_bytes(),
            &response,
            header
        )
        .is_err()
    );
}

/// A body declared longer than the limit is refused at once, as without a nonce; that one
/// and one found too long as it is read are signed as empty bodies. An answer to HEAD is
/// signed over the body it lacks.
async fn bodies_too_large_are_signed_as_empty(server: TestServer) {
    let (_, public) = public_key(&server, &server.key).await;
    let head = "POST /licenses/validate HTTP/1.1\r\nHost: x\r\nLicensed-Nonce: n-413\r\n\
                Content-Type: application/json\r\nConnection: close\r\n";
    let over = format!(r#"{{"license_key":"{}"}}"#, "x".repeat(64 * 1024 + 1 - 18));
    // Declared too long: refused before any of it is read. Sent in chunks past the limit:
    // refused once it is read past the limit, and signed over none of it too, as where
    // the read stopped depends on the chunks.
    let declared = format!("{head}Content-Length: 100000\r\n\r\n{{\"license_key\":\"x\"}}");
    let chunked = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{over}\r\n0\r\n\r\n",
        over.len()
    );
    let (first, rest) = over.split_at(40_000);
    let in_two = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    );
    for request in [declared, chunked, in_two] {
        // Without the check the server waits for the rest of a declared body: 408 after
        // the request timeout.
        let answer = answer_to(&server, request).await;
        assert!(answer.head.starts_with("HTTP/1.1 413"), "{}", answer.head);
        let checked = answer.verify_over_empty_body(&public, "n-413");
        assert!(checked.is_ok(), "{checked:?}");
    }

    let response = (server.client)
        .head(format!("{}/licenses/validate", server.url))
        .header("Licensed-Nonce", "n-head")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let headers = response.headers();
    let (date, signature) = (&headers["date"], &headers["licensed-signature"]);
    let checked = verify(
        &public,
        "HEAD",
        "/licenses/validate",
        "n-head",
        date.to_str().unwrap(),
        b"",
        b"",
        signature.to_str().unwrap(),
    );
    assert!(checked.is_ok(), "{checked:?}");
}

/// A body that stops arriving (408) is signed as an empty body too: how much of it came
/// before the request timeout depends on the network, which the app cannot know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_signed_as_empty() {
    let settings = licensed::http::ServerSettings {
        request_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, settings).await;
    let server = server.expect("SQLite is always there");
    let (_, public) = public_key(&server, &server.key).await;
    let request = "POST /licenses/validate HTTP/1.1\r\nHost: x\r\nLicensed-Nonce: n-408\r\n\
                   Content-Type: application/json\r\nConnection: close\r\n\
                   Content-Length: 100\r\n\r\n{\"license_key\":\"x";
    let answer = answer_to(&server, request.to_owned()).await;
    assert!(answer.head.starts_with("HTTP/1.1 408"), "{}", answer.head);
    let checked = answer.verify_over_empty_body(&public, "n-408");
    assert!(checked.is_ok(), "{checked:?}");
}

/// An answer read off the wire: its status line and headers, and its body.
struct RawAnswer {
    head: String,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> String {
        let line =
            (self.head.lines()).find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")));
        line.unwrap().split_once(": ").unwrap().1.to_owned()
    }

    /// Checks the signature of an answer to `POST /licenses/validate` over an empty
    /// request body.
    fn verify_over_empty_body(
        &self,
        public: &ed25519_dalek::VerifyingKey,
        nonce: &str,
    ) -> Result<String, String> {
        let (date, signature) = (self.header("date"), self.header("licensed-signature"));
        let path = "/licenses/validate";
        let body = self.body.as_bytes();
        verify(public, "POST", path, nonce, &date, b"", body, &signature)
    }
}

/// The answer to a request written as it is, on a connection of its own that the server
/// closes after it; within 10 s.
async fn answer_to(server: &TestServer, request: String) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    );
    read.await.expect("an answer within 10 s").unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    RawAnswer {
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_answer_is_signed_too() {
    let settings = licensed::http::ServerSettings {
        public_rate_limit: 1,
        ..Default::default()
    };
    let server = TestServer::start_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    let (key_id, public) = public_key(&server, &server.key.clone()).await;
    // A key of another business: its answers are signed with that business's key, but
    // a 429 concerns no key, so the first business's key signs it (SPEC §6).
    let other = server.new_key("beta", false).await;
    let (beta_id, beta_public) = public_key(&server, &other).await;
    let call = async |path: &str, body: serde_json::Value| {
        server
            .call(Method::POST, path, &other, Some(body))
            .await
            .json
    };
    let customer = call(
        "/customers",
        serde_json::json!({"email": "b@example.com", "name": "B"}),
    );
    let customer_id = customer.await["customer_id"].clone();
    let product_id =
        call("/products", serde_json::json!({"name": "B app"})).await["product_id"].clone();
    let issued = call(
        "/license_keys",
        serde_json::json!({"customer_id": customer_id, "product_id": product_id}),
    )
    .await;
    let body = format!(r#"{{"license_key":"{}"}}"#, issued["key"].as_str().unwrap());
    let mut statuses = Vec::new();
    for i in 0..3 {
        let nonce = format!("limit-{i}");
        let (status, headers, response) =
            signed_call(&server, "/licenses/validate", &body, Some(&nonce)).await;
        statuses.push(status);
        let header = headers["licensed-signature"].to_str().unwrap();
        let date = headers["date"].to_str().unwrap();
        let (signer_id, signer) = match status {
            429 => (&key_id, &public),
            _ => (&beta_id, &beta_public),
        };
        let checked = verify(
            signer,
            "POST",
            "/licenses/validate",
            &nonce,
            date,
            body.as_bytes(),
            &response,
            header,
        );
        assert_eq!(checked, Ok(signer_id.clone()), "status {status}");
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // A path that names no route spends the same limit.
    let (status, headers, _) =
        signed_call(&server, "/licenses/no-such-route", &body, Some("limit-x")).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("licensed-signature"));
}

/// Every answer of a `/licenses/*` route is documented with the two headers a nonce adds
/// to it; the routes that never sign are not.
async fn the_openapi_document_names_the_signature_headers(server: TestServer) {
    let doc = server.call(Method::GET, "/openapi.json", "", None).await;
    doc.expect(200);
    let mut signed = 0;
    for (path, item) in doc.json["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let headers = &response["headers"];
                let documented = ["Licensed-Signature", "Date"].map(|h| headers[h].is_object());
                let expected = path.starts_with("/licenses/");
                assert_eq!(documented, [expected; 2], "{method} {path} {status}");
                signed += usize::from(expected);
            }
        }
    }
    // validate, activate, deactivate, heartbeat and license_file, with their errors.
    assert!(signed >= 5 * 3, "{signed} signed answers documented");
}

/// A business without a signing key, asked for one by many callers at once (a business
/// made by `api-key create`, then many first requests): one key is made, and every caller
/// signs with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_racing_for_a_first_key_share_one_on_postgres() {
    use licensed::domain::ids::BusinessName;
    use licensed::storage::keyring;
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let store = common::open_store(&database.url).await;
    let name = BusinessName::parse("racing").unwrap();
    let business = store.ensure_business(&name).await.unwrap();
    let callers = (0..16).map(|_| {
        let (store, business) = (store.clone(), business.clone());
        tokio::spawn(async move { keyring::active(&*store, &business, None).await.unwrap().id })
    });
    let signed_with = futures::future::join_all(callers).await;
    let keys = store.signing_keys(Some(&business)).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    for id in signed_with {
        assert_eq!(id.unwrap(), keys[0].id);
    }
}
