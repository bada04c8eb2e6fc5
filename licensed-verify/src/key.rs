//! The Ed25519 public key a business signs with, as `licensed signing-key show` prints it.

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::Error;

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

    /// The key from an SPKI PEM (`-----BEGIN PUBLIC KEY-----`, `public_key_pem`).
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|_| Error::InvalidPublicKey("not an Ed25519 PUBLIC KEY PEM"))?;
        Ok(Self { key, key_id: None })
    }

    /// The key from either form: PEM when the text holds a `-----BEGIN PUBLIC KEY-----`
    /// block (lines before it, such as the id and hex that `licensed signing-key show`
    /// prints first, are skipped), hex otherwise.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if let Some(start) = text.find("-----BEGIN PUBLIC KEY-----") {
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
