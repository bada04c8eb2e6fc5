//! `/webhooks/{id}/messages`: what was delivered to an endpoint, what is still pending,
//! what failed and why, and sending one again.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use crate::domain::delivery::{AttemptLog, Message, MessageStatus};
use crate::domain::ids::{MessageId, WebhookId, is_ordered_id, shorten};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::EventType;
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{
    NoQuery, PathPair, PathParam, Query, QueryParams, Reader, Writer, bounded_integer,
};
use crate::http::state::AppState;

const MAX_LIMIT: u32 = 100;
const DEFAULT_LIMIT: u32 = 50;

/// One event as delivered to one endpoint, with every attempt.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookMessage)]
pub struct MessageView {
    /// `msg_…`: the `webhook-id` header of every attempt.
    id: String,
    endpoint_id: String,
    event_type: EventType,
    status: MessageStatus,
    created_at: Timestamp,
    /// When the next attempt is due; null once delivered or failed.
    #[schema(required = true)]
    next_attempt_at: Option<Timestamp>,
    /// Oldest first: when each attempt was made and the status code it got, or why it
    /// got no answer.
    attempts: Vec<AttemptLog>,
    /// The body delivered.
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
}

impl TryFrom<Message> for MessageView {
    type Error = ApiError;

    fn try_from(m: Message) -> Result<Self, ApiError> {
        let payload = RawValue::from_string(m.body)
            .map_err(|e| ApiError::Internal(format!("a stored webhook body is not JSON: {e}")))?;
        Ok(Self {
            id: m.id.into_string(),
            endpoint_id: m.endpoint_id.into_string(),
            event_type: m.event_type,
            status: m.status,
            created_at: m.created_at,
            next_attempt_at: m.next_attempt_at,
            attempts: m.attempts,
            payload,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessagesPage {
    /// Newest first.
    data: Vec<MessageView>,
    /// The id of the last message of this page: pass it as `iterator` for the next one;
    /// null on the last page.
    #[schema(required = true)]
    iterator: Option<String>,
    /// Whether this is the last page.
    done: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Only the messages with this status.
    #[serde(default)]
    #[param(value_type = Option<MessageStatus>)]
    status: Option<String>,
    /// How many, 1 to 100 (default 50).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `iterator` of the page before: the messages older than it.
    #[serde(default)]
    iterator: Option<String>,
}

impl QueryParams for MessagesQuery {}

/// Lists an endpoint's messages, newest first, page by page (kept 7 days once delivered
/// or failed).
#[utoipa::path(get, path = "/webhooks/{id}/messages", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`"), MessagesQuery),
    responses(
        (status = 200, description = "The messages, newest first", body = MessagesPage),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 404, description = "No such endpoint in this business", body = ErrorBody),
        (status = 422, description = "limit outside 1–100", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    Reader(caller): Reader,
    PathParam(id): PathParam<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<MessagesPage>, ApiError> {
    let id = WebhookId::from(id);
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(MessageStatus::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`status` `{}` is not pending, delivered or failed",
                shorten(text)
            ))
        })?),
    };
    let limit = match &query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => bounded_integer("limit", text, 1..=MAX_LIMIT)?,
    };
    let business = &caller.business_id;
    if state.store.webhook(business, &id).await?.is_none() {
        return Err(super::webhooks::webhook_not_found(&id));
    }
    let before = match query.iterator.as_deref() {
        None => None,
        Some(text) if is_ordered_id("msg", text) => Some(MessageId::from(text)),
        Some(text) => {
            return Err(ApiError::BadRequest(format!(
                "`iterator` `{}` is not the id of a message (`msg_…`)",
                shorten(text)
            )));
        }
    };
    let mut messages = (state.store)
        .messages(business, &id, status, before.as_ref(), limit + 1)
        .await?;
    let done = messages.len() <= limit as usize;
    messages.truncate(limit as usize);
    // As `GET /webhooks` pages: no iterator after the last page.
    let iterator = (messages.last().filter(|_| !done)).map(|m| m.id.as_str().to_owned());
    Ok(Json(MessagesPage {
        data: messages
            .into_iter()
            .map(MessageView::try_from)
            .collect::<Result<_, _>>()?,
        iterator,
        done,
    }))
}

/// Sends a message again now: a delivered or failed one gets one more attempt; a pending
/// one is attempted now and keeps its place in the retry schedule.
#[utoipa::path(post, path = "/webhooks/{id}/messages/{msg_id}/retry", tag = "Webhooks",
    params(("id" = String, Path, description = "`wh_…`"), ("msg_id" = String, Path, description = "`msg_…`")),
    responses(
        (status = 202, description = "The message, due now", body = MessageView),
        (status = 404, description = "No such endpoint or message", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn retry_message(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathPair(id, msg_id): PathPair,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let (id, msg_id) = (WebhookId::from(id), MessageId::from(msg_id));
    let message = state
        .store
        .retry_message(
            &caller.business_id,
            &id,
            &msg_id,
            Timestamp::now(),
            state.webhook_attempts,
        )
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "message `{}` of webhook `{}` not found",
                shorten(msg_id.as_str()),
                shorten(id.as_str())
            ))
        })?;
    Ok((StatusCode::ACCEPTED, Json(MessageView::try_from(message)?)))
}
