//! Customers, products, license keys and instances (Dodo Payments-compatible, snake_case).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use super::extract::{JsonBody, PathParam, Query, Reader, Writer, bounded_integer};
use super::state::AppState;
use crate::domain::catalog::{
    Customer, Instance, KeySource, LicenseKey, Product, ProductPatch, key_terms,
};
use crate::domain::entry::{Metadata, check_metadata, optional_metadata_schema};
use crate::domain::ids::{
    Email, InstanceName, KeyString, LongText, Name, ResourceId, new_id, shorten,
};
use crate::domain::license::{
    Change, KeyDuration, KeyPatch, KeyStatus, check_expiry, generate_key,
};
use crate::domain::time::Timestamp;
use crate::storage::{KeyFilter, PageRequest};

pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// The deepest page served; beyond it a list is better filtered than paged.
pub const MAX_PAGE_NUMBER: u32 = 100_000;
/// The largest activation limit accepted on a key or product.
pub const MAX_ACTIVATIONS_LIMIT: u32 = 1_000_000;

/// `{"items": [...]}`, the envelope of every list.
#[derive(Serialize, ToSchema)]
pub struct Items<T> {
    items: Vec<T>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1 is the first page; 0 or no value also mean the first page.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 0, maximum = 100_000)]
    page_number: Option<String>,
    /// Items per page, 1 to 100 (default 10).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

impl Paging {
    fn page(&self) -> Result<PageRequest, ApiError> {
        let number = match &self.page_number {
            None => 0,
            Some(text) => bounded_integer("page_number", text, 0..=MAX_PAGE_NUMBER)?,
        };
        let size = match &self.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => bounded_integer("page_size", text, 1..=MAX_PAGE_SIZE)?,
        };
        Ok(PageRequest { number, size })
    }
}

fn checked_limit(limit: u32, field: &str) -> Result<u32, ApiError> {
    if limit > MAX_ACTIVATIONS_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be at most {MAX_ACTIVATIONS_LIMIT}, got {limit}"
        )));
    }
    Ok(limit)
}

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

fn checked_metadata(metadata: Option<Metadata>) -> Result<Metadata, ApiError> {
    let metadata = metadata.unwrap_or_default();
    check_metadata(&metadata).map_err(ApiError::BadRequest)?;
    Ok(metadata)
}

// ---- customers ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    email: Email,
    name: Name,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    phone_number: Option<ResourceId>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
}

/// Dodo's `Customer`.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerView {
    business_id: String,
    created_at: Timestamp,
    customer_id: String,
    email: String,
    name: String,
    /// Always null: customers are not blocked here.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    blocked_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, required = true)]
    blocklist_entry_id: Option<String>,
    metadata: Metadata,
    #[schema(required = true)]
    phone_number: Option<String>,
    #[schema(value_type = Option<String>, required = true)]
    preferred_locale: Option<String>,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> Self {
        Self {
            business_id: c.business_id,
            created_at: c.created_at,
            customer_id: c.id,
            email: c.email,
            name: c.name,
            blocked_at: None,
            blocklist_entry_id: None,
            metadata: c.metadata,
            phone_number: c.phone_number,
            preferred_locale: None,
        }
    }
}

