//! `/license_updates`: Togai's ledger of license updates — adding an entry, listing
//! entries a page at a time, and replacing an entry's metadata.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::text_param;
use crate::domain::entry::NewEntry;
use crate::domain::ids::{AccountId, IdempotencyKey, LicenseId, shorten};
use crate::domain::ledger::UpdateType;
use crate::domain::metadata::{Metadata, metadata_schema, optional_metadata_schema};
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;
use crate::domain::views::LicenseUpdateResponse;
use crate::http::error::{ApiError, LedgerReadErrors, LedgerWriteErrors, MessageBody};
use crate::http::extract::{
    Checked, JsonBody, NoQuery, PathParam, Query, QueryParams, Reader, ToWrite, Writer,
    bounded_integer, query_instant,
};
use crate::http::state::AppState;
use crate::storage::{Appended, EntrySort, ListEntries, MAX_ENTRY_PAGE};

/// Togai's `LicenseUpdateRequest`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LicenseUpdateRequest {
    /// The license the update is for.
    license_id: LicenseId,
    /// The account the license is being updated for.
    account_id: AccountId,
    update_type: UpdateType,
    /// For ABSOLUTE, the new quantity; for RELATIVE, the change.
    quantity: Quantity,
    /// When the update takes effect; defaults to the time of the request.
    #[serde(default)]
    effective_from: Option<Timestamp>,
    /// A repeat with the same key and body returns the original response and writes nothing.
    #[serde(default)]
    idempotency_key: Option<IdempotencyKey>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
}

/// Adds an entry to the ledger. Later RELATIVE entries are re-resolved; a write that would
/// make any quantity negative is refused and nothing is written.
#[utoipa::path(
    post, path = "/license_updates", tag = "Ledger", operation_id = "addLicenseUpdateEntry",
    request_body = LicenseUpdateRequest,
    responses(
        (status = 200, description = "The entry, with its absolute quantity", body = LicenseUpdateResponse),
        (status = 400, description = "Invalid input, or a quantity would become negative", body = MessageBody),
        (status = 409, description = "idempotencyKey reused with a different request", body = MessageBody),
        LedgerWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn add_license_update(
    State(state): State<AppState>,
    Checked {
        caller,
        input: entry,
        ..
    }: Checked<NewEntry, ToWrite>,
) -> Result<Json<LicenseUpdateResponse>, ApiError> {
    match state.store.append_entry(&caller, &entry).await? {
        Appended::Created(entry) | Appended::Replayed(entry) => Ok(Json(entry.into())),
    }
}

/// The body of a license update, as the entry it asks for.
impl FromRequest<AppState> for NewEntry {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        NoQuery::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let JsonBody(request) =
            JsonBody::<LicenseUpdateRequest>::from_request(request, state).await?;
        Ok(request.into())
    }
}

