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

use super::error::{ConsoleError, ConsoleForm};
use super::forms::Csrf;
use super::layout::{Notice, bare, notice};
use super::session::{SESSION_COOKIE, SIGN_IN_COOKIE, Session, cookie, live_session, set_cookie};
use crate::domain::auth::KeyDigest;
use crate::domain::console::{ConsoleSession, is_token, random_token, tokens_match};
use crate::domain::time::Timestamp;
use crate::http::state::AppState;

/// The sign-in page, with the browser's form token, or a new one.
pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_in_form(&state, &headers, StatusCode::OK, None)
}

fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    refused: Option<&str>,
) -> Response {
    // The token the browser already holds, if any: a new one would refuse the form of
    // every other tab showing this page.
    let token = match cookie(headers, SIGN_IN_COOKIE) {
        Some(token) if is_token(token) => token.to_owned(),
        _ => random_token(),
    };
    let body = html! {
        @if let Some(refused) = refused { (notice(Notice::Refused, refused)) }
        form.card method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(token);
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
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<SignIn>,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !tokens_match(expected, &form.csrf) {
        // A form posted twice, or from a tab left open, after its sign-in: the browser
        // is signed in already (its session cookie is sent from the console only).
        if live_session(&headers, &state).await?.is_some() {
            return Ok(to_console());
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
            Some("That API key is not valid. Check it and try again."),
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
            (LOCATION, HeaderValue::from_static("/console")),
            set_cookie(SESSION_COOKIE, Some(&token), secure),
            set_cookie(SIGN_IN_COOKIE, None, secure),
        ]),
    )
        .into_response())
}

fn to_console() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static("/console"))],
    )
        .into_response()
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
