//! The HTTP error type: one table from error to status and code, the error responses the
//! OpenAPI document lists, and one place that writes error bodies, in the shape the
//! router of the route asks for ([`ErrorShape`]).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response as OpenApiResponse, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use crate::domain::auth::Refusal;
use crate::domain::license::{ActivationError, PatchError};
use crate::storage::StorageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    Forbidden,
    NotFound(String),
    Conflict(String),
    Unprocessable(String),
    /// The request's body is longer than `limit` bytes.
    PayloadTooLarge {
        limit: usize,
    },
    /// The body is not of the content type the route reads, by that type.
    UnsupportedMediaType(&'static str),
    /// The body came compressed or otherwise encoded (`Content-Encoding`), by that name.
    UnsupportedEncoding(String),
    RateLimited {
        retry_after_secs: u64,
    },
    /// The database is unavailable; why, for the log.
    Unavailable(String),
    /// The request ran over the server's request timeout (milliseconds).
    TimedOut(u128),
    /// The database did not confirm a write, which may or may not have been made (the
    /// wait for it ran out, or the connection was lost while it committed); why, for the log.
    WriteOutcomeUnknown(String),
    /// The request's body was still arriving when the request timeout ran out.
    BodyTimedOut(u128),
    /// Something failed that the client cannot fix; why, for the log (never sent).
    Internal(String),
    LicenseKeyNotFound,
    /// The key exists, but has no current activation with the id given: still
    /// `LICENSE_KEY_NOT_FOUND` (SPEC), with a message that says which part was not found.
    LicenseKeyInstanceNotFound,
    LicenseKeyInstanceDead,
    InactiveLicenseKey,
    LicenseKeyLimitReached,
    /// An encrypted machine file was asked for an instance activated without a
    /// fingerprint, which its encryption key is made from.
    InstanceWithoutFingerprint(String),
    LimitBelowInstances(String),
    NoExpiryOnSubscriptionKey,
}

impl ApiError {
    /// The status and the message a person is shown (the console shows API errors as
    /// pages); a 5xx's cause is in the error, for the log.
    pub(crate) fn shown(&self) -> (StatusCode, String) {
        (self.status_and_code().0, self.message())
    }

    /// The one table from error to HTTP status and machine-readable code.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::Unprocessable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "UNPROCESSABLE_ENTITY")
            }
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
            }
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
            ApiError::TimedOut(_) | ApiError::WriteOutcomeUnknown(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "TIMEOUT")
            }
            ApiError::BodyTimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
            ApiError::LicenseKeyNotFound | ApiError::LicenseKeyInstanceNotFound => {
                (StatusCode::NOT_FOUND, "LICENSE_KEY_NOT_FOUND")
            }
            ApiError::LicenseKeyInstanceDead => {
                (StatusCode::NOT_FOUND, "LICENSE_KEY_INSTANCE_DEAD")
            }
            ApiError::InactiveLicenseKey => (StatusCode::FORBIDDEN, "INACTIVE_LICENSE_KEY"),
            ApiError::LicenseKeyLimitReached => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "LICENSE_KEY_LIMIT_REACHED",
            ),
            ApiError::InstanceWithoutFingerprint(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "INSTANCE_WITHOUT_FINGERPRINT",
            ),
            ApiError::LimitBelowInstances(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT",
            ),
            ApiError::NoExpiryOnSubscriptionKey => (
                StatusCode::BAD_REQUEST,
                "NO_EXPIRY_ON_SUBSCRIPTION_LICENSE_KEYS",
            ),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Unprocessable(m)
            | ApiError::InstanceWithoutFingerprint(m)
            | ApiError::LimitBelowInstances(m) => m.clone(),
            ApiError::Unauthorized => {
                "missing or unknown API key: send `Authorization: Bearer <api key>`".into()
            }
            ApiError::Forbidden => "this API key is read-only".into(),
            ApiError::PayloadTooLarge { limit } => {
                format!("the request body is larger than {limit} bytes")
            }
            ApiError::UnsupportedMediaType(expected) => {
                format!("the request body must be sent as `Content-Type: {expected}`")
            }
            ApiError::UnsupportedEncoding(encoding) => format!(
                "the request body must be sent as it is: `Content-Encoding: {encoding}` is not accepted"
            ),
            ApiError::RateLimited { retry_after_secs } => {
                format!("too many requests: retry in {retry_after_secs} s")
            }
            ApiError::Unavailable(_) => {
                "the database is unavailable or did not answer in time; retry later".into()
            }
            ApiError::TimedOut(ms) => format!(
                "the request did not complete within {ms} ms; if it was to write, the write may or may not have taken effect"
            ),
            ApiError::BodyTimedOut(ms) => {
                format!("the request body did not arrive within {ms} ms; nothing was written")
            }
            ApiError::WriteOutcomeUnknown(_) => {
                "the database did not confirm the write; it may or may not have taken effect".into()
            }
            ApiError::Internal(_) => "something went wrong; the error has been logged".into(),
            ApiError::LicenseKeyNotFound => "license key not found".into(),
            ApiError::LicenseKeyInstanceNotFound => {
                "this license key has no current activation with that `license_key_instance_id`"
                    .into()
            }
            ApiError::LicenseKeyInstanceDead => {
                "this instance missed its heartbeat deadline and was released: activate again"
                    .into()
            }
            ApiError::InactiveLicenseKey => ActivationError::Inactive.to_string(),
            ApiError::LicenseKeyLimitReached => ActivationError::LimitReached.to_string(),
            ApiError::NoExpiryOnSubscriptionKey => PatchError::ExpiryOnSubscriptionKey.to_string(),
        }
    }
}