impl From<LicenseUpdateRequest> for NewEntry {
    fn from(request: LicenseUpdateRequest) -> Self {
        NewEntry {
            account_id: request.account_id,
            license_id: request.license_id,
            update_type: request.update_type,
            quantity: request.quantity,
            effective_from: request.effective_from,
            metadata: request.metadata,
            idempotency_key: request.idempotency_key,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only entries of this account (also spelled `accountId`).
    #[serde(default, alias = "accountId")]
    #[param(max_length = 50)]
    account_id: Option<String>,
    /// Only entries of this license (also spelled `license_id`).
    #[serde(default, rename = "licenseId", alias = "license_id")]
    #[param(max_length = 50)]
    license_id: Option<String>,
    /// Only entries effective at exactly this instant.
    #[serde(default, rename = "effectiveFrom")]
    #[param(value_type = Option<String>, format = DateTime)]
    effective_from: Option<String>,
    /// Entries per page, 1 to 50 (default 50).
    #[serde(default, rename = "pageSize")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    page_size: Option<String>,
    /// The `nextToken` of the previous page.
    #[serde(default, rename = "nextToken")]
    #[param(max_length = 500)]
    next_token: Option<String>,
    /// `created_at` or `effective_from`, optionally with `:asc` or `:desc`
    /// (default `created_at:desc`).
    #[serde(default, rename = "_sort")]
    #[param(pattern = "^(created_at|effective_from)(:([aA][sS][cC]|[dD][eE][sS][cC]))?$")]
    sort: Option<String>,
}

impl QueryParams for ListParams {}

/// Togai's `GetLicenseUpdatesResponse`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GetLicenseUpdatesResponse)]
pub struct LicenseUpdatesPage {
    data: Vec<LicenseUpdateResponse>,
    /// Present when there is a next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    next_token: Option<String>,
}

/// Where a page ends, sealed into `nextToken` with the filters and sort it belongs to.
/// The names on the wire are short: the token travels in every next-page URL.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    #[serde(rename = "a")]
    account_id: Option<AccountId>,
    #[serde(rename = "l")]
    license_id: Option<LicenseId>,
    /// In microseconds.
    #[serde(rename = "e")]
    effective_from: Option<i64>,
    #[serde(rename = "s")]
    sort: EntrySort,
    #[serde(rename = "d")]
    descending: bool,
    /// The position of the page's last row: its sort key in microseconds, and its seq.
    #[serde(rename = "k")]
    after: (i64, i64),
    /// The page size the listing asked for, kept by the next pages unless they ask for
    /// another, as Togai's tokens keep it.
    #[serde(rename = "p")]
    page_size: u32,
}

/// Lists ledger entries, newest first unless `_sort` says otherwise.
#[utoipa::path(
    get, path = "/license_updates", tag = "Ledger", operation_id = "getLicenseUpdates",
    params(ListParams),
    responses(
        (status = 200, description = "One page of entries", body = LicenseUpdatesPage),
        (status = 400, description = "Invalid parameter or nextToken", body = MessageBody),
        (status = 422, description = "pageSize outside 1–50", body = MessageBody),
        LedgerReadErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_license_updates(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(params): Query<ListParams>,
) -> Result<Json<LicenseUpdatesPage>, ApiError> {
    let asked_size = (params.page_size.as_deref())
        .map(|text| bounded_integer("pageSize", text, 1..=MAX_ENTRY_PAGE))
        .transpose()?;
    let (sort, descending) = parse_sort(params.sort.as_deref())?;
    let mut cursor = Cursor {
        account_id: params
            .account_id
            .map(|a| text_param("account_id", AccountId::parse(a)))
            .transpose()?,
        license_id: params
            .license_id
            .map(|l| text_param("licenseId", LicenseId::parse(l)))
            .transpose()?,
        effective_from: params
            .effective_from
            .as_deref()
            .map(|e| query_instant("effectiveFrom", e))
            .transpose()?
            .map(Timestamp::micros),
        sort,
        descending,
        after: (0, 0),
        page_size: asked_size.unwrap_or(MAX_ENTRY_PAGE),
    };
    let mut after = None;
    if let Some(token) = &params.next_token {
        let previous: Cursor = state
            .tokens
            .open(token)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let agrees = |given: bool, same: bool| !given || same;
        if !(agrees(
            cursor.account_id.is_some(),
            cursor.account_id == previous.account_id,
        ) && agrees(
            cursor.license_id.is_some(),
            cursor.license_id == previous.license_id,
        ) && agrees(
            cursor.effective_from.is_some(),
            cursor.effective_from == previous.effective_from,
        ) && agrees(
            params.sort.is_some(),
            (sort, descending) == (previous.sort, previous.descending),
        )) {
            return Err(ApiError::BadRequest(
                "nextToken belongs to a listing with other filters or sort; omit them or pass the same".into(),
            ));
        }
        after = Some(previous.after);
        cursor = Cursor {
            page_size: asked_size.unwrap_or(previous.page_size),
            ..previous
        };
    }
    let page_size = cursor.page_size;

    let query = ListEntries {
        account_id: cursor.account_id.clone(),
        license_id: cursor.license_id.clone(),
        effective_from: cursor.effective_from.and_then(Timestamp::from_micros),
        sort: cursor.sort,
        descending: cursor.descending,
        after,
        limit: page_size + 1,
    };
    let mut rows = state
        .store
        .list_entries(&caller.business_id, &query)
        .await?;
    let next_token = if rows.len() > page_size as usize {
        rows.truncate(page_size as usize);
        rows.last().map(|last| {
            cursor.after = last.position(cursor.sort);
            state.tokens.seal(&cursor)
        })
    } else {
        None
    };
    Ok(Json(LicenseUpdatesPage {
        data: rows.into_iter().map(|row| row.entry.into()).collect(),
        next_token,
    }))
}

fn parse_sort(sort: Option<&str>) -> Result<(EntrySort, bool), ApiError> {
    let Some(sort) = sort else {
        return Ok((EntrySort::CreatedAt, true));
    };
    let (field, direction) = sort.split_once(':').unwrap_or((sort, "desc"));
    let field = match field {
        "created_at" => EntrySort::CreatedAt,
        "effective_from" => EntrySort::EffectiveFrom,
        _ => return Err(bad_sort(sort)),
    };
    match direction.to_ascii_lowercase().as_str() {
        "asc" => Ok((field, false)),
        "desc" => Ok((field, true)),
        _ => Err(bad_sort(sort)),
    }
}

fn bad_sort(sort: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "`_sort` must be created_at or effective_from, optionally with :asc or :desc; got `{}`",
        shorten(sort)
    ))
}

