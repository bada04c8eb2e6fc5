//! The ledger in the console: its (account, license) pairs, and for one pair its quantity
//! over a month, its daily usage, its entries and a form to add one — written through
//! the same store call as `POST /license_updates`, under the same rules.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use futures_util::future::try_join_all;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::chart;
use super::error::{ConsoleError, ConsoleForm, ConsoleQuery};
use super::forms::{another_page_follows, given, refusal, see_other};
use super::layout::{Notice, Section, notice, page};
use super::session::Signed;
use crate::domain::auth::Caller;
use crate::domain::entry::NewEntry;
use crate::domain::ids::{AccountId, LicenseId, shorten};
use crate::domain::ledger::daily_usage;
use crate::domain::time::{MICROS_PER_DAY, Timestamp};
use crate::http::error::ApiError;
use crate::http::extract::parse_json;
use crate::http::state::AppState;
use crate::http::togai::license_updates::LicenseUpdateRequest;
use crate::storage::{EntrySort, ListEntries, MAX_ENTRY_PAGE, MAX_LISTED_ENTRIES};

const MAX_PAIRS: u32 = 100;
/// The pairs' quantities read at once for the list of pairs.
const READS_AT_ONCE: usize = 8;

#[derive(Deserialize, Default)]
pub struct PairsQuery {
    #[serde(default)]
    account: Option<String>,
    /// The pair the page starts after: the last of the page before.
    #[serde(default)]
    after_account: Option<String>,
    #[serde(default)]
    after_license: Option<String>,
}

pub async fn pairs(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(query): ConsoleQuery<PairsQuery>,
) -> Result<Markup, ConsoleError> {
    let business = &signed.principal.business_id;
    let text = given(&query.account);
    let account = text.map(account_id).transpose()?;
    let after = match (given(&query.after_account), given(&query.after_license)) {
        (Some(account), Some(license)) => Some((
            AccountId::parse(account).map_err(|e| bad_cursor("after_account", e))?,
            LicenseId::parse(license).map_err(|e| bad_cursor("after_license", e))?,
        )),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "`after_account` and `after_license` name a pair together: give both, or neither"
                    .into(),
            )
            .into());
        }
    };
    let mut pairs = (state.store)
        .ledger_pairs(
            business,
            account.as_ref(),
            after.as_ref().map(|(a, l)| (a, l)),
            MAX_PAIRS + 1,
        )
        .await?;
    let more = another_page_follows(&mut pairs, MAX_PAIRS);
    let next = (pairs.last().filter(|_| more)).map(|(account, license)| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(text) = text {
            query.append_pair("account", text);
        }
        query.append_pair("after_account", account.as_str());
        query.append_pair("after_license", license.as_str());
        format!("/console/ledger?{}", query.finish())
    });
    let caller = Caller::Business(business.clone());
    let now = Timestamp::now();
    // Read a few at a time: on PostgreSQL they share round trips instead of taking one
    // each, and leave the pool's other connections to the API.
    let mut quantities = Vec::with_capacity(pairs.len());
    for some in pairs.chunks(READS_AT_ONCE) {
        let reads = (some.iter())
            .map(|(account, license)| (state.store).quantity_at(&caller, (account, license), now));
        quantities.extend(try_join_all(reads).await?);
    }
    let rows: Vec<_> = (pairs.into_iter().zip(quantities))
        .map(|((account, license), quantity)| (account, license, quantity.map(|(_, q)| q)))
        .collect();
    let body = html! {
        form.filters method="get" action="/console/ledger" role="search" {
            div {
                label for="account" { "Account" }
                input #account type="search" name="account" value=[text] placeholder="acme";
            }
            div { button type="submit" { "Show" } }
        }
        @if rows.is_empty() {
            p.empty { @if text.is_some() { "This account has no ledger entries." } @else { "The ledger is empty." } }
        } @else {
            div.table-wrap {
                table {
                    caption.muted { "Pairs, by account" }
                    thead { tr {
                        th scope="col" { "Account" }
                        th scope="col" { "License" }
                        th scope="col" class="num" { "Quantity now" }
                    } }
                    tbody {
                        @for (account, license, quantity) in &rows {
                            tr {
                                td { code { (account) } }
                                td { a href=(pair_path(account, license, None)) { code { (license) } } }
                                td.num { (quantity.map_or("—".to_owned(), |q| q.to_string())) }
                            }
                        }
                    }
                }
            }
            @if after.is_some() || next.is_some() {
                nav.pager aria-label="Pages" {
                    @if after.is_some() {
                        a href={ "/console/ledger" @if let Some(text) = text { "?account=" (encoded(text)) } } { "← First pairs" } " "
                    }
                    @if let Some(next) = &next { a href=(next) { "Next pairs →" } }
                }
            }
        }
    };
    Ok(page(&signed, Section::Ledger, "Ledger", body))
}