/// The errors every route of one kind may answer besides its own, which the OpenAPI
/// document lists with each such route (see [`WriteErrors`] and its kin). Each is
/// documented at the status the table above gives it (its fields are placeholders), so
/// that the document cannot list another status than the server answers with.
fn write_errors() -> [(ApiError, &'static str); 7] {
    [
        (ApiError::Unauthorized, "Missing or unknown API key"),
        (ApiError::Forbidden, "Read-only API key"),
        (ApiError::BodyTimedOut(0), BODY_TIMED_OUT),
        (ApiError::PayloadTooLarge { limit: 0 }, PAYLOAD_TOO_LARGE),
        (ApiError::UnsupportedMediaType(JSON), UNSUPPORTED_MEDIA_TYPE),
        (
            ApiError::RateLimited {
                retry_after_secs: 0,
            },
            "Rate limited",
        ),
        (ApiError::Unavailable(String::new()), UNAVAILABLE_FOR_WRITES),
    ]
}

fn read_errors() -> [(ApiError, &'static str); 3] {
    [
        (ApiError::Unauthorized, "Missing or unknown API key"),
        (
            ApiError::RateLimited {
                retry_after_secs: 0,
            },
            "Rate limited",
        ),
        (
            ApiError::Unavailable(String::new()),
            "Database unavailable (`SERVICE_UNAVAILABLE`), or the request timed out (`TIMEOUT`)",
        ),
    ]
}

fn public_errors() -> [(ApiError, &'static str); 5] {
    [
        (ApiError::BodyTimedOut(0), BODY_TIMED_OUT),
        (ApiError::PayloadTooLarge { limit: 0 }, PAYLOAD_TOO_LARGE),
        (ApiError::UnsupportedMediaType(JSON), UNSUPPORTED_MEDIA_TYPE),
        (
            ApiError::RateLimited {
                retry_after_secs: 0,
            },
            "Rate limited (per client IP)",
        ),
        (ApiError::Unavailable(String::new()), UNAVAILABLE_FOR_WRITES),
    ]
}

const BODY_TIMED_OUT: &str = "Body still arriving at the request timeout; nothing was written";
const PAYLOAD_TOO_LARGE: &str = "Body over 64 KiB";
/// The content type of the API's bodies.
pub const JSON: &str = "application/json";
const UNSUPPORTED_MEDIA_TYPE: &str = "Body is not JSON, or is sent with a `Content-Encoding`";
const UNAVAILABLE_FOR_WRITES: &str = "Database unavailable (`SERVICE_UNAVAILABLE`), or the request timed out or a write went unconfirmed (`TIMEOUT`: it may or may not have taken effect)";

/// The OpenAPI responses of `errors`, each with a body of schema `B`.
fn documented<B: ToSchema>(
    errors: &[(ApiError, &str)],
) -> BTreeMap<String, RefOr<OpenApiResponse>> {
    let content = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(B::name())))
            .build()
    };
    (errors.iter())
        .map(|(error, description)| {
            let (status, _) = error.status_and_code();
            let response = ResponseBuilder::new()
                .description(*description)
                .content("application/json", content())
                .build();
            (status.as_str().to_owned(), response.into())
        })
        .collect()
}

