//! Signing keys: each business's Ed25519 key pair, which signs the answers and license
//! files an app verifies with the public key compiled into it; and the master key that
//! seals the private halves at rest.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use rand::rngs::OsRng;

use super::ids::{BusinessId, SigningKeyId};
use super::time::Timestamp;

/// A business's signing key, its private half usable. Never serialized, never printed:
/// `Debug` shows the public half only.
#[derive(Clone)]
pub struct SigningKeyPair {
    pub id: SigningKeyId,
    pub business_id: BusinessId,
    pub key: SigningKey,
    pub active: bool,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("id", &self.id)
            .field("public_key", &self.public().hex)
            .finish_non_exhaustive()
    }
}

impl SigningKeyPair {
    /// A new key pair from the operating system's CSPRNG.
    pub fn generate(business_id: BusinessId, now: Timestamp) -> Self {
        Self {
            id: SigningKeyId::generate(),
            business_id,
            key: SigningKey::generate(&mut OsRng),
            active: true,
            created_at: now,
        }
    }

    pub fn public(&self) -> PublicKeyInfo {
        PublicKeyInfo::new(
            self.id.clone(),
            self.key.verifying_key(),
            self.active,
            self.created_at,
        )
    }

    /// The standard base64 of the Ed25519 signature of `message`.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        STANDARD.encode(self.key.sign(message).to_bytes())
    }
}

/// What anyone may know of a signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    pub id: SigningKeyId,
    pub hex: String,
    pub pem: String,
    pub active: bool,
    pub created_at: Timestamp,
}

impl PublicKeyInfo {
    pub fn new(id: SigningKeyId, key: VerifyingKey, active: bool, created_at: Timestamp) -> Self {
        let hex = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        // An Ed25519 key always encodes; the empty fallback is never reached.
        let pem = key.to_public_key_pem(LineEnding::LF).unwrap_or_default();
        Self {
            id,
            hex,
            pem,
            active,
            created_at,
        }
    }
}

/// The 32-byte key that seals private keys and webhook secrets at rest (`LICENSED_MASTER_KEY`, base64).
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("LICENSED_MASTER_KEY must be 32 bytes in standard base64 (44 characters)")]
    Malformed,
    #[error(
        "LICENSED_MASTER_KEY does not open the signing keys and webhook secrets stored in this database: it is not the key they were sealed with"
    )]
    Wrong,
    #[error(
        "the signing keys and webhook secrets in this database are sealed: set LICENSED_MASTER_KEY to the key they were sealed with"
    )]
    Missing,
    #[error(
        "LICENSED_MASTER_KEY is set, but the signing keys and webhook secrets in this database are stored in clear: start `serve` with it to seal them first, or run this command without it"
    )]
    NotSealedYet,
}

/// How a private key is stored: 0x00 then the 32 bytes in clear, or 0x01, a 12-byte nonce,
/// then the AES-256-GCM ciphertext with its tag.
const CLEAR: u8 = 0;
const SEALED: u8 = 1;

impl MasterKey {
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self(Aes256Gcm::new(&key.into())))
    }
}

/// A 32-byte secret as stored, sealed when there is a master key: a signing key's private
/// half, a webhook endpoint's secret.
pub fn seal(secret: &[u8; 32], master: Option<&MasterKey>) -> Vec<u8> {
    match master {
        None => [&[CLEAR][..], secret].concat(),
        Some(master) => {
            let mut nonce = [0u8; 12];
            OsRng.fill_bytes(&mut nonce);
            // Encrypting 32 bytes under a valid key cannot fail.
            let sealed = master
                .0
                .encrypt(Nonce::from_slice(&nonce), &secret[..])
                .unwrap_or_default();
            [&[SEALED][..], &nonce, &sealed].concat()
        }
    }
}

/// A secret [`seal`] stored, opened with the master key if it is sealed.
pub fn open(stored: &[u8], master: Option<&MasterKey>) -> Result<[u8; 32], MasterKeyError> {
    let secret: Vec<u8> = match stored.split_first() {
        Some((&CLEAR, secret)) => secret.to_vec(),
        Some((&SEALED, rest)) if rest.len() > 12 => {
            let master = master.ok_or(MasterKeyError::Missing)?;
            let (nonce, sealed) = rest.split_at(12);
            master
                .0
                .decrypt(Nonce::from_slice(nonce), sealed)
                .map_err(|_| MasterKeyError::Wrong)?
        }
        _ => return Err(MasterKeyError::Wrong),
    };
    secret.try_into().map_err(|_| MasterKeyError::Wrong)
}

/// A private key as stored, sealed when there is a master key.
pub fn stored_private_key(key: &SigningKey, master: Option<&MasterKey>) -> Vec<u8> {
    seal(&key.to_bytes(), master)
}

/// Whether a stored private key is sealed.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.first() == Some(&SEALED)
}

/// A stored private key, opened with the master key if it is sealed.
pub fn open_private_key(
    stored: &[u8],
    master: Option<&MasterKey>,
) -> Result<SigningKey, MasterKeyError> {
    Ok(SigningKey::from_bytes(&open(stored, master)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    fn master() -> MasterKey {
        MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn a_private_key_round_trips_in_clear_and_sealed() {
        let key = SigningKey::generate(&mut OsRng);
        let clear = stored_private_key(&key, None);
        assert!(!is_sealed(&clear));
        assert_eq!(
            open_private_key(&clear, None).unwrap().to_bytes(),
            key.to_bytes()
        );
        let sealed = stored_private_key(&key, Some(&master()));
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(32).any(|w| w == key.to_bytes()));
        assert_eq!(
            open_private_key(&sealed, Some(&master()))
                .unwrap()
                .to_bytes(),
            key.to_bytes()
        );
    }

    #[test]
    fn a_sealed_key_needs_the_master_key_it_was_sealed_with() {
        let key = SigningKey::generate(&mut OsRng);
        let sealed = stored_private_key(&key, Some(&master()));
        let other = MasterKey::parse(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(
            open_private_key(&sealed, Some(&other)).err(),
            Some(MasterKeyError::Wrong)
        );
        assert_eq!(
            open_private_key(&sealed, None).err(),
            Some(MasterKeyError::Missing)
        );
    }

    #[test]
    fn master_keys_are_32_bytes_of_base64() {
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 32])).is_ok());
        assert_eq!(
            MasterKey::parse(&STANDARD.encode([1u8; 31])).err(),
            Some(MasterKeyError::Malformed)
        );
        assert_eq!(
            MasterKey::parse("not base64!").err(),
            Some(MasterKeyError::Malformed)
        );
    }

    #[test]
    fn the_public_half_verifies_what_the_pair_signs_and_debug_hides_the_secret() {
        let pair = SigningKeyPair::generate("bus_1".into(), Timestamp::now());
        let signature = STANDARD.decode(pair.sign_base64(b"hello")).unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
        assert!(
            pair.key
                .verifying_key()
                .verify(b"hello", &signature)
                .is_ok()
        );
        let public = pair.public();
        assert_eq!(public.hex.len(), 64);
        assert!(public.pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let shown = format!("{pair:?}");
        let secret_hex: String = pair
            .key
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&secret_hex));
    }
}
