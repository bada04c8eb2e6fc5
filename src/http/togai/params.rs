//! Query parameters the ledger's routes share: ids and instants, each refused with a 400
//! that names the parameter.

use crate::domain::ids::{AccountId, InvalidText, LicenseId};
use crate::domain::time::Timestamp;
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

pub(super) fn instant_param(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))
}
