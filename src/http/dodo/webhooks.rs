//! `/webhooks`: the endpoints a business's events are delivered to, managed as Dodo's
//! webhook API does it (`client.webhooks.*`), with their secrets and custom headers.
//! Their messages are in `webhook_messages.rs`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::ids::{BusinessId, IdempotencyKey, LongText, WebhookId, shorten};
use crate::domain::license::Change;
use crate::domain::metadata::{Metadata, optional_metadata_schema};
use crate::domain::signing;
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{
    Endpoint, EndpointPatch, EventType, FilterTypes, RateLimit, WebhookHeaders, WebhookSecret,
    WebhookUrl,
};
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{
    JsonBody, NoQuery, PathParam, Query, QueryParams, Reader, Writer, bounded_integer,
};
use crate::http::state::AppState;
use crate::storage::StorageError;

/// The most endpoints one page lists, and how many it lists unless asked.
const MAX_LIMIT: u32 = 100;
const DEFAULT_LIMIT: u32 = 10;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: WebhookUrl,
    #[serde(default)]
    description: Option<LongText>,
    /// Create the endpoint disabled (default false): nothing is delivered to it.
    #[serde(default)]
    disabled: Option<bool>,
    /// The events delivered; empty or absent: every event.
    #[serde(default)]
    #[schema(value_type = Option<FilterTypes>)]
    filter_types: Option<FilterTypes>,
    /// Custom headers sent with each delivery.
    #[serde(default)]
    #[schema(value_type = Option<WebhookHeaders>)]
    headers: Option<WebhookHeaders>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
    /// Deliveries per second to the endpoint, at most; none: no limit.
    #[serde(default)]
    #[schema(value_type = Option<RateLimit>)]
    rate_limit: Option<RateLimit>,
    /// A repeated create with the same key (and the same fields) creates nothing and
    /// answers the endpoint the first one created; with other fields it is refused (409).
    #[serde(default)]
    #[schema(value_type = Option<IdempotencyKey>)]
    idempotency_key: Option<IdempotencyKey>,
}

