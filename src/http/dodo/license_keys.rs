//! `/license_keys`: issuing license keys, and reading and changing their limit, expiry
//! and disabled flag.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::listing::{Items, Paging};
use super::products::product_not_found;
use crate::domain::auth::Caller;
use crate::domain::catalog::{KeySource, LicenseKey, key_terms};
use crate::domain::ids::BusinessId;
use crate::domain::ids::{CustomerId, KeyString, LicenseKeyId, ProductId, ResourceId, shorten};
use crate::domain::license::{
    ActivationsLimit, Change, KeyPatch, KeyStatus, check_expiry, check_limit_with_seats,
    generate_key, meant_key,
};
use crate::domain::seats::{HeartbeatInterval, SeatBinding};
use crate::domain::time::Timestamp;
use crate::domain::views::LicenseKeyView;
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{
    JsonBody, NoQuery, PathParam, Query, QueryParams, Reader, Writer, query_instant,
};
use crate::http::state::AppState;
use crate::storage::KeyFilter;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLicenseKey {
    customer_id: ResourceId,
    product_id: ResourceId,
    /// A key to import; without it, a key is generated.
    #[serde(default)]
    key: Option<KeyString>,
    /// Absent: the product's default; `null`: unlimited.
    #[serde(default)]
    #[schema(value_type = Option<ActivationsLimit>)]
    activations_limit: Change<ActivationsLimit>,
    /// Absent: now plus the product's duration; `null`: never expires.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Change<Timestamp>,
    #[serde(default)]
    payment_id: Option<ResourceId>,
    #[serde(default)]
    subscription_id: Option<ResourceId>,
    /// Absent: the product's; `null`: no heartbeats.
    #[serde(default)]
    #[schema(value_type = Option<HeartbeatInterval>)]
    heartbeat_interval: Change<HeartbeatInterval>,
    /// Binds the key's limit to a ledger pair's quantity (not with `activations_limit`).
    #[serde(default)]
    seats: Option<SeatBinding>,
}

