//! The public endpoints an app calls with a license key: no API key; an `Authorization`
//! header, if sent, is ignored. Rate-limited per client IP.

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::catalog::Activation;
use crate::domain::ids::{InstanceId, InstanceName, KeyString, ResourceId};
use crate::domain::license::meant_key;
use crate::domain::metadata::Metadata;
use crate::domain::seats::Fingerprint;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, ErrorBody, PublicErrors};
use crate::http::extract::JsonBody;
use crate::http::state::AppState;

/// Runs `operation` on the key as typed and, if that key does not exist, once more on
/// the key the customer most likely meant ([`meant_key`]). A key that exists is never
/// read as another, so an imported key in small letters stays a key of its own. Refused
/// as not found although its key exists, an operation named an instance that is not one
/// of the key's current activations: the app, which holds both, is told which.
pub(super) async fn on_key<T, Done>(
    state: &AppState,
    typed: &KeyString,
    operation: impl Fn(KeyString) -> Done,
) -> Result<T, ApiError>
where
    Done: Future<Output = Result<T, ApiError>>,
{
    let as_typed = operation(typed.clone()).await;
    if !matches!(as_typed, Err(ApiError::LicenseKeyNotFound)) {
        return as_typed;
    }
    let exists = async |key: &KeyString| {
        Ok::<_, ApiError>(state.store.business_of_key(key).await?.is_some())
    };
    if exists(typed).await? {
        return Err(ApiError::LicenseKeyInstanceNotFound);
    }
    let Some(meant) = meant_key(typed) else {
        return as_typed;
    };
    let as_meant = operation(meant.clone()).await;
    if matches!(as_meant, Err(ApiError::LicenseKeyNotFound)) && exists(&meant).await? {
        return Err(ApiError::LicenseKeyInstanceNotFound);
    }
    as_meant
}

/// The header that asks for a signed answer (SPEC §6), documented on every public route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SignedAnswer {
    /// 1–128 visible ASCII characters the app chose at random: the answer, whatever its
    /// status, then carries `Date` and `Licensed-Signature` (their lines are described on
    /// each response), signed by the business's active key (see `/signing_keys`). An
    /// invalid nonce: 400.
    #[param(
        rename = "Licensed-Nonce",
        min_length = 1,
        max_length = 128,
        pattern = "^[!-~]+$"
    )]
    #[allow(dead_code)]
    licensed_nonce: Option<String>,
}

/// A caller of the public endpoints, within its per-IP rate limit. Listed before the
/// body in each handler, so that a limited request is refused before its body is read.
pub struct PublicCaller;

impl FromRequestParts<AppState> for PublicCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.limits.check_public(parts)?;
        Ok(PublicCaller)
    }
}

/// A path under `/licenses/` that names no route: 404, within the same rate limit.
pub async fn no_route(_: PublicCaller, request: Request) -> ApiError {
    crate::http::ops::no_route(request).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    license_key: KeyString,
    /// A name for this activation, such as the machine's.
    name: InstanceName,
    /// The app's stable id of its machine: activating again from a machine that holds a
    /// live instance of the key answers that instance and takes no new seat.
    #[serde(default)]
    fingerprint: Option<Fingerprint>,
}

#[derive(Serialize, ToSchema)]
pub struct CustomerLimitedDetails {
    customer_id: String,
    email: String,
    name: String,
    metadata: Metadata,
    #[schema(required = true)]
    phone_number: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivatedProduct {
    product_id: String,
    #[schema(required = true)]
    name: Option<String>,
}

/// Dodo's `LicenseActivateResponse`.
#[derive(Serialize, ToSchema)]
pub struct LicenseActivateResponse {
    /// The new instance's id (`lki_…`).
    id: String,
    business_id: String,
    created_at: Timestamp,
    customer: CustomerLimitedDetails,
    license_key_id: String,
    name: String,
    product: ActivatedProduct,
    #[schema(required = true)]
    fingerprint: Option<String>,
    /// Null when the key has no heartbeat interval.
    #[schema(required = true)]
    last_heartbeat_at: Option<Timestamp>,
    /// When the instance dies unless it beats again; null without a heartbeat interval.
    #[schema(required = true)]
    heartbeat_expires_at: Option<Timestamp>,
}

impl From<Activation> for LicenseActivateResponse {
    fn from(a: Activation) -> Self {
        Self {
            id: a.instance.id.into_string(),
            business_id: a.instance.business_id.into_string(),
            created_at: a.instance.created_at,
            customer: CustomerLimitedDetails {
                customer_id: a.customer.id.into_string(),
                email: a.customer.email,
                name: a.customer.name,
                metadata: a.customer.metadata,
                phone_number: a.customer.phone_number,
            },
            license_key_id: a.instance.license_key_id.into_string(),
            name: a.instance.name,
            fingerprint: a.instance.fingerprint,
            last_heartbeat_at: a.instance.last_heartbeat_at,
            heartbeat_expires_at: a.instance.heartbeat_expires_at,
            product: ActivatedProduct {
                product_id: a.product_id.into_string(),
                name: Some(a.product_name),
            },
        }
    }
}

/// Activates a license key for one instance (machine, seat), if it is active and below
/// its activation limit (for a key bound to seats, the seats its ledger pair has now). With
/// the fingerprint of one of the key's live instances, answers that instance instead: no
/// new seat is taken.
#[utoipa::path(post, path = "/licenses/activate", tag = "Licenses (public)",
    params(SignedAnswer), request_body = ActivateRequest,
    responses(
        (status = 201, description = "The new instance, or the machine's own live instance", body = LicenseActivateResponse),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 403, description = "INACTIVE_LICENSE_KEY: disabled or expired", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "LICENSE_KEY_LIMIT_REACHED", body = ErrorBody),
        PublicErrors,
    ))]
