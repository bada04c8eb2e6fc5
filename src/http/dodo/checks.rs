//! Checks of input that several Dodo resources accept: an activation limit's bound.

pub use crate::domain::license::MAX_ACTIVATIONS_LIMIT;
use crate::http::error::ApiError;

pub(super) fn checked_limit(limit: u32, field: &str) -> Result<u32, ApiError> {
    if limit > MAX_ACTIVATIONS_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be at most {MAX_ACTIVATIONS_LIMIT}, got {limit}"
        )));
    }
    Ok(limit)
}