/// Text as a query string's value.
fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn bad_cursor(name: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("`{name}`: {error}"))
}

fn account_id(text: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(text).map_err(|e| ApiError::BadRequest(format!("`account`: {e}")))
}

fn license_id(text: &str) -> Result<LicenseId, ApiError> {
    LicenseId::parse(text).map_err(|e| ApiError::BadRequest(format!("`license`: {e}")))
}

fn pair_path(account: &AccountId, license: &LicenseId, month: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("account", account.as_str());
    query.append_pair("license", license.as_str());
    if let Some(month) = month {
        query.append_pair("month", month);
    }
    format!("/console/ledger/pair?{}", query.finish())
}

#[derive(Deserialize)]
pub struct PairQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    license: String,
    /// `YYYY-MM`; the current month if absent.
    #[serde(default)]
    month: Option<String>,
    #[serde(default)]
    done: Option<String>,
    /// `<effective from, in µs>.<seq>` of the last entry of the page of entries before.
    #[serde(default)]
    entries_after: Option<String>,
}

/// The position `?entries_after=` names.
fn entries_position(text: &str) -> Result<(i64, i64), ApiError> {
    let parsed =
        (text.split_once('.')).and_then(|(at, seq)| Some((at.parse().ok()?, seq.parse().ok()?)));
    parsed.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`entries_after` `{}` is not a position of an entry listed here",
            shorten(text)
        ))
    })
}

/// The first day of `YYYY-MM`, and of the month after.
fn month_bounds(text: &str) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| {
        ApiError::BadRequest(format!(
            "`month` `{}` is not a month such as 2024-03",
            shorten(text)
        ))
    })?;
    let next = first.checked_add_months(chrono::Months::new(1));
    match next.filter(|next| midnight(first).is_ok() && midnight(*next).is_ok()) {
        Some(next) => Ok((first, next)),
        None => Err(ApiError::BadRequest(format!(
            "`month` `{text}` is outside the months the ledger counts (0001-01 to 9999-11)"
        ))),
    }
}