/// Togai's `LicenseEntryDetailsUpdateRequest`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LicenseEntryDetailsUpdateRequest {
    account_id: AccountId,
    /// The exact instant of the entry to change.
    effective_from: Timestamp,
    /// Replaces the entry's metadata.
    #[schema(schema_with = metadata_schema)]
    metadata: Metadata,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LicenseIdParam {
    /// The license id when the path holds the literal `{license_id}`, as the official
    /// Togai client sends it.
    #[serde(default, rename = "licenseId")]
    #[param(max_length = 50)]
    license_id: Option<String>,
}

impl QueryParams for LicenseIdParam {}

/// Replaces the metadata of the entry of a license and account at exactly one instant
/// (the latest such entry if several).
#[utoipa::path(
    patch, path = "/license_updates/{license_id}", tag = "Ledger", operation_id = "updateLicenseEntryDetails",
    params(("license_id" = String, Path, max_length = 50, description = "The license id"), LicenseIdParam),
    request_body = LicenseEntryDetailsUpdateRequest,
    responses(
        (status = 200, description = "The updated entry", body = LicenseUpdateResponse),
        (status = 400, description = "Invalid input", body = MessageBody),
        (status = 404, description = "No entry of that license and account at that instant", body = MessageBody),
        LedgerWriteErrors,
    ),
    security(("bearer" = []))
)]
pub async fn update_license_entry(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParam(segment): PathParam,
    Query(query): Query<LicenseIdParam>,
    JsonBody(request): JsonBody<LicenseEntryDetailsUpdateRequest>,
) -> Result<Json<LicenseUpdateResponse>, ApiError> {
    let from_query = query
        .license_id
        .map(|id| text_param("licenseId", LicenseId::parse(id)))
        .transpose()?;
    let license = if segment == "{license_id}" {
        from_query.ok_or_else(|| {
            ApiError::BadRequest(
                "the path holds `{license_id}`: pass the id as `licenseId` in the query".into(),
            )
        })?
    } else {
        let from_path = text_param("license_id", LicenseId::parse(segment))?;
        if from_query.as_ref().is_some_and(|id| *id != from_path) {
            return Err(ApiError::BadRequest(
                "`licenseId` in the query differs from the license id in the path".into(),
            ));
        }
        from_path
    };
    let pair = (&request.account_id, &license);
    state
        .store
        .update_metadata(
            &caller.business_id,
            pair,
            request.effective_from,
            &request.metadata,
        )
        .await?
        .map(|entry| Json(entry.into()))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no license update of license `{license}` for account `{}` effective at {}",
                request.account_id, request.effective_from
            ))
        })
}
