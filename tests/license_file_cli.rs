//! `licensed license-file verify` as a user runs it, on files built here the way SPEC §6
//! says the server issues them.

use std::path::PathBuf;
use std::process::Command;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const LICENSE_KEY: &str = "LK-8F2A-91C3-D4E7";
const FINGERPRINT: &str = "fp-3b1f9c0e";

fn payload(issued: DateTime<Utc>, ttl: i64, fingerprint: Option<&str>) -> Value {
    let included: Vec<Value> = fingerprint
        .map(|fp| json!({"type": "machines", "id": "lki_7Qx2", "attributes": {"name": "box", "fingerprint": fp}}))
        .into_iter()
        .collect();
    json!({
        "meta": {"issued": issued, "expiry": issued + Duration::seconds(ttl), "ttl": ttl, "key_id": "sk_1"},
        "data": {"type": "licenses", "id": "lic_4Hk9", "attributes": {
            "key": LICENSE_KEY, "status": "active", "expiry": null, "maxMachines": 3,
            "product": "prod_1", "customer": {"customer_id": "cus_1"}, "metadata": {}, "seats": null}},
        "included": included,
    })
}

/// `enc`, `sig` and `alg` for `payload`: encrypted under SHA-256(`secret`) when given.
fn seal(key: &SigningKey, payload: &Value, machine: bool, secret: Option<&str>) -> [String; 3] {
    let json = serde_json::to_vec(payload).unwrap();
    let (enc, alg) = match secret {
        None => (STANDARD.encode(&json), "base64+ed25519"),
        Some(secret) => {
            let mut iv = [0u8; 12];
            OsRng.fill_bytes(&mut iv);
            let cipher = Aes256Gcm::new(&Sha256::digest(secret.as_bytes()));
            let sealed = cipher.encrypt(Nonce::from_slice(&iv), &json[..]).unwrap();
            let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
            let parts = [ciphertext, &iv, tag].map(|part| STANDARD.encode(part));
            (parts.join("."), "aes-256-gcm+ed25519")
        }
    };
    let prefix = if machine { "machine/" } else { "license/" };
    let sig = key.sign(format!("{prefix}{enc}").as_bytes());
    [enc, STANDARD.encode(sig.to_bytes()), alg.to_owned()]
}