fn midnight(date: NaiveDate) -> Result<Timestamp, ApiError> {
    Timestamp::parse(&format!("{date}T00:00:00Z")).map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub async fn pair(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleQuery(query): ConsoleQuery<PairQuery>,
) -> Result<Response, ConsoleError> {
    let message = match query.done.as_deref() {
        Some("added") => Some((Notice::Done, "The update is in the ledger.".to_owned())),
        _ => None,
    };
    pair_page(&state, &signed, &query, StatusCode::OK, message, None).await
}

async fn pair_page(
    state: &AppState,
    signed: &Signed,
    query: &PairQuery,
    status: StatusCode,
    message: Option<(Notice, String)>,
    form: Option<&AddUpdate>,
) -> Result<Response, ConsoleError> {
    let business = &signed.principal.business_id;
    let account = account_id(query.account.trim())?;
    let license = license_id(query.license.trim())?;
    let now = Timestamp::now();
    let this_month = format!("{:04}-{:02}", now.date().year(), now.date().month());
    let month = given(&query.month);
    let month = month.unwrap_or(&this_month).to_owned();
    let (first, next) = month_bounds(&month)?;
    let (start, end) = (midnight(first)?, midnight(next)?);
    let (initial, changes) = (state.store)
        .history(business, (&account, &license), start, end)
        .await?;
    let days = ((end.micros() - start.micros()) / MICROS_PER_DAY) as u32;
    let usage = daily_usage(initial, &changes, first, days);
    let listing = ListEntries {
        account_id: Some(account.clone()),
        license_id: Some(license.clone()),
        effective_from: None,
        sort: EntrySort::EffectiveFrom,
        descending: true,
        after: given(&query.entries_after)
            .map(entries_position)
            .transpose()?,
        limit: MAX_LISTED_ENTRIES,
    };
    let mut entries = state.store.list_entries(business, &listing).await?;
    let more = another_page_follows(&mut entries, MAX_ENTRY_PAGE);
    let older = (entries.last().filter(|_| more)).map(|last| {
        let (at, seq) = last.position(EntrySort::EffectiveFrom);
        format!(
            "{}&entries_after={at}.{seq}#entries",
            pair_path(&account, &license, Some(&month))
        )
    });
    let title = format!("{account} / {license}");
    let empty = AddUpdate::default();
    let form = form.unwrap_or(&empty);
    let body = html! {
        @if let Some((kind, text)) = &message { (notice(*kind, text)) }
        form.filters method="get" action="/console/ledger/pair" {
            input type="hidden" name="account" value=(account);
            input type="hidden" name="license" value=(license);
            div {
                label for="month" { "Month" }
                input #month type="month" name="month" value=(month);
            }
            div { button type="submit" { "Show" } }
        }
        h2 #over-time { "Quantity over " (month) }
        div.card {
            (chart::quantity_over_time(&format!("The quantity of {title} over {month}"), start, end, initial, &changes))
            p.help { "At the start of the month: " strong data-initial { (initial.to_string()) } ". "
                (changes.len()) " change" @if changes.len() != 1 { "s" } " during the month." }
        }
        h2 #usage { "Daily usage" }
        div.card {
            (chart::daily_usage(&format!("The largest quantity of each day of {month}"), &usage.days))
            details {
                summary { "The figures of each day" }
                div.table-wrap {
                    table aria-labelledby="usage" {
                        thead { tr {
                            th scope="col" { "Day" }
                            th scope="col" class="num" { "Largest" }
                            th scope="col" class="num" { "At the end" }
                        } }
                        tbody {
                            @for day in &usage.days {
                                tr data-day=(day.date) {
                                    td { (day.date) }
                                    td.num { (day.max_quantity.to_string()) }
                                    td.num { (day.end_quantity.to_string()) }
                                }
                            }
                        }
                    }
                }
            }
            p.help { "Quantity-days: " (usage.max_quantity_days.normalize().to_string()) }
        }
        h2 #entries { "Entries" }
        @if entries.is_empty() {
            p.empty { "No entries for this pair." }
        } @else {
            div.table-wrap {
                table aria-labelledby="entries" {
                    caption.muted { "Newest effective first" }
                    thead { tr {
                        th scope="col" { "Effective from" }
                        th scope="col" class="num" { "Quantity from then" }
                        th scope="col" { "Written" }
                        th scope="col" { "Metadata" }
                    } }
                    tbody {
                        @for listed in &entries {
                            tr {
                                td { (listed.entry.effective_from) }
                                td.num { (listed.entry.quantity.to_string()) }
                                td { (listed.entry.created_at) }
                                td { @match &listed.entry.metadata {
                                    Some(metadata) => code { (serde_json::to_string(metadata).unwrap_or_default()) },
                                    None => "—",
                                } }
                            }
                        }
                    }
                }
            }
            @if query.entries_after.is_some() || older.is_some() {
                nav.pager aria-label="Pages of entries" {
                    @if query.entries_after.is_some() {
                        a href={ (pair_path(&account, &license, Some(&month))) "#entries" } { "← Newest entries" } " "
                    }
                    @if let Some(older) = &older { a href=(older) { "Older entries →" } }
                }
            }
        }
        @if !signed.principal.read_only {
            h2 #add { "Add an update" }
            form.card method="post" action="/console/ledger/pair" aria-labelledby="add" {
                input type="hidden" name="csrf" value=(signed.session.csrf_token);
                input type="hidden" name="account" value=(account);
                input type="hidden" name="license" value=(license);
                label for="update_type" { "Type" }
                select #update_type name="update_type" {
                    option value="ABSOLUTE" selected[form.update_type == "ABSOLUTE"] { "Absolute: the quantity becomes" }
                    option value="RELATIVE" selected[form.update_type == "RELATIVE"] { "Relative: the quantity changes by" }
                }
                label for="quantity" { "Quantity" }
                input #quantity type="text" inputmode="decimal" name="quantity" required value=(form.quantity);
                label for="effective_from" { "Effective from (UTC)" }
                input #effective_from type="datetime-local" name="effective_from" value=(form.effective_from)
                    aria-describedby="effective_help";
                p #effective_help .help { "Empty: now. An instant in the past re-resolves the entries after it." }
                button type="submit" { "Add to the ledger" }
            }
        }
    };
    Ok((status, page(signed, Section::Ledger, &title, body)).into_response())
}