/// Dodo's `WebhookDetails`.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDetails)]
pub struct WebhookView {
    /// `wh_…`
    id: String,
    url: String,
    /// Empty when none was given.
    description: String,
    /// True: nothing is delivered to the endpoint.
    disabled: bool,
    /// The events delivered; empty: every event.
    filter_types: Vec<EventType>,
    metadata: Metadata,
    /// Deliveries per second to the endpoint, at most; null: no limit.
    #[schema(value_type = Option<u32>, required = true, minimum = 1, maximum = 10_000)]
    rate_limit: Option<u32>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Endpoint> for WebhookView {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.into_string(),
            url: e.url.as_str().to_owned(),
            description: e.description,
            disabled: e.disabled,
            filter_types: e.filter_types,
            metadata: e.metadata,
            rate_limit: e.rate_limit.map(RateLimit::per_second),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

pub(super) fn webhook_not_found(id: &WebhookId) -> ApiError {
    ApiError::NotFound(format!("webhook `{}` not found", shorten(id.as_str())))
}

/// Creates a webhook endpoint, with a new secret that signs its deliveries.
#[utoipa::path(post, path = "/webhooks", tag = "Webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "The endpoint", body = WebhookView),
        (status = 400, description = "Invalid input: a URL that is not http(s) or is over 2048 characters, an unknown event type, a bad header, an unknown field", body = ErrorBody),
        (status = 409, description = "The idempotency_key was used with a different request", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    JsonBody(request): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let now = Timestamp::now();
    let secret = signing::seal(WebhookSecret::generate().bytes(), state.master_key.as_ref());
    let mut endpoint = Endpoint {
        description: request
            .description
            .map(LongText::into_string)
            .unwrap_or_default(),
        disabled: request.disabled.unwrap_or(false),
        filter_types: request.filter_types.unwrap_or_default().into_sorted(),
        headers: request.headers.unwrap_or_default(),
        metadata: request.metadata.unwrap_or_default(),
        rate_limit: request.rate_limit,
        idempotency_key: request.idempotency_key.map(|k| k.into_string()),
        ..Endpoint::new(caller.business_id, request.url, secret, now)
    };
    if endpoint.idempotency_key.is_some() {
        endpoint.idempotency_digest = endpoint.request_digest();
    }
    let endpoint = match state.store.create_webhook(&endpoint).await {
        Err(StorageError::IdempotencyMismatch) => {
            return Err(ApiError::Conflict(
                "this idempotency_key was already used with a different request".into(),
            ));
        }
        created => created?,
    };
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

/// A webhook endpoint by id.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: NoQuery,
    PathParam(id): PathParam<WebhookId>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(
        endpoint(&state, &caller.business_id, &id).await?.into(),
    ))
}

async fn endpoint(
    state: &AppState,
    business_id: &BusinessId,
    id: &WebhookId,
) -> Result<Endpoint, ApiError> {
    state
        .store
        .webhook(business_id, id)
        .await?
        .ok_or_else(|| webhook_not_found(id))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// Endpoints per page, 1 to 100 (default 10).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `iterator` of the page before; none: the first page.
    #[serde(default)]
    #[param(max_length = 200)]
    iterator: Option<String>,
}

impl QueryParams for CursorQuery {}

/// One page of a list read with a cursor, as Dodo's webhook list answers it.
#[derive(Serialize, ToSchema)]
pub struct CursorPage<T> {
    data: Vec<T>,
    /// Pass it as `iterator` for the next page; null on the last page.
    #[schema(required = true)]
    iterator: Option<String>,
    /// True on the last page.
    done: bool,
}

/// An iterator names the last endpoint of its page: its creation instant and id.
fn iterator_of(endpoint: &Endpoint) -> String {
    format!("{}.{}", endpoint.created_at.micros(), endpoint.id)
}

fn parse_iterator(text: &str) -> Result<(Timestamp, WebhookId), ApiError> {
    text.split_once('.')
        .and_then(|(micros, id)| {
            let at = Timestamp::from_micros(micros.parse().ok()?)?;
            Some((at, WebhookId::from(id)))
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`iterator` `{}` is not one this server returned",
                shorten(text)
            ))
        })
}

/// Lists webhook endpoints, oldest first, a page at a time.
#[utoipa::path(get, path = "/webhooks", tag = "Webhooks", params(CursorQuery),
    responses(
        (status = 200, description = "One page", body = CursorPage<WebhookView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "limit outside 1–100", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(query): Query<CursorQuery>,
) -> Result<Json<CursorPage<WebhookView>>, ApiError> {
    let limit = match &query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => bounded_integer("limit", text, 1..=MAX_LIMIT)?,
    };
    let after = query.iterator.as_deref().map(parse_iterator).transpose()?;
    let mut found = state
        .store
        .list_webhooks(
            &caller.business_id,
            after.as_ref().map(|(at, id)| (*at, id)),
            limit + 1,
        )
        .await?;
    let done = found.len() <= limit as usize;
    found.truncate(limit as usize);
    let iterator = if done {
        None
    } else {
        found.last().map(iterator_of)
    };
    Ok(Json(CursorPage {
        data: found.into_iter().map(Into::into).collect(),
        iterator,
        done,
    }))
}

/// A change to an endpoint: absent (or null) fields are unchanged, except `rate_limit`,
/// which null removes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default)]
    #[schema(value_type = Option<WebhookUrl>)]
    url: Option<WebhookUrl>,
    #[serde(default)]
    description: Option<LongText>,
    /// True: nothing is delivered to the endpoint.
    #[serde(default)]
    disabled: Option<bool>,
    /// The events delivered; empty: every event.
    #[serde(default)]
    #[schema(value_type = Option<FilterTypes>)]
    filter_types: Option<FilterTypes>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
    /// Null removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<RateLimit>)]
    rate_limit: Change<RateLimit>,
}

