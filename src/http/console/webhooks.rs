//! Webhooks in the console: the endpoints, each with its recent messages and what their
//! attempts got, a message sent again, and an endpoint turned off or on again (after a
//! 410 disabled it, say).

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::{ConsoleError, ConsoleForm, ConsoleQuery};
use super::forms::{Csrf, see_other};
use super::layout::{Notice, Section, notice, page};
use super::session::Signed;
use crate::domain::delivery::MessageStatus;
use crate::domain::ids::{MessageId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::EndpointPatch;
use crate::http::error::ApiError;
use crate::http::state::AppState;

const MESSAGES: u32 = 50;

pub async fn endpoints(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Markup, ConsoleError> {
    let found = (state.store)
        .list_webhooks(&signed.principal.business_id, None, 100)
        .await?;
    let body = html! {
        @if found.is_empty() {
            p.empty { "No webhook endpoints. Add one with " code { "POST /webhooks" } "." }
        } @else {
            div.table-wrap {
                table {
                    caption.muted { "Endpoints, oldest first (up to 100)" }
                    thead { tr {
                        th scope="col" { "URL" }
                        th scope="col" { "Events" }
                        th scope="col" { "State" }
                    } }
                    tbody {
                        @for e in &found {
                            tr {
                                td { a href={ "/console/webhooks/" (e.id) } { (e.url.as_str()) } }
                                td {
                                    @if e.filter_types.is_empty() { "every event" } @else {
                                        @for (i, t) in e.filter_types.iter().enumerate() {
                                            @if i > 0 { ", " } code { (t.as_str()) }
                                        }
                                    }
                                }
                                td {
                                    @if e.disabled { span.status.disabled { "disabled" } }
                                    @else { span.status.active { "enabled" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&signed, Section::Webhooks, "Webhooks", body))
}

#[derive(Deserialize, Default)]
pub struct EndpointQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

pub async fn endpoint(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    ConsoleQuery(query): ConsoleQuery<EndpointQuery>,
) -> Result<Markup, ConsoleError> {
    let business = &signed.principal.business_id;
    let id = WebhookId::from(id);
    let found = (state.store.webhook(business, &id).await?)
        .ok_or_else(|| ApiError::NotFound(format!("webhook `{id}` not found")))?;
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(MessageStatus::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("`{text}` is not pending, delivered or failed"))
        })?),
    };
    let messages = state
        .store
        .messages(business, &id, status, None, MESSAGES)
        .await?;
    let message = match query.done.as_deref() {
        Some("retried") => Some("The message is due now: it is sent within a moment."),
        Some("enabled") => Some("The endpoint is enabled: its pending messages are delivered."),
        Some("disabled") => Some("The endpoint is disabled: nothing is delivered to it."),
        _ => None,
    };
    let csrf = &signed.session.csrf_token;
    let writable = !signed.principal.read_only;
    let body = html! {
        @if let Some(text) = message { (notice(Notice::Done, text)) }
        section.card {
            dl.facts {
                dt { "URL" } dd { code { (found.url.as_str()) } }
                dt { "Id" } dd { code { (found.id) } }
                dt { "Description" } dd { (if found.description.is_empty() { "—" } else { &found.description }) }
                dt { "State" } dd {
                    @if found.disabled { span.status.disabled { "disabled" } } @else { span.status.active { "enabled" } }
                }
                dt { "Rate limit" } dd { (found.rate_limit.map_or("none".to_owned(), |r| format!("{} a second", r.per_second()))) }
            }
            @if writable {
                div.actions {
                    @if found.disabled {
                        form.inline method="post" action={ "/console/webhooks/" (found.id) "/enable" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Enable" }
                        }
                    } @else {
                        form.inline method="post" action={ "/console/webhooks/" (found.id) "/disable" }
                            data-confirm="Disable this endpoint? Nothing is delivered to it until it is enabled again." {
                            input type="hidden" name="csrf" value=(csrf);
                            button.danger type="submit" { "Disable" }
                        }
                    }
                }
            }
        }
        h2 #messages { "Recent messages" }
        form.filters method="get" action={ "/console/webhooks/" (found.id) } {
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    @for s in ["pending", "delivered", "failed"] {
                        option value=(s) selected[query.status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            div { button type="submit" { "Show" } }
        }
        @if messages.is_empty() {
            p.empty { "No messages." }
        } @else {
            div.table-wrap {
                table aria-labelledby="messages" {
                    thead { tr {
                        th scope="col" { "Event" }
                        th scope="col" { "Status" }
                        th scope="col" { "Recorded" }
                        th scope="col" { "Attempts" }
                        @if writable { th scope="col" { span.muted { "Action" } } }
                    } }
                    tbody {
                        @for m in &messages {
                            tr {
                                td { code { (m.event_type.as_str()) } br; span.muted.mono { (m.id) } }
                                td {
                                    span class={ "status " (m.status.as_str()) } { (m.status.as_str()) }
                                    @if let Some(next) = m.next_attempt_at { br; span.muted { "next " (next) } }
                                }
                                td { (m.created_at) }
                                td {
                                    @if m.attempts.is_empty() { "none yet" }
                                    ol.attempts {
                                        @for a in &m.attempts {
                                            li {
                                                (a.at) ": "
                                                @match (&a.status_code, &a.error) {
                                                    (Some(code), _) => { "status " (code) },
                                                    (None, Some(error)) => { (error) },
                                                    (None, None) => { "no answer" },
                                                }
                                            }
                                        }
                                    }
                                }
                                @if writable {
                                    td {
                                        form.inline method="post"
                                            action={ "/console/webhooks/" (found.id) "/messages/" (m.id) "/retry" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.secondary type="submit" aria-label={ "Send " (m.id) " again" } { "Send again" }
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
    Ok(page(&signed, Section::Webhooks, "Webhook endpoint", body))
}

pub async fn retry(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, message)): Path<(String, String)>,
    ConsoleForm(form): ConsoleForm<Csrf>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let id = WebhookId::from(id);
    let message = MessageId::from(message);
    (state.store)
        .retry_message(
            &signed.principal.business_id,
            &id,
            &message,
            Timestamp::now(),
            state.webhook_attempts,
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("message `{message}` not found")))?;
    Ok(see_other(&format!("/console/webhooks/{id}?done=retried")))
}

async fn set_disabled(
    state: &AppState,
    signed: &Signed,
    id: String,
    form: &Csrf,
    disabled: bool,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let id = WebhookId::from(id);
    let patch = EndpointPatch {
        disabled: Some(disabled),
        ..EndpointPatch::default()
    };
    (state.store)
        .update_webhook(&signed.principal.business_id, &id, patch)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook `{id}` not found")))?;
    let done = if disabled { "disabled" } else { "enabled" };
    Ok(see_other(&format!("/console/webhooks/{id}?done={done}")))
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
