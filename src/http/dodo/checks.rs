//! Checks of input that several Dodo resources accept: an activation limit's bound.

use crate::http::error::ApiError;

/// The largest activation limit accepted on a key or product.
pub const MAX_ACTIVATIONS_LIMIT: u32 = 1_000_000;

pub(super) fn checked_limit(limit: u32, field: &str) -> Result<u32, ApiError> {
    if limit > MAX_ACTIVATIONS_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be at most {MAX_ACTIVATIONS_LIMIT}, got {limit}"
        )));
    }
    Ok(limit)
}
