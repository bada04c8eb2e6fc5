//! The one middleware every request passes through, in this order: give it a request id,
//! refuse an encoded NUL in the URL or a body declared longer than any route reads (one
//! sent without its length is cut off where [`extract::JsonBody`] reads it), run it under
//! the request timeout, count it in the metrics, and write an error body in its route's
//! shape. One layer rather than seven, because each layer costs a boxed future and a
//! service clone per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{self, ApiError};
use super::{extract, ops};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the envelope needs: the request timeout and where request ids come from.
#[derive(Clone)]
pub struct Envelope {
    timeout: Duration,
    ids: Arc<SequentialIds>,
}

impl Envelope {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            ids: Arc::default(),
        }
    }
}

pub async fn envelope(State(envelope): State<Envelope>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match request.headers().get(&REQUEST_ID) {
        Some(given) => given.clone(),
        None => envelope.ids.next(),
    };
    let togai = error::speaks_togai(request.uri().path());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = if extract::has_nul(request.uri()) {
        ApiError::BadRequest("the URL must not contain NUL characters (%00)".into()).into_response()
    } else if extract::declares_too_long_body(request.headers()) {
        ApiError::PayloadTooLarge.into_response()
    } else {
        // Dropping the handler on timeout rolls back its open transaction.
        match tokio::time::timeout(envelope.timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::TimedOut(envelope.timeout.as_millis()).into_response(),
        }
    };
    let elapsed = started.elapsed();
    ops::record(&method, route.as_ref(), response.status(), elapsed);
    tracing::debug!(
        request_id = ?request_id, %method, route = route.as_ref().map_or("unmatched", MatchedPath::as_str),
        status = response.status().as_u16(), ?elapsed, "request finished"
    );
    let mut response = error::render(response, togai);
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// Request ids unique across processes and restarts without a system call per request:
/// a random prefix chosen at start, then a counter.
struct SequentialIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for SequentialIds {
    fn default() -> Self {
        Self {
            prefix: crate::domain::ids::new_id("req"),
            next: AtomicU64::new(0),
        }
    }
}

impl SequentialIds {
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 21);
        id.push_str(&self.prefix);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(n));
        // Letters, digits, '_' and '-': always a valid header value.
        HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("req"))
    }
}
