//! The Dodo Payments-compatible API (snake_case): customers, products, license keys and
//! their instances, and the public `/licenses/*` endpoints an app calls with a key. One
//! file per resource; [`routes`] says which path each handler answers.

pub mod customers;
pub mod instances;
pub mod license_files;
pub mod license_keys;
mod listing;
pub mod products;
pub mod public;
pub mod signing_keys;
pub mod webhook_messages;
pub mod webhooks;

use axum::Router;
use axum::routing::{any, get, post};

use crate::http::state::AppState;

/// The routes of the Dodo Payments-compatible API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/customers",
            get(customers::list_customers).post(customers::create_customer),
        )
        .route("/customers/{customer_id}", get(customers::get_customer))
        .route(
            "/products",
            get(products::list_products).post(products::create_product),
        )
        .route(
            "/products/{id}",
            get(products::get_product).patch(products::update_product),
        )
        .route(
            "/license_keys",
            get(license_keys::list_license_keys).post(license_keys::create_license_key),
        )
        .route(
            "/license_keys/{id}",
            get(license_keys::get_license_key).patch(license_keys::update_license_key),
        )
        .route(
            "/license_keys/{id}/license_file",
            post(license_files::issue_license_file),
        )
        .route("/license_key_instances", get(instances::list_instances))
        .route(
            "/license_key_instances/{id}",
            get(instances::get_instance).patch(instances::rename_instance),
        )
        .route("/signing_keys", get(signing_keys::list_signing_keys))
        .route(
            "/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/webhooks/{id}",
            get(webhooks::get_webhook)
                .patch(webhooks::update_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route("/webhooks/{id}/secret", get(webhooks::get_webhook_secret))
        .route(
            "/webhooks/{id}/headers",
            get(webhooks::get_webhook_headers).patch(webhooks::update_webhook_headers),
        )
        .route(
            "/webhooks/{id}/messages",
            get(webhook_messages::list_messages),
        )
        .route(
            "/webhooks/{id}/messages/{msg_id}/retry",
            post(webhook_messages::retry_message),
        )
}

/// The public `/licenses/*` routes an app calls with a license key, whose answers are
/// signed on request.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/licenses/activate", post(public::activate))
        .route("/licenses/deactivate", post(public::deactivate))
        .route("/licenses/validate", post(public::validate))
        .route("/licenses/heartbeat", post(public::heartbeat))
        .route(
            "/licenses/license_file",
            post(license_files::issue_own_license_file),
        )
        // Here rather than in the router's fallback, so that its 404 is signed too.
        .route("/licenses/{*unknown}", any(public::no_route))
}
