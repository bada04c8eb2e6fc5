//! Signed answers: a request to `/licenses/*` that carries `Licensed-Nonce` gets its
//! response, whatever its status, signed with Ed25519 over the six lines of SPEC §6, so
//! that an app holding the business's public key can tell it came from this server and
//! answers this very request. Without the header nothing here runs beyond one lookup.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::Request;
use axum::http::header::DATE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use futures_util::future::{BoxFuture, Either};
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use super::envelope::{Envelope, Leftover, REQUEST_ID, read_out};
use super::error::ApiError;
use super::extract::{BODY_LIMIT, declares_too_long_body, sent_twice, without_byte_order_mark};
use super::state::AppState;
use crate::domain::ids::{BusinessId, KeyString};
use crate::domain::license::meant_key;
use crate::domain::signing::SigningKeyPair;
use crate::storage::keyring::{self, KeyringError};

const NONCE: HeaderName = HeaderName::from_static("licensed-nonce");
const SIGNATURE: HeaderName = HeaderName::from_static("licensed-signature");

/// The first line of every signed message: its format's name and version.
const MESSAGE_VERSION: &str = "licensed-response-v1";

/// The nonce an app chose: 1–128 visible ASCII characters.
fn nonce_of(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let visible = text.bytes().all(|b| b.is_ascii_graphic());
    ((1..=128).contains(&text.len()) && visible).then_some(text)
}

/// The text an answer's signature covers (SPEC §6).
pub fn signed_message(
    method: &str,
    path: &str,
    nonce: &str,
    date: &str,
    request_body: &[u8],
    response_body: &[u8],
) -> String {
    let digest = |bytes: &[u8]| STANDARD.encode(Sha256::digest(bytes));
    [
        MESSAGE_VERSION,
        &format!("{method} {path}"),
        nonce,
        date,
        &digest(request_body),
        &digest(response_body),
    ]
    .join("\n")
}

/// The layer of the public routes. Written out, as the envelope is, so that a request
/// without a nonce goes straight to the route: `axum::middleware::from_fn` would clone and
/// box the inner service for every request, which cost unsigned validate 3-5%.
/// Its own refusals (a bad nonce, a body too large or too late) are written by the
/// envelope the routes are in, as the routes' would be.
#[derive(Clone)]
pub struct SignResponses {
    state: AppState,
    envelope: Envelope,
}

impl SignResponses {
    pub fn new(state: AppState, envelope: Envelope) -> Self {
        Self { state, envelope }
    }
}

impl<S> Layer<S> for SignResponses {
    type Service = Signing<S>;

    fn layer(&self, inner: S) -> Signing<S> {
        Signing {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose answers are signed when asked for.
#[derive(Clone)]
pub struct Signing<S> {
    inner: S,
    layer: SignResponses,
}

impl<S> Service<Request> for Signing<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(nonce) = request.headers().get(NONCE).cloned() else {
            return Either::Left(self.inner.call(request));
        };
        // The service made ready serves this request; a clone, not yet ready, stays.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Either::Right(Box::pin(async move {
            Ok(signed(layer, request, nonce, ready).await)
        }))
    }
}

