//! The OpenAPI document, generated from the handlers and types themselves, and the routes
//! that serve it: `/openapi.json` and its rendering at `/docs`. A response field the
//! server always sends, null when it has no value, is marked `required`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::dodo::{
    customers, instances, license_files, license_keys, products, public, signing_keys,
    webhook_messages, webhooks,
};
use super::ops;
use super::togai::{license_updates, quantity, usage};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "licensed",
        description = "A self-hosted license server: a license-updates ledger compatible with \
                       Togai's API, and license keys compatible with Dodo Payments' API.",
    ),
    paths(
        license_updates::add_license_update,
        license_updates::list_license_updates,
        license_updates::update_license_entry,
        quantity::license_quantity,
        usage::license_usage,
        customers::create_customer,
        customers::get_customer,
        customers::list_customers,
        products::create_product,
        products::get_product,
        products::list_products,
        products::update_product,
        license_keys::create_license_key,
        license_keys::get_license_key,
        license_keys::list_license_keys,
        license_keys::update_license_key,
        license_files::issue_license_file,
        instances::list_instances,
        instances::get_instance,
        instances::rename_instance,
        public::activate,
        public::deactivate,
        public::validate,
        public::heartbeat,
        license_files::issue_own_license_file,
        signing_keys::list_signing_keys,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::get_webhook_secret,
        webhooks::get_webhook_headers,
        webhooks::update_webhook_headers,
        webhook_messages::list_messages,
        webhook_messages::retry_message,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        openapi_json,
    ),
    modifiers(&BearerAuth, &NonEmptyQueries, &SignedAnswers),
    tags(
        (name = "Ledger", description = "Seats and add-on quantities per account over time"),
        (name = "Customers", description = "The customers license keys are issued to"),
        (name = "Products", description = "Products and the defaults of their license keys"),
        (name = "License keys", description = "Keys, their limits, expiry and activations"),
        (name = "Licenses (public)", description = "What an app calls with a key; no API key"),
        (name = "Signing keys", description = "The public keys that verify signed answers and license files"),
        (name = "Webhooks", description = "Endpoints a business's events are delivered to, their secrets and custom headers"),
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

/// Every text query parameter is refused empty (`Query` in `extract`): the document says so
/// once for all of them.
struct NonEmptyQueries;

impl Modify for NonEmptyQueries {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{Schema, SchemaType, Type};
        let is_text = |kind: &SchemaType| match kind {
            SchemaType::Type(kind) => *kind == Type::String,
            SchemaType::Array(kinds) => kinds.contains(&Type::String),
            SchemaType::AnyValue => false,
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            let parameters = (operations.into_iter().flatten())
                .flat_map(|op| op.parameters.iter_mut().flatten());
            for parameter in parameters.filter(|p| p.parameter_in == ParameterIn::Query) {
                if let Some(RefOr::T(Schema::Object(schema))) = &mut parameter.schema
                    && is_text(&schema.schema_type)
                    && schema.min_length.is_none()
                {
                    schema.min_length = Some(1);
                }
            }
        }
    }
}

/// Every answer of the `/licenses/*` routes, whatever its status, is signed when the
/// request sent `Licensed-Nonce` (`signing`): the document says so once for all of them.
struct SignedAnswers;

impl Modify for SignedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::header::HeaderBuilder;
        let header =
            |description: &str| HeaderBuilder::new().description(Some(description)).build();
        let signature = header(
            "Sent only when the request carried `Licensed-Nonce`: `keyid=\"sk_…\", \
             algorithm=\"ed25519\", signature=\"<base64>\"`, an Ed25519 signature over \
             `licensed-response-v1`, `METHOD path`, the nonce, the `Date`, and the base64 \
             SHA-256 of the request body and of the response body, joined by newlines. The \
             status line is not signed.",
        );
        let date = header(
            "The instant of the answer; when the request carried `Licensed-Nonce`, the one \
             the signature covers.",
        );
        let signed = (openapi.paths.paths.iter_mut())
            .filter(|(path, _)| path.starts_with("/licenses/"))
            .flat_map(|(_, item)| [&mut item.get, &mut item.post].into_iter().flatten());
        for operation in signed {
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    let headers = &mut response.headers;
                    headers.insert("Licensed-Signature".into(), signature.clone());
                    headers.insert("Date".into(), date.clone());
                }
            }
        }
    }
}

/// The OpenAPI 3.1 document of this server.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

/// `/docs`: the OpenAPI document rendered for people, by Swagger UI. Its scripts are
/// served from the binary, so the page works where the browser cannot reach the internet.
pub fn docs() -> SwaggerUi {
    SwaggerUi::new("/docs").config(Config::new(["/openapi.json"]))
}