#[derive(Deserialize, Default)]
pub struct AddUpdate {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    license: String,
    #[serde(default)]
    update_type: String,
    #[serde(default)]
    quantity: String,
    #[serde(default)]
    effective_from: String,
}

/// The API's request body that [`AddUpdate`] stands for.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddUpdateBody<'a> {
    account_id: &'a str,
    license_id: &'a str,
    update_type: &'a str,
    /// The number as typed, not a float: the API's parser reads the decimal exactly and
    /// refuses what it cannot keep.
    quantity: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_from: Option<String>,
}

impl AddUpdate {
    /// The API's request for this form: the same checks follow.
    fn entry(&self) -> Result<NewEntry, ApiError> {
        let typed = self.quantity.trim();
        let quantity = serde_json::from_str::<&RawValue>(typed)
            .ok()
            .filter(|raw| {
                raw.get()
                    .starts_with(|c: char| c == '-' || c.is_ascii_digit())
            })
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "The quantity `{}` is not a number.",
                    shorten(typed)
                ))
            })?;
        let at = self.effective_from.trim();
        // A `datetime-local` has minutes, perhaps seconds, and no zone: UTC is meant. A
        // time typed with its zone is taken as it is.
        let effective_from = (!at.is_empty()).then(|| {
            let time = at.split_once(['T', 't', ' ']).map_or("", |(_, time)| time);
            match time.len() {
                _ if time.contains(['Z', 'z', '+', '-']) => at.to_owned(),
                5 => format!("{at}:00Z"),
                _ => format!("{at}Z"),
            }
        });
        let body = AddUpdateBody {
            account_id: self.account.trim(),
            license_id: self.license.trim(),
            update_type: self.update_type.trim(),
            quantity,
            effective_from,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
        parse_json::<LicenseUpdateRequest>(&body).map(NewEntry::from)
    }
}

pub async fn add_update(
    State(state): State<AppState>,
    signed: Signed,
    ConsoleForm(form): ConsoleForm<AddUpdate>,
) -> Result<Response, ConsoleError> {
    signed.check_write(&form.csrf)?;
    let caller = Caller::Business(signed.principal.business_id.clone());
    let written = match form.entry() {
        Ok(entry) => state
            .store
            .append_entry(&caller, &entry)
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    let query = PairQuery {
        account: form.account.clone(),
        license: form.license.clone(),
        month: None,
        done: None,
        entries_after: None,
    };
    match written {
        Ok(_) => {
            let (account, license) = (
                account_id(form.account.trim())?,
                license_id(form.license.trim())?,
            );
            Ok(see_other(&format!(
                "{}&done=added",
                pair_path(&account, &license, None)
            )))
        }
        Err(error) => {
            let (status, message) = refusal(error)?;
            pair_page(
                &state,
                &signed,
                &query,
                status,
                Some((Notice::Refused, message)),
                Some(&form),
            )
            .await
        }
    }
}
