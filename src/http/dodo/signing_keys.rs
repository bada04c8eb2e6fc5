//! `/signing_keys`: the public halves of the business's Ed25519 keys, which an app
//! compiles in to verify signed answers and license files.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::listing::Items;
use crate::domain::signing::PublicKeyInfo;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, ReadErrors};
use crate::http::extract::{NoQuery, Reader};
use crate::http::state::AppState;
use crate::storage::keyring::{self, KeyringError};

#[derive(Serialize, ToSchema)]
pub struct SigningKeyView {
    /// `sk_…`, as signatures and license files name it.
    key_id: String,
    /// Always `ed25519`.
    algorithm: &'static str,
    /// The 32-byte public key in hex.
    public_key_hex: String,
    /// The same key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    public_key_pem: String,
    /// Whether this key signs now; older keys stay listed so that what they signed
    /// still verifies.
    active: bool,
    created_at: Timestamp,
}

impl From<PublicKeyInfo> for SigningKeyView {
    fn from(key: PublicKeyInfo) -> Self {
        Self {
            key_id: key.id.into_string(),
            algorithm: "ed25519",
            public_key_hex: key.hex,
            public_key_pem: key.pem,
            active: key.active,
            created_at: key.created_at,
        }
    }
}

impl From<KeyringError> for ApiError {
    fn from(error: KeyringError) -> Self {
        match error {
            KeyringError::Storage(error) => error.into(),
            // The server checked the master key at start: a key it cannot open now is a
            // fault of the server, and says nothing of the key.
            KeyringError::MasterKey(_) => {
                ApiError::Internal("a signing key could not be opened".into())
            }
        }
    }
}

/// The business's signing keys (public halves only), oldest first.
#[utoipa::path(get, path = "/signing_keys", tag = "Signing keys",
    responses(
        (status = 200, description = "The keys", body = Items<SigningKeyView>),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_signing_keys(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: NoQuery,
) -> Result<Json<Items<SigningKeyView>>, ApiError> {
    let keys = keyring::public_keys(
        state.store.as_ref(),
        &caller.business_id,
        state.master_key.as_ref(),
    )
    .await?;
    Ok(Json(Items {
        items: keys.into_iter().map(SigningKeyView::from).collect(),
    }))
}