/// Changes a webhook endpoint.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<WebhookId>,
    JsonBody(request): JsonBody<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    let patch = EndpointPatch {
        url: request.url,
        description: request.description.map(LongText::into_string),
        disabled: request.disabled,
        filter_types: request.filter_types,
        metadata: request.metadata,
        rate_limit: request.rate_limit,
        headers: None,
    };
    patched(&state, &caller.business_id, &id, patch)
        .await
        .map(|e| Json(e.into()))
}

async fn patched(
    state: &AppState,
    business_id: &BusinessId,
    id: &WebhookId,
    patch: EndpointPatch,
) -> Result<Endpoint, ApiError> {
    state
        .store
        .update_webhook(business_id, id, patch)
        .await?
        .ok_or_else(|| webhook_not_found(id))
}

/// Deletes a webhook endpoint: nothing more is delivered to it.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<WebhookId>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_webhook(&caller.business_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(webhook_not_found(&id))
    }
}

/// The secret that signs an endpoint's deliveries.
#[derive(Serialize, ToSchema)]
pub struct WebhookSecretView {
    /// `whsec_` and 32 random bytes in standard base64 (Standard Webhooks' format).
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    secret: String,
}

/// The secret that signs the endpoint's deliveries. The secret is a credential: reading
/// it takes a read-write API key (a read-only key gets 403).
#[utoipa::path(get, path = "/webhooks/{id}/secret", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`")),
    responses(
        (status = 200, description = "The secret", body = WebhookSecretView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_webhook_secret(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<WebhookId>,
) -> Result<Json<WebhookSecretView>, ApiError> {
    let endpoint = endpoint(&state, &caller.business_id, &id).await?;
    // The server checked the master key at start: a secret it cannot open now is a fault
    // of the server, and says nothing of the endpoint.
    let bytes = signing::open(&endpoint.secret, state.master_key.as_ref())
        .map_err(|_| ApiError::Internal("a webhook secret could not be opened".into()))?;
    Ok(Json(WebhookSecretView {
        secret: WebhookSecret::from_bytes(bytes).encoded(),
    }))
}

/// An endpoint's custom headers; the values of credentials (headers whose names contain
/// `auth`, `cookie`, `key`, `token`, `secret`, `password`, `passwd`, `credential` or
/// `session`) are not shown.
#[derive(Serialize, ToSchema)]
pub struct WebhookHeadersView {
    /// The headers whose values may be shown.
    headers: BTreeMap<String, String>,
    /// The names of the headers whose values are hidden.
    sensitive: Vec<String>,
}

/// The custom headers sent with each delivery to the endpoint.
#[utoipa::path(get, path = "/webhooks/{id}/headers", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`")),
    responses(
        (status = 200, description = "The headers", body = WebhookHeadersView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_webhook_headers(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: NoQuery,
    PathParam(id): PathParam<WebhookId>,
) -> Result<Json<WebhookHeadersView>, ApiError> {
    let endpoint = endpoint(&state, &caller.business_id, &id).await?;
    let (headers, sensitive) = endpoint.headers.redacted();
    Ok(Json(WebhookHeadersView { headers, sensitive }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookHeaders {
    /// Headers to add, or to replace those of the same name (names compare without case).
    #[schema(value_type = WebhookHeaders)]
    headers: WebhookHeaders,
}

/// Adds custom headers to the endpoint, or replaces those of the same name.
#[utoipa::path(patch, path = "/webhooks/{id}/headers", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`")),
    request_body = UpdateWebhookHeaders,
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Invalid input, or more than 20 headers in all", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn update_webhook_headers(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<WebhookId>,
    JsonBody(request): JsonBody<UpdateWebhookHeaders>,
) -> Result<StatusCode, ApiError> {
    let patch = EndpointPatch {
        headers: Some(request.headers),
        ..EndpointPatch::default()
    };
    patched(&state, &caller.business_id, &id, patch).await?;
    Ok(StatusCode::NO_CONTENT)
}
