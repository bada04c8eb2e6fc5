//! `/license_usage` (beyond Togai): a license's daily usage by an account, for billing.

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::pair_params;
use crate::domain::ids::{AccountId, LicenseId};
use crate::domain::ledger::daily_usage;
use crate::domain::quantity::{Quantity, serialize_number};
use crate::domain::time::{MICROS_PER_DAY, Timestamp};
use crate::http::error::{ApiError, LedgerReadErrors, MessageBody};
use crate::http::extract::{Query, QueryParams, Reader, query_instant};
use crate::http::state::AppState;

pub const MAX_USAGE_DAYS: i64 = 3660;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The account (also spelled `account_id`).
    #[serde(default, rename = "accountId", alias = "account_id")]
    #[param(required = true, max_length = 50)]
    account_id: Option<String>,
    /// The license (also spelled `license_id`).
    #[serde(default, rename = "licenseId", alias = "license_id")]
    #[param(required = true, max_length = 50)]
    license_id: Option<String>,
    /// The first day, as its UTC midnight.
    #[serde(default)]
    #[param(required = true, value_type = String, format = DateTime)]
    start: Option<String>,
    /// The day after the last, as its UTC midnight; at most 3660 days after `start`.
    #[serde(default)]
    #[param(required = true, value_type = String, format = DateTime)]
    end: Option<String>,
}

impl QueryParams for UsageParams {}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    /// The UTC day, `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    date: NaiveDate,
    /// The largest quantity in effect at any instant of the day: what gets billed.
    max_quantity: Quantity,
    /// The quantity in effect at the day's last instant.
    end_quantity: Quantity,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseUsage {
    account_id: AccountId,
    license_id: LicenseId,
    start: Timestamp,
    end: Timestamp,
    /// One row per UTC day in `[start, end)`.
    days: Vec<UsageDay>,
    /// The sum of the days' `maxQuantity`.
    #[serde(serialize_with = "serialize_number")]
    #[schema(value_type = f64)]
    max_quantity_days: Decimal,
    /// The integral of the quantity over `[start, end)`, in quantity × seconds.
    #[serde(serialize_with = "serialize_number")]
    #[schema(value_type = f64)]
    quantity_seconds: Decimal,
}

/// Daily usage of a license by an account: each day's maximum and end quantity, for
/// daily-granular, prorated billing.
#[utoipa::path(
    get, path = "/license_usage", tag = "Ledger", params(UsageParams),
    responses(
        (status = 200, description = "Usage per day", body = LicenseUsage),
        (status = 400, description = "Missing or invalid parameter", body = MessageBody),
        (status = 422, description = "More than 3660 days", body = MessageBody),
        LedgerReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn license_usage(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(params): Query<UsageParams>,
) -> Result<Json<LicenseUsage>, ApiError> {
    let (account, license) = pair_params(params.account_id, params.license_id)?;
    let midnight = |name: &str, value: Option<String>| -> Result<Timestamp, ApiError> {
        let value = value.ok_or_else(|| ApiError::BadRequest(format!("`{name}` is required")))?;
        let at = query_instant(name, &value)?;
        if !at.is_midnight() {
            return Err(ApiError::BadRequest(format!(
                "`{name}` must be a UTC midnight such as 2024-03-01T00:00:00Z, got {at}"
            )));
        }
        Ok(at)
    };
    let start = midnight("start", params.start)?;
    let end = midnight("end", params.end)?;
    if end <= start {
        return Err(ApiError::BadRequest("`end` must be after `start`".into()));
    }
    let days = (end.micros() - start.micros()) / MICROS_PER_DAY;
    if days > MAX_USAGE_DAYS {
        return Err(ApiError::Unprocessable(format!(
            "the period spans {days} days; at most {MAX_USAGE_DAYS} are allowed"
        )));
    }
    let (initial, changes) = state
        .store
        .history(&caller.business_id, (&account, &license), start, end)
        .await?;
    let usage = daily_usage(initial, &changes, start.date(), days as u32);
    Ok(Json(LicenseUsage {
        account_id: account,
        license_id: license,
        start,
        end,
        days: usage
            .days
            .into_iter()
            .map(|d| UsageDay {
                date: d.date,
                max_quantity: d.max_quantity,
                end_quantity: d.end_quantity,
            })
            .collect(),
        max_quantity_days: usage.max_quantity_days,
        quantity_seconds: usage.quantity_seconds,
    }))
}
