//! License and machine files (SPEC §6): a key's terms at one instant, signed by its
//! business's active key, for an app that cannot ask the server. The envelope is
//! Keygen's, so that code written for Keygen's files carries over.

use std::ops::RangeInclusive;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::catalog::{Customer, Instance, LicenseKey, Product};
use super::license::KeyStatus;
use super::signing::SigningKeyPair;
use super::time::Timestamp;
use super::whole_number::whole_number_within;

/// How long a file holds, in seconds: an hour to a year; a month when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTtl(u32);

impl FileTtl {
    pub const MIN_SECONDS: u32 = 3_600;
    pub const MAX_SECONDS: u32 = 31_556_952;
    pub const DEFAULT_SECONDS: u32 = 2_629_746;

    const RANGE: RangeInclusive<u32> = Self::MIN_SECONDS..=Self::MAX_SECONDS;

    pub fn new(seconds: u32) -> Option<Self> {
        Self::RANGE.contains(&seconds).then_some(Self(seconds))
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl Default for FileTtl {
    fn default() -> Self {
        Self(Self::DEFAULT_SECONDS)
    }
}

impl<'de> Deserialize<'de> for FileTtl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number_within(deserializer, Self::RANGE, " seconds").map(Self)
    }
}

impl utoipa::PartialSchema for FileTtl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(Self::MIN_SECONDS))
            .maximum(Some(Self::MAX_SECONDS))
            .default(Some(Self::DEFAULT_SECONDS.into()))
            .description(Some(
                "Seconds the file holds after it is issued (`meta.expiry`), whatever the key's own expiry",
            ))
            .into()
    }
}

impl utoipa::ToSchema for FileTtl {}

/// What a file is issued about: a key with its product and customer, and for a machine
/// file the instance (a live activation of the key, within its seats).
pub struct FileSubject<'a> {
    pub key: &'a LicenseKey,
    pub product: &'a Product,
    pub customer: &'a Customer,
    pub machine: Option<&'a Instance>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Issuing follows validation: no file for a disabled or expired key.
    #[error("the license key is {0}")]
    Inactive(&'static str),
    /// An encrypted machine file is keyed with the machine's fingerprint.
    #[error("an encrypted machine file needs an instance with a fingerprint; this one has none")]
    NoFingerprint,
}

/// Issuing follows validation: a file only for a key active at `now`.
pub fn check_issuable(key: &LicenseKey, now: Timestamp) -> Result<(), FileError> {
    match KeyStatus::of(key.disabled, key.expires_at, now) {
        KeyStatus::Active => Ok(()),
        KeyStatus::Disabled => Err(FileError::Inactive("disabled")),
        KeyStatus::Expired => Err(FileError::Inactive("expired")),
    }
}

/// The armored file: the payload of SPEC §6, optionally encrypted, signed by `signer`.
pub fn issue(
    subject: &FileSubject<'_>,
    signer: &SigningKeyPair,
    issued: Timestamp,
    ttl: FileTtl,
    encrypt: bool,
) -> Result<String, FileError> {
    check_issuable(subject.key, issued)?;
    let payload = payload(subject, &signer.id.to_string(), issued, ttl).to_string();
    let (enc, alg) = if encrypt {
        let mut secret = subject.key.key.clone();
        if let Some(machine) = subject.machine {
            secret.push_str(
                machine
                    .fingerprint
                    .as_deref()
                    .ok_or(FileError::NoFingerprint)?,
            );
        }
        (
            encrypted(payload.as_bytes(), &secret),
            "aes-256-gcm+ed25519",
        )
    } else {
        (STANDARD.encode(payload), "base64+ed25519")
    };
    let (prefix, label) = match subject.machine {
        Some(_) => ("machine/", "MACHINE FILE"),
        None => ("license/", "LICENSE FILE"),
    };
    let sig = signer.sign_base64(format!("{prefix}{enc}").as_bytes());
    let certificate = STANDARD.encode(json!({"enc": enc, "sig": sig, "alg": alg}).to_string());
    Ok(armored(label, &certificate))
}

fn payload(
    subject: &FileSubject<'_>,
    key_id: &str,
    issued: Timestamp,
    ttl: FileTtl,
) -> serde_json::Value {
    let FileSubject {
        key,
        product,
        customer,
        machine,
    } = subject;
    let expiry = issued
        .plus_micros(i64::from(ttl.seconds()) * 1_000_000)
        .unwrap_or(Timestamp::LAST);
    let mut payload = json!({
        "meta": {"issued": issued, "expiry": expiry, "ttl": ttl.seconds(), "key_id": key_id},
        "data": {
            "type": "licenses",
            "id": key.id,
            "attributes": {
                "key": key.key,
                "status": "active",
                "expiry": key.expires_at,
                "maxMachines": key.activations_limit,
                "product": {"id": product.id, "name": product.name},
                "customer": {"id": customer.id, "email": customer.email, "name": customer.name},
                // What the vendor attached to what was sold: features, a tier.
                "metadata": product.metadata,
                "seats": key.seats,
            },
        },
        "included": [],
    });
    if let Some(machine) = machine {
        payload["included"] = json!([{
            "type": "machines",
            "id": machine.id,
            "attributes": {"name": machine.name, "fingerprint": machine.fingerprint},
        }]);
    }
    payload
}

/// `b64(ciphertext).b64(iv).b64(tag)` under AES-256-GCM keyed with SHA-256 of `secret`.
fn encrypted(plaintext: &[u8], secret: &str) -> String {
    let cipher = Aes256Gcm::new(&Sha256::digest(secret.as_bytes()));
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let mut ciphertext = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&iv), b"", &mut ciphertext)
        .expect("AES-GCM encrypts any payload under 64 GiB");
    format!(
        "{}.{}.{}",
        STANDARD.encode(ciphertext),
        STANDARD.encode(iv),
        STANDARD.encode(tag)
    )
}

/// The armor lines around the certificate, wrapped at 76 characters.
fn armored(label: &str, certificate: &str) -> String {
    let mut text = format!("-----BEGIN {label}-----\n");
    // Base64 is ASCII, so every chunk is whole characters.
    for line in certificate.as_bytes().chunks(76) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}
