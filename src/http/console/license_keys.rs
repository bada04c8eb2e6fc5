//! License keys in the console: listed and filtered, found by the text a customer reads
//! out, and one key with its instances, disabled or enabled, its instances deactivated.
//! Every change goes through the store's calls the API makes, under the same rules.

use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::CONTENT_DISPOSITION;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::error::{ConsoleError, ConsoleForm, ConsoleQuery};
use super::forms::{
    Csrf, Done, Edited, NEWEST_HUNDRED, Posted, field, filled, given, older_page_follows, page_of,
    pager, posted_over, refusal, see_other, shown_field, whole_number,
};
use super::layout::{Notice, Section, notice, page};
use super::session::Signed;
use crate::domain::catalog::{Customer, LicenseKey, Product};
use crate::domain::ids::{
    BusinessId, CustomerId, InstanceId, KeyString, LicenseKeyId, ProductId, shorten,
};
use crate::domain::license::{KeyPatch, KeyStatus, MAX_ACTIVATIONS_LIMIT, meant_key};
use crate::domain::seats::has_seat;
use crate::domain::time::Timestamp;
use crate::http::dodo::license_files::issue as issue_file;
use crate::http::dodo::license_keys::{CreateLicenseKey, UpdateLicenseKey, issue, update};
use crate::http::error::ApiError;
use crate::http::extract::parse_json;
use crate::http::state::AppState;
use crate::storage::{KeyFilter, PageRequest, StorageError};

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    product_id: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
    /// A key's text, to find it.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    page: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(query): ConsoleQuery<ListQuery>,
) -> Result<Response, ConsoleError> {
    let business = &signed.principal.business_id;
    let mut refused = None;
    if let Some(text) = given(&query.key) {
        // As typed, else as the customer probably meant it (the API takes both).
        let found = match KeyString::parse(text) {
            Ok(typed) => match state.store.license_key_with_key(&typed).await? {
                Some(key) => Some(key),
                None => match meant_key(&typed) {
                    Some(meant) => state.store.license_key_with_key(&meant).await?,
                    None => None,
                },
            },
            Err(_) => None,
        };
        match found {
            Some(key) if &key.business_id == business => {
                return Ok(see_other(&format!("/console/license-keys/{}", key.id)));
            }
            _ => refused = Some("No license key of this business has that text."),
        }
    }
    let status = match given(&query.status) {
        None => None,
        Some(text) => Some(
            KeyStatus::parse(text)
                .ok_or_else(|| ApiError::BadRequest(format!("`{text}` is not a key status")))?,
        ),
    };
    let filter = KeyFilter {
        status,
        product_id: given(&query.product_id).map(ProductId::from),
        customer_id: given(&query.customer_id).map(CustomerId::from),
        ..KeyFilter::default()
    };
    let (index, page_request) = page_of(query.page);
    let mut keys = (state.store)
        .list_license_keys(business, &filter, page_request)
        .await?;
    let more = older_page_follows(&mut keys);
    let products = with_product(&state, business, given(&query.product_id)).await?;
    let now = Timestamp::now();
    let selected = |value: &str, current: Option<&str>| current == Some(value);
    let body = html! {
        @if let Some(refused) = refused { (notice(Notice::Refused, refused)) }
        @if !signed.principal.read_only {
            p { a.button href="/console/license-keys/new" { "Issue a key" } }
        }
        form.filters method="get" action="/console/license-keys" role="search" {
            div {
                label for="key" { "Find by key" }
                input #key type="search" name="key" placeholder="7QK2M-9XD4T-…" autocomplete="off";
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for s in ["active", "expired", "disabled"] {
                        option value=(s) selected[selected(s, given(&query.status))] { (s) }
                    }
                }
            }
            div {
                label for="product_id" { "Product" }
                select #product_id name="product_id" {
                    option value="" { "Any" }
                    @for p in &products {
                        option value=(p.id) selected[selected(p.id.as_str(), given(&query.product_id))] { (p.name) }
                    }
                }
            }
            div {
                label for="customer_id" { "Customer id" }
                input #customer_id type="text" name="customer_id" placeholder="cus_…"
                    value=[given(&query.customer_id)];
            }
            div { button type="submit" { "Show" } }
        }
        @if keys.is_empty() {
            p.empty { "No license keys match." }
        } @else {
            div.table-wrap {
                table {
                    caption.muted { "License keys, newest first" }
                    thead { tr {
                        th scope="col" { "Key" }
                        th scope="col" { "Status" }
                        th scope="col" { "Customer" }
                        th scope="col" class="num" { "Instances" }
                        th scope="col" { "Expires" }
                    } }
                    tbody {
                        @for key in &keys {
                            tr {
                                td { a.mono href={ "/console/license-keys/" (key.id) } { (key.key) } }
                                td { (status_badge(key, now)) }
                                td { code { (key.customer_id) } }
                                td.num { (key.instances_count) " / " (limit_text(key)) }
                                td { (key.expires_at.map_or("never".to_owned(), |t| t.to_string())) }
                            }
                        }
                    }
                }
            }
            (pager("/console/license-keys", &[
                ("status", given(&query.status)),
                ("product_id", given(&query.product_id)),
                ("customer_id", given(&query.customer_id)),
            ], index, more))
        }
    };
    Ok(page(&signed, Section::LicenseKeys, "License keys", body).into_response())
}

