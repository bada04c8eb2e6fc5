//! Signing in with an API key, and out. The key is checked once, here; the session then
//! keeps only its digest. The sign-in form carries a token matched against a cookie of
//! its own, so another site cannot sign a browser in with a key of its choosing. Every
//! tab of a browser shows the same token, so the form of any of them signs in; a form
//! posted again once the browser is signed in leads to the console.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::error::{ConsoleError, ConsoleForm, ConsoleQuery};
use super::forms::Csrf;
use super::layout::{Notice, bare, notice};
use super::session::{
    SESSION_COOKIE, SIGN_IN_COOKIE, Session, cookie, is_console_page, set_cookie, signed_in,
};
use crate::domain::auth::KeyDigest;
use crate::domain::console::{ConsoleSession, is_token, random_token, tokens_match};
use crate::domain::time::Timestamp;
use crate::http::state::AppState;

/// `?next=`: the console page to open once signed in.
#[derive(Deserialize, Default)]
pub struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in page, with the browser's form token, or a new one; a browser signed in
/// already goes on to the console.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConsoleQuery(Next { next }): ConsoleQuery<Next>,
) -> Result<Response, ConsoleError> {
    let next = next.filter(|next| is_console_page(next));
    if signed_in(&headers, &state).await? {
        return Ok(to_console(next.as_deref()));
    }
    let asked = next.as_ref().map(|_| "Sign in to open that page.");
    Ok(sign_in_form(
        &state,
        &headers,
        StatusCode::OK,
        asked.map(|text| (Notice::Done, text)),
        next.as_deref(),
    ))
}

fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    message: Option<(Notice, &str)>,
    next: Option<&str>,
) -> Response {
    // The token the browser already holds, if any: a new one would refuse the form of
    // every other tab showing this page.
    let token = match cookie(headers, SIGN_IN_COOKIE) {
        Some(token) if is_token(token) => token.to_owned(),
        _ => random_token(),
    };
    let body = html! {
        @if let Some((kind, text)) = message { (notice(kind, text)) }
        form.card method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(token);
            @if let Some(next) = next { input type="hidden" name="next" value=(next); }
            label for="api_key" { "API key" }
            input #api_key type="password" name="api_key" autocomplete="off" required
                autofocus aria-describedby="api_key_help";
            p #api_key_help .help {
                "The key your operator gave you (" code { "lsk_…" } "). "
                "It is checked once and is not kept in this browser; a read-only key opens a console that only reads."
            }
            button type="submit" { "Sign in" }
        }
    };
    let cookie = set_cookie(SIGN_IN_COOKIE, Some(&token), state.console_secure_cookie);
    (status, [cookie], bare("Sign in", body)).into_response()
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    next: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<SignIn>,
) -> Result<Response, ConsoleError> {
    let next = Some(form.next.as_str()).filter(|next| is_console_page(next));
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !tokens_match(expected, &form.csrf) {
        // A form posted twice, or from a tab left open, after its sign-in: the browser
        // is signed in already (its session cookie is sent from the console only).
        if signed_in(&headers, &state).await? {
            return Ok(to_console(next));
        }
        return Err(ConsoleError::Forbidden(
            "This sign-in form has expired or did not come from the console. Reload the page and try again.".into(),
        ));
    }
    let key = KeyDigest::of(form.api_key.trim());
    if form.api_key.trim().is_empty() || state.store.authenticate(key).await?.is_none() {
        return Ok(sign_in_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some((
                Notice::Refused,
                "That API key is not valid. Check it and try again.",
            )),
            next,
        ));
    }
    let token = random_token();
    let session = ConsoleSession::open(key, &token, Timestamp::now());
    state.store.create_session(&session).await?;
    let secure = state.console_secure_cookie;
    // Appended: two cookies are two `Set-Cookie` headers.
    Ok((
        StatusCode::SEE_OTHER,
        AppendHeaders([
            (LOCATION, console_page(next)),
            set_cookie(SESSION_COOKIE, Some(&token), secure),
            set_cookie(SIGN_IN_COOKIE, None, secure),
        ]),
    )
        .into_response())
}

/// The page `next` names (checked by [`is_console_page`]), else the console's overview.
fn console_page(next: Option<&str>) -> HeaderValue {
    (next.and_then(|next| HeaderValue::from_str(next).ok()))
        .unwrap_or(HeaderValue::from_static("/console"))
}

fn to_console(next: Option<&str>) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, console_page(next))]).into_response()
}

pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    ConsoleForm(form): ConsoleForm<Csrf>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    state.store.delete_session(&session.0.digest).await?;
    Ok(signed_out(&state))
}

fn signed_out(state: &AppState) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, HeaderValue::from_static("/console/sign-in")),
            set_cookie(SESSION_COOKIE, None, state.console_secure_cookie),
        ],
    )
        .into_response()
}
