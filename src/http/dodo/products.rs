//! `/products`: products, the defaults their new license keys start from, and Dodo's
//! descriptive product fields (price, tax category, …), stored and echoed so that Dodo's
//! clients can create, read, change and list products unchanged.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::listing::{Items, NoFilters, Paging};
use crate::domain::catalog::{Delivery, DetailsPatch, Product, ProductDetails, ProductPatch};
use crate::domain::ids::{BusinessId, LongText, Name, ProductId, ResourceId, WebUrl, shorten};
use crate::domain::license::{ActivationsLimit, Change, Interval, KeyDuration};
use crate::domain::metadata::{Metadata, optional_metadata_schema};
use crate::domain::object::Object;
use crate::domain::pricing::{
    Amount, Currency, Percent, PeriodCount, Price, PricingMode, TaxCategory, UnitPrice,
};
use crate::domain::seats::HeartbeatInterval;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{JsonBody, NoQuery, PathParam, Query, Reader, Writer};
use crate::http::state::AppState;

/// The most add-ons one product offers.
const MAX_ADDONS: usize = 100;

fn checked_addons(addons: Vec<ResourceId>) -> Result<Vec<ResourceId>, ApiError> {
    if addons.len() > MAX_ADDONS {
        return Err(ApiError::BadRequest(format!(
            "`addons` has {} entries; at most {MAX_ADDONS} are allowed",
            addons.len()
        )));
    }
    Ok(addons)
}

/// A business has one brand, which every product belongs to: naming another is an error.
fn check_brand(brand_id: Option<&ResourceId>, own: &str) -> Result<(), ApiError> {
    match brand_id {
        Some(brand) if brand.as_str() != own => Err(ApiError::Unprocessable(format!(
            "`brand_id`: no brand `{}` in this business; its one brand is `{own}`",
            shorten(brand.as_str())
        ))),
        _ => Ok(()),
    }
}

/// An entitlement attached to a product, by id (Dodo's `AttachProductEntitlement`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachEntitlement {
    entitlement_id: ResourceId,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverageBehavior {
    ForgiveAtReset,
    InvoiceAtBilling,
    CarryDeficit,
    CarryDeficitAutoRepay,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProrationBehavior {
    Prorate,
    NoProrate,
}

/// A credit entitlement attached to a product (Dodo's `AttachCreditEntitlement`). Its
/// settings are read only to check them against Dodo's schema: a product attaches none here.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AttachCreditEntitlement {
    credit_entitlement_id: ResourceId,
    credits_amount: UnitPrice,
    #[serde(default)]
    currency: Option<Currency>,
    #[serde(default)]
    expires_after_days: Option<PeriodCount>,
    #[serde(default)]
    low_balance_threshold_percent: Option<Percent>,
    #[serde(default)]
    max_rollover_count: Option<PeriodCount>,
    #[serde(default)]
    overage_behavior: Option<OverageBehavior>,
    #[serde(default)]
    overage_enabled: Option<bool>,
    #[serde(default)]
    overage_limit: Option<UnitPrice>,
    #[serde(default)]
    price_per_unit: Option<UnitPrice>,
    #[serde(default)]
    proration_behavior: Option<ProrationBehavior>,
    #[serde(default)]
    rollover_enabled: Option<bool>,
    #[serde(default)]
    rollover_percentage: Option<Percent>,
    #[serde(default)]
    rollover_timeframe_count: Option<PeriodCount>,
    #[serde(default)]
    rollover_timeframe_interval: Option<Interval>,
    #[serde(default)]
    trial_credits: Option<UnitPrice>,
    #[serde(default)]
    trial_credits_expire_after_trial: Option<bool>,
}

/// Entitlements live in Dodo's own entitlement store, which this server does not have:
/// no id can name one here, and what a product answers about them (their names and
/// integrations) cannot be made up. So an attachment is refused, and lists stay empty.
fn no_entitlements(
    entitlements: Option<&[Object<AttachEntitlement>]>,
    credit_entitlements: Option<&[Object<AttachCreditEntitlement>]>,
) -> Result<(), ApiError> {
    let refused = |field: &str, what: &str, id: &ResourceId| {
        Err(ApiError::Unprocessable(format!(
            "`{field}[0]`: no {what} `{}` here: this server keeps no {what}s, so a product \
             attaches none (send an empty list or leave the field out)",
            shorten(id.as_str())
        )))
    };
    if let Some(first) = entitlements.and_then(<[_]>::first) {
        return refused("entitlements", "entitlement", &first.0.entitlement_id);
    }
    if let Some(first) = credit_entitlements.and_then(<[_]>::first) {
        return refused(
            "credit_entitlements",
            "credit entitlement",
            &first.0.credit_entitlement_id,
        );
    }
    Ok(())
}

