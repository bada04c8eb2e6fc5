//! License keys in the console: listed and filtered, found by the text a customer reads
//! out, and one key with its instances, disabled or enabled, its instances deactivated.
//! Every change goes through the store's calls the API makes, under the same rules.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout::{Notice, Section, notice, page};
use super::session::Signed;
use super::sign_in::Csrf;
use crate::domain::catalog::LicenseKey;
use crate::domain::ids::{CustomerId, InstanceId, KeyString, LicenseKeyId, ProductId};
use crate::domain::license::{KeyPatch, KeyStatus};
use crate::domain::time::Timestamp;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::storage::{KeyFilter, PageRequest};

const PAGE_SIZE: u32 = 50;

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

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let business = &signed.principal.business_id;
    let mut refused = None;
    if let Some(text) = given(&query.key) {
        let found = match KeyString::parse(text) {
            Ok(key) => state.store.license_key_with_key(&key).await?,
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
    let index = query.page.unwrap_or(0).min(100_000);
    let page_request = PageRequest {
        index,
        size: PAGE_SIZE + 1,
    };
    let mut keys = (state.store)
        .list_license_keys(business, &filter, page_request)
        .await?;
    let more = keys.len() > PAGE_SIZE as usize;
    keys.truncate(PAGE_SIZE as usize);
    let products = (state.store)
        .list_products(
            business,
            PageRequest {
                index: 0,
                size: 100,
            },
        )
        .await?;
    let now = Timestamp::now();
    let selected = |value: &str, current: Option<&str>| current == Some(value);
    let body = html! {
        @if let Some(refused) = refused { (notice(Notice::Refused, refused)) }
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
            (pager(&query, index, more))
        }
    };
    Ok(page(&signed, Section::LicenseKeys, "License keys", body).into_response())
}

fn pager(query: &ListQuery, index: u32, more: bool) -> Markup {
    let link = |to: u32| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", &query.status),
            ("product_id", &query.product_id),
            ("customer_id", &query.customer_id),
        ] {
            if let Some(value) = given(value) {
                params.append_pair(name, value);
            }
        }
        params.append_pair("page", &to.to_string());
        format!("/console/license-keys?{}", params.finish())
    };
    html! {
        nav.pager aria-label="Pages" {
            @if index > 0 { a href=(link(index - 1)) { "← Newer" } " " }
            @if more { a href=(link(index + 1)) { "Older →" } }
        }
    }
}

fn status_badge(key: &LicenseKey, now: Timestamp) -> Markup {
    let status = key.state().status(now).as_str();
    html! { span class={ "status " (status) } { (status) } }
}

fn limit_text(key: &LicenseKey) -> String {
    key.activations_limit
        .map_or("unlimited".to_owned(), |l| l.to_string())
}

fn see_other(path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Markup, ConsoleError> {
    let business = &signed.principal.business_id;
    let id = LicenseKeyId::from(id);
    let key =
        (state.store.license_key(business, &id).await?).ok_or(ApiError::LicenseKeyNotFound)?;
    let instances = (state.store)
        .list_instances(
            business,
            Some(&id),
            PageRequest {
                index: 0,
                size: 100,
            },
        )
        .await?;
    let now = Timestamp::now();
    let csrf = &signed.session.csrf_token;
    let writable = !signed.principal.read_only;
    let done_text = match done.done.as_deref() {
        Some("disabled") => {
            Some("The key is disabled: validation fails and activation is refused.")
        }
        Some("enabled") => Some("The key is enabled again."),
        Some("deactivated") => Some("The instance is deactivated; its seat is free."),
        _ => None,
    };
    let body = html! {
        @if let Some(text) = done_text { (notice(Notice::Done, text)) }
        section.card aria-labelledby="facts" {
            h2 #facts { "Key" }
            dl.facts {
                dt { "Key" } dd { code { (key.key) } }
                dt { "Status" } dd { (status_badge(&key, now)) }
                dt { "Id" } dd { code { (key.id) } }
                dt { "Customer" } dd { code { (key.customer_id) } }
                dt { "Product" } dd { code { (key.product_id) } }
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
                        @for instance in &instances {
                            tr {
                                td { (instance.name) }
                                td { code { (instance.id) } }
                                td { (instance.fingerprint.as_deref().unwrap_or("—")) }
                                td { (instance.created_at) }
                                td { (instance.heartbeat_expires_at.map_or("—".to_owned(), |t| t.to_string())) }
                                @if writable {
                                    td {
                                        form.inline method="post"
                                            action={ "/console/license-keys/" (key.id) "/instances/" (instance.id) "/deactivate" }
                                            data-confirm={ "Deactivate " (instance.name) "? Its seat is freed." } {
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
    Ok(page(&signed, Section::LicenseKeys, "License key", body))
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
    Form(form): Form<Csrf>,
) -> Result<Response, ConsoleError> {
    set_disabled(&state, &signed, id, &form, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<Csrf>,
) -> Result<Response, ConsoleError> {
    set_disabled(&state, &signed, id, &form, false).await
}

/// Deactivates an instance as its app would (`POST /licenses/deactivate`).
pub async fn deactivate(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, instance)): Path<(String, String)>,
    Form(form): Form<Csrf>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let business = &signed.principal.business_id;
    let id = LicenseKeyId::from(id);
    let key =
        (state.store.license_key(business, &id).await?).ok_or(ApiError::LicenseKeyNotFound)?;
    let key_string = KeyString::parse(&key.key)
        .map_err(|_| ApiError::Internal("a stored key that does not parse".into()))?;
    state
        .store
        .deactivate(&key_string, &InstanceId::from(instance))
        .await?;
    Ok(see_other(&format!(
        "/console/license-keys/{id}?done=deactivated"
    )))
}
