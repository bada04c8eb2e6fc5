//! Who is signed in: the session cookie, read into a [`Signed`] caller with the API key's
//! permissions, and the CSRF check every form's handler makes. The cookie is `HttpOnly`
//! and `SameSite=Strict`; the key itself never leaves the sign-in request.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};

use super::error::ConsoleError;
use crate::domain::auth::Principal;
use crate::domain::console::{ConsoleSession, SessionDigest};
use crate::domain::time::Timestamp;
use crate::http::state::AppState;

/// The cookie naming the session.
pub const SESSION_COOKIE: &str = "licensed_session";
/// The cookie the sign-in form's token is checked against (before there is a session).
pub const SIGN_IN_COOKIE: &str = "licensed_sign_in";

/// A request from a signed-in session, with what its key may do.
pub struct Signed {
    pub session: ConsoleSession,
    pub principal: Principal,
}

/// The session a request's cookie names, whatever its key may do now: enough to end it,
/// which is never refused (not even over the key's rate limit).
pub struct Session(pub ConsoleSession);

impl Session {
    /// Refuses a form whose CSRF token is not the session's.
    pub fn check(&self, csrf_token: &str) -> Result<(), ConsoleError> {
        check_token(&self.0, csrf_token)
    }
}

fn check_token(session: &ConsoleSession, csrf_token: &str) -> Result<(), ConsoleError> {
    if session.allows(csrf_token) {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(
            "This form has expired or did not come from the console. Reload the page and try again.".into(),
        ))
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let session = live_session(&parts.headers, state).await?;
        session.map(Session).ok_or_else(|| signed_out(parts))
    }
}

/// The answer to a request without a live session: sign in, then back to the page it
/// read (a form it sent cannot be sent again for it).
fn signed_out(parts: &Parts) -> ConsoleError {
    let page = (parts.method == Method::GET)
        .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
        .flatten()
        .filter(|page| page != "/console");
    ConsoleError::SignedOut(page)
}

/// Whether `next`, from the sign-in page's query or form, is a console page to open once
/// signed in: a path under `/console` of the characters the console's paths are made of
/// (no dot, so no `..`, no `%`, so none encoded), then any query; never another site's
/// address, nor a path that a browser would resolve out of the console.
pub fn is_console_page(next: &str) -> bool {
    let (path, query) = next.split_once('?').unwrap_or((next, ""));
    let path_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_');
    (path == "/console" || path.starts_with("/console/"))
        && !path.starts_with("/console/sign-in")
        && !path.contains("//")
        && path.bytes().all(path_char)
        && query.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// The live session the request's cookie names, if any.
pub async fn live_session(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<ConsoleSession>, ConsoleError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let digest = SessionDigest::of(token);
    Ok(state.store.session(&digest, Timestamp::now()).await?)
}

/// The request's live session and what its key may do now, if the key is still valid: a
/// revoked key ends its sessions at once (they are left to idle out, and sign in again).
async fn live_principal(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<(ConsoleSession, Principal)>, ConsoleError> {
    let Some(session) = live_session(headers, state).await? else {
        return Ok(None);
    };
    let principal = state.store.authenticate(session.api_key).await?;
    Ok(principal.map(|principal| (session, principal)))
}

/// Whether the request comes from a browser signed in: [`live_principal`].
pub async fn signed_in(headers: &HeaderMap, state: &AppState) -> Result<bool, ConsoleError> {
    Ok(live_principal(headers, state).await?.is_some())
}

impl Signed {
    /// Refuses a form whose CSRF token is not the session's.
    pub fn check(&self, csrf_token: &str) -> Result<(), ConsoleError> {
        check_token(&self.session, csrf_token)
    }

    /// Refuses a write to a read-only key, and a form without the session's token.
    pub fn check_write(&self, csrf_token: &str) -> Result<(), ConsoleError> {
        self.check(csrf_token)?;
        self.check_writable()
    }

    /// Refuses a read-only key: a write, or a page that exists only to write.
    pub fn check_writable(&self) -> Result<(), ConsoleError> {
        if self.principal.read_only {
            return Err(ConsoleError::Forbidden(
                "This API key is read-only: it may look but not change anything.".into(),
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let Some((session, principal)) = live_principal(&parts.headers, state).await? else {
            return Err(signed_out(parts));
        };
        // The console spends its key's requests as the API does (`--api-key-rate-limit`).
        state.limits.check_api_key(&session.api_key)?;
        Ok(Signed { session, principal })
    }
}

/// The value of the request's cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` for the console's paths; `None` clears the cookie.
pub fn set_cookie(
    name: &str,
    value: Option<&str>,
    secure: bool,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(value) => format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    // Tokens are URL-safe base64: always a valid header value.
    (
        SET_COOKIE,
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("")),
    )
}
