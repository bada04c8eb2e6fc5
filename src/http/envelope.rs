//! The one middleware every request passes through, in this order: refuse an encoded NUL
//! in the URL, run the request under the request timeout, count it in the metrics, and
//! write an error body in its route's shape. One layer rather than four, because each
//! layer costs a boxed future and a service clone per request.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{self, ApiError};
use super::{extract, ops};

pub async fn envelope(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let togai = error::speaks_togai(request.uri().path());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = if extract::has_nul(request.uri()) {
        ApiError::BadRequest("the URL must not contain NUL characters (%00)".into()).into_response()
    } else {
        // Dropping the handler on timeout rolls back its open transaction.
        match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::TimedOut(timeout.as_millis()).into_response(),
        }
    };
    ops::record(
        &method,
        route.as_ref(),
        response.status(),
        started.elapsed(),
    );
    error::render(response, togai)
}
