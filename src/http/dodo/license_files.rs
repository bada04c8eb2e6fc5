//! License and machine files (SPEC §6): a key's terms signed by its business's active
//! key, for an app that checks them offline. Issued over the API for a key id, or by an
//! app with its key on the public route; both refuse what validation refuses.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::public::{PublicCaller, SignedAnswer};
use crate::domain::catalog::{Instance, LicenseKey};
use crate::domain::ids::{InstanceId, KeyString, LicenseKeyId, ResourceId};
use crate::domain::license_file::{self, FileError, FileSubject, FileTtl};
use crate::domain::time::Timestamp;
use crate::http::dodo::public::on_key;
use crate::http::error::{ApiError, ErrorBody, PublicErrors, WriteErrors};
use crate::http::extract::{JsonBody, NoQuery, PathParam, Writer};
use crate::http::state::AppState;

/// The media type of an armored file.
const PEM: &str = "application/x-pem-file";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueFile {
    /// Names an instance of the key: the answer is a machine file for it.
    #[serde(default)]
    license_key_instance_id: Option<ResourceId>,
    #[serde(default)]
    #[schema(value_type = Option<FileTtl>)]
    ttl: Option<FileTtl>,
    /// Encrypts the payload with AES-256-GCM under SHA-256 of the license key (for a
    /// machine file, of the key followed by the instance's fingerprint).
    #[serde(default)]
    encrypt: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueFileWithKey {
    license_key: KeyString,
    /// Names an instance of the key: the answer is a machine file for it.
    #[serde(default)]
    license_key_instance_id: Option<ResourceId>,
    #[serde(default)]
    #[schema(value_type = Option<FileTtl>)]
    ttl: Option<FileTtl>,
    /// Encrypts the payload with AES-256-GCM under SHA-256 of the license key (for a
    /// machine file, of the key followed by the instance's fingerprint).
    #[serde(default)]
    encrypt: bool,
}

/// A license file for a key of this business, or a machine file for one of its
/// instances: the key's terms now, signed by the business's active signing key.
#[utoipa::path(post, path = "/license_keys/{id}/license_file", tag = "License keys",
    params(("id" = String, Path, description = "`lic_…`")),
    request_body = IssueFile,
    responses(
        (status = 200, description = "The armored file (`-----BEGIN LICENSE FILE-----`, or `MACHINE FILE` for an instance)", content_type = "application/x-pem-file", body = String),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 403, description = "INACTIVE_LICENSE_KEY: disabled or expired", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND: no such key in this business, or the instance is not a live activation of it", body = ErrorBody),
        (status = 422, description = "INSTANCE_WITHOUT_FINGERPRINT: an encrypted machine file for an instance without a fingerprint; LICENSE_KEY_LIMIT_REACHED: the instance is beyond the key's seats", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn issue_license_file(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<LicenseKeyId>,
    JsonBody(request): JsonBody<IssueFile>,
) -> Result<Response, ApiError> {
    let key = state
        .store
        .license_key(&caller.business_id, &id)
        .await?
        .ok_or(ApiError::LicenseKeyNotFound)?;
    let instance = request.license_key_instance_id;
    issue(&state, key, instance, request.ttl, request.encrypt).await
}

/// The app's own license file, or its machine's: what `/licenses/validate` would accept,
/// signed, for a machine that cannot ask again.
#[utoipa::path(post, path = "/licenses/license_file", tag = "Licenses (public)",
    params(SignedAnswer), request_body = IssueFileWithKey,
    responses(
        (status = 200, description = "The armored file (`-----BEGIN LICENSE FILE-----`, or `MACHINE FILE` for an instance)", content_type = "application/x-pem-file", body = String),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 403, description = "INACTIVE_LICENSE_KEY: disabled or expired", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND: no such key, or the instance is not a live activation of it", body = ErrorBody),
        (status = 422, description = "INSTANCE_WITHOUT_FINGERPRINT: an encrypted machine file for an instance without a fingerprint; LICENSE_KEY_LIMIT_REACHED: the instance is beyond the key's seats", body = ErrorBody),
        PublicErrors,
    ))]
pub async fn issue_own_license_file(
    State(state): State<AppState>,
    _: PublicCaller,
    JsonBody(request): JsonBody<IssueFileWithKey>,
) -> Result<Response, ApiError> {
    let store = &state.store;
    let key = on_key(&state, &request.license_key, |key| async move {
        (store.license_key_with_key(&key).await?).ok_or(ApiError::LicenseKeyNotFound)
    })
    .await?;
    let instance = request.license_key_instance_id;
    issue(&state, key, instance, request.ttl, request.encrypt).await
}

/// The file of `key` (or of its instance), as both routes and the console issue it.
pub(crate) async fn issue(
    state: &AppState,
    key: LicenseKey,
    instance: Option<ResourceId>,
    ttl: Option<FileTtl>,
    encrypt: bool,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    // The key's own state first: a disabled key's file is refused whatever the instance.
    license_file::check_issuable(&key, now)?;
    let machine = match instance {
        Some(id) => Some(current_instance(state, &key, InstanceId::from(id.into_string())).await?),
        None => None,
    };
    let store = state.store.as_ref();
    let (product, customer) = (
        store.product(&key.business_id, &key.product_id).await?,
        store.customer(&key.business_id, &key.customer_id).await?,
    );
    let (Some(product), Some(customer)) = (product, customer) else {
        return Err(ApiError::Internal(format!(
            "the product or customer of key {} is missing",
            key.id
        )));
    };
    let signer = state.signers.active(state, &key.business_id).await?;
    let subject = FileSubject {
        key: &key,
        product: &product,
        customer: &customer,
        machine: machine.as_ref(),
    };
    let file = license_file::issue(&subject, &signer, now, ttl.unwrap_or_default(), encrypt)?;
    Ok(([(CONTENT_TYPE, PEM)], file).into_response())
}

/// The key's instance with that id, if validation would accept it: live, and within the
/// key's seats.
async fn current_instance(
    state: &AppState,
    key: &LicenseKey,
    id: InstanceId,
) -> Result<Instance, ApiError> {
    let instance = (state.store.instance(&key.business_id, &id).await?)
        .filter(|instance| instance.license_key_id == key.id)
        .ok_or(ApiError::LicenseKeyInstanceNotFound)?;
    let key_string = KeyString::parse(&key.key).map_err(|_| ApiError::LicenseKeyNotFound)?;
    let validity = state.store.key_validity(&key_string, Some(&id)).await?;
    match validity {
        Some(validity) if validity.has_instance => Ok(instance),
        // Live a moment ago, so it is over the key's seats (or died since).
        Some(_) => Err(ApiError::LicenseKeyLimitReached),
        None => Err(ApiError::LicenseKeyNotFound),
    }
}

impl From<FileError> for ApiError {
    fn from(error: FileError) -> Self {
        match error {
            FileError::Inactive(_) => ApiError::InactiveLicenseKey,
            FileError::NoFingerprint => ApiError::InstanceWithoutFingerprint(error.to_string()),
        }
    }
}