/// Issues a license key to a customer: imported if `key` is given, else generated.
#[utoipa::path(post, path = "/license_keys", tag = "License keys", request_body = CreateLicenseKey,
    responses(
        (status = 201, description = "The license key", body = LicenseKeyView),
        (status = 400, description = "Invalid input, or `seats` with `activations_limit`", body = ErrorBody),
        (status = 404, description = "Customer or product not found, or a seats pair with no ledger entry in this business", body = ErrorBody),
        (status = 409, description = "The key already exists, or is an existing key as a customer might mistype it", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_license_key(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    JsonBody(request): JsonBody<CreateLicenseKey>,
) -> Result<(StatusCode, Json<LicenseKeyView>), ApiError> {
    let license = issue(&state, &caller.business_id, &caller.brand_id, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(LicenseKeyView::at(
            license,
            caller.brand_id,
            Timestamp::now(),
        )),
    ))
}

/// An imported key that is another spelling of an existing key, as customers type keys
/// (in small letters, say), or of which an existing key is such a spelling: a key is
/// looked up as typed first, so the one in small letters would take the other's
/// activations. 409, as for the key itself.
async fn check_not_read_as_another(state: &AppState, key: &KeyString) -> Result<(), ApiError> {
    let taken = match meant_key(key) {
        Some(meant) => state.store.business_of_key(&meant).await?.is_some(),
        // A key of the generated shape, as the server writes it: is one that reads as it
        // there already?
        None if read_from_other_spellings(key) => state.store.key_read_as(key).await?,
        None => false,
    };
    match taken {
        false => Ok(()),
        true => Err(ApiError::Conflict(
            "`key` and an existing key are one key as a customer might type it (in small \
             letters, or with I, L or O for 1 and 0): typed so, it would find the other"
                .into(),
        )),
    }
}

/// Whether customers' other spellings of `key` are read as it: a key of the generated
/// shape, written as the server writes such keys.
fn read_from_other_spellings(key: &KeyString) -> bool {
    let lower = KeyString::parse(key.as_str().to_ascii_lowercase());
    lower.is_ok_and(|lower| meant_key(&lower).as_ref() == Some(key))
}

/// Issues a key as `POST /license_keys` asks (the console's form asks the same way).
pub(crate) async fn issue(
    state: &AppState,
    business: &BusinessId,
    brand_id: &str,
    request: CreateLicenseKey,
) -> Result<LicenseKey, ApiError> {
    let customer = state
        .store
        .customer(business, &CustomerId::from(request.customer_id.as_str()))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("customer `{}` not found", request.customer_id))
        })?;
    let product_id = ProductId::from(request.product_id.as_str());
    let product = state
        .store
        .product(business, &product_id)
        .await?
        .ok_or_else(|| product_not_found(&product_id))?;
    check_expiry(request.subscription_id.is_some(), &request.expires_at)?;
    let limit = request.activations_limit.map(ActivationsLimit::get);
    check_limit_with_seats(request.seats.is_some(), &limit)?;
    if let Some(seats) = &request.seats {
        check_pair(state, business, seats).await?;
    }
    let now = Timestamp::now();
    let terms = key_terms(
        &product,
        limit,
        request.expires_at,
        request.heartbeat_interval,
        request.subscription_id.is_some(),
        now,
    );
    let (key, source) = match request.key {
        // A customer types the key in, and apps trim what is typed: such a key would
        // never be found.
        Some(key) if key.as_str().trim() != key.as_str() => {
            return Err(ApiError::BadRequest(
                "`key` must not begin or end with whitespace".into(),
            ));
        }
        Some(key) => {
            check_not_read_as_another(state, &key).await?;
            (key.to_string(), KeySource::Import)
        }
        None => (generate_key(), KeySource::Manual),
    };
    let license = LicenseKey {
        id: LicenseKeyId::generate(),
        business_id: business.clone(),
        key,
        customer_id: customer.id,
        product_id: product.id,
        source,
        activations_limit: terms.activations_limit,
        instances_count: 0,
        disabled: false,
        expires_at: terms.expires_at,
        payment_id: request.payment_id.map(|p| p.to_string()),
        subscription_id: request.subscription_id.map(|s| s.to_string()),
        heartbeat_interval: terms.heartbeat_interval,
        seats: request.seats,
        created_at: now,
    };
    state.store.create_license_key(&license, brand_id).await?;
    // A bound key answers its figure now, as every read of it does.
    match license.seats {
        None => Ok(license),
        Some(_) => state
            .store
            .license_key(business, &license.id)
            .await?
            .ok_or(ApiError::LicenseKeyNotFound),
    }
}

/// A key may be bound only to a pair the ledger of its business knows.
async fn check_pair(
    state: &AppState,
    business: &BusinessId,
    seats: &SeatBinding,
) -> Result<(), ApiError> {
    let pair = (&seats.account_id, &seats.license_id);
    let caller = Caller::Business(business.clone());
    match state
        .store
        .quantity_at(&caller, pair, Timestamp::LAST)
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!(
            "no ledger entry for account `{}` and license `{}`: record the seats with POST /license_updates first",
            seats.account_id, seats.license_id
        ))),
    }
}

