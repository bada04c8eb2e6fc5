//! The console's sessions: a random token in an `HttpOnly` cookie names a record the
//! server keeps (so every process sharing the database knows it), which holds the digest
//! of the API key it was opened with — never the key — and the token its forms carry
//! against cross-site requests.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::KeyDigest;
use super::time::Timestamp;

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT_MICROS: i64 = 12 * 3600 * 1_000_000;
/// A session's last use is written at most this often: not on every page.
pub const TOUCH_EVERY_MICROS: i64 = 60 * 1_000_000;

/// 32 random bytes, URL-safe base64: a session cookie's value or a form's CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` has the shape of a [`random_token`]: 32 bytes in URL-safe base64.
pub fn is_token(text: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(text)
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// What the database keeps of a session token: its SHA-256, so a copy of the database
/// opens no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionDigest(pub [u8; 32]);

impl SessionDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub digest: SessionDigest,
    /// The API key signed in with: its permissions, and its revocation, apply.
    pub api_key: KeyDigest,
    /// Every form of the session carries it.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

impl ConsoleSession {
    pub fn open(api_key: KeyDigest, token: &str, now: Timestamp) -> Self {
        Self {
            digest: SessionDigest::of(token),
            api_key,
            csrf_token: random_token(),
            created_at: now,
            last_seen_at: now,
        }
    }

    /// Whether a form's token is this session's (compared in constant time).
    pub fn allows(&self, csrf_token: &str) -> bool {
        tokens_match(&self.csrf_token, csrf_token)
    }
}

/// What the overview page shows of a business.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overview {
    pub customers: u64,
    pub keys_active: u64,
    pub keys_expired: u64,
    pub keys_disabled: u64,
    /// Instances created in the last 24 hours, those since deleted included.
    pub activations_last_day: u64,
    /// Distinct (account, license) pairs in the ledger.
    pub ledger_pairs: u64,
}

/// Constant-time equality of two tokens.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The instant before which a session last used is over.
pub fn idle_since(now: Timestamp) -> Timestamp {
    now.plus_micros(-IDLE_TIMEOUT_MICROS).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_digests_and_allows_only_its_own_form_token() {
        let token = random_token();
        assert_eq!(token.len(), 43);
        assert_ne!(token, random_token());
        let now = Timestamp::now();
        let session = ConsoleSession::open(KeyDigest::of("lsk_x"), &token, now);
        assert_eq!(session.digest, SessionDigest::of(&token));
        assert_ne!(session.digest.0.to_vec(), token.as_bytes().to_vec());
        assert!(session.allows(&session.csrf_token.clone()));
        assert!(!session.allows(""));
        assert!(!session.allows(&random_token()));
        assert_eq!(idle_since(now).micros(), now.micros() - IDLE_TIMEOUT_MICROS);
    }
}
