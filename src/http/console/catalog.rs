//! Customers and products in the console: customers listed and found by email; products
//! listed, created and changed through the API's own create and update functions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::error::{ConsoleError, ConsoleForm, ConsoleQuery};
use super::forms::{
    Done, Edited, Posted, field, given, older_page_follows, page_of, pager, posted_over, refusal,
    see_other, shown_field, whole_number,
};
use super::layout::{Notice, Section, notice, page};
use super::session::Signed;
use crate::domain::catalog::Product;
use crate::domain::ids::ProductId;
use crate::domain::license::MAX_ACTIVATIONS_LIMIT;
use crate::http::dodo::products::{CreateProduct, UpdateProduct, create, update};
use crate::http::error::ApiError;
use crate::http::extract::parse_json;
use crate::http::state::AppState;

#[derive(Deserialize, Default)]
pub struct CustomerQuery {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    page: Option<u32>,
}

pub async fn customers(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(query): ConsoleQuery<CustomerQuery>,
) -> Result<Markup, ConsoleError> {
    let email = given(&query.email);
    let (index, request) = page_of(query.page);
    let mut found = (state.store)
        .list_customers(&signed.principal.business_id, email, request)
        .await?;
    let more = older_page_follows(&mut found);
    let writable = !signed.principal.read_only;
    let body = html! {
        form.filters method="get" action="/console/customers" role="search" {
            div {
                label for="email" { "Email" }
                input #email type="search" name="email" value=[email] placeholder="ada@example.com";
            }
            div { button type="submit" { "Find" } }
        }
        @if found.is_empty() {
            p.empty { @if email.is_some() { "No customer has that email." } @else { "No customers yet." } }
        } @else {
            div.table-wrap {
                table {
                    caption.muted { "Customers, newest first" }
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Email" }
                        th scope="col" { "Id" }
                        th scope="col" { "Keys" }
                    } }
                    tbody {
                        @for c in &found {
                            tr {
                                td { (c.name) }
                                td { (c.email) }
                                td { code { (c.id) } }
                                td {
                                    a href={ "/console/license-keys?customer_id=" (c.id) } { "License keys" }
                                    @if writable {
                                        " · " a href={ "/console/license-keys/new?customer_id=" (c.id) } { "Issue a key" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/console/customers", &[("email", email)], index, more))
        }
    };
    Ok(page(&signed, Section::Customers, "Customers", body))
}

/// A product form's fields, as text.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct ProductForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    activations_limit: String,
    #[serde(default)]
    duration_count: String,
    #[serde(default)]
    duration_interval: String,
    #[serde(default)]
    heartbeat_interval: String,
}

impl ProductForm {
    fn of(p: &Product) -> Self {
        Self {
            csrf: String::new(),
            name: p.name.clone(),
            description: p.description.clone().unwrap_or_default(),
            activations_limit: (p.license_key_activations_limit)
                .map(|l| l.to_string())
                .unwrap_or_default(),
            duration_count: (p.license_key_duration)
                .map(|d| d.count.to_string())
                .unwrap_or_default(),
            duration_interval: (p.license_key_duration)
                .and_then(|d| serde_json::to_value(d.interval).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            heartbeat_interval: (p.heartbeat_interval)
                .map(|i| i.seconds().to_string())
                .unwrap_or_default(),
        }
    }

    /// The API's JSON body for these fields: all of them for a new product, those that
    /// differ from `was` for a change.
    fn body(&self, was: Option<&ProductForm>) -> Result<serde_json::Value, ApiError> {
        let mut body = serde_json::Map::new();
        let changed = |now: &str, before: fn(&ProductForm) -> &str| {
            was.is_none_or(|was| now.trim() != before(was).trim())
        };
        if changed(&self.name, |f| &f.name) {
            body.insert("name".into(), self.name.trim().into());
        }
        // A browser sends a text area's line ends as CRLF, whatever it was shown.
        let description = self.description.replace("\r\n", "\n");
        if changed(&description, |f| &f.description) {
            let text = description.trim();
            body.insert(
                "description".into(),
                if text.is_empty() {
                    serde_json::Value::Null
                } else {
                    text.into()
                },
            );
        }
        if changed(&self.activations_limit, |f| &f.activations_limit) {
            body.insert(
                "license_key_activations_limit".into(),
                whole_number(
                    &self.activations_limit,
                    "activation limit",
                    Some(MAX_ACTIVATIONS_LIMIT),
                )?,
            );
        }
        if changed(&self.duration_count, |f| &f.duration_count)
            || changed(&self.duration_interval, |f| &f.duration_interval)
        {
            let count = whole_number(&self.duration_count, "duration", None)?;
            if !count.is_null() && self.duration_interval.trim().is_empty() {
                return Err(ApiError::BadRequest(
                    "A key duration needs its unit as well as its count.".into(),
                ));
            }
            body.insert(
                "license_key_duration".into(),
                if count.is_null() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!({"count": count, "interval": self.duration_interval.trim()})
                },
            );
        }
        if changed(&self.heartbeat_interval, |f| &f.heartbeat_interval) {
            body.insert(
                "heartbeat_interval".into(),
                whole_number(&self.heartbeat_interval, "heartbeat interval", None)?,
            );
        }
        // A new product without a value leaves it out: the API's default applies.
        if was.is_none() {
            body.retain(|_, v| !v.is_null());
        }
        Ok(body.into())
    }
}

fn product_fields(form: &ProductForm, csrf: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        label for="name" { "Name" }
        input #name type="text" name="name" required value=(form.name);
        label for="description" { "Description" }
        textarea #description name="description" rows="3" { (form.description) }
        label for="activations_limit" { "Activation limit of new keys" }
        input #activations_limit type="number" name="activations_limit" min="0" max="1000000"
            value=(form.activations_limit) aria-describedby="p_limit_help";
        p #p_limit_help .help { "Empty: unlimited." }
        fieldset {
            legend { "New keys last" }
            label for="duration_count" { "Count" }
            input #duration_count type="number" name="duration_count" min="1" max="1000"
                value=(form.duration_count) aria-describedby="p_duration_help";
            label for="duration_interval" { "Unit" }
            select #duration_interval name="duration_interval" {
                // Chosen when the product has no duration, so that a form sent unchanged
                // says so.
                option value="" selected[form.duration_interval.is_empty()] { "—" }
                @for unit in ["Day", "Week", "Month", "Year"] {
                    option value=(unit) selected[form.duration_interval == unit] { (unit.to_lowercase()) "s" }
                }
            }
            p #p_duration_help .help { "Empty count: new keys never expire." }
        }
        label for="heartbeat_interval" { "Heartbeat interval of new keys (seconds)" }
        input #heartbeat_interval type="number" name="heartbeat_interval" min="1"
            value=(form.heartbeat_interval) aria-describedby="p_heartbeat_help";
        p #p_heartbeat_help .help { "Empty: no heartbeats." }
    }
}

/// `?page=`, of a list with no filter.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page: Option<u32>,
}

pub async fn products(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(query): ConsoleQuery<PageQuery>,
) -> Result<Response, ConsoleError> {
    let shown = ProductsShown {
        status: StatusCode::OK,
        message: None,
        page: query.page,
    };
    products_page(&state, &signed, shown, &ProductForm::default()).await
}

/// How the products' page is shown: after a refused form, with its status and message.
struct ProductsShown {
    status: StatusCode,
    message: Option<(Notice, String)>,
    page: Option<u32>,
}

async fn products_page(
    state: &AppState,
    signed: &Signed,
    shown: ProductsShown,
    form: &ProductForm,
) -> Result<Response, ConsoleError> {
    let ProductsShown {
        status,
        message,
        page: wanted,
    } = shown;
    let (index, request) = page_of(wanted);
    let mut found = (state.store)
        .list_products(&signed.principal.business_id, request)
        .await?;
    let more = older_page_follows(&mut found);
    let body = html! {
        @if let Some((kind, text)) = &message { (notice(*kind, text)) }
        @if found.is_empty() {
            p.empty { "No products yet." }
        } @else {
            div.table-wrap {
                table {
                    caption.muted { "Products, newest first" }
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Activation limit" }
                        th scope="col" { "Keys last" }
                        th scope="col" { "Heartbeat" }
                        th scope="col" { "Keys" }
                    } }
                    tbody {
                        @for p in &found {
                            tr {
                                td { a href={ "/console/products/" (p.id) } { (p.name) } }
                                td { (p.license_key_activations_limit.map_or("unlimited".to_owned(), |l| l.to_string())) }
                                td { (p.license_key_duration.map_or("forever".to_owned(), |d| format!("{} {:?}", d.count, d.interval).to_lowercase())) }
                                td { (p.heartbeat_interval.map_or("none".to_owned(), |i| format!("{} s", i.seconds()))) }
                                td { a href={ "/console/license-keys?product_id=" (p.id) } { "License keys" } }
                            }
                        }
                    }
                }
            }
            (pager("/console/products", &[], index, more))
        }
        @if !signed.principal.read_only {
            h2 #new-product { "New product" }
            form.card method="post" action="/console/products" aria-labelledby="new-product" {
                (product_fields(form, &signed.session.csrf_token))
                button type="submit" { "Create product" }
            }
        }
    };
    Ok((status, page(signed, Section::Products, "Products", body)).into_response())
}