/// A license key by id.
#[utoipa::path(get, path = "/license_keys/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lic_…`")),
    responses(
        (status = 200, description = "The license key", body = LicenseKeyView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such key in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_license_key(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: NoQuery,
    PathParam(id): PathParam<LicenseKeyId>,
) -> Result<Json<LicenseKeyView>, ApiError> {
    state
        .store
        .license_key(&caller.business_id, &id)
        .await?
        .map(|k| Json(LicenseKeyView::at(k, caller.brand_id, Timestamp::now())))
        .ok_or(ApiError::LicenseKeyNotFound)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LicenseKeyQuery {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    product_id: Option<String>,
    /// `active`, `expired` or `disabled`, as derived when read.
    #[serde(default)]
    #[param(value_type = Option<KeyStatus>)]
    status: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<KeySource>)]
    source: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    created_at_gte: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    created_at_lte: Option<String>,
}

impl QueryParams for LicenseKeyQuery {
    const PAGED: bool = true;
}

/// Lists license keys, oldest first.
#[utoipa::path(get, path = "/license_keys", tag = "License keys", params(LicenseKeyQuery, Paging),
    responses(
        (status = 200, description = "One page", body = Items<LicenseKeyView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_license_keys(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(query): Query<LicenseKeyQuery>,
    Paging(page): Paging,
) -> Result<Json<Items<LicenseKeyView>>, ApiError> {
    let instant =
        |name: &str, value: Option<String>| value.map(|v| query_instant(name, &v)).transpose();
    let filter = KeyFilter {
        customer_id: query.customer_id.map(CustomerId::from),
        product_id: query.product_id.map(ProductId::from),
        status: query
            .status
            .map(|s| {
                KeyStatus::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`status` must be active, expired or disabled, got `{}`",
                        shorten(&s)
                    ))
                })
            })
            .transpose()?,
        source: query
            .source
            .map(|s| {
                KeySource::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`source` must be auto, import or manual, got `{}`",
                        shorten(&s)
                    ))
                })
            })
            .transpose()?,
        created_at_gte: instant("created_at_gte", query.created_at_gte)?,
        created_at_lte: instant("created_at_lte", query.created_at_lte)?,
    };
    let keys = state
        .store
        .list_license_keys(&caller.business_id, &filter, page)
        .await?;
    Ok(Json(Items {
        items: keys
            .into_iter()
            .map(|k| LicenseKeyView::at(k, caller.brand_id.clone(), Timestamp::now()))
            .collect(),
    }))
}

/// A change to a license key: an absent field is unchanged, `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLicenseKey {
    /// `null` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<ActivationsLimit>)]
    activations_limit: Change<ActivationsLimit>,
    #[serde(default)]
    disabled: Option<bool>,
    /// `null` removes the expiry.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Change<Timestamp>,
    /// `null` turns heartbeats off: the key's instances never die.
    #[serde(default)]
    #[schema(value_type = Option<HeartbeatInterval>)]
    heartbeat_interval: Change<HeartbeatInterval>,
    /// Binds the key's limit to a ledger pair's quantity; `null` unbinds it, keeping the
    /// figure it has as its limit unless `activations_limit` is given too.
    #[serde(default)]
    #[schema(value_type = Option<SeatBinding>)]
    seats: Change<SeatBinding>,
}

/// Changes a key's limit, expiry, disabled flag, heartbeat interval or seat binding.
#[utoipa::path(patch, path = "/license_keys/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lic_…`")),
    request_body = UpdateLicenseKey,
    responses(
        (status = 200, description = "The license key", body = LicenseKeyView),
        (status = 400, description = "Invalid input, `seats` with `activations_limit`, a limit on a key bound to seats, or an expiry on a subscription's key (NO_EXPIRY_ON_SUBSCRIPTION_LICENSE_KEYS)", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND, or a seats pair with no ledger entry in this business", body = ErrorBody),
        (status = 422, description = "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_license_key(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<LicenseKeyId>,
    JsonBody(request): JsonBody<UpdateLicenseKey>,
) -> Result<Json<LicenseKeyView>, ApiError> {
    let key = update(&state, &caller.business_id, &caller.brand_id, &id, request).await?;
    Ok(Json(LicenseKeyView::at(
        key,
        caller.brand_id,
        Timestamp::now(),
    )))
}

/// Changes a key as `PATCH /license_keys/{id}` asks (the console's form asks the same way).
pub(crate) async fn update(
    state: &AppState,
    business: &BusinessId,
    brand_id: &str,
    id: &LicenseKeyId,
    request: UpdateLicenseKey,
) -> Result<LicenseKey, ApiError> {
    let patch = KeyPatch {
        activations_limit: request.activations_limit.map(ActivationsLimit::get),
        disabled: request.disabled,
        expires_at: request.expires_at,
        heartbeat_interval: request.heartbeat_interval,
        seats: request.seats,
    };
    if let Change::Set(seats) = &patch.seats {
        check_limit_with_seats(true, &patch.activations_limit)?;
        check_pair(state, business, seats).await?;
    }
    state
        .store
        .update_license_key(business, id, patch, brand_id)
        .await?
        .ok_or(ApiError::LicenseKeyNotFound)
}