/// How a buyer gets the product, as Dodo's create and update requests describe it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRequest {
    #[serde(default)]
    external_url: Option<WebUrl>,
    #[serde(default)]
    instructions: Option<LongText>,
    /// Ids of files uploaded to Dodo; none are kept here, so the list must be empty.
    #[serde(default)]
    #[schema(max_items = 0)]
    files: Option<Vec<ResourceId>>,
}

impl DeliveryRequest {
    fn checked(Object(request): Object<Self>) -> Result<Delivery, ApiError> {
        if let Some(file) = request.files.as_deref().and_then(<[_]>::first) {
            return Err(ApiError::Unprocessable(format!(
                "`digital_product_delivery.files[0]`: no uploaded file `{}` here: this server \
                 keeps no files (link to them with `external_url`)",
                shorten(file.as_str())
            )));
        }
        Ok(Delivery {
            external_url: request.external_url,
            instructions: request.instructions,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    name: Name,
    #[serde(default)]
    description: Option<LongText>,
    /// The activation limit of the product's new keys; none means unlimited.
    #[serde(default)]
    #[schema(value_type = Option<ActivationsLimit>)]
    license_key_activations_limit: Option<ActivationsLimit>,
    /// How long the product's new keys last; none means forever.
    #[serde(default)]
    #[schema(value_type = Option<KeyDuration>)]
    license_key_duration: Option<Object<KeyDuration>>,
    /// Shown to the customer when a key is activated.
    #[serde(default)]
    license_key_activation_message: Option<LongText>,
    /// The heartbeat interval of the product's new keys, in seconds; none: no heartbeats.
    #[serde(default)]
    heartbeat_interval: Option<HeartbeatInterval>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
    /// Dodo's price object; none is a one-time price of 0 USD. Nothing is charged here.
    #[serde(default)]
    price: Option<Price>,
    /// None is `saas`.
    #[serde(default)]
    tax_category: Option<TaxCategory>,
    /// Ids of the add-ons offered with the product.
    #[serde(default)]
    #[schema(max_items = 100)]
    addons: Option<Vec<ResourceId>>,
    /// The business's brand (the only one it has); none is the same.
    #[serde(default)]
    brand_id: Option<ResourceId>,
    /// The URL of the product's image.
    #[serde(default)]
    image: Option<WebUrl>,
    #[serde(default)]
    #[schema(value_type = Option<DeliveryRequest>)]
    digital_product_delivery: Option<Object<DeliveryRequest>>,
    #[serde(default)]
    pricing_mode: Option<PricingMode>,
    /// Whether a purchase issues a key (default true); keys can be issued here either way.
    #[serde(default)]
    license_key_enabled: Option<bool>,
    /// This server keeps no credit entitlements: the list must be empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AttachCreditEntitlement>>, max_items = 0)]
    credit_entitlements: Option<Vec<Object<AttachCreditEntitlement>>>,
    /// This server keeps no entitlements: the list must be empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AttachEntitlement>>, max_items = 0)]
    entitlements: Option<Vec<Object<AttachEntitlement>>>,
}

/// How a buyer gets the product: Dodo's `DigitalProductDelivery`.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// Always empty: no files are kept here.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    files: Vec<serde_json::Value>,
    #[schema(required = true)]
    external_url: Option<WebUrl>,
    #[schema(required = true)]
    instructions: Option<LongText>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            files: Vec::new(),
            external_url: d.external_url,
            instructions: d.instructions,
        }
    }
}

/// Dodo's `Product`, with the license-key defaults of its new keys.
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
    price: Price,
    tax_category: TaxCategory,
    /// True for a recurring or usage-based price.
    is_recurring: bool,
    license_key_enabled: bool,
    #[schema(required = true)]
    license_key_activations_limit: Option<u32>,
    #[schema(required = true)]
    license_key_duration: Option<KeyDuration>,
    #[schema(required = true)]
    license_key_activation_message: Option<String>,
    /// The heartbeat interval of the product's new keys; null: no heartbeats.
    #[schema(required = true)]
    heartbeat_interval: Option<HeartbeatInterval>,
    metadata: Metadata,
    #[schema(required = true)]
    addons: Option<Vec<ResourceId>>,
    #[schema(required = true)]
    image: Option<WebUrl>,
    #[schema(required = true)]
    digital_product_delivery: Option<DeliveryView>,
    #[schema(required = true)]
    pricing_mode: Option<PricingMode>,
    /// Always empty: this server keeps no credit entitlements.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    credit_entitlements: Vec<serde_json::Value>,
    /// Always empty: this server keeps no entitlements.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    entitlements: Vec<serde_json::Value>,
    /// Always null: products are not grouped into collections here.
    #[schema(value_type = Option<String>, required = true)]
    product_collection_id: Option<String>,
}