/// Creates a customer.
#[utoipa::path(post, path = "/customers", tag = "Customers", request_body = CreateCustomer,
    responses(
        (status = 201, description = "The customer", body = CustomerView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_customer(
    State(state): State<AppState>,
    Writer(caller): Writer,
    JsonBody(request): JsonBody<CreateCustomer>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    let customer = Customer {
        id: new_id("cus"),
        business_id: caller.business_id,
        email: request.email.as_str().to_owned(),
        name: request.name.to_string(),
        phone_number: request.phone_number.map(|p| p.to_string()),
        metadata: checked_metadata(request.metadata)?,
        created_at: Timestamp::now(),
    };
    state.store.create_customer(&customer).await?;
    Ok((StatusCode::CREATED, Json(customer.into())))
}

/// A customer by id.
#[utoipa::path(get, path = "/customers/{customer_id}", tag = "Customers",
    params(("customer_id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such customer in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_customer(
    State(state): State<AppState>,
    Reader(caller): Reader,
    PathParam(id): PathParam,
) -> Result<Json<CustomerView>, ApiError> {
    state
        .store
        .customer(&caller.business_id, &id)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::NotFound(format!("customer `{}` not found", shorten(&id))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerFilter {
    /// Only the customers with this email.
    #[serde(default)]
    email: Option<String>,
}

/// Lists customers, oldest first.
#[utoipa::path(get, path = "/customers", tag = "Customers", params(CustomerFilter, Paging),
    responses(
        (status = 200, description = "One page", body = Items<CustomerView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_customers(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(filter): Query<CustomerFilter>,
    Query(paging): Query<Paging>,
) -> Result<Json<Items<CustomerView>>, ApiError> {
    let customers = state
        .store
        .list_customers(&caller.business_id, filter.email.as_deref(), paging.page()?)
        .await?;
    Ok(Json(Items {
        items: customers.into_iter().map(Into::into).collect(),
    }))
}

// ---- products ----

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
            product_id: p.id,
            business_id: p.business_id,
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
        id: new_id("pdt"),
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
        metadata: checked_metadata(request.metadata)?,
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
    PathParam(id): PathParam,
) -> Result<Json<ProductView>, ApiError> {
    state
        .store
        .product(&caller.business_id, &id)
        .await?
        .map(|p| Json(ProductView::new(p, caller.brand_id)))
        .ok_or_else(|| product_not_found(&id))
}

fn product_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("product `{}` not found", shorten(id)))
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
    Query(paging): Query<Paging>,
) -> Result<Json<Items<ProductView>>, ApiError> {
    let products = state
        .store
        .list_products(&caller.business_id, paging.page()?)
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
    PathParam(id): PathParam,
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
        metadata: request
            .metadata
            .map(|m| checked_metadata(Some(m)))
            .transpose()?,
    };
    state
        .store
        .update_product(&caller.business_id, &id, patch)
        .await?
        .map(|p| Json(ProductView::new(p, caller.brand_id)))
        .ok_or_else(|| product_not_found(&id))
}

// ---- license keys ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLicenseKey {
    customer_id: ResourceId,
    product_id: ResourceId,
    /// A key to import; without it, a key is generated.
    #[serde(default)]
    key: Option<KeyString>,
    /// Absent: the product's default; `null`: unlimited.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    activations_limit: Change<u32>,
    /// Absent: now plus the product's duration; `null`: never expires.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Change<Timestamp>,
    #[serde(default)]
    payment_id: Option<ResourceId>,
    #[serde(default)]
    subscription_id: Option<ResourceId>,
}

/// Dodo's `LicenseKey`.
#[derive(Serialize, ToSchema)]
#[schema(as = LicenseKey)]
pub struct LicenseKeyView {
    id: String,
    brand_id: String,
    business_id: String,
    created_at: Timestamp,
    customer_id: String,
    instances_count: u32,
    key: String,
    product_id: String,
    source: KeySource,
    status: KeyStatus,
    #[schema(required = true)]
    activations_limit: Option<u32>,
    #[schema(required = true)]
    expires_at: Option<Timestamp>,
    #[schema(required = true)]
    payment_id: Option<String>,
    #[schema(required = true)]
    subscription_id: Option<String>,
}

impl LicenseKeyView {
    fn new(k: LicenseKey, brand_id: String) -> Self {
        Self {
            status: k.state().status(Timestamp::now()),
            id: k.id,
            brand_id,
            business_id: k.business_id,
            created_at: k.created_at,
            customer_id: k.customer_id,
            instances_count: k.instances_count,
            key: k.key,
            product_id: k.product_id,
            source: k.source,
            activations_limit: k.activations_limit,
            expires_at: k.expires_at,
            payment_id: k.payment_id,
            subscription_id: k.subscription_id,
        }
    }
}

/// Issues a license key to a customer: imported if `key` is given, else generated.
#[utoipa::path(post, path = "/license_keys", tag = "License keys", request_body = CreateLicenseKey,
    responses(
        (status = 201, description = "The license key", body = LicenseKeyView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "Customer or product not found", body = ErrorBody),
        (status = 409, description = "The key already exists", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_license_key(
    State(state): State<AppState>,
    Writer(caller): Writer,
    JsonBody(request): JsonBody<CreateLicenseKey>,
) -> Result<(StatusCode, Json<LicenseKeyView>), ApiError> {
    let business = &caller.business_id;
    let customer = state
        .store
        .customer(business, request.customer_id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("customer `{}` not found", request.customer_id))
        })?;
    let product = state
        .store
        .product(business, request.product_id.as_str())
        .await?
        .ok_or_else(|| product_not_found(request.product_id.as_str()))?;
    check_expiry(request.subscription_id.is_some(), &request.expires_at)?;
    let limit = request
        .activations_limit
        .try_map(|l| checked_limit(l, "activations_limit"))?;
    let now = Timestamp::now();
    let (activations_limit, expires_at) = key_terms(
        &product,
        limit,
        request.expires_at,
        request.subscription_id.is_some(),
        now,
    );
    let (key, source) = match request.key {
        Some(key) => (key.to_string(), KeySource::Import),
        None => (generate_key(), KeySource::Manual),
    };
    let license = LicenseKey {
        id: new_id("lic"),
        business_id: business.clone(),
        key,
        customer_id: customer.id,
        product_id: product.id,
        source,
        activations_limit,
        instances_count: 0,
        disabled: false,
        expires_at,
        payment_id: request.payment_id.map(|p| p.to_string()),
        subscription_id: request.subscription_id.map(|s| s.to_string()),
        created_at: now,
    };
    state.store.create_license_key(&license).await?;
    Ok((
        StatusCode::CREATED,
        Json(LicenseKeyView::new(license, caller.brand_id)),
    ))
}

/// A license key by id.
#[utoipa::path(get, path = "/license_keys/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lic_…`")),
    responses(
        (status = 200, description = "The license key", body = LicenseKeyView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such key in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_license_key(
    State(state): State<AppState>,
    Reader(caller): Reader,
    PathParam(id): PathParam,
) -> Result<Json<LicenseKeyView>, ApiError> {
    state
        .store
        .license_key(&caller.business_id, &id)
        .await?
        .map(|k| Json(LicenseKeyView::new(k, caller.brand_id)))
        .ok_or(ApiError::LicenseKeyNotFound)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LicenseKeyQuery {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    product_id: Option<String>,
    /// `active`, `expired` or `disabled`, as derived when read.
    #[serde(default)]
    #[param(value_type = Option<KeyStatus>)]
    status: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<KeySource>)]
    source: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    created_at_gte: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    created_at_lte: Option<String>,
}

/// Lists license keys, oldest first.
#[utoipa::path(get, path = "/license_keys", tag = "License keys", params(LicenseKeyQuery, Paging),
    responses(
        (status = 200, description = "One page", body = Items<LicenseKeyView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_license_keys(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(query): Query<LicenseKeyQuery>,
    Query(paging): Query<Paging>,
) -> Result<Json<Items<LicenseKeyView>>, ApiError> {
    let instant = |name: &str, value: Option<String>| {
        value
            .map(|v| {
                Timestamp::parse(&v).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))
            })
            .transpose()
    };
    let filter = KeyFilter {
        customer_id: query.customer_id,
        product_id: query.product_id,
        status: query
            .status
            .map(|s| {
                KeyStatus::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`status` must be active, expired or disabled, got `{}`",
                        shorten(&s)
                    ))
                })
            })
            .transpose()?,
        source: query
            .source
            .map(|s| {
                KeySource::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`source` must be auto, import or manual, got `{}`",
                        shorten(&s)
                    ))
                })
            })
            .transpose()?,
        created_at_gte: instant("created_at_gte", query.created_at_gte)?,
        created_at_lte: instant("created_at_lte", query.created_at_lte)?,
    };
    let keys = state
        .store
        .list_license_keys(&caller.business_id, &filter, paging.page()?)
        .await?;
    Ok(Json(Items {
        items: keys
            .into_iter()
            .map(|k| LicenseKeyView::new(k, caller.brand_id.clone()))
            .collect(),
    }))
}

