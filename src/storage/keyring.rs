//! The signing keys as the server uses them: one active key for every business, private
//! halves sealed under the master key when there is one, opened only to sign. Webhook
//! secrets are sealed under the same master key, and checked and sealed at start with them.

use ed25519_dalek::VerifyingKey;

use super::error::StorageError;
use super::store::{Store, StoredSigningKey};
use crate::domain::ids::BusinessId;
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

/// Before serving, and before a `signing-key` command: checks that the master key (or its
/// absence) opens every stored private key and webhook secret, seals those stored in clear
/// when there is a master key now, and gives every business without one a signing key. A
/// wrong or missing master key is an error naming it, raised before anything is written:
/// a key made or sealed under it would be one no server could open.
pub async fn prepare(store: &dyn Store, master: Option<&MasterKey>) -> Result<(), KeyringError> {
    let keys = store.signing_keys(None).await?;
    let secrets = store.webhook_secrets().await?;
    let opened_keys = (keys.iter())
        .map(|stored| open_private_key(&stored.private_key, master))
        .collect::<Result<Vec<_>, _>>()?;
    let opened_secrets = (secrets.iter())
        .map(|(_, stored)| open(stored, master))
        .collect::<Result<Vec<_>, _>>()?;
    if master.is_some() {
        for (stored, key) in keys.iter().zip(&opened_keys) {
            if !is_sealed(&stored.private_key) {
                (store.reseal_signing_key(&stored.id, &stored_private_key(key, master))).await?;
            }
        }
        for ((id, stored), secret) in secrets.iter().zip(&opened_secrets) {
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
/// master key must have been checked by [`prepare`].
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