pub async fn activate(
    State(state): State<AppState>,
    _: PublicCaller,
    JsonBody(request): JsonBody<ActivateRequest>,
) -> Result<(StatusCode, Json<LicenseActivateResponse>), ApiError> {
    let (store, id) = (&state.store, &InstanceId::generate());
    let (name, fingerprint) = (&request.name, request.fingerprint.as_ref());
    let activation = on_key(&state, &request.license_key, |key| async move {
        Ok(store.activate(&key, id, name, fingerprint).await?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(activation.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateRequest {
    license_key: KeyString,
    license_key_instance_id: ResourceId,
}

/// Removes one activation of a key, freeing its place.
#[utoipa::path(post, path = "/licenses/deactivate", tag = "Licenses (public)",
    params(SignedAnswer), request_body = DeactivateRequest,
    responses(
        (status = 200, description = "Deactivated; the body is empty"),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND: no such key, or the instance is not this key's", body = ErrorBody),
        PublicErrors,
    ))]
pub async fn deactivate(
    State(state): State<AppState>,
    _: PublicCaller,
    JsonBody(request): JsonBody<DeactivateRequest>,
) -> Result<StatusCode, ApiError> {
    let (store, instance) = (
        &state.store,
        &InstanceId::from(request.license_key_instance_id.into_string()),
    );
    on_key(&state, &request.license_key, |key| async move {
        Ok(store.deactivate(&key, instance).await?)
    })
    .await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    license_key: KeyString,
    /// When given, the key is valid only if this is one of its current instances.
    #[serde(default)]
    license_key_instance_id: Option<ResourceId>,
}

#[derive(Serialize, ToSchema)]
pub struct LicenseValidateResponse {
    valid: bool,
}

/// Whether a key is active (and, if an instance id is given, activated there: live, and
/// within the key's seats).
#[utoipa::path(post, path = "/licenses/validate", tag = "Licenses (public)",
    params(SignedAnswer), request_body = ValidateRequest,
    responses(
        (status = 200, description = "Whether the key is valid", body = LicenseValidateResponse),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND", body = ErrorBody),
        PublicErrors,
    ))]
pub async fn validate(
    State(state): State<AppState>,
    _: PublicCaller,
    JsonBody(request): JsonBody<ValidateRequest>,
) -> Result<Json<LicenseValidateResponse>, ApiError> {
    let instance = request
        .license_key_instance_id
        .map(|id| InstanceId::from(id.into_string()));
    let (store, instance) = (&state.store, instance.as_ref());
    let validity = on_key(&state, &request.license_key, |key| async move {
        (store.key_validity(&key, instance).await?).ok_or(ApiError::LicenseKeyNotFound)
    })
    .await?;
    Ok(Json(LicenseValidateResponse {
        valid: validity.valid_at(Timestamp::now()),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    license_key: KeyString,
    license_key_instance_id: ResourceId,
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    /// What `/licenses/validate` with this instance answers.
    valid: bool,
    /// The deadline of the next beat; null when the key has no heartbeat interval.
    #[schema(required = true)]
    heartbeat_expires_at: Option<Timestamp>,
}

/// Tells the server the instance is still running: it keeps its seat for one more
/// heartbeat interval. An app beats every half interval, and activates again (with its
/// fingerprint) after a `LICENSE_KEY_INSTANCE_DEAD`.
#[utoipa::path(post, path = "/licenses/heartbeat", tag = "Licenses (public)",
    params(SignedAnswer), request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "The beat is recorded", body = HeartbeatResponse),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND: no such key, or the instance is not this key's; LICENSE_KEY_INSTANCE_DEAD: the instance missed its deadline and must activate again", body = ErrorBody),
        PublicErrors,
    ))]
pub async fn heartbeat(
    State(state): State<AppState>,
    _: PublicCaller,
    JsonBody(request): JsonBody<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let (store, instance) = (
        &state.store,
        &InstanceId::from(request.license_key_instance_id.into_string()),
    );
    let beat = on_key(&state, &request.license_key, |key| async move {
        Ok(store.heartbeat(&key, instance).await?)
    })
    .await?;
    Ok(Json(HeartbeatResponse {
        valid: beat.validity.valid_at(Timestamp::now()),
        heartbeat_expires_at: beat.heartbeat_expires_at,
    }))
}
