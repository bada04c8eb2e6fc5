//! What the console answers when something goes wrong: a page saying so in words, with
//! the status an API call would have got, or the sign-in page for a session that ended.

use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};

use super::layout;
use crate::http::error::ApiError;
use crate::storage::StorageError;

#[derive(Debug)]
pub enum ConsoleError {
    /// No session, or one that ended (idle, signed out, its key revoked).
    SignedOut,
    /// A form without the session's token, or a write with a read-only key.
    Forbidden(String),
    /// What the API would have refused, for the reason it would have given.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Unauthorized => ConsoleError::SignedOut,
            other => ConsoleError::Api(other),
        }
    }
}

impl From<StorageError> for ConsoleError {
    fn from(error: StorageError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignedOut => {
                (StatusCode::SEE_OTHER, [(LOCATION, "/console/sign-in")]).into_response()
            }
            ConsoleError::Forbidden(message) => {
                layout::error_page(StatusCode::FORBIDDEN, &message).into_response()
            }
            ConsoleError::Api(error) => {
                let (status, message) = error.shown();
                if status.is_server_error() {
                    tracing::warn!(?error, "a console page failed");
                }
                layout::error_page(status, &message).into_response()
            }
        }
    }
}
