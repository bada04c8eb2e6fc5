//! `nextToken`: an opaque, signed cursor. It carries the filters, the sort and the last
//! row's position, so a page costs the same however deep it is, and a token that was
//! altered is refused instead of silently listing something else.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;

/// Bytes of the HMAC-SHA256 tag kept in a token: enough that forging one is hopeless.
const TAG_LEN: usize = 16;

/// Cloned with the app's state for every request: the key is shared, not copied.
#[derive(Clone)]
pub struct TokenSigner {
    key: Arc<[u8]>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("nextToken is malformed or was altered; use the nextToken of the previous page as given")]
pub struct BadToken;

impl TokenSigner {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(payload);
        mac
    }

    pub fn sign<T: Serialize>(&self, cursor: &T) -> String {
        let mut bytes = serde_json::to_vec(cursor).unwrap_or_default();
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, BadToken> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| BadToken)?;
        if bytes.len() < TAG_LEN {
            return Err(BadToken);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        self.mac(payload)
            .verify_truncated_left(tag)
            .map_err(|_| BadToken)?;
        serde_json::from_slice(payload).map_err(|_| BadToken)
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
        let signer = TokenSigner::new(b"secret".to_vec());
        let token = signer.sign(&Cursor { after: 42 });
        assert_eq!(signer.verify::<Cursor>(&token), Ok(Cursor { after: 42 }));

        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[10] ^= 1;
        assert_eq!(
            signer.verify::<Cursor>(&URL_SAFE_NO_PAD.encode(bytes)),
            Err(BadToken)
        );
        assert_eq!(signer.verify::<Cursor>("not a token!"), Err(BadToken));
        assert_eq!(signer.verify::<Cursor>(""), Err(BadToken));
        let other = TokenSigner::new(b"other".to_vec());
        assert_eq!(other.verify::<Cursor>(&token), Err(BadToken));
    }
}
