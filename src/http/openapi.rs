//! The OpenAPI document, generated from the handlers and types themselves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{ledger, ops};

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
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_json,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "Ledger", description = "Seats and add-on quantities per account over time"),
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
