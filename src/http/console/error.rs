//! What the console answers when something goes wrong: a page saying so in words, with
//! the status an API call would have got, or the sign-in page for a session that ended.

use axum::extract::{FromRequest, FromRequestParts, RawForm, Request};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{LOCATION, RETRY_AFTER};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::layout;
use crate::http::error::{self, ApiError};
use crate::http::extract::{BODY_LIMIT, decodes_to_utf8, parse_query};
use crate::storage::StorageError;

#[derive(Debug)]
pub enum ConsoleError {
    /// No session, or one that ended (idle, signed out, its key revoked); the page asked
    /// for, to open once signed in (a page read, not a form sent).
    SignedOut(Option<String>),
    /// A form without the session's token, or a write with a read-only key.
    Forbidden(String),
    /// What the API would have refused, for the reason it would have given.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Unauthorized => ConsoleError::SignedOut(None),
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
            ConsoleError::SignedOut(back_to) => {
                let location = match back_to {
                    Some(page) => format!(
                        "/console/sign-in?next={}",
                        form_urlencoded::byte_serialize(page.as_bytes()).collect::<String>()
                    ),
                    None => "/console/sign-in".to_owned(),
                };
                let location = HeaderValue::from_str(&location)
                    .unwrap_or(HeaderValue::from_static("/console/sign-in"));
                (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
            }
            ConsoleError::Forbidden(message) => {
                layout::error_page(StatusCode::FORBIDDEN, &message).into_response()
            }
            ConsoleError::Api(error) => {
                let (status, message) = error.shown();
                let mut page = layout::error_page(status, &message).into_response();
                if status.is_server_error() {
                    // Logged with the request's id by the envelope around the pages.
                    error::note_cause(&mut page, format!("{error:?}"));
                }
                if let ApiError::RateLimited { retry_after_secs } = error {
                    (page.headers_mut()).insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
                }
                page
            }
        }
    }
}

/// The page of an error the envelope answers: a request refused before its handler ran,
/// or one that ran over the request timeout.
pub fn error_page(error: ApiError) -> Response {
    ConsoleError::Api(error).into_response()
}

/// A form, or a query string, that does not parse is refused with a console page naming
/// the problem, as the API's extractors refuse theirs, rather than axum's plain text.
pub struct ConsoleForm<T>(pub T);
pub struct ConsoleQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ConsoleForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ConsoleError> {
        let RawForm(form) = RawForm::from_request(request, state)
            .await
            .map_err(|rejection| refused(rejection.status(), rejection.body_text()))?;
        if !decodes_to_utf8(&form) {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "the form is not valid UTF-8 once percent-decoded".into(),
            ));
        }
        serde_urlencoded::from_bytes(&form).map(Self).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                format!("the form does not parse: {e}"),
            )
        })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ConsoleQuery<T> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ConsoleError> {
        // The API's reading: UTF-8 once decoded, and a parameter that does not parse named.
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(parse_query(query, |_| {})?))
    }
}

fn refused(status: StatusCode, text: String) -> ConsoleError {
    ConsoleError::Api(match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: BODY_LIMIT },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("application/x-www-form-urlencoded")
        }
        _ => ApiError::BadRequest(text),
    })
}