/// The answer of `route` (ready to be called) to a request that carries `nonce`, signed.
async fn signed<S>(
    layer: SignResponses,
    request: Request,
    nonce: HeaderValue,
    mut route: S,
) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let SignResponses { state, envelope } = layer;
    let (parts, body) = request.into_parts();
    let nonce = match (sent_twice(&parts.headers, NONCE), nonce_of(&nonce)) {
        (false, Some(nonce)) => nonce.to_owned(),
        (twice, _) => {
            let refused = ApiError::BadRequest(match twice {
                // The answer could be signed over only one, which the app may not check.
                true => "`Licensed-Nonce` is sent more than once".into(),
                false => "`Licensed-Nonce` must be 1 to 128 visible ASCII characters".into(),
            });
            let refusal = envelope.refuse(&parts, started, refused);
            return match Leftover::of(&parts.headers, parts.version) {
                Leftover::ReadOut => read_out(refusal, body, started + state.request_timeout).await,
                Leftover::ReadOutIfAsked | Leftover::Left => refusal,
            };
        }
    };
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    // Read here, before the envelope sees it, within the same time and size limits; a
    // body declared too long is refused before any of it is read, as without a nonce.
    let received = match declares_too_long_body(&parts.headers) {
        true => Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT }),
        false => receive(body, state.request_timeout).await,
    };
    let (request_body, response, key) = match received {
        Ok(body) => {
            let key = license_key_in(&body);
            let Ok(response) = route
                .call(Request::from_parts(parts, Body::from(body.clone())))
                .await;
            (body, response, key)
        }
        // A body not received whole concerns no key, and is signed as an empty body: how
        // much of it was read depends on how it was cut into chunks and when they came,
        // which the app cannot know.
        Err(refused) => (
            Bytes::new(),
            envelope.refuse(&parts, started, refused),
            None,
        ),
    };
    // A 429 concerns no key either, and looking its key up would cost the database.
    let key = key.filter(|_| response.status() != StatusCode::TOO_MANY_REQUESTS);
    let (mut parts, body) = response.into_parts();
    // The server's own answers are small: the bound only guards against a mistake.
    let Ok(response_body) = to_bytes(body, 16 * BODY_LIMIT).await else {
        tracing::error!("a response body could not be read to sign it");
        return unsigned(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            &parts.headers,
        );
    };
    let signer = match signer_of(&state, key).await {
        Ok(signer) => signer,
        Err(reason) => {
            tracing::warn!(%reason, "a response could not be signed");
            return unsigned(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                &parts.headers,
            );
        }
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    // An answer to HEAD is sent without its body.
    let sent_body = match method == "HEAD" {
        true => &[][..],
        false => &response_body[..],
    };
    let message = signed_message(&method, &path, &nonce, &date, &request_body, sent_body);
    let signature = format!(
        "keyid=\"{}\", algorithm=\"ed25519\", signature=\"{}\"",
        signer.id,
        signer.sign_base64(message.as_bytes())
    );
    for (name, value) in [(DATE, date), (SIGNATURE, signature)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, value);
        }
    }
    Response::from_parts(parts, Body::from(response_body))
}

/// The error that replaces an answer that could not be signed (its cause logged), with
/// the answer's request id.
fn unsigned(status: StatusCode, code: &str, answered: &HeaderMap) -> Response {
    let body = json!({"code": code, "message": "the answer could not be signed; retry later"});
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(id) = answered.get(REQUEST_ID) {
        response.headers_mut().insert(REQUEST_ID, id.clone());
    }
    response
}

/// A request's body, read whole within `timeout` and [`BODY_LIMIT`]; or why not.
async fn receive(mut body: Body, timeout: Duration) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut received = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => return Ok(received.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                }
                if received.len() > BODY_LIMIT {
                    return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
                }
            }
            Ok(Some(Err(_))) => {
                return Err(ApiError::BadRequest(
                    "the request body could not be read".into(),
                ));
            }
            Err(_) => return Err(ApiError::BodyTimedOut(timeout.as_millis())),
        }
    }
}

/// The license key a request names, if its body is JSON with one.
fn license_key_in(body: &[u8]) -> Option<KeyString> {
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        license_key: Option<std::borrow::Cow<'a, str>>,
    }
    let named: Named = serde_json::from_slice(without_byte_order_mark(body)).ok()?;
    KeyString::parse(named.license_key?.into_owned()).ok()
}

/// The key that signs: the active key of the business the license key belongs to, or,
/// for an answer about no known key, that of the first business.
async fn signer_of(
    state: &AppState,
    key: Option<KeyString>,
) -> Result<Arc<SigningKeyPair>, String> {
    let owner = match key {
        Some(key) => state.signers.owner_of(state, key).await?,
        None => None,
    };
    let business = match owner {
        Some(business) => business,
        None => state.signers.first_business(state).await?,
    };
    state
        .signers
        .active(state, &business)
        .await
        .map_err(|e| e.to_string())
}

