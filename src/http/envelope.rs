//! The one middleware every API request passes through, in this order: give it a request id,
//! refuse an encoded NUL in the URL or a body declared longer than any route reads (one
//! sent without its length is cut off where [`extract::JsonBody`] reads it), run it under
//! the request timeout (the client's 408 if its body was still arriving, else the server's
//! 503), count it in the metrics, write an error body in the shape its router asks for,
//! and read out a body its handler left unread (see [`read_out`]). One layer rather than
//! seven, because each layer costs a boxed future and a service clone per request. Routes
//! that render their own pages (the console) pass through [`around_pages`] instead: the
//! same ids, timeout, metrics, logs and read-out.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONNECTION, EXPECT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use super::error::{self, ApiError, ErrorShape};
use super::{extract, ops};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layer: the request timeout, where request ids come from, and the shape of the
/// error bodies of the routes it wraps. Written out rather than made with
/// `axum::middleware::from_fn`, which clones and boxes the inner service on every request.
#[derive(Clone)]
pub struct Envelope {
    timeout: Duration,
    ids: Arc<SequentialIds>,
    shape: ShapeOf,
}

/// The shape of a request's error body, given its path: for the routes of one API, that
/// API's whatever the path; for a path no route matches, that of the API it is under.
pub type ShapeOf = fn(&str) -> ErrorShape;

impl Envelope {
    /// An envelope writing `{"code", "message"}` error bodies.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            ids: Arc::default(),
            shape: |_| ErrorShape::CodeAndMessage,
        }
    }

    /// The id of the request with these headers: the client's, or a new one.
    fn request_id(&self, headers: &HeaderMap) -> HeaderValue {
        match headers.get(&REQUEST_ID) {
            Some(given) => given.clone(),
            None => self.ids.next(),
        }
    }

    /// A refusal made before the request reached the envelope (by the signing layer,
    /// which must read the body first): the error body in this envelope's shape, with the
    /// request id, counted in the metrics.
    pub fn refuse(&self, request: &Parts, started: Instant, error: ApiError) -> Response {
        let response = error.into_response();
        let route = request.extensions.get::<MatchedPath>();
        ops::record(&request.method, route, response.status(), started.elapsed());
        let mut response = error::render(response, (self.shape)(request.uri.path()));
        (response.headers_mut()).insert(REQUEST_ID, self.request_id(&request.headers));
        response
    }

    /// The same envelope, with the same request ids, writing error bodies in the shape
    /// `shape` gives.
    pub fn with_shape(&self, shape: ShapeOf) -> Self {
        Self {
            shape,
            ..self.clone()
        }
    }
}

impl<S> Layer<S> for Envelope {
    type Service = Enveloped<S>;

    fn layer(&self, inner: S) -> Enveloped<S> {
        Enveloped {
            inner,
            envelope: self.clone(),
        }
    }
}

/// A service with the envelope around it.
#[derive(Clone)]
pub struct Enveloped<S> {
    inner: S,
    envelope: Envelope,
}

impl<S> Service<Request> for Enveloped<S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = self.envelope.request_id(request.headers());
        let shape = (self.envelope.shape)(request.uri().path());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let (request, arrival) = watch_arrival(request);
        let handled = match refused_up_front(&request) {
            Some(refused) => Err(refused),
            None => Ok(self.inner.call(request)),
        };
        let timeout = self.envelope.timeout;
        Box::pin(async move {
            let response = match handled {
                Err(refused) => refused.into_response(),
                // Dropping the handler on timeout rolls back its open transaction.
                Ok(handled) => match tokio::time::timeout(timeout, handled).await {
                    Ok(Ok(response)) => response.into_response(),
                    Err(_) => past_timeout(timeout, arrival.as_deref()).into_response(),
                },
            };
            let elapsed = started.elapsed();
            ops::record(&method, route.as_ref(), response.status(), elapsed);
            log_answer(&request_id, &method, route.as_ref(), &response, elapsed);
            let mut response = error::render(response, shape);
            response.headers_mut().insert(REQUEST_ID, request_id);
            Ok(match arrival.as_deref().and_then(Arrival::unread) {
                // Boxed: the rare refusal's wait does not grow every request's future.
                Some(unread) => Box::pin(read_out(response, unread, started + timeout)).await,
                None => response,
            })
        })
    }
}

