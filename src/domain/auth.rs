//! API keys and who may call what. Keys are generated with a CSPRNG, shown once, and
//! stored only as a SHA-256 digest: a digest without a salt is enough because the keys
//! carry 256 random bits, so there is no dictionary to attack. The rule of what a key
//! allows ([`admit`]) is here, and every backend and extractor applies it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::ids::{ApiKeyId, BusinessId};
use super::time::Timestamp;

const PREFIX: &str = "lsk_";

/// A secret API key as given to its holder.
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A key chosen by the operator (`LICENSED_BOOTSTRAP_API_KEY`).
    pub fn given(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }
}

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecret(…)")
    }
}

/// The stored form of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }

    /// Constant-time comparison, so response timing says nothing about how close a guess was.
    pub fn matches(&self, stored: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        stored.len() == self.0.len() && bool::from(self.0.ct_eq(stored))
    }
}

/// What a call needs its API key to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why an API key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No API key has that digest.
    #[error("unknown API key")]
    UnknownKey,
    /// The API key may only read.
    #[error("the API key is read-only")]
    ReadOnly,
}

/// The principal of an API key, if the key exists and allows `access`.
pub fn admit(principal: Option<Principal>, access: Access) -> Result<Principal, Refusal> {
    admit_key(principal.as_ref().map(|p| p.read_only), access)?;
    principal.ok_or(Refusal::UnknownKey)
}

/// Whether an API key allows `access`, given whether it is read-only (`None`: no such
/// key); for a call that needs nothing else of the key's principal.
pub fn admit_key(read_only: Option<bool>, access: Access) -> Result<(), Refusal> {
    match read_only {
        None => Err(Refusal::UnknownKey),
        Some(true) if access == Access::Write => Err(Refusal::ReadOnly),
        Some(_) => Ok(()),
    }
}

/// Who a store operation acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A business whose API key has been checked.
    Business(BusinessId),
    /// An API key not yet checked, and what the call needs it to allow. The store checks
    /// it by [`admit`]'s rule with the operation itself, which saves the round trip a
    /// check of its own would take (where it can: PostgreSQL checks the key of a write
    /// that carries an idempotency key in a round trip first).
    Key(KeyDigest, Access),
}

/// Who is calling: the business an API key belongs to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub business_id: BusinessId,
    /// The business's default brand, reported on its license keys and products.
    pub brand_id: String,
    pub read_only: bool,
}

/// What an operator sees of an API key: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    pub business: String,
    pub read_only: bool,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_match_only_their_digest() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX));
        assert!(a.digest().matches(&KeyDigest::of(a.expose()).0));
        assert!(!a.digest().matches(&b.digest().0));
        assert!(!a.digest().matches(&[0u8; 31]));
        assert_eq!(format!("{a:?}"), "ApiKeySecret(…)");
    }

    #[test]
    fn a_key_is_admitted_only_to_what_it_allows() {
        let principal = |read_only| Principal {
            business_id: BusinessId::from("bus_1"),
            brand_id: "brnd_1".into(),
            read_only,
        };
        assert_eq!(admit(None, Access::Read), Err(Refusal::UnknownKey));
        assert_eq!(
            admit(Some(principal(true)), Access::Write),
            Err(Refusal::ReadOnly)
        );
        assert_eq!(
            admit(Some(principal(true)), Access::Read),
            Ok(principal(true))
        );
        assert_eq!(
            admit(Some(principal(false)), Access::Write),
            Ok(principal(false))
        );
        assert_eq!(admit_key(None, Access::Write), Err(Refusal::UnknownKey));
    }
}