impl ProductView {
    fn new(p: Product, brand_id: String) -> Self {
        let details = p.details;
        Self {
            product_id: p.id.into_string(),
            business_id: p.business_id.into_string(),
            brand_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
            name: p.name,
            description: p.description,
            is_recurring: details.price.is_recurring(),
            price: details.price,
            tax_category: details.tax_category,
            license_key_enabled: details.license_key_enabled,
            license_key_activations_limit: p.license_key_activations_limit,
            license_key_duration: p.license_key_duration,
            license_key_activation_message: p.license_key_activation_message,
            heartbeat_interval: p.heartbeat_interval,
            metadata: p.metadata,
            addons: details.addons,
            image: details.image,
            digital_product_delivery: details.digital_product_delivery.map(Into::into),
            pricing_mode: details.pricing_mode,
            credit_entitlements: Vec::new(),
            entitlements: Vec::new(),
            product_collection_id: None,
        }
    }
}

/// A product as Dodo's lists show it (`ProductListResponse`): the price as an amount and
/// currency, with the whole price object in `price_detail`.
#[derive(Serialize, ToSchema)]
#[schema(as = ProductListItem)]
pub struct ProductListView {
    product_id: String,
    business_id: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    name: String,
    #[schema(required = true)]
    description: Option<String>,
    #[schema(required = true)]
    image: Option<WebUrl>,
    metadata: Metadata,
    is_recurring: bool,
    tax_category: TaxCategory,
    /// The amount in the currency's smallest unit (a usage-based price's fixed part).
    price: Amount,
    currency: Currency,
    price_detail: Price,
    #[schema(required = true)]
    pricing_mode: Option<PricingMode>,
    #[schema(required = true)]
    tax_inclusive: Option<bool>,
    /// Always empty: this server keeps no entitlements.
    #[schema(value_type = Vec<Object>, max_items = 0)]
    entitlements: Vec<serde_json::Value>,
    /// The heartbeat interval of the product's new keys; null: no heartbeats.
    #[schema(required = true)]
    heartbeat_interval: Option<HeartbeatInterval>,
}

impl From<Product> for ProductListView {
    fn from(p: Product) -> Self {
        let details = p.details;
        Self {
            product_id: p.id.into_string(),
            business_id: p.business_id.into_string(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            name: p.name,
            description: p.description,
            image: details.image,
            heartbeat_interval: p.heartbeat_interval,
            metadata: p.metadata,
            is_recurring: details.price.is_recurring(),
            tax_category: details.tax_category,
            price: details.price.amount(),
            currency: details.price.currency(),
            tax_inclusive: details.price.tax_inclusive(),
            price_detail: details.price,
            pricing_mode: details.pricing_mode,
            entitlements: Vec::new(),
        }
    }
}

/// Creates a product: the license-key defaults its keys start from, and how it is sold.
#[utoipa::path(post, path = "/products", tag = "Products", request_body = CreateProduct,
    responses(
        (status = 201, description = "The product", body = ProductView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 422, description = "A brand, entitlement or file this server does not have", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_product(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    JsonBody(request): JsonBody<CreateProduct>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let product = create(&state, &caller.business_id, &caller.brand_id, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProductView::new(product, caller.brand_id)),
    ))
}

/// Creates a product as `POST /products` asks (the console's form asks the same way).
pub(crate) async fn create(
    state: &AppState,
    business: &BusinessId,
    brand_id: &str,
    request: CreateProduct,
) -> Result<Product, ApiError> {
    check_brand(request.brand_id.as_ref(), brand_id)?;
    no_entitlements(
        request.entitlements.as_deref(),
        request.credit_entitlements.as_deref(),
    )?;
    let defaults = ProductDetails::default();
    let details = ProductDetails {
        price: request.price.unwrap_or(defaults.price),
        tax_category: request.tax_category.unwrap_or(defaults.tax_category),
        pricing_mode: request.pricing_mode,
        addons: request.addons.map(checked_addons).transpose()?,
        image: request.image,
        digital_product_delivery: request
            .digital_product_delivery
            .map(DeliveryRequest::checked)
            .transpose()?,
        license_key_enabled: request
            .license_key_enabled
            .unwrap_or(defaults.license_key_enabled),
    };
    let now = Timestamp::now();
    let product = Product {
        id: ProductId::generate(),
        business_id: business.clone(),
        name: request.name.to_string(),
        description: request.description.map(LongText::into_string),
        license_key_activations_limit: (request.license_key_activations_limit)
            .map(ActivationsLimit::get),
        license_key_duration: request.license_key_duration.map(Object::into_inner),
        license_key_activation_message: request
            .license_key_activation_message
            .map(LongText::into_string),
        heartbeat_interval: request.heartbeat_interval,
        metadata: request.metadata.unwrap_or_default(),
        details,
        created_at: now,
        updated_at: now,
    };
    state.store.create_product(&product).await?;
    Ok(product)
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
    _: NoQuery,
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

/// Lists products, oldest first, in the shape of Dodo's product lists.
#[utoipa::path(get, path = "/products", tag = "Products", params(Paging),
    responses(
        (status = 200, description = "One page", body = Items<ProductListView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_products(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: Query<NoFilters>,
    Paging(page): Paging,
) -> Result<Json<Items<ProductListView>>, ApiError> {
    let products = state.store.list_products(&caller.business_id, page).await?;
    Ok(Json(Items {
        items: products.into_iter().map(Into::into).collect(),
    }))
}

/// A change to a product: absent fields are unchanged; `null` clears an optional field
/// (`name`, `metadata`, `price`, `tax_category` and `license_key_enabled` cannot be
/// cleared: `null` leaves them unchanged).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    #[serde(default)]
    name: Option<Name>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 5000)]
    description: Change<LongText>,
    #[serde(default)]
    #[schema(value_type = Option<ActivationsLimit>)]
    license_key_activations_limit: Change<ActivationsLimit>,
    #[serde(default)]
    #[schema(value_type = Option<KeyDuration>)]
    license_key_duration: Change<Object<KeyDuration>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 5000)]
    license_key_activation_message: Change<LongText>,
    /// `null` turns heartbeats off for the product's new keys.
    #[serde(default)]
    #[schema(value_type = Option<HeartbeatInterval>)]
    heartbeat_interval: Change<HeartbeatInterval>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
    #[serde(default)]
    price: Option<Price>,
    #[serde(default)]
    tax_category: Option<TaxCategory>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<ResourceId>>, max_items = 100)]
    addons: Change<Vec<ResourceId>>,
    #[serde(default)]
    brand_id: Option<ResourceId>,
    #[serde(default)]
    #[schema(value_type = Option<WebUrl>)]
    image: Change<WebUrl>,
    #[serde(default)]
    #[schema(value_type = Option<DeliveryRequest>)]
    digital_product_delivery: Change<Object<DeliveryRequest>>,
    #[serde(default)]
    #[schema(value_type = Option<PricingMode>)]
    pricing_mode: Change<PricingMode>,
    #[serde(default)]
    license_key_enabled: Option<bool>,
    /// This server keeps no credit entitlements: the list must be empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AttachCreditEntitlement>>, max_items = 0)]
    credit_entitlements: Option<Vec<Object<AttachCreditEntitlement>>>,
    /// This server keeps no entitlements: the list must be empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AttachEntitlement>>, max_items = 0)]
    entitlements: Option<Vec<Object<AttachEntitlement>>>,
}

