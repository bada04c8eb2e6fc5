//! `/products`: products and the defaults their new license keys start from.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::checks::checked_limit;
use super::listing::{Items, Paging};
use crate::domain::catalog::{Product, ProductPatch};
use crate::domain::ids::{LongText, Name, ProductId, shorten};
use crate::domain::license::{Change, KeyDuration};
use crate::domain::metadata::{Metadata, optional_metadata_schema};
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{JsonBody, PathParam, Reader, Writer};
use crate::http::state::AppState;

fn checked_duration(duration: KeyDuration, field: &str) -> Result<KeyDuration, ApiError> {
    if !(1..=KeyDuration::MAX_COUNT).contains(&duration.count) {
        return Err(ApiError::BadRequest(format!(
            "`{field}.count` must be between 1 and {}, got {}",
            KeyDuration::MAX_COUNT,
            duration.count
        )));
    }
    Ok(duration)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    name: Name,
    #[serde(default)]
    description: Option<LongText>,
    /// The activation limit of the product's new keys; none means unlimited.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    license_key_activations_limit: Option<u32>,
    /// How long the product's new keys last; none means forever.
    #[serde(default)]
    license_key_duration: Option<KeyDuration>,
    /// Shown to the customer when a key is activated.
    #[serde(default)]
    license_key_activation_message: Option<LongText>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Product)]
pub struct ProductView {
    product_id: String,
    business_id: String,
    brand_id: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    name: String,
    #[schema(required = true)]
    description: Option<String>,
    /// Always true: every product here issues license keys.
    license_key_enabled: bool,
    #[schema(required = true)]
    license_key_activations_limit: Option<u32>,
    #[schema(required = true)]
    license_key_duration: Option<KeyDuration>,
    #[schema(required = true)]
    license_key_activation_message: Option<String>,
    metadata: Metadata,
}

impl ProductView {
    fn new(p: Product, brand_id: String) -> Self {
        Self {
            product_id: p.id.into_string(),
            business_id: p.business_id.into_string(),
            brand_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
            name: p.name,
            description: p.description,
            license_key_enabled: true,
            license_key_activations_limit: p.license_key_activations_limit,
            license_key_duration: p.license_key_duration,
            license_key_activation_message: p.license_key_activation_message,
            metadata: p.metadata,
        }
    }
}

/// Creates a product: the license-key defaults its keys start from.
#[utoipa::path(post, path = "/products", tag = "Products", request_body = CreateProduct,
    responses(
        (status = 201, description = "The product", body = ProductView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    Writer(caller): Writer,
    JsonBody(request): JsonBody<CreateProduct>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let now = Timestamp::now();
    let product = Product {
        id: ProductId::generate(),
        business_id: caller.business_id,
        name: request.name.to_string(),
        description: request.description.map(LongText::into_string),
        license_key_activations_limit: request
            .license_key_activations_limit
            .map(|l| checked_limit(l, "license_key_activations_limit"))
            .transpose()?,
        license_key_duration: request
            .license_key_duration
            .map(|d| checked_duration(d, "license_key_duration"))
            .transpose()?,
        license_key_activation_message: request
            .license_key_activation_message
            .map(LongText::into_string),
        metadata: request.metadata.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    state.store.create_product(&product).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProductView::new(product, caller.brand_id)),
    ))
}

/// A product by id.
#[utoipa::path(get, path = "/products/{id}", tag = "Products",
    params(("id" = String, Path, description = "`pdt_…`")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such product in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_product(
    State(state): State<AppState>,
    Reader(caller): Reader,
    PathParam(id): PathParam<ProductId>,
) -> Result<Json<ProductView>, ApiError> {
    state
        .store
        .product(&caller.business_id, &id)
        .await?
        .map(|p| Json(ProductView::new(p, caller.brand_id)))
        .ok_or_else(|| product_not_found(&id))
}

pub(super) fn product_not_found(id: &ProductId) -> ApiError {
    ApiError::NotFound(format!("product `{}` not found", shorten(id.as_str())))
}

/// Lists products, oldest first.
#[utoipa::path(get, path = "/products", tag = "Products", params(Paging),
    responses(
        (status = 200, description = "One page", body = Items<ProductView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_products(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Paging(page): Paging,
) -> Result<Json<Items<ProductView>>, ApiError> {
    let products = state
        .store
        .list_products(&caller.business_id, page)
        .await?;
    Ok(Json(Items {
        items: products
            .into_iter()
            .map(|p| ProductView::new(p, caller.brand_id.clone()))
            .collect(),
    }))
}

/// A change to a product: absent fields are unchanged; `null` clears an optional field
/// (`name` and `metadata` cannot be cleared: `null` leaves them unchanged).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[serde(default)]
    name: Option<Name>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 5000)]
    description: Change<LongText>,
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    license_key_activations_limit: Change<u32>,
    #[serde(default)]
    #[schema(value_type = Option<KeyDuration>)]
    license_key_duration: Change<KeyDuration>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 5000)]
    license_key_activation_message: Change<LongText>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
}

/// Changes a product. Keys already issued keep their limit and expiry.
#[utoipa::path(patch, path = "/products/{id}", tag = "Products",
    params(("id" = String, Path, description = "`pdt_…`")),
    request_body = UpdateProduct,
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such product in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_product(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParam(id): PathParam<ProductId>,
    JsonBody(request): JsonBody<UpdateProduct>,
) -> Result<Json<ProductView>, ApiError> {
    let text = |change: Change<LongText>| change.try_map(|t| Ok::<_, ApiError>(t.into_string()));
    let patch = ProductPatch {
        name: request.name.map(|n| n.to_string()),
        description: text(request.description)?,
        license_key_activations_limit: request
            .license_key_activations_limit
            .try_map(|l| checked_limit(l, "license_key_activations_limit"))?,
        license_key_duration: request
            .license_key_duration
            .try_map(|d| checked_duration(d, "license_key_duration"))?,
        license_key_activation_message: text(request.license_key_activation_message)?,
        metadata: request.metadata,
    };
    state
        .store
        .update_product(&caller.business_id, &id, patch)
        .await?
        .map(|p| Json(ProductView::new(p, caller.brand_id)))
        .ok_or_else(|| product_not_found(&id))
}
