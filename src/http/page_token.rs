//! `nextToken`: an opaque, sealed cursor. It carries the filters, the sort and the last
//! row's position, so a page costs the same however deep it is. Sealed with AES-256-GCM,
//! not only signed: a token that was altered is refused instead of silently listing
//! something else, and the position it holds (a sequence all businesses share) tells a
//! business nothing of how much the others write.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Cloned with the app's state for every request: the cipher is shared, not copied.
#[derive(Clone)]
pub struct TokenSealer {
    cipher: Arc<Aes256Gcm>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("nextToken is malformed or was altered; use the nextToken of the previous page as given")]
pub struct BadToken;

impl TokenSealer {
    /// A sealer under a key derived from the database's token secret, which every process
    /// sharing the database reads: a token one made, another opens.
    pub fn new(secret: &[u8]) -> Self {
        let key = Sha256::digest(secret);
        Self {
            cipher: Arc::new(Aes256Gcm::new(&key)),
        }
    }

    pub fn seal<T: Serialize>(&self, cursor: &T) -> String {
        let plain = serde_json::to_vec(cursor).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encrypting under a valid key cannot fail.
        let sealed = (self.cipher)
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .unwrap_or_default();
        URL_SAFE_NO_PAD.encode([&nonce[..], &sealed].concat())
    }

    pub fn open<T: DeserializeOwned>(&self, token: &str) -> Result<T, BadToken> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| BadToken)?;
        if bytes.len() < NONCE_LEN {
            return Err(BadToken);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = (self.cipher)
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| BadToken)?;
        serde_json::from_slice(&plain).map_err(|_| BadToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Cursor {
        after: i64,
    }

    #[test]
    fn round_trips_and_refuses_any_change() {
        let sealer = TokenSealer::new(b"secret");
        let token = sealer.seal(&Cursor { after: 42 });
        assert_eq!(sealer.open::<Cursor>(&token), Ok(Cursor { after: 42 }));

        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[14] ^= 1;
        assert_eq!(
            sealer.open::<Cursor>(&URL_SAFE_NO_PAD.encode(bytes)),
            Err(BadToken)
        );
        assert_eq!(sealer.open::<Cursor>("not a token!"), Err(BadToken));
        assert_eq!(sealer.open::<Cursor>(""), Err(BadToken));
        let other = TokenSealer::new(b"other");
        assert_eq!(other.open::<Cursor>(&token), Err(BadToken));
    }

    #[test]
    fn the_cursor_cannot_be_read_from_the_token() {
        let sealer = TokenSealer::new(b"secret");
        let token = sealer.seal(&Cursor { after: 123_456_789 });
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("123456789"), "{text}");
        assert!(!text.contains("after"), "{text}");
        // Two tokens of one cursor differ: equal positions cannot be told apart either.
        assert_ne!(token, sealer.seal(&Cursor { after: 123_456_789 }));
    }
}