/// How long an opened active key is used before it is read again: a rotation made by
/// another process is seen within this time.
const SIGNER_TTL: Duration = Duration::from_secs(10);
/// The most key strings whose business is remembered; past it the memory starts over.
const MAX_OWNERS: usize = 100_000;

/// An active key and when it was read.
type Opened = (Arc<SigningKeyPair>, Instant);

/// What signing needs, remembered between requests: opening a business's key (reading
/// it, unsealing it, deriving its public half) costs more than signing with it.
#[derive(Clone, Default)]
pub struct Signers {
    active: Arc<RwLock<HashMap<BusinessId, Opened>>>,
    /// A license key never moves to another business, so its owner can be kept.
    owners: Arc<RwLock<HashMap<KeyString, BusinessId>>>,
    first: Arc<OnceLock<BusinessId>>,
}

impl Signers {
    /// The business's active key, opened.
    pub async fn active(
        &self,
        state: &AppState,
        business: &BusinessId,
    ) -> Result<Arc<SigningKeyPair>, KeyringError> {
        let cached = read(&self.active).get(business).cloned();
        if let Some((pair, opened)) = cached
            && opened.elapsed() < SIGNER_TTL
        {
            return Ok(pair);
        }
        let pair = Arc::new(
            keyring::active(state.store.as_ref(), business, state.master_key.as_ref()).await?,
        );
        write(&self.active).insert(business.clone(), (pair.clone(), Instant::now()));
        Ok(pair)
    }

    /// The business of the key the route read: the key as typed or, if that does not
    /// exist, as meant (see `public::on_key`).
    async fn owner_of(
        &self,
        state: &AppState,
        key: KeyString,
    ) -> Result<Option<BusinessId>, String> {
        if let Some(owner) = self.owner_of_exactly(state, &key).await? {
            return Ok(Some(owner));
        }
        match meant_key(&key) {
            Some(meant) => self.owner_of_exactly(state, &meant).await,
            None => Ok(None),
        }
    }

    /// The business of the key spelled exactly so, remembered once found.
    async fn owner_of_exactly(
        &self,
        state: &AppState,
        key: &KeyString,
    ) -> Result<Option<BusinessId>, String> {
        if let Some(owner) = read(&self.owners).get(key) {
            return Ok(Some(owner.clone()));
        }
        let owner = (state.store.business_of_key(key).await).map_err(|e| e.to_string())?;
        if let Some(owner) = &owner {
            let mut owners = write(&self.owners);
            if owners.len() >= MAX_OWNERS {
                owners.clear();
            }
            owners.insert(key.clone(), owner.clone());
        }
        Ok(owner)
    }

    async fn first_business(&self, state: &AppState) -> Result<BusinessId, String> {
        if let Some(first) = self.first.get() {
            return Ok(first.clone());
        }
        let first = (state.store.first_business().await)
            .map_err(|e| e.to_string())?
            .ok_or("no business exists yet")?;
        Ok(self.first.get_or_init(|| first).clone())
    }
}

// A panic while holding one of these locks leaves a map that is still whole.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_six_lines_without_a_trailing_newline() {
        let message = signed_message("POST", "/licenses/validate", "n0nce", "D", b"", b"{}");
        let lines: Vec<&str> = message.split('\n').collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "licensed-response-v1");
        assert_eq!(lines[1], "POST /licenses/validate");
        assert_eq!(lines[4], "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert!(!message.ends_with('\n'));
    }

    #[test]
    fn nonces_are_one_to_128_visible_ascii_characters() {
        let ok = |text: &str| nonce_of(&HeaderValue::from_str(text).unwrap()).is_some();
        assert!(ok("a"));
        assert!(ok(&"x".repeat(128)));
        assert!(!ok(&"x".repeat(129)));
        assert!(!ok("a b"));
        assert!(!ok(""));
    }
}
