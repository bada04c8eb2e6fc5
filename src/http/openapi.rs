//! The OpenAPI document, generated from the handlers and types themselves. A response
//! field the server always sends, null when it has no value, is marked `required`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, MessageBody};
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

/// Declares a set of error responses every route of one kind documents, so that each
/// route lists only the responses particular to it; one list of statuses may serve
/// several sets that differ in their body's shape.
macro_rules! error_set {
    ($($(#[$doc:meta])* $name:ident($body:ty)),+ ; $statuses:tt) => {
        $(error_set!(@one $(#[$doc])* $name, $body, $statuses);)+
    };
    (@one $(#[$doc:meta])* $name:ident, $body:ty, [$(($status:literal, $variant:ident, $description:literal)),* $(,)?]) => {
        $(#[$doc])*
        #[derive(utoipa::IntoResponses)]
        #[allow(dead_code)]
        pub enum $name {
            $(
                #[doc = $description]
                #[response(status = $status)]
                $variant($body),
            )*
        }
    };
}

error_set!(
    /// The errors of every ledger route that writes.
    LedgerWriteErrors(MessageBody),
    /// The errors of every authenticated route that writes, outside the ledger.
    WriteErrors(ErrorBody);
    [
        (401, Unauthorized, "Missing or unknown API key"),
        (403, Forbidden, "Read-only API key"),
        (408, BodyTimedOut, "Body still arriving at the request timeout; nothing was written"),
        (413, PayloadTooLarge, "Body over 64 KiB"),
        (415, UnsupportedMediaType, "Body is not JSON"),
        (429, RateLimited, "Rate limited"),
        (503, Unavailable, "Database unavailable (`SERVICE_UNAVAILABLE`), or the request timed out or a write went unconfirmed (`TIMEOUT`: it may or may not have taken effect)"),
    ]
);
error_set!(
    /// The errors of every ledger route that reads.
    LedgerReadErrors(MessageBody),
    /// The errors of every authenticated route that reads, outside the ledger.
    ReadErrors(ErrorBody);
    [
        (401, Unauthorized, "Missing or unknown API key"),
        (429, RateLimited, "Rate limited"),
        (503, Unavailable, "Database unavailable (`SERVICE_UNAVAILABLE`), or the request timed out (`TIMEOUT`)"),
    ]
);
error_set!(
    /// The errors of every public endpoint (no API key).
    PublicErrors(ErrorBody);
    [
        (408, BodyTimedOut, "Body still arriving at the request timeout; nothing was written"),
        (413, PayloadTooLarge, "Body over 64 KiB"),
        (415, UnsupportedMediaType, "Body is not JSON"),
        (429, RateLimited, "Rate limited (per client IP)"),
        (503, Unavailable, "Database unavailable (`SERVICE_UNAVAILABLE`), or the request timed out or a write went unconfirmed (`TIMEOUT`: it may or may not have taken effect)"),
    ]
);
