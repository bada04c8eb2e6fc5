//! The Togai-compatible API (camelCase): the license-updates ledger, and the reads beyond
//! Togai of the quantity at an instant and of daily usage. One file per route;
//! [`routes`] says which path each handler answers, and [`owns`] which paths are Togai's.

pub mod license_updates;
mod params;
pub mod quantity;
pub mod usage;

use axum::Router;
use axum::routing::{get, patch};

use crate::http::state::AppState;

/// The routes of the Togai-compatible API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/license_updates",
            get(license_updates::list_license_updates).post(license_updates::add_license_update),
        )
        .route(
            "/license_updates/{license_id}",
            patch(license_updates::update_license_entry),
        )
        .route("/license_quantity", get(quantity::license_quantity))
        .route("/license_usage", get(usage::license_usage))
}

/// Whether `path` is under the paths of [`routes`]: one that no route matches is an
/// unknown route of this API, whose errors take its shape.
pub fn owns(path: &str) -> bool {
    ["/license_updates", "/license_quantity", "/license_usage"]
        .iter()
        .any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}