/// A change to a license key: an absent field is unchanged, `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLicenseKey {
    /// `null` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 1_000_000)]
    activations_limit: Change<u32>,
    #[serde(default)]
    disabled: Option<bool>,
    /// `null` removes the expiry.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Change<Timestamp>,
}

/// Changes a key's limit, expiry or disabled flag.
#[utoipa::path(patch, path = "/license_keys/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lic_…`")),
    request_body = UpdateLicenseKey,
    responses(
        (status = 200, description = "The license key", body = LicenseKeyView),
        (status = 400, description = "Invalid input, or an expiry on a subscription's key (NO_EXPIRY_ON_SUBSCRIPTION_LICENSE_KEYS)", body = ErrorBody),
        (status = 404, description = "LICENSE_KEY_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_license_key(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParam(id): PathParam,
    JsonBody(request): JsonBody<UpdateLicenseKey>,
) -> Result<Json<LicenseKeyView>, ApiError> {
    let patch = KeyPatch {
        activations_limit: request
            .activations_limit
            .try_map(|l| checked_limit(l, "activations_limit"))?,
        disabled: request.disabled,
        expires_at: request.expires_at,
    };
    state
        .store
        .update_license_key(&caller.business_id, &id, patch)
        .await?
        .map(|k| Json(LicenseKeyView::new(k, caller.brand_id)))
        .ok_or(ApiError::LicenseKeyNotFound)
}

// ---- instances ----

/// Dodo's `LicenseKeyInstance`.
#[derive(Serialize, ToSchema)]
#[schema(as = LicenseKeyInstance)]
pub struct InstanceView {
    id: String,
    business_id: String,
    created_at: Timestamp,
    license_key_id: String,
    name: String,
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Self {
            id: i.id,
            business_id: i.business_id,
            created_at: i.created_at,
            license_key_id: i.license_key_id,
            name: i.name,
        }
    }
}

