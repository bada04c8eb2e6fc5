//! The Ed25519 public key a business signs with, as `licensed signing-key show` prints it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::Error;

const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const END: &str = "-----END PUBLIC KEY-----";

/// A business's Ed25519 public key, optionally bound to its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: Option<String>,
}

impl PublicKey {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| Error::InvalidPublicKey("not an Ed25519 point"))?;
        Ok(Self { key, key_id: None })
    }

    /// The key from 64 hex digits (`public_key_hex`); surrounding whitespace is ignored.
    pub fn from_hex(hex: &str) -> Result<Self, Error> {
        let hex = hex.trim();
        let invalid = Error::InvalidPublicKey("expected 64 hex digits");
        if hex.len() != 64 {
            return Err(invalid);
        }
        let digit = |b: u8| char::from(b).to_digit(16);
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            match (digit(pair[0]), digit(pair[1])) {
                // Two digits below 16 fit a byte.
                (Some(high), Some(low)) => *byte = (high * 16 + low) as u8,
                _ => return Err(invalid),
            }
        }
        Self::from_bytes(&bytes)
    }

    /// The key from an SPKI PEM (`-----BEGIN PUBLIC KEY-----`, `public_key_pem`). The
    /// block may be indented (pasted into an indented string literal), wrapped at any
    /// width or not at all, and followed by other text.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let mut lines = pem
            .lines()
            .map(str::trim)
            .skip_while(|line| line.is_empty());
        if lines.next() != Some(BEGIN) {
            return Err(Error::InvalidPublicKey(
                "no -----BEGIN PUBLIC KEY----- line",
            ));
        }
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(END) => break,
                Some(line) => body.extend(line.split_whitespace()),
                None => return Err(Error::InvalidPublicKey("no -----END PUBLIC KEY----- line")),
            }
        }
        let der = STANDARD
            .decode(body)
            .map_err(|_| Error::InvalidPublicKey("the PEM's lines are not base64"))?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|_| Error::InvalidPublicKey("the PEM holds no Ed25519 public key"))?;
        Ok(Self { key, key_id: None })
    }

    /// The key from either form: PEM when the text holds a `-----BEGIN PUBLIC KEY-----`
    /// block (lines before it, such as the id and hex that `licensed signing-key show`
    /// prints first, are skipped), hex otherwise.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if let Some(start) = text.find(BEGIN) {
            Self::from_pem(&text[start..])
        } else if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pem(text)
        } else {
            Self::from_hex(text)
        }
    }

    /// Binds the key to its id (`key_id` in `GET /signing_keys`): from then on a file or
    /// response that names another key id fails with [`Error::WrongKeyId`], a hint that
    /// the key may have been rotated (see there).
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// The key id given with [`with_key_id`](Self::with_key_id), if any.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The 32 raw bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Checks an Ed25519 signature over `message`. Strict verification: a signature that
    /// some implementations would also accept (non-canonical, weak key) is refused.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        let signature = Signature::from_slice(signature).map_err(|_| Error::BadSignature)?;
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| Error::BadSignature)
    }

    /// Checks that the signed data names the key id this key was bound to, if any.
    pub(crate) fn check_key_id(&self, found: &str) -> Result<(), Error> {
        match &self.key_id {
            Some(expected) if expected != found => Err(Error::WrongKeyId {
                expected: expected.clone(),
                found: found.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
