//! The signing keys as the server uses them: one active key for every business, private
//! halves sealed under the master key when there is one, opened only to sign. Webhook
//! secrets are sealed under the same master key, and checked and sealed at start with them.

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::error::StorageError;
use super::store::{Store, StoredSigningKey};
use crate::domain::ids::{BusinessId, WebhookId};
use crate::domain::signing::{
    MasterKey, MasterKeyError, PublicKeyInfo, SigningKeyPair, is_sealed, open, open_private_key,
    seal, stored_private_key,
};
use crate::domain::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
}

/// Every stored private key and webhook secret, opened: a wrong or missing master key is
/// an error naming it.
struct Opened {
    keys: Vec<(StoredSigningKey, SigningKey)>,
    secrets: Vec<(WebhookId, Vec<u8>, [u8; 32])>,
}

impl Opened {
    async fn read(store: &dyn Store, master: Option<&MasterKey>) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        for stored in store.signing_keys(None).await? {
            let key = open_private_key(&stored.private_key, master)?;
            keys.push((stored, key));
        }
        let mut secrets = Vec::new();
        for (id, stored) in store.webhook_secrets().await? {
            let secret = open(&stored, master)?;
            secrets.push((id, stored, secret));
        }
        Ok(Self { keys, secrets })
    }

    fn any_in_clear(&self) -> bool {
        let keys = self.keys.iter().map(|(stored, _)| &stored.private_key);
        let secrets = self.secrets.iter().map(|(_, stored, _)| stored);
        keys.chain(secrets).any(|stored| !is_sealed(stored))
    }
}

/// Before serving: checks that the master key (or its absence) opens every stored private
/// key and webhook secret, seals those stored in clear when there is a master key now, and
/// gives every business without one a signing key. A wrong or missing master key is an
/// error naming it, raised before anything is written.
pub async fn prepare(store: &dyn Store, master: Option<&MasterKey>) -> Result<(), KeyringError> {
    let opened = Opened::read(store, master).await?;
    if master.is_some() {
        for (stored, key) in &opened.keys {
            if !is_sealed(&stored.private_key) {
                (store.reseal_signing_key(&stored.id, &stored_private_key(key, master))).await?;
            }
        }
        for (id, stored, secret) in &opened.secrets {
            if !is_sealed(stored) {
                store
                    .reseal_webhook_secret(id, &seal(secret, master))
                    .await?;
            }
        }
    }
    for business in store.businesses_without_signing_key().await? {
        add(store, &business, master, true).await?;
    }
    Ok(())
}

/// Before a `signing-key` command, which may make a key: checks that the master key (or
/// its absence) opens every stored key and secret and, given one, that they are sealed. A
/// command never changes how keys are stored, which is `serve`'s to do: a key made under
/// a wrong master key, or sealed under a server that runs without one, could not be opened.
pub async fn check(store: &dyn Store, master: Option<&MasterKey>) -> Result<(), KeyringError> {
    let opened = Opened::read(store, master).await?;
    if master.is_some() && opened.any_in_clear() {
        return Err(MasterKeyError::NotSealedYet.into());
    }
    Ok(())
}

/// The business's active key, ready to sign; made first if the business has none (a
/// business created after the server started).
pub async fn active(
    store: &dyn Store,
    business: &BusinessId,
    master: Option<&MasterKey>,
) -> Result<SigningKeyPair, KeyringError> {
    loop {
        let keys = store.signing_keys(Some(business)).await?;
        if let Some(stored) = keys.into_iter().find(|k| k.active) {
            return Ok(SigningKeyPair {
                key: open_private_key(&stored.private_key, master)?,
                id: stored.id,
                business_id: stored.business_id,
                active: true,
                created_at: stored.created_at,
            });
        }
        // Another caller may make it first: then read again.
        add(store, business, master, true).await?;
    }
}

/// The public halves of the business's keys, oldest first; makes its first if it has none.
pub async fn public_keys(
    store: &dyn Store,
    business: &BusinessId,
    master: Option<&MasterKey>,
) -> Result<Vec<PublicKeyInfo>, KeyringError> {
    let mut keys = store.signing_keys(Some(business)).await?;
    if keys.is_empty() {
        active(store, business, master).await?;
        keys = store.signing_keys(Some(business)).await?;
    }
    keys.into_iter().map(public_info).collect()
}

/// Makes a new key the business's active one; the old ones stay listed, inactive. The
/// master key must have been checked by [`check`] (or [`prepare`]).
pub async fn rotate(
    store: &dyn Store,
    business: &BusinessId,
    master: Option<&MasterKey>,
) -> Result<PublicKeyInfo, KeyringError> {
    let pair = add(store, business, master, false).await?;
    Ok(pair.public())
}

async fn add(
    store: &dyn Store,
    business: &BusinessId,
    master: Option<&MasterKey>,
    only_if_none: bool,
) -> Result<SigningKeyPair, KeyringError> {
    let pair = SigningKeyPair::generate(business.clone(), Timestamp::now());
    let stored = StoredSigningKey {
        id: pair.id.clone(),
        business_id: business.clone(),
        public_key: pair.key.verifying_key().as_bytes().to_vec(),
        private_key: stored_private_key(&pair.key, master),
        active: true,
        created_at: pair.created_at,
    };
    store.add_signing_key(&stored, only_if_none).await?;
    Ok(pair)
}

fn public_info(stored: StoredSigningKey) -> Result<PublicKeyInfo, KeyringError> {
    let bytes: [u8; 32] = stored
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| StorageError::Internal("a stored public key is not 32 bytes".into()))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
        StorageError::Internal("a stored public key is not an Ed25519 point".into())
    })?;
    Ok(PublicKeyInfo::new(
        stored.id,
        key,
        stored.active,
        stored.created_at,
    ))
}