/// The newest hundred products to choose from, and the product `chosen` (by id) among
/// them if it is older.
async fn with_product(
    state: &AppState,
    business: &BusinessId,
    chosen: Option<&str>,
) -> Result<Vec<Product>, ConsoleError> {
    let listed = (state.store).list_products(business, NEWEST_HUNDRED);
    let find = async |id: &str| state.store.product(business, &ProductId::from(id)).await;
    with_chosen(listed.await?, chosen, |p| p.id.as_str(), find).await
}

/// The newest hundred customers to choose from, and the customer `chosen` (by id) among
/// them if older.
async fn with_customer(
    state: &AppState,
    business: &BusinessId,
    chosen: Option<&str>,
) -> Result<Vec<Customer>, ConsoleError> {
    let listed = (state.store).list_customers(business, None, NEWEST_HUNDRED);
    let find = async |id: &str| state.store.customer(business, &CustomerId::from(id)).await;
    with_chosen(listed.await?, chosen, |c| c.id.as_str(), find).await
}

/// `listed`, with the record `chosen` names added if it is not among them and `find`
/// finds it.
async fn with_chosen<T>(
    mut listed: Vec<T>,
    chosen: Option<&str>,
    id_of: fn(&T) -> &str,
    find: impl AsyncFnOnce(&str) -> Result<Option<T>, StorageError>,
) -> Result<Vec<T>, ConsoleError> {
    if let Some(id) = chosen.filter(|id| !listed.iter().any(|r| id_of(r) == *id))
        && let Some(record) = find(id).await?
    {
        listed.push(record);
    }
    Ok(listed)
}

fn status_badge(key: &LicenseKey, now: Timestamp) -> Markup {
    let status = key.state().status(now).as_str();
    html! { span class={ "status " (status) } { (status) } }
}

fn limit_text(key: &LicenseKey) -> String {
    key.activations_limit
        .map_or("unlimited".to_owned(), |l| l.to_string())
}

pub async fn detail(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(done): ConsoleQuery<Done>,
) -> Result<Markup, ConsoleError> {
    let id = LicenseKeyId::from(id);
    let key = (state
        .store
        .license_key(&signed.principal.business_id, &id)
        .await?)
        .ok_or(ApiError::LicenseKeyNotFound)?;
    let done_text = match done.done.as_deref() {
        Some("issued") => Some("The key is issued."),
        Some("changed") => Some("The key is changed."),
        Some("disabled") => {
            Some("The key is disabled: validation fails and activation is refused.")
        }
        Some("enabled") => Some("The key is enabled again."),
        Some("deactivated") => Some("The instance is deactivated; its seat is free."),
        Some("gone") => Some(
            "That instance is no longer among the key's activations (deactivated elsewhere, or its heartbeats stopped).",
        ),
        _ => None,
    };
    let notice = done_text.map(|text| (Notice::Done, text.to_owned()));
    key_page(&state, &signed, key, notice, None).await
}