fn instance_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("license key instance `{}` not found", shorten(id)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// Only the instances of this key.
    #[serde(default)]
    license_key_id: Option<String>,
}

/// Lists activations, oldest first.
#[utoipa::path(get, path = "/license_key_instances", tag = "License keys", params(InstanceQuery, Paging),
    responses(
        (status = 200, description = "One page", body = Items<InstanceView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_instances(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(query): Query<InstanceQuery>,
    Query(paging): Query<Paging>,
) -> Result<Json<Items<InstanceView>>, ApiError> {
    let instances = state
        .store
        .list_instances(
            &caller.business_id,
            query.license_key_id.as_deref(),
            paging.page()?,
        )
        .await?;
    Ok(Json(Items {
        items: instances.into_iter().map(Into::into).collect(),
    }))
}

/// An activation by id.
#[utoipa::path(get, path = "/license_key_instances/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lki_…`")),
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such instance in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_instance(
    State(state): State<AppState>,
    Reader(caller): Reader,
    PathParam(id): PathParam,
) -> Result<Json<InstanceView>, ApiError> {
    state
        .store
        .instance(&caller.business_id, &id)
        .await?
        .map(|i| Json(i.into()))
        .ok_or_else(|| instance_not_found(&id))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameInstance {
    name: InstanceName,
}

/// Renames an activation.
#[utoipa::path(patch, path = "/license_key_instances/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lki_…`")),
    request_body = RenameInstance,
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such instance in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn rename_instance(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParam(id): PathParam,
    JsonBody(request): JsonBody<RenameInstance>,
) -> Result<Json<InstanceView>, ApiError> {
    state
        .store
        .rename_instance(&caller.business_id, &id, request.name.as_str())
        .await?
        .map(|i| Json(i.into()))
        .ok_or_else(|| instance_not_found(&id))
}