/// The log line of an answer: a failure's with its request id and cause, which tie the
/// client's failed request to it; at debug, every other.
fn log_answer(
    request_id: &HeaderValue,
    method: &Method,
    route: Option<&MatchedPath>,
    response: &Response,
    elapsed: Duration,
) {
    let status = response.status();
    let route = route.map_or("unmatched", MatchedPath::as_str);
    if status.is_server_error() {
        let cause = error::cause(response).unwrap_or("answered outside the handlers");
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(?request_id, %method, route, status = status.as_u16(), cause, "request failed");
        } else {
            tracing::warn!(?request_id, %method, route, status = status.as_u16(), cause, "request failed");
        }
    } else {
        tracing::debug!(?request_id, %method, route, status = status.as_u16(), ?elapsed, "request finished");
    }
}

/// An encoded NUL in the URL, refused before any handler runs: no id or filter can hold
/// one, and PostgreSQL refuses it in text.
fn nul_in_url(request: &Request) -> Option<ApiError> {
    extract::has_nul(request.uri())
        .then(|| ApiError::BadRequest("the URL must not contain NUL characters (%00)".into()))
}

/// What the envelope refuses before the API's handlers run: a NUL in the URL, and a body
/// declared longer than any route reads.
fn refused_up_front(request: &Request) -> Option<ApiError> {
    nul_in_url(request).or_else(|| {
        extract::declares_too_long_body(request.headers()).then_some(ApiError::PayloadTooLarge {
            limit: extract::BODY_LIMIT,
        })
    })
}

/// What renders the page of an error the envelope answers (a NUL in the URL, or a request
/// past its timeout), on routes that render their own.
pub type ErrorPage = fn(ApiError) -> Response;

/// The envelope of the routes that render their own pages, errors included (the
/// console): the request id, a NUL in the URL and the request timeout (`error_page`
/// renders their pages), the metrics and the log line, but no error body rewritten. A
/// body too long is the pages' own to refuse, as their forms read it.
pub async fn around_pages(
    State((envelope, error_page)): State<(Envelope, ErrorPage)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = envelope.request_id(request.headers());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let timeout = envelope.timeout;
    let (request, arrival) = watch_arrival(request);
    let mut response = match nul_in_url(&request) {
        Some(refused) => {
            // Dropped first, so that its unread body is read out below.
            drop(request);
            error_page(refused)
        }
        // Dropping the handler on timeout rolls back its open transaction.
        None => match tokio::time::timeout(timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => error_page(past_timeout(timeout, arrival.as_deref())),
        },
    };
    let elapsed = started.elapsed();
    ops::record(&method, route.as_ref(), response.status(), elapsed);
    log_answer(&request_id, &method, route.as_ref(), &response, elapsed);
    response.headers_mut().insert(REQUEST_ID, request_id);
    match arrival.as_deref().and_then(Arrival::unread) {
        Some(unread) => Box::pin(read_out(response, unread, started + timeout)).await,
        None => response,
    }
}

/// The error of a request that ran over `timeout`: a body its handler was still reading
/// had not arrived, so the client is late (408); otherwise the server is (503).
fn past_timeout(timeout: Duration, arrival: Option<&Arrival>) -> ApiError {
    let awaited = |arrival: &Arrival| {
        arrival.asked.load(Ordering::Relaxed) && !arrival.arrived.load(Ordering::Relaxed)
    };
    if arrival.is_some_and(awaited) {
        ApiError::BodyTimedOut(timeout.as_millis())
    } else {
        ApiError::TimedOut(timeout.as_millis())
    }
}

/// The longest a refused request's unread body is waited for before its answer is sent.
const READ_OUT_WAIT: Duration = Duration::from_secs(2);

