//! The public endpoints an app calls with a license key: no API key; an `Authorization`
//! header, if sent, is ignored. Rate-limited per client IP.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::catalog::Activation;
use crate::domain::ids::{InstanceId, InstanceName, KeyString, ResourceId};
use crate::domain::metadata::Metadata;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, ErrorBody, PublicErrors};
use crate::http::extract::JsonBody;
use crate::http::state::AppState;

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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    license_key: KeyString,
    /// A name for this activation, such as the machine's.
    name: InstanceName,
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
            product: ActivatedProduct {
                product_id: a.product_id.into_string(),
                name: Some(a.product_name),
            },
        }
    }
}

/// Activates a license key for one instance (machine, seat), if it is active and below
/// its activation limit.
#[utoipa::path(post, path = "/licenses/activate", tag = "Licenses (public)", request_body = ActivateRequest,
    responses(
        (status = 201, description = "The new instance", body = LicenseActivateResponse),
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
    let activation = state
        .store
        .activate(&request.license_key, &InstanceId::generate(), &request.name)
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
#[utoipa::path(post, path = "/licenses/deactivate", tag = "Licenses (public)", request_body = DeactivateRequest,
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
    state
        .store
        .deactivate(
            &request.license_key,
            &InstanceId::from(request.license_key_instance_id.into_string()),
        )
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

/// Whether a key is active (and, if an instance id is given, activated there).
#[utoipa::path(post, path = "/licenses/validate", tag = "Licenses (public)", request_body = ValidateRequest,
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
    let validity = state
        .store
        .key_validity(&request.license_key, instance.as_ref())
        .await?
        .ok_or(ApiError::LicenseKeyNotFound)?;
    Ok(Json(LicenseValidateResponse {
        valid: validity.valid_at(Timestamp::now()),
    }))
}
