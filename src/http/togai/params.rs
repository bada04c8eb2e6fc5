//! Query parameters the ledger's routes share: a pair's ids, each refused with a 400 that
//! names the parameter (instants: [`query_instant`](crate::http::extract::query_instant)).

use crate::domain::ids::{AccountId, InvalidText, LicenseId};
use crate::http::error::ApiError;

pub(super) fn pair_params(
    account: Option<String>,
    license: Option<String>,
) -> Result<(AccountId, LicenseId), ApiError> {
    let account = account.ok_or_else(|| ApiError::BadRequest("`accountId` is required".into()))?;
    let license = license.ok_or_else(|| ApiError::BadRequest("`licenseId` is required".into()))?;
    Ok((
        text_param("accountId", AccountId::parse(account))?,
        text_param("licenseId", LicenseId::parse(license))?,
    ))
}

pub(super) fn text_param<T>(name: &str, parsed: Result<T, InvalidText>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::BadRequest(format!("`{name}` {e}")))
}
