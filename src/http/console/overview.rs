//! The overview: what a business holds at a glance.

use axum::extract::State;
use maud::{Markup, html};

use super::error::ConsoleError;
use super::layout::{Section, page};
use super::session::Signed;
use crate::domain::time::Timestamp;
use crate::http::state::AppState;

pub async fn overview(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Markup, ConsoleError> {
    let figures = (state.store)
        .overview(&signed.principal.business_id, Timestamp::now())
        .await?;
    let card = |label: &str, value: u64, link: Option<&str>| {
        html! {
            li.figure {
                span.value { (value) }
                @match link {
                    Some(href) => a.label href=(href) { (label) },
                    None => span.label { (label) },
                }
            }
        }
    };
    let body = html! {
        ul.figures aria-label="Figures" {
            (card("Customers", figures.customers, None))
            (card("Active keys", figures.keys_active, Some("/console/license-keys?status=active")))
            (card("Expired keys", figures.keys_expired, Some("/console/license-keys?status=expired")))
            (card("Disabled keys", figures.keys_disabled, Some("/console/license-keys?status=disabled")))
            (card("Activations in the last 24 h", figures.activations_last_day, None))
            (card("Ledger pairs", figures.ledger_pairs, None))
        }
    };
    Ok(page(&signed, Section::Overview, "Overview", body))
}
