//! `/license_quantity` (beyond Togai): the quantity of a license an account holds at an
//! instant.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{instant_param, pair_params};
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, LedgerReadErrors, MessageBody};
use crate::http::extract::{PresentedKey, Query};
use crate::http::state::AppState;
use crate::storage::Access;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuantityParams {
    /// The account (also spelled `account_id`).
    #[serde(default, rename = "accountId", alias = "account_id")]
    #[param(required = true, max_length = 50)]
    account_id: Option<String>,
    /// The license (also spelled `license_id`).
    #[serde(default, rename = "licenseId", alias = "license_id")]
    #[param(required = true, max_length = 50)]
    license_id: Option<String>,
    /// The instant to read; defaults to now.
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseQuantity {
    account_id: AccountId,
    license_id: LicenseId,
    at: Timestamp,
    quantity: Quantity,
    /// The instant of the entry that governs `at`; null if none does.
    #[schema(required = true)]
    effective_from: Option<Timestamp>,
}

/// The quantity of a license an account holds at an instant.
#[utoipa::path(
    get, path = "/license_quantity", tag = "Ledger", params(QuantityParams),
    responses(
        (status = 200, description = "The quantity in effect", body = LicenseQuantity),
        (status = 400, description = "Missing or invalid parameter", body = MessageBody),
        LedgerReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn license_quantity(
    State(state): State<AppState>,
    key: PresentedKey,
    params: Result<Query<QuantityParams>, ApiError>,
) -> Result<Json<LicenseQuantity>, ApiError> {
    let ((account, license), at) = match params.and_then(|Query(params)| quantity_request(params)) {
        Ok(request) => request,
        Err(error) => return Err(key.refuse(&state, Access::Read, error).await),
    };
    key.admit_to_checked_call(&state, Access::Read).await?;
    let governing = state
        .store
        .quantity_at_for_key(key.digest(), (&account, &license), at)
        .await?;
    Ok(Json(LicenseQuantity {
        account_id: account,
        license_id: license,
        at,
        quantity: governing.map_or(Quantity::ZERO, |(_, q)| q),
        effective_from: governing.map(|(from, _)| from),
    }))
}

fn quantity_request(
    params: QuantityParams,
) -> Result<((AccountId, LicenseId), Timestamp), ApiError> {
    let pair = pair_params(params.account_id, params.license_id)?;
    let at = match params.at.as_deref() {
        Some(at) => instant_param("at", at)?,
        None => Timestamp::now(),
    };
    Ok((pair, at))
}
