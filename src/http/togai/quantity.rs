//! `/license_quantity` (beyond Togai): the quantity of a license an account holds at an
//! instant.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::pair_params;
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, LedgerReadErrors, MessageBody};
use crate::http::extract::{Checked, Query, QueryParams, ToRead, query_instant};
use crate::http::state::AppState;

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

impl QueryParams for QuantityParams {}

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
    Checked { caller, input, .. }: Checked<QuantityRequest, ToRead>,
) -> Result<Json<LicenseQuantity>, ApiError> {
    let QuantityRequest {
        account,
        license,
        at,
    } = input;
    let governing = state
        .store
        .quantity_at(&caller, (&account, &license), at)
        .await?;
    Ok(Json(LicenseQuantity {
        account_id: account,
        license_id: license,
        at,
        quantity: governing.map_or(Quantity::ZERO, |(_, q)| q),
        effective_from: governing.map(|(from, _)| from),
    }))
}

/// What a quantity is asked for: a pair, at an instant (now if the query names none).
pub struct QuantityRequest {
    account: AccountId,
    license: LicenseId,
    at: Timestamp,
}

impl FromRequest<AppState> for QuantityRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, _) = request.into_parts();
        let Query(params) = Query::<QuantityParams>::from_request_parts(&mut parts, state).await?;
        let (account, license) = pair_params(params.account_id, params.license_id)?;
        let at = match params.at.as_deref() {
            Some(at) => query_instant("at", at)?,
            None => Timestamp::now(),
        };
        Ok(QuantityRequest {
            account,
            license,
            at,
        })
    }
}