fn armor(machine: bool, [enc, sig, alg]: &[String; 3]) -> String {
    let label = if machine {
        "MACHINE FILE"
    } else {
        "LICENSE FILE"
    };
    let body = STANDARD.encode(json!({"enc": enc, "sig": sig, "alg": alg}).to_string());
    let lines: Vec<&str> = (0..body.len())
        .step_by(76)
        .map(|i| &body[i..(i + 76).min(body.len())])
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A file issued now for a month: a machine file (for `FINGERPRINT`) when `machine`.
fn issue(key: &SigningKey, machine: bool, encrypt: bool) -> String {
    let fingerprint = machine.then_some(FINGERPRINT);
    let secret = format!("{LICENSE_KEY}{}", fingerprint.unwrap_or(""));
    let payload = payload(Utc::now(), 2_629_746, fingerprint);
    armor(
        machine,
        &seal(key, &payload, machine, encrypt.then_some(&secret)),
    )
}

fn hex(key: &SigningKey) -> String {
    let bytes = key.verifying_key().to_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Writes `file` to a temporary directory and runs `license-file verify` on it.
fn verify(file: &str, args: &[&str]) -> Run {
    verify_in(file, args, &[])
}

/// [`verify`] with these environment variables set.
fn verify_in(file: &str, args: &[&str], variables: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("license.lic");
    std::fs::write(&path, file).unwrap();
    verify_path(path, args, variables)
}

fn verify_path(path: PathBuf, args: &[&str], variables: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_licensed"))
        .args(["license-file", "verify"])
        .arg(path)
        .args(args)
        .env_remove("LICENSED_LOG")
        .env_remove("LICENSED_LICENSE_KEY")
        .envs(variables.iter().copied())
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// Asserts exit 1 with one line on stderr that contains `reason`, and nothing on stdout.
fn assert_refused(run: &Run, reason: &str) {
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(reason),
        "{reason:?} not in {}",
        run.stderr
    );
}

fn printed(run: &Run) -> Value {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("\n  \"data\""),
        "not indented: {}",
        run.stdout
    );
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn a_valid_plain_file_prints_its_payload() {
    let key = SigningKey::generate(&mut OsRng);
    for machine in [false, true] {
        let run = verify(&issue(&key, machine, false), &["--public-key", &hex(&key)]);
        let unchecked = match machine {
            true => "whose key and which machine it is for were not checked",
            false => "whose key it is for was not checked",
        };
        assert!(run.stderr.contains(unchecked), "{}", run.stderr);
        let payload = printed(&run);
        assert_eq!(payload["data"]["id"], "lic_4Hk9");
        assert_eq!(payload["data"]["attributes"]["key"], LICENSE_KEY);
        assert_eq!(
            payload["included"].as_array().unwrap().len(),
            usize::from(machine)
        );
    }
}

#[test]
fn an_encrypted_license_file_opens_with_its_license_key() {
    let key = SigningKey::generate(&mut OsRng);
    let file = issue(&key, false, true);
    let public = ["--public-key", &hex(&key)];
    let run = verify(
        &file,
        &[&public[..], &["--license-key", LICENSE_KEY]].concat(),
    );
    assert_eq!(printed(&run)["meta"]["key_id"], "sk_1");
    assert!(!run.stderr.contains("not checked"), "{}", run.stderr);

    assert_refused(&verify(&file, &public), "encrypted: pass --license-key");
    let wrong = [&public[..], &["--license-key", "LK-OTHER"]].concat();
    assert_refused(&verify(&file, &wrong), "wrong license key or fingerprint");

    // From the environment, where the process list does not show it.
    let from_environment = [("LICENSED_LICENSE_KEY", LICENSE_KEY)];
    let run = verify_in(&file, &public, &from_environment);
    assert_eq!(printed(&run)["meta"]["key_id"], "sk_1");
    let wrong = [("LICENSED_LICENSE_KEY", "LK-OTHER")];
    assert_refused(
        &verify_in(&file, &public, &wrong),
        "wrong license key or fingerprint",
    );
}

#[test]
fn an_encrypted_machine_file_needs_the_key_and_its_fingerprint() {
    let key = SigningKey::generate(&mut OsRng);
    let file = issue(&key, true, true);
    let with = |fingerprint: &str| {
        let args = ["--public-key", &hex(&key), "--license-key", LICENSE_KEY];
        verify(
            &file,
            &[&args[..], &["--fingerprint", fingerprint]].concat(),
        )
    };
    let payload = printed(&with(FINGERPRINT));
    assert_eq!(
        payload["included"][0]["attributes"]["fingerprint"],
        FINGERPRINT
    );

    assert_refused(&with("fp-other"), "wrong license key or fingerprint");
    let no_fingerprint = ["--public-key", &hex(&key), "--license-key", LICENSE_KEY];
    assert_refused(&verify(&file, &no_fingerprint), "--fingerprint");
}

#[test]
fn a_tampered_file_or_another_public_key_is_refused() {
    let key = SigningKey::generate(&mut OsRng);
    let original = payload(Utc::now(), 3600, None);
    let mut richer = original.clone();
    richer["data"]["attributes"]["maxMachines"] = json!(1000);
    let [_, sig, alg] = seal(&key, &original, false, None);
    let [enc, ..] = seal(&key, &richer, false, None);
    let tampered = armor(false, &[enc, sig, alg]);
    let run = verify(&tampered, &["--public-key", &hex(&key)]);
    assert_refused(&run, "signature does not verify");

    let other = SigningKey::generate(&mut OsRng);
    let run = verify(&issue(&key, false, false), &["--public-key", &hex(&other)]);
    assert_refused(&run, "signature does not verify");
}

#[test]
fn an_expired_file_or_a_clock_behind_its_issue_is_refused() {
    let key = SigningKey::generate(&mut OsRng);
    let issued = Utc::now() - Duration::days(2);
    let expired = armor(
        false,
        &seal(&key, &payload(issued, 3600, None), false, None),
    );
    let run = verify(&expired, &["--public-key", &hex(&key)]);
    let expiry = (issued + Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
    assert_refused(&run, &format!("expired at {expiry}"));

    let future = payload(Utc::now() + Duration::days(1), 3600, None);
    let early = armor(false, &seal(&key, &future, false, None));
    let run = verify(&early, &["--public-key", &hex(&key)]);
    assert_refused(&run, "clock is behind");
}

#[test]
fn the_public_key_is_a_file_in_hex_or_pem_or_the_text_itself() {
    let key = SigningKey::generate(&mut OsRng);
    let file = issue(&key, false, false);
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pem_file, hex_file) = (dir.path().join("key.pem"), dir.path().join("key.hex"));
    std::fs::write(&pem_file, &pem).unwrap();
    std::fs::write(&hex_file, format!("{}\n", hex(&key))).unwrap();
    for public_key in [
        pem_file.to_str().unwrap(),
        hex_file.to_str().unwrap(),
        &pem,
        &hex(&key),
    ] {
        printed(&verify(&file, &["--public-key", public_key]));
    }

    let missing = dir.path().join("typo.pem");
    let run = verify(&file, &["--public-key", missing.to_str().unwrap()]);
    assert_refused(&run, "--public-key names no file, and is not a key");
    std::fs::write(&pem_file, "not a key").unwrap();
    let run = verify(&file, &["--public-key", pem_file.to_str().unwrap()]);
    assert_refused(&run, "invalid public key");
}

#[test]
fn a_missing_or_malformed_file_is_refused_with_a_clear_message() {
    let key = SigningKey::generate(&mut OsRng);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.lic");
    let run = verify_path(missing, &["--public-key", &hex(&key)], &[]);
    assert_refused(&run, "cannot read license file");
    let run = verify("hello", &["--public-key", &hex(&key)]);
    assert_refused(&run, "malformed license file");
}

#[test]
fn help_says_how_the_public_key_is_read_and_misuse_is_exit_2() {
    let help = Command::new(env!("CARGO_BIN_EXE_licensed"))
        .args(["license-file", "verify", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("when no file has that name"), "{text}");

    let run = verify("hello", &["--fingerprint", FINGERPRINT]);
    assert_eq!(run.code, Some(2), "--public-key is required");
}

#[test]
fn a_plain_machine_file_is_checked_for_its_machine_without_the_license_key() {
    let key = SigningKey::generate(&mut OsRng);
    let machine_file = issue(&key, true, false);
    let with = |file: &str, fingerprint: &str| {
        verify(
            file,
            &["--public-key", &hex(&key), "--fingerprint", fingerprint],
        )
    };
    let run = with(&machine_file, FINGERPRINT);
    printed(&run);
    assert!(
        run.stderr.contains("(whose key it is for was not checked"),
        "{}",
        run.stderr
    );
    assert_refused(&with(&machine_file, "fp-other"), "another machine");
    let license_file = issue(&key, false, false);
    assert_refused(&with(&license_file, FINGERPRINT), "machine file");
}