/// Declares a set of error responses for routes' `responses(…)`, so that each route lists
/// only the responses particular to it.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $errors:ident in $body:ty) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<OpenApiResponse>> {
                documented::<$body>(&$errors())
            }
        }
    };
}

error_set!(
    /// The errors of every ledger route that writes.
    LedgerWriteErrors: write_errors in MessageBody
);
error_set!(
    /// The errors of every authenticated route that writes, outside the ledger.
    WriteErrors: write_errors in ErrorBody
);
error_set!(
    /// The errors of every ledger route that reads.
    LedgerReadErrors: read_errors in MessageBody
);
error_set!(
    /// The errors of every authenticated route that reads, outside the ledger.
    ReadErrors: read_errors in ErrorBody
);
error_set!(
    /// The errors of every public endpoint (no API key).
    PublicErrors: public_errors in ErrorBody
);

impl From<PatchError> for ApiError {
    fn from(refusal: PatchError) -> Self {
        match refusal {
            PatchError::LimitBelowInstances { .. } | PatchError::UnbindingBelowInstances { .. } => {
                ApiError::LimitBelowInstances(refusal.to_string())
            }
            PatchError::ExpiryOnSubscriptionKey => ApiError::NoExpiryOnSubscriptionKey,
            PatchError::LimitWithSeats | PatchError::LimitFollowsSeats => {
                ApiError::BadRequest(refusal.to_string())
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::UnknownKey => ApiError::Unauthorized,
            Refusal::ReadOnly => ApiError::Forbidden,
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Refused(refusal) => refusal.into(),
            StorageError::Ledger(refusal) => ApiError::BadRequest(refusal.to_string()),
            StorageError::IdempotencyMismatch => ApiError::Conflict(
                "this idempotencyKey was already used with a different request".into(),
            ),
            StorageError::KeyNotFound => ApiError::LicenseKeyNotFound,
            StorageError::InstanceDead => ApiError::LicenseKeyInstanceDead,
            StorageError::Activation(ActivationError::Inactive) => ApiError::InactiveLicenseKey,
            StorageError::Activation(ActivationError::LimitReached) => {
                ApiError::LicenseKeyLimitReached
            }
            StorageError::KeyPatch(refusal) => refusal.into(),
            StorageError::Duplicate(what) => ApiError::Conflict(what),
            StorageError::Invalid(why) => ApiError::BadRequest(why),
            StorageError::Unavailable(reason) => ApiError::Unavailable(reason),
            StorageError::OutcomeUnknown(reason) => ApiError::WriteOutcomeUnknown(reason),
            StorageError::Internal(reason) => ApiError::Internal(reason),
        }
    }
}

/// An error waiting for its body; [`render`] writes it in its router's shape.
#[derive(Debug, Clone)]
struct PendingError {
    code: &'static str,
    message: String,
    /// What the server knows of a 5xx's cause: logged, never sent.
    cause: Option<String>,
}

/// `Connection: close`: the answer of a request whose body is left unread, which the
/// connection cannot carry another request after.
pub const CLOSE: HeaderValue = HeaderValue::from_static("close");

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = status.into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still come: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, CLOSE);
        }
        if status == StatusCode::CONFLICT {
            // Dodo's client retries a 409 unless told not to.
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        let message = self.message();
        let cause = match self {
            ApiError::Unavailable(cause)
            | ApiError::WriteOutcomeUnknown(cause)
            | ApiError::Internal(cause) => Some(cause),
            ApiError::TimedOut(ms) => Some(format!("ran over the request timeout of {ms} ms")),
            _ => None,
        };
        response.extensions_mut().insert(PendingError {
            code,
            message,
            cause,
        });
        response
    }
}