/// Changes a product. Keys already issued keep their limit, expiry and heartbeat interval.
#[utoipa::path(patch, path = "/products/{id}", tag = "Products",
    params(("id" = String, Path, description = "`pdt_…`")),
    request_body = UpdateProduct,
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such product in this business", body = ErrorBody),
        (status = 422, description = "A brand, entitlement or file this server does not have", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_product(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<ProductId>,
    JsonBody(request): JsonBody<UpdateProduct>,
) -> Result<Json<ProductView>, ApiError> {
    let product = update(&state, &caller.business_id, &caller.brand_id, &id, request).await?;
    Ok(Json(ProductView::new(product, caller.brand_id)))
}

/// Changes a product as `PATCH /products/{id}` asks (the console's form asks the same way).
pub(crate) async fn update(
    state: &AppState,
    business: &BusinessId,
    brand_id: &str,
    id: &ProductId,
    request: UpdateProduct,
) -> Result<Product, ApiError> {
    check_brand(request.brand_id.as_ref(), brand_id)?;
    no_entitlements(
        request.entitlements.as_deref(),
        request.credit_entitlements.as_deref(),
    )?;
    let text = |change: Change<LongText>| change.try_map(|t| Ok::<_, ApiError>(t.into_string()));
    let patch = ProductPatch {
        name: request.name.map(|n| n.to_string()),
        description: text(request.description)?,
        license_key_activations_limit: (request.license_key_activations_limit)
            .map(ActivationsLimit::get),
        license_key_duration: request.license_key_duration.map(Object::into_inner),
        license_key_activation_message: text(request.license_key_activation_message)?,
        heartbeat_interval: request.heartbeat_interval,
        metadata: request.metadata,
        details: DetailsPatch {
            price: request.price,
            tax_category: request.tax_category,
            pricing_mode: request.pricing_mode,
            addons: request.addons.try_map(checked_addons)?,
            image: request.image,
            digital_product_delivery: request
                .digital_product_delivery
                .try_map(DeliveryRequest::checked)?,
            license_key_enabled: request.license_key_enabled,
        },
    };
    state
        .store
        .update_product(business, id, patch)
        .await?
        .ok_or_else(|| product_not_found(id))
}