pub async fn create_product(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<ProductForm>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let principal = &signed.principal;
    let created = match form
        .body(None)
        .and_then(|body| parse_json::<CreateProduct>(body.to_string().as_bytes()))
    {
        Ok(request) => create(&state, &principal.business_id, &principal.brand_id, request).await,
        Err(error) => Err(error),
    };
    match created {
        Ok(product) => Ok(see_other(&format!(
            "/console/products/{}?done=created",
            product.id
        ))),
        Err(error) => {
            let (status, message) = refusal(error)?;
            let shown = ProductsShown {
                status,
                message: Some((Notice::Refused, message)),
                page: None,
            };
            products_page(&state, &signed, shown, &form).await
        }
    }
}

pub async fn product(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> Result<Markup, ConsoleError> {
    let id = ProductId::from(id);
    let found = (state
        .store
        .product(&signed.principal.business_id, &id)
        .await?)
        .ok_or_else(|| ApiError::NotFound(format!("product `{id}` not found")))?;
    let message = match done.done.as_deref() {
        Some("created") => Some((Notice::Done, "The product is created.".to_owned())),
        Some("changed") => Some((
            Notice::Done,
            "The product is changed. Keys already issued keep their terms.".to_owned(),
        )),
        _ => None,
    };
    Ok(product_page(
        &signed,
        &found,
        message,
        &Edited::showing(ProductForm::of(&found)),
    ))
}

fn product_page(
    signed: &Signed,
    product: &Product,
    message: Option<(Notice, String)>,
    edited: &Edited<ProductForm>,
) -> Markup {
    let body = html! {
        @if let Some((kind, text)) = &message { (notice(*kind, text)) }
        p {
            "Id " code { (product.id) } " · " a href={ "/console/license-keys?product_id=" (product.id) } { "its license keys" }
            @if !signed.principal.read_only {
                " · " a href={ "/console/license-keys/new?product_id=" (product.id) } { "issue a key for it" }
            }
        }
        @if signed.principal.read_only {
            dl.facts.card {
                dt { "Name" } dd { (product.name) }
                dt { "Activation limit" } dd { (product.license_key_activations_limit.map_or("unlimited".to_owned(), |l| l.to_string())) }
                dt { "Heartbeat" } dd { (product.heartbeat_interval.map_or("none".to_owned(), |i| format!("{} s", i.seconds()))) }
            }
        } @else {
            form.card method="post" action={ "/console/products/" (product.id) } {
                (shown_field(&edited.shown))
                (product_fields(&edited.form, &signed.session.csrf_token))
                button type="submit" { "Save changes" }
            }
        }
    };
    page(signed, Section::Products, &product.name, body)
}

pub async fn update_product(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(posted): ConsoleForm<Posted>,
) -> Result<Response, ConsoleError> {
    signed.check_write(field(&posted, "csrf"))?;
    let principal = &signed.principal;
    let id = ProductId::from(id);
    let found = (state.store.product(&principal.business_id, &id).await?)
        .ok_or_else(|| ApiError::NotFound(format!("product `{id}` not found")))?;
    let edited = posted_over(ProductForm::of(&found), posted)?;
    let updated = match (edited.form)
        .body(Some(&edited.shown))
        .and_then(|body| parse_json::<UpdateProduct>(body.to_string().as_bytes()))
    {
        Ok(request) => {
            update(
                &state,
                &principal.business_id,
                &principal.brand_id,
                &id,
                request,
            )
            .await
        }
        Err(error) => Err(error),
    };
    match updated {
        Ok(_) => Ok(see_other(&format!("/console/products/{id}?done=changed"))),
        Err(error) => {
            let (status, message) = refusal(error)?;
            Ok((
                status,
                product_page(&signed, &found, Some((Notice::Refused, message)), &edited),
            )
                .into_response())
        }
    }
}