/// `{"code", "message"}`: the error body of every route outside the ledger.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `LICENSE_KEY_NOT_FOUND`.
    pub code: String,
    pub message: String,
}

/// `{"message"}`: the error body of the ledger routes (Togai's `ErrorResponse`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorResponse)]
pub struct MessageBody {
    #[schema(max_length = 500)]
    pub message: String,
}

/// How a router's error bodies look: Togai's routes answer `{"message"}` (its schema
/// allows no other field); every other route answers `{"code", "message"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// [`ErrorBody`].
    CodeAndMessage,
    /// [`MessageBody`].
    MessageOnly,
}

/// Writes the body of an error response in `shape`, including responses made outside the
/// handlers (unknown routes, wrong methods, body limits, timeouts), so that all errors
/// look alike. Other responses pass through untouched.
pub fn render(mut response: Response, shape: ErrorShape) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let pending = response
        .extensions_mut()
        .remove::<PendingError>()
        .unwrap_or_else(|| unexplained(status));
    let message = capped(pending.message);
    let body = match shape {
        ErrorShape::MessageOnly => serde_json::json!({ "message": message }),
        ErrorShape::CodeAndMessage => {
            serde_json::json!({ "code": pending.code, "message": message })
        }
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The unread rest of the body leaves the connection unusable: say that it closes,
        // so that a client does not send its next request on it.
        parts.headers.insert(header::CONNECTION, CLOSE);
    }
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// The longest error message, in characters: Togai's error schema allows no longer, and
/// a message that quotes a long input need not repeat all of it.
const MAX_MESSAGE_CHARS: usize = 500;

fn capped(mut message: String) -> String {
    if message.chars().count() > MAX_MESSAGE_CHARS {
        let cut = (message.char_indices())
            .nth(MAX_MESSAGE_CHARS - 1)
            .map_or(message.len(), |(at, _)| at);
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// The error of a response made by a layer rather than a handler.
fn unexplained(status: StatusCode) -> PendingError {
    let known = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(ApiError::UnsupportedMediaType(JSON)),
        s if s.is_server_error() => Some(ApiError::Internal(String::new())),
        _ => None,
    };
    if let Some(error) = known {
        let (_, code) = error.status_and_code();
        return PendingError {
            code,
            message: error.message(),
            cause: None,
        };
    }
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        // The server's own 413s carry their limit; one made elsewhere has none to quote.
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        _ => "BAD_REQUEST",
    };
    let reason = status.canonical_reason().unwrap_or("request failed");
    PendingError {
        code,
        message: reason.to_lowercase(),
        cause: None,
    }
}

/// The cause of a failure whose response is rendered elsewhere (a console page): logged
/// with the request, never sent.
#[derive(Clone)]
struct NotedCause(String);

/// Notes `cause` on a response for the log line of its request.
pub fn note_cause(response: &mut Response, cause: String) {
    response.extensions_mut().insert(NotedCause(cause));
}

/// What the server knows of an error response's cause, for the log.
pub fn cause(response: &Response) -> Option<&str> {
    let extensions = response.extensions();
    let pending = extensions
        .get::<PendingError>()
        .and_then(|p| p.cause.as_deref());
    pending.or_else(|| extensions.get::<NotedCause>().map(|noted| noted.0.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_errors_of_a_documented_set_share_a_status() {
        let sets = [
            write_errors().to_vec(),
            read_errors().to_vec(),
            public_errors().to_vec(),
        ];
        for set in sets {
            let statuses: std::collections::BTreeSet<u16> = (set.iter())
                .map(|(error, _)| error.status_and_code().0.as_u16())
                .collect();
            assert_eq!(statuses.len(), set.len(), "{set:?}");
        }
    }

    #[test]
    fn long_messages_are_cut_to_500_characters_on_a_character_boundary() {
        let fits = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(capped(fits.clone()), fits);
        let cut = capped("é".repeat(MAX_MESSAGE_CHARS + 1));
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with("é…"));
    }
}