/// A key's page: its facts, its actions, the change form (with `edit`'s values after a
/// refused change) and its instances.
async fn key_page(
    state: &AppState,
    signed: &Signed,
    key: LicenseKey,
    message: Option<(Notice, String)>,
    edited: Option<&Edited<EditKey>>,
) -> Result<Markup, ConsoleError> {
    let business = &signed.principal.business_id;
    let instances = (state.store)
        .list_instances(
            business,
            Some(&key.id),
            // Oldest first: the order in which instances hold the key's seats.
            PageRequest {
                index: 0,
                size: 100,
                ..PageRequest::default()
            },
        )
        .await?;
    // Live instances, oldest first: of a key bound to seats, the newest beyond its seats
    // fail validation.
    let seated: Vec<bool> = (0..instances.len() as u64)
        .map(|older| key.seats.is_none() || has_seat(older, key.activations_limit))
        .collect();
    let customer = state.store.customer(business, &key.customer_id).await?;
    let product = state.store.product(business, &key.product_id).await?;
    let now = Timestamp::now();
    let csrf = &signed.session.csrf_token;
    let writable = !signed.principal.read_only;
    let showing = Edited::showing(edit_values(&key));
    let edited = edited.unwrap_or(&showing);
    let values = &edited.form;
    let body = html! {
        @if let Some((kind, text)) = &message { (notice(*kind, text)) }
        section.card aria-labelledby="facts" {
            h2 #facts { "Key" }
            dl.facts {
                dt { "Key" } dd { code { (key.key) } }
                dt { "Status" } dd { (status_badge(&key, now)) }
                dt { "Id" } dd { code { (key.id) } }
                dt { "Customer" } dd {
                    @if let Some(c) = &customer { (c.name) " <" (c.email) "> " }
                    a href={ "/console/license-keys?customer_id=" (key.customer_id) } { code { (key.customer_id) } }
                }
                dt { "Product" } dd {
                    @if let Some(p) = &product { (p.name) " " }
                    a href={ "/console/products/" (key.product_id) } { code { (key.product_id) } }
                }
                @if let Some(subscription) = &key.subscription_id {
                    dt { "Subscription" } dd { code { (subscription) } }
                }
                @if let Some(payment) = &key.payment_id {
                    dt { "Payment" } dd { code { (payment) } }
                }
                dt { "Activations" } dd { (key.instances_count) " of " (limit_text(&key)) }
                dt { "Expires" } dd { (key.expires_at.map_or("never".to_owned(), |t| t.to_string())) }
                dt { "Heartbeat interval" } dd {
                    (key.heartbeat_interval.map_or("none".to_owned(), |i| format!("{} s", i.seconds())))
                }
                @if let Some(seats) = &key.seats {
                    dt { "Seats" } dd { "the quantity of " code { (seats.account_id) } " / " code { (seats.license_id) } }
                }
                dt { "Created" } dd { (key.created_at) }
            }
            @if writable {
                div.actions {
                    @if key.disabled {
                        form.inline method="post" action={ "/console/license-keys/" (key.id) "/enable" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Enable" }
                        }
                    } @else {
                        form.inline method="post" action={ "/console/license-keys/" (key.id) "/disable" }
                            data-confirm="Disable this key? Validation will fail and new activations will be refused." {
                            input type="hidden" name="csrf" value=(csrf);
                            button.danger type="submit" { "Disable" }
                        }
                    }
                    " "
                    form.inline method="post" action={ "/console/license-keys/" (key.id) "/license-file" } {
                        input type="hidden" name="csrf" value=(csrf);
                        button.secondary type="submit" { "Download license file" }
                    }
                }
            }
        }
        @if writable {
            h2 #change { "Change" }
            form.card method="post" action={ "/console/license-keys/" (key.id) "/edit" } aria-labelledby="change" {
                input type="hidden" name="csrf" value=(csrf);
                (shown_field(&edited.shown))
                label for="activations_limit" { "Activation limit" }
                input #activations_limit type="number" name="activations_limit" min="0" max="1000000"
                    value=(values.activations_limit) aria-describedby="limit_help";
                @if key.seats.is_none() {
                    p #limit_help .help { "Empty: unlimited." }
                } @else {
                    p #limit_help .help { "While the key is bound to seats, they are its limit. To unbind it below, give here the limit it keeps; empty: it keeps the seats' figure." }
                }
                @if key.subscription_id.is_none() {
                    label for="expires_on" { "Expires on" }
                    input #expires_on type="date" name="expires_on" value=(values.expires_on) aria-describedby="expires_help";
                    p #expires_help .help { "At the start of that day, 00:00 UTC. Empty: never." }
                } @else {
                    p.help { "The key expires with its subscription: its expiry is not set here." }
                }
                label for="heartbeat_interval" { "Heartbeat interval (seconds)" }
                input #heartbeat_interval type="number" name="heartbeat_interval" min="1"
                    value=(values.heartbeat_interval) aria-describedby="heartbeat_help";
                p #heartbeat_help .help { "Empty: no heartbeats; instances never die." }
                fieldset {
                    legend { "Seats from the ledger" }
                    label for="seats_account_id" { "Account" }
                    input #seats_account_id type="text" name="seats_account_id" value=(values.seats_account_id);
                    label for="seats_license_id" { "License" }
                    input #seats_license_id type="text" name="seats_license_id" value=(values.seats_license_id)
                        aria-describedby="seats_help";
                    p #seats_help .help { "Both empty: the key is not bound; its limit is its own." }
                }
                button type="submit" { "Save changes" }
            }
        }
        h2 #instances { "Instances" }
        @if instances.is_empty() {
            p.empty { "No instance: the key has not been activated, or every activation was released." }
        } @else {
            div.table-wrap {
                table aria-labelledby="instances" {
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Id" }
                        th scope="col" { "Fingerprint" }
                        th scope="col" { "Activated" }
                        th scope="col" { "Next heartbeat due" }
                        @if writable { th scope="col" { span.muted { "Action" } } }
                    } }
                    tbody {
                        @for (instance, seated) in instances.iter().zip(&seated) {
                            tr {
                                td {
                                    (instance.name)
                                    @if !seated {
                                        " " span.status.disabled title="Validation fails on this machine until a seat is freed or the ledger's quantity rises" { "over the seats" }
                                    }
                                }
                                td { code { (instance.id) } }
                                td { (instance.fingerprint.as_deref().unwrap_or("—")) }
                                td { (instance.created_at) }
                                td { (instance.heartbeat_expires_at.map_or("—".to_owned(), |t| t.to_string())) }
                                @if writable {
                                    td {
                                        form.inline method="post"
                                            action={ "/console/license-keys/" (key.id) "/instances/" (instance.id) "/deactivate" }
                                            data-confirm={ "Deactivate \u{2068}" (instance.name) "\u{2069}? Its seat is freed." } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.secondary type="submit" aria-label={ "Deactivate " (instance.name) } { "Deactivate" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(signed, Section::LicenseKeys, "License key", body))
}

async fn set_disabled(
    state: &AppState,
    signed: &Signed,
    id: String,
    form: &Csrf,
    disabled: bool,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let id = LicenseKeyId::from(id);
    let patch = KeyPatch {
        disabled: Some(disabled),
        ..KeyPatch::default()
    };
    let principal = &signed.principal;
    (state.store)
        .update_license_key(&principal.business_id, &id, patch, &principal.brand_id)
        .await?
        .ok_or(ApiError::LicenseKeyNotFound)?;
    let done = if disabled { "disabled" } else { "enabled" };
    Ok(see_other(&format!(
        "/console/license-keys/{id}?done={done}"
    )))
}

pub async fn disable(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<Csrf>,
) -> Result<Response, ConsoleError> {
    set_disabled(&state, &signed, id, &form, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<Csrf>,
) -> Result<Response, ConsoleError> {
    set_disabled(&state, &signed, id, &form, false).await
}

/// Deactivates an instance as its app would (`POST /licenses/deactivate`).
pub async fn deactivate(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, instance)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<Csrf>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let business = &signed.principal.business_id;
    let id = LicenseKeyId::from(id);
    let key =
        (state.store.license_key(business, &id).await?).ok_or(ApiError::LicenseKeyNotFound)?;
    let key_string = KeyString::parse(&key.key)
        .map_err(|_| ApiError::Internal("a stored key that does not parse".into()))?;
    match (state.store)
        .deactivate(&key_string, &InstanceId::from(instance))
        .await
    {
        // The key was just read: what is missing is the instance (deactivated from
        // another tab or by its app, or dead since the page was shown), which is what
        // was asked for.
        Err(StorageError::KeyNotFound) => {
            Ok(see_other(&format!("/console/license-keys/{id}?done=gone")))
        }
        Err(error) => Err(error.into()),
        Ok(_) => Ok(see_other(&format!(
            "/console/license-keys/{id}?done=deactivated"
        ))),
    }
}

/// The form that issues a key: a customer and a product, and optionally a limit, an
/// expiry and a key to import; what is left empty comes from the product.
pub async fn new_key_page(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(chosen): ConsoleQuery<Chosen>,
) -> Result<Response, ConsoleError> {
    signed.check_writable()?;
    let form = NewKey {
        customer_id: chosen.customer_id.unwrap_or_default(),
        product_id: chosen.product_id.unwrap_or_default(),
        ..NewKey::default()
    };
    new_key_form(&state, &signed, StatusCode::OK, None, &form).await
}

/// `?customer_id=…&product_id=…`: the customer and the product the form starts with (a
/// customer's or a product's page links to it so, whether or not it is among the newest).
#[derive(Deserialize, Default)]
pub struct Chosen {
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    product_id: Option<String>,
}

async fn new_key_form(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    refused: Option<&str>,
    form: &NewKey,
) -> Result<Response, ConsoleError> {
    let business = &signed.principal.business_id;
    let customers = with_customer(state, business, filled(&form.customer_id)).await?;
    let products = with_product(state, business, filled(&form.product_id)).await?;
    let body = html! {
        @if let Some(refused) = refused { (notice(Notice::Refused, refused)) }
        p.help { "The newest hundred customers and products are offered: issue a key to an older one from its line in " a href="/console/customers" { "Customers" } " or its page in " a href="/console/products" { "Products" } "." }
        @if customers.is_empty() || products.is_empty() {
            p.empty { "A key is issued to a customer for a product: create both first (" code { "POST /customers" } ", " code { "POST /products" } ")." }
        } @else {
            form.card method="post" action="/console/license-keys/new" {
                input type="hidden" name="csrf" value=(signed.session.csrf_token);
                label for="customer_id" { "Customer" }
                select #customer_id name="customer_id" required {
                    @for c in &customers {
                        option value=(c.id) selected[form.customer_id == c.id.as_str()] { (c.name) " <" (c.email) ">" }
                    }
                }
                label for="product_id" { "Product" }
                select #product_id name="product_id" required {
                    @for p in &products {
                        option value=(p.id) selected[form.product_id == p.id.as_str()] { (p.name) }
                    }
                }
                label for="activations_limit" { "Activation limit" }
                input #activations_limit type="number" name="activations_limit" min="0" max="1000000"
                    value=(form.activations_limit) aria-describedby="limit_help";
                p #limit_help .help { "Empty: the product's default." }
                label for="expires_on" { "Expires on" }
                input #expires_on type="date" name="expires_on" value=(form.expires_on) aria-describedby="expiry_help";
                p #expiry_help .help { "At the start of that day, 00:00 UTC. Empty: the product's duration from today (or never)." }
                label for="key" { "Key to import" }
                input #key type="text" name="key" autocomplete="off" value=(form.key) aria-describedby="key_help";
                p #key_help .help { "Empty: a new key is generated." }
                button type="submit" { "Issue key" }
            }
        }
    };
    let html = page(signed, Section::LicenseKeys, "Issue a license key", body);
    Ok((status, html).into_response())
}

#[derive(Deserialize, Default)]
pub struct NewKey {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    activations_limit: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    key: String,
}

impl NewKey {
    /// The API's request for this form: the same checks follow.
    fn request(&self) -> Result<CreateLicenseKey, ApiError> {
        let mut body = serde_json::json!({
            "customer_id": self.customer_id.trim(),
            "product_id": self.product_id.trim(),
        });
        let limit = whole_number(
            &self.activations_limit,
            "activation limit",
            Some(MAX_ACTIVATIONS_LIMIT),
        )?;
        if !limit.is_null() {
            body["activations_limit"] = limit;
        }
        if let Some(date) = filled(&self.expires_on) {
            body["expires_at"] = expiry(date)?.into();
        }
        if let Some(key) = filled(&self.key) {
            body["key"] = key.into();
        }
        parse_json(body.to_string().as_bytes())
    }
}

/// The API's `expires_at` for the form's date: the start of that day, UTC.
fn expiry(date: &str) -> Result<String, ApiError> {
    match chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
        Ok(day) => Ok(format!("{day}T00:00:00Z")),
        Err(_) => Err(ApiError::BadRequest(format!(
            "The expiry `{}` is not a date such as 2030-12-31.",
            shorten(date)
        ))),
    }
}

pub async fn issue_key(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<NewKey>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let principal = &signed.principal;
    let issued = match form.request() {
        Ok(request) => issue(&state, &principal.business_id, &principal.brand_id, request).await,
        Err(error) => Err(error),
    };
    match issued {
        Ok(key) => Ok(see_other(&format!(
            "/console/license-keys/{}?done=issued",
            key.id
        ))),
        Err(error) => {
            let (status, message) = refusal(error)?;
            new_key_form(&state, &signed, status, Some(&message), &form).await
        }
    }
}

/// The change form's fields, as text: each compared with what the form showed, and only
/// what differs is changed (so the rules of a change apply to what was changed, and a
/// change made meanwhile to another field stands).
#[derive(Deserialize, Serialize, Clone)]
pub struct EditKey {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    activations_limit: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    heartbeat_interval: String,
    #[serde(default)]
    seats_account_id: String,
    #[serde(default)]
    seats_license_id: String,
}

fn edit_values(key: &LicenseKey) -> EditKey {
    EditKey {
        csrf: String::new(),
        activations_limit: match key.seats {
            Some(_) => String::new(),
            None => key
                .activations_limit
                .map(|l| l.to_string())
                .unwrap_or_default(),
        },
        expires_on: key.expires_at.map(date_of).unwrap_or_default(),
        heartbeat_interval: (key.heartbeat_interval)
            .map(|i| i.seconds().to_string())
            .unwrap_or_default(),
        seats_account_id: (key.seats.as_ref())
            .map(|s| s.account_id.to_string())
            .unwrap_or_default(),
        seats_license_id: (key.seats.as_ref())
            .map(|s| s.license_id.to_string())
            .unwrap_or_default(),
    }
}

/// `YYYY-MM-DD` of an instant.
fn date_of(at: Timestamp) -> String {
    at.to_string().chars().take(10).collect()
}

impl EditKey {
    /// The API's PATCH body for what differs from `was`, the values the form showed.
    fn patch_body(&self, was: &EditKey) -> Result<serde_json::Value, ApiError> {
        let mut body = serde_json::Map::new();
        let seats_changed = self.seats_account_id.trim() != was.seats_account_id
            || self.seats_license_id.trim() != was.seats_license_id;
        if seats_changed {
            body.insert(
                "seats".into(),
                match (
                    filled(&self.seats_account_id),
                    filled(&self.seats_license_id),
                ) {
                    (None, None) => serde_json::Value::Null,
                    (account, license) => serde_json::json!({
                        "account_id": account.unwrap_or_default(),
                        "license_id": license.unwrap_or_default(),
                    }),
                },
            );
        }
        if self.activations_limit.trim() != was.activations_limit {
            body.insert(
                "activations_limit".into(),
                whole_number(
                    &self.activations_limit,
                    "activation limit",
                    Some(MAX_ACTIVATIONS_LIMIT),
                )?,
            );
        }
        if self.expires_on.trim() != was.expires_on {
            body.insert(
                "expires_at".into(),
                match filled(&self.expires_on) {
                    None => serde_json::Value::Null,
                    Some(date) => expiry(date)?.into(),
                },
            );
        }
        if self.heartbeat_interval.trim() != was.heartbeat_interval {
            body.insert(
                "heartbeat_interval".into(),
                whole_number(&self.heartbeat_interval, "heartbeat interval", None)?,
            );
        }
        Ok(body.into())
    }
}

pub async fn edit_key(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(posted): ConsoleForm<Posted>,
) -> Result<Response, ConsoleError> {
    signed.check_write(field(&posted, "csrf"))?;
    let principal = &signed.principal;
    let id = LicenseKeyId::from(id);
    let key = (state.store.license_key(&principal.business_id, &id).await?)
        .ok_or(ApiError::LicenseKeyNotFound)?;
    let edited = posted_over(edit_values(&key), posted)?;
    let changed = (edited.form)
        .patch_body(&edited.shown)
        .and_then(|body| parse_json::<UpdateLicenseKey>(body.to_string().as_bytes()));
    let updated = match changed {
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
        Ok(_) => Ok(see_other(&format!(
            "/console/license-keys/{id}?done=changed"
        ))),
        Err(error) => {
            let (status, message) = refusal(error)?;
            let page = key_page(
                &state,
                &signed,
                key,
                Some((Notice::Refused, message)),
                Some(&edited),
            )
            .await?;
            Ok((status, page).into_response())
        }
    }
}

/// The key's license file, as a download.
pub async fn license_file(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<Csrf>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let id = LicenseKeyId::from(id);
    let key = (state
        .store
        .license_key(&signed.principal.business_id, &id)
        .await?)
        .ok_or(ApiError::LicenseKeyNotFound)?;
    let mut response = issue_file(&state, key, None, None, false).await?;
    let disposition = format!("attachment; filename=\"{id}.lic\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
