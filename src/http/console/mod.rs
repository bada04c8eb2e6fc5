//! `/console`: the web console for the people who issue and support licenses. Pages are
//! rendered on the server (maud) through the same store as the API; the stylesheet and
//! the one small script are embedded in the binary. Every form posts back with the
//! session's CSRF token; every page is sent with headers that keep it out of frames and
//! caches and let it load nothing from elsewhere.

mod catalog;
mod chart;
mod error;
mod forms;
mod layout;
mod ledger;
mod license_keys;
mod overview;
mod session;
mod sign_in;
mod webhooks;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use error::ConsoleError;
pub use error::error_page;

/// The console's routes, with their headers.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::overview))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route(
            "/console/sign-in",
            get(sign_in::sign_in_page).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/customers", get(catalog::customers))
        .route(
            "/console/products",
            get(catalog::products).post(catalog::create_product),
        )
        .route(
            "/console/products/{id}",
            get(catalog::product).post(catalog::update_product),
        )
        .route("/console/ledger", get(ledger::pairs))
        .route(
            "/console/ledger/pair",
            get(ledger::pair).post(ledger::add_update),
        )
        .route("/console/webhooks", get(webhooks::endpoints))
        .route("/console/webhooks/{id}", get(webhooks::endpoint))
        .route("/console/webhooks/{id}/enable", post(webhooks::enable))
        .route("/console/webhooks/{id}/disable", post(webhooks::disable))
        .route(
            "/console/webhooks/{id}/messages/{message}/retry",
            post(webhooks::retry),
        )
        .route("/console/license-keys", get(license_keys::list))
        .route(
            "/console/license-keys/new",
            get(license_keys::new_key_page).post(license_keys::issue_key),
        )
        .route("/console/license-keys/{id}", get(license_keys::detail))
        .route(
            "/console/license-keys/{id}/edit",
            post(license_keys::edit_key),
        )
        .route(
            "/console/license-keys/{id}/license-file",
            post(license_keys::license_file),
        )
        .route(
            "/console/license-keys/{id}/disable",
            post(license_keys::disable),
        )
        .route(
            "/console/license-keys/{id}/enable",
            post(license_keys::enable),
        )
        .route(
            "/console/license-keys/{id}/instances/{instance}/deactivate",
            post(license_keys::deactivate),
        )
        .route("/console/{*rest}", any(no_page))
        .layer(axum::middleware::from_fn(refuse_other_sites))
        .layer(axum::middleware::map_response(page_headers))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
}

/// Nothing but the console's own files may load; no framing; no caching of pages that
/// show a business's data; no referrer leaving with a URL.
async fn page_headers(mut response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        // The router's own answer has no body; a page says what happened, as for a 404.
        let allow = response.headers_mut().remove(ALLOW);
        response = layout::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "This page cannot be reached that way: it does not take this request method.",
        )
        .into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(ALLOW, allow);
        }
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// Refuses a request that would change something and that the browser says another site
/// sent (`Sec-Fetch-Site`), a sibling subdomain included: the session cookie's
/// `SameSite=Strict` does not keep out a site on the same domain, which could also have
/// planted the sign-in form's cookie. Before anything is read or looked up; a browser that
/// does not send the header is left to the forms' tokens.
async fn refuse_other_sites(request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let sender = request.headers().get("sec-fetch-site");
    if changes && sender.is_some_and(|s| matches!(s.as_bytes(), b"cross-site" | b"same-site")) {
        return ConsoleError::Forbidden(
            "This form was sent from another site, not from the console. Open the console and send it from there.".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// A path under `/console` that is no page: a page saying so, as the console's other
/// errors are, rather than the API's JSON.
async fn no_page(uri: Uri) -> ConsoleError {
    ConsoleError::Api(ApiError::NotFound(format!(
        "there is no console page at {}",
        uri.path()
    )))
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
        .into_response()
}
