//! The OpenAPI document, generated from the handlers and types themselves. A response
//! field the server always sends, null when it has no value, is marked `required`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{ledger, licenses, ops, public};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "licensed",
        description = "A self-hosted license server: a license-updates ledger compatible with \
                       Togai's API, and license keys compatible with Dodo Payments' API.",
    ),
    paths(
        ledger::add_license_update,
        ledger::list_license_updates,
        ledger::update_license_entry,
        ledger::license_quantity,
        ledger::license_usage,
        licenses::create_customer,
        licenses::get_customer,
        licenses::list_customers,
        licenses::create_product,
        licenses::get_product,
        licenses::list_products,
        licenses::update_product,
        licenses::create_license_key,
        licenses::get_license_key,
        licenses::list_license_keys,
        licenses::update_license_key,
        licenses::list_instances,
        licenses::get_instance,
        licenses::rename_instance,
        public::activate,
        public::deactivate,
        public::validate,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "Ledger", description = "Seats and add-on quantities per account over time"),
        (name = "Customers", description = "The customers license keys are issued to"),
        (name = "Products", description = "Products and the defaults of their license keys"),
        (name = "License keys", description = "Keys, their limits, expiry and activations"),
        (name = "Licenses (public)", description = "What an app calls with a key; no API key"),
        (name = "Operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .build(),
            ),
        );
    }
}
