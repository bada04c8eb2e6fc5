//! A test-only issuer that builds license files the way SPEC §6 says the server does:
//! JSON payload → enc → sig → JSON envelope → base64 wrapped at 76 → armor.

#![allow(dead_code)] // each test file uses part of it

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ed25519_dalek::{Signer, SigningKey};
use licensed_verify::PublicKey;
use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const LICENSE_KEY: &str = "LK-8F2A-91C3-D4E7";
pub const FINGERPRINT: &str = "fp-3b1f9c0e";
pub const KEY_ID: &str = "sk_test_1";

pub struct Issuer {
    pub signing_key: SigningKey,
    pub key_id: String,
}

impl Issuer {
    pub fn new() -> Self {
        Self {
            signing_key: SigningKey::generate(&mut OsRng),
            key_id: KEY_ID.to_owned(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_bytes(self.signing_key.verifying_key().as_bytes()).unwrap()
    }

    pub fn public_key_hex(&self) -> String {
        self.signing_key
            .verifying_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The payload of a file issued at `issued` for `ttl` seconds; a machine file's when
    /// `fingerprint` is given.
    pub fn payload(&self, issued: DateTime<Utc>, ttl: i64, fingerprint: Option<&str>) -> Value {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let included: Vec<Value> = fingerprint
            .map(|fingerprint| {
                json!({"type": "machines", "id": "lki_7Qx2", "attributes": {
                    "name": "build-box", "fingerprint": fingerprint}})
            })
            .into_iter()
            .collect();
        json!({
            "meta": {"issued": time(issued), "expiry": time(issued + Duration::seconds(ttl)),
                     "ttl": ttl, "key_id": self.key_id},
            "data": {"type": "licenses", "id": "lic_4Hk9", "attributes": {
                "key": LICENSE_KEY, "status": "active", "expiry": null, "maxMachines": 3,
                "product": "prod_editor", "customer": {"customer_id": "cus_1", "email": "a@b.example"},
                "metadata": {"plan": "pro"}, "seats": null}},
            "included": included,
        })
    }

    /// A file carrying `payload`: a machine file when `machine`, encrypted under
    /// SHA-256(`secret`) when `secret` is given.
    pub fn file(&self, payload: &Value, machine: bool, secret: Option<&str>) -> String {
        let json = serde_json::to_vec(payload).unwrap();
        let (enc, alg) = match secret {
            None => (STANDARD.encode(&json), "base64+ed25519"),
            Some(secret) => (encrypt(&json, secret), "aes-256-gcm+ed25519"),
        };
        let prefix = if machine { "machine/" } else { "license/" };
        let sig = self.signing_key.sign(format!("{prefix}{enc}").as_bytes());
        let envelope = json!({"enc": enc, "sig": STANDARD.encode(sig.to_bytes()), "alg": alg});
        armor(machine, &serde_json::to_vec(&envelope).unwrap())
    }

    /// A license file for `LICENSE_KEY`, or a machine file for `FINGERPRINT`, issued now.
    pub fn issue(&self, machine: bool, encrypt: bool) -> String {
        let fingerprint = machine.then_some(FINGERPRINT);
        let payload = self.payload(Utc::now(), 2_629_746, fingerprint);
        let secret = format!("{LICENSE_KEY}{}", fingerprint.unwrap_or(""));
        self.file(&payload, machine, encrypt.then_some(secret.as_str()))
    }

    /// The value of `Licensed-Signature` for an answer, signed as SPEC §6 says.
    pub fn sign_response(&self, lines: &ResponseLines) -> String {
        let sha = |body: &[u8]| STANDARD.encode(Sha256::digest(body));
        let message = format!(
            "licensed-response-v1\n{} {}\n{}\n{}\n{}\n{}",
            lines.method,
            lines.path,
            lines.nonce,
            lines.date,
            sha(&lines.request_body),
            sha(&lines.response_body)
        );
        let sig = self.signing_key.sign(message.as_bytes());
        format!(
            r#"keyid="{}", algorithm="ed25519", signature="{}""#,
            self.key_id,
            STANDARD.encode(sig.to_bytes())
        )
    }
}

#[derive(Clone)]
pub struct ResponseLines {
    pub method: String,
    pub path: String,
    pub nonce: String,
    pub date: String,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
}

/// `b64(ciphertext).b64(iv).b64(tag)` under SHA-256(`secret`), with a random 12-byte iv.
pub fn encrypt(plaintext: &[u8], secret: &str) -> String {
    let cipher = Aes256Gcm::new(&Sha256::digest(secret.as_bytes()));
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let sealed = cipher.encrypt(Nonce::from_slice(&iv), plaintext).unwrap();
    let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
    format!(
        "{}.{}.{}",
        STANDARD.encode(ciphertext),
        STANDARD.encode(iv),
        STANDARD.encode(tag)
    )
}

/// The envelope in base64, wrapped at 76 characters, between the armor lines.
pub fn armor(machine: bool, envelope: &[u8]) -> String {
    let label = if machine {
        "MACHINE FILE"
    } else {
        "LICENSE FILE"
    };
    let body = STANDARD.encode(envelope);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The envelope JSON inside a file.
pub fn envelope(file: &str) -> Value {
    let body: String = file
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    serde_json::from_slice(&STANDARD.decode(body).unwrap()).unwrap()
}
