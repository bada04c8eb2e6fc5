//! License and machine files: the armor, the `{"enc", "sig", "alg"}` envelope, the
//! signature over `enc`, and its decryption (SPEC §6).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Contents, Error, PublicKey};

/// Whether a file is about a license key, or about one machine (an instance) of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `-----BEGIN LICENSE FILE-----`; signed over `license/` + enc.
    License,
    /// `-----BEGIN MACHINE FILE-----`; signed over `machine/` + enc, encrypted under the
    /// license key and the machine's fingerprint.
    Machine,
}

impl FileKind {
    fn armor_label(self) -> &'static str {
        match self {
            Self::License => "LICENSE FILE",
            Self::Machine => "MACHINE FILE",
        }
    }

    fn signing_prefix(self) -> &'static str {
        match self {
            Self::License => "license/",
            Self::Machine => "machine/",
        }
    }
}

/// How `enc` holds the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `base64+ed25519`: `enc` is the payload in base64.
    Base64Ed25519,
    /// `aes-256-gcm+ed25519`: `enc` is `b64(ciphertext).b64(iv).b64(tag)`.
    Aes256GcmEd25519,
}

impl Algorithm {
    /// The `alg` value that names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base64Ed25519 => "base64+ed25519",
            Self::Aes256GcmEd25519 => "aes-256-gcm+ed25519",
        }
    }

    fn parse(alg: &str) -> Result<Self, Error> {
        match alg {
            "base64+ed25519" => Ok(Self::Base64Ed25519),
            "aes-256-gcm+ed25519" => Ok(Self::Aes256GcmEd25519),
            other => Err(Error::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// A parsed license or machine file, neither verified nor decrypted yet.
///
/// [`verify_license_file`](crate::verify_license_file) does all the steps in one call.
#[derive(Clone, Debug)]
pub struct LicenseFile {
    kind: FileKind,
    algorithm: Algorithm,
    enc: String,
    sig: Vec<u8>,
}

#[derive(Deserialize)]
struct Envelope {
    enc: String,
    sig: String,
    alg: String,
}

impl LicenseFile {
    /// Reads the armor and the envelope. Whitespace (line breaks included) anywhere in the
    /// base64 body, and around the armor, is ignored.
    pub fn parse(text: &str) -> Result<Self, Error> {
        // A file saved by an editor that marks UTF-8 with a byte-order mark is the same file.
        let text = text.trim_start_matches('\u{feff}').trim();
        let (kind, rest) = [FileKind::License, FileKind::Machine]
            .into_iter()
            .find_map(|kind| {
                let begin = format!("-----BEGIN {}-----", kind.armor_label());
                text.strip_prefix(&begin).map(|rest| (kind, rest))
            })
            .ok_or(Error::MalformedArmor)?;
        let body = rest
            .strip_suffix(&format!("-----END {}-----", kind.armor_label()))
            .ok_or(Error::MalformedArmor)?;
        let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let json = STANDARD
            .decode(body)
            .map_err(|_| Error::MalformedBase64 { field: "body" })?;
        let envelope: Envelope = serde_json::from_slice(&json).map_err(Error::MalformedEnvelope)?;
        Ok(Self {
            kind,
            algorithm: Algorithm::parse(&envelope.alg)?,
            sig: STANDARD
                .decode(&envelope.sig)
                .map_err(|_| Error::MalformedBase64 { field: "sig" })?,
            enc: envelope.enc,
        })
    }

    /// License file or machine file, from the armor.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The `alg` of the envelope.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether the payload is encrypted (`aes-256-gcm+ed25519`). An app that only accepts
    /// encrypted files checks this: `alg` itself is not covered by the signature.
    pub fn is_encrypted(&self) -> bool {
        self.algorithm == Algorithm::Aes256GcmEd25519
    }

    /// Checks the Ed25519 signature over `license/` + enc (`machine/` + enc for a machine
    /// file). The prefix comes from the armor, so relabelling a file breaks its signature.
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        let message = format!("{}{}", self.kind.signing_prefix(), self.enc);
        key.verify(message.as_bytes(), &self.sig)
    }

    /// Reads the payload: base64-decodes it, or decrypts it with AES-256-GCM under
    /// SHA-256(license key) — SHA-256(license key + fingerprint) for a machine file.
    ///
    /// This does not check the signature: call [`verify`](Self::verify) first. A plain
    /// (`base64+ed25519`) file needs neither the license key nor the fingerprint here.
    pub fn decrypt(&self, license_key: &str, fingerprint: Option<&str>) -> Result<Contents, Error> {
        let json = match self.algorithm {
            Algorithm::Base64Ed25519 => STANDARD
                .decode(&self.enc)
                .map_err(|_| Error::MalformedEnc("not base64"))?,
            Algorithm::Aes256GcmEd25519 => {
                let secret = match (self.kind, fingerprint) {
                    (FileKind::License, _) => license_key.to_owned(),
                    (FileKind::Machine, Some(fingerprint)) => format!("{license_key}{fingerprint}"),
                    (FileKind::Machine, None) => return Err(Error::FingerprintRequired),
                };
                decrypt_aes_gcm(&self.enc, secret.as_bytes())?
            }
        };
        Contents::from_json(json)
    }
}

/// Opens `b64(ciphertext).b64(iv).b64(tag)` under the AES-256 key SHA-256(`secret`).
fn decrypt_aes_gcm(enc: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
    const SHAPE: &str = "expected base64 ciphertext.iv.tag";
    let parts = enc
        .split('.')
        .map(|part| STANDARD.decode(part))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::MalformedEnc(SHAPE))?;
    let [ciphertext, iv, tag] =
        <[Vec<u8>; 3]>::try_from(parts).map_err(|_| Error::MalformedEnc(SHAPE))?;
    if iv.len() != 12 || tag.len() != 16 {
        return Err(Error::MalformedEnc(
            "expected a 12-byte iv and a 16-byte tag",
        ));
    }
    let cipher = Aes256Gcm::new(&Sha256::digest(secret));
    // The AEAD API takes the tag appended to the ciphertext.
    let sealed = [ciphertext, tag].concat();
    cipher
        .decrypt(Nonce::from_slice(&iv), sealed.as_slice())
        .map_err(|_| Error::DecryptionFailed)
}