/// `response` once the rest of a body its handler left unread (a request refused before
/// its body was read: no API key, a wrong content type, an unknown route) has arrived and
/// been discarded, so that the connection can carry the client's next request. A body
/// that does not arrive within [`READ_OUT_WAIT`], or runs past [`extract::BODY_LIMIT`],
/// gets `Connection: close` instead, as does an answer that closes anyway (408, 413): the
/// client learns that the connection ends rather than finding it gone under its next
/// request.
pub(super) async fn read_out(
    mut response: Response,
    mut unread: Body,
    deadline: Instant,
) -> Response {
    if unread.is_end_stream() {
        return response;
    }
    let closes = response.headers().get(CONNECTION) == Some(&error::CLOSE)
        || response.status() == StatusCode::PAYLOAD_TOO_LARGE;
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(READ_OUT_WAIT);
    let read_out = !closes
        && tokio::time::timeout(wait, async {
            let mut read = 0;
            while let Some(frame) = unread.frame().await {
                let Ok(frame) = frame else { return false };
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > extract::BODY_LIMIT {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false);
    if !read_out {
        response.headers_mut().insert(CONNECTION, error::CLOSE);
    }
    response
}

/// What becomes of a body its handler leaves unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leftover {
    /// Read out, so that the connection carries the client's next request.
    ReadOut,
    /// Read out if the handler asked for it. A client that sent `Expect: 100-continue`
    /// sends its body only once it is asked for; one never asked for is left to hyper,
    /// which answers without asking for it.
    ReadOutIfAsked,
    /// Left: the client said that the connection closes after this request.
    Left,
}

impl Leftover {
    pub(super) fn of(headers: &HeaderMap, version: Version) -> Self {
        let says = |token: &str| {
            extract::header_tokens(headers, CONNECTION).any(|t| t.eq_ignore_ascii_case(token))
        };
        let closes = match version {
            Version::HTTP_10 => !says("keep-alive"),
            _ => says("close"),
        };
        let expects_continue = (headers.get(EXPECT))
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if closes {
            Leftover::Left
        } else if expects_continue {
            Leftover::ReadOutIfAsked
        } else {
            Leftover::ReadOut
        }
    }
}

/// The request, its body made to say when it is asked for and when it has arrived whole,
/// and to leave what its handler did not read; and where it says so. A request without a
/// body (most GETs) is left as it is.
fn watch_arrival(request: Request) -> (Request, Option<Arc<Arrival>>) {
    if request.body().is_end_stream() {
        return (request, None);
    }
    let leftover = Leftover::of(request.headers(), request.version());
    let arrival = Arc::new(Arrival::default());
    let watched = arrival.clone();
    let request = request.map(|inner| {
        Body::new(WatchedBody {
            inner,
            arrival: watched,
            leftover,
        })
    });
    (request, Some(arrival))
}

/// What became of a request's body: whether its handler asked for it, whether it arrived
/// whole, and, if its handler let go of it before, the rest of it.
#[derive(Default)]
struct Arrival {
    asked: AtomicBool,
    arrived: AtomicBool,
    unread: Mutex<Option<Body>>,
}

impl Arrival {
    fn unread(&self) -> Option<Body> {
        if self.arrived.load(Ordering::Relaxed) {
            return None;
        }
        self.unread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A request body that marks when it is asked for and when its last frame is read, and
/// leaves its unread rest in its [`Arrival`] when dropped before, as its [`Leftover`] says.
struct WatchedBody {
    inner: Body,
    arrival: Arc<Arrival>,
    leftover: Leftover,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.arrival.asked.store(true, Ordering::Relaxed);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.arrival.arrived.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        let keep = match self.leftover {
            Leftover::ReadOut => true,
            Leftover::ReadOutIfAsked => self.arrival.asked.load(Ordering::Relaxed),
            Leftover::Left => false,
        };
        if keep && !self.arrival.arrived.load(Ordering::Relaxed) && !self.inner.is_end_stream() {
            let rest = std::mem::take(&mut self.inner);
            *(self.arrival.unread.lock()).unwrap_or_else(PoisonError::into_inner) = Some(rest);
        }
    }
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
