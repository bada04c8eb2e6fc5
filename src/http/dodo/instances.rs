//! `/license_key_instances`: the activations of license keys, listed, read and renamed.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::listing::{Items, Paging};
use crate::domain::ids::{InstanceId, InstanceName, LicenseKeyId, shorten};
use crate::domain::views::InstanceView;
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{JsonBody, NoQuery, PathParam, Query, QueryParams, Reader, Writer};
use crate::http::state::AppState;

fn instance_not_found(id: &InstanceId) -> ApiError {
    ApiError::NotFound(format!(
        "license key instance `{}` not found",
        shorten(id.as_str())
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// Only the instances of this key.
    #[serde(default)]
    license_key_id: Option<String>,
}

impl QueryParams for InstanceQuery {
    const PAGED: bool = true;
}

/// Lists activations, oldest first.
#[utoipa::path(get, path = "/license_key_instances", tag = "License keys", params(InstanceQuery, Paging),
    responses(
        (status = 200, description = "One page", body = Items<InstanceView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_instances(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(query): Query<InstanceQuery>,
    Paging(page): Paging,
) -> Result<Json<Items<InstanceView>>, ApiError> {
    let license_key_id = query.license_key_id.map(LicenseKeyId::from);
    let instances = state
        .store
        .list_instances(&caller.business_id, license_key_id.as_ref(), page)
        .await?;
    Ok(Json(Items {
        items: instances.into_iter().map(Into::into).collect(),
    }))
}

/// An activation by id.
#[utoipa::path(get, path = "/license_key_instances/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lki_…`")),
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such instance in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_instance(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: NoQuery,
    PathParam(id): PathParam<InstanceId>,
) -> Result<Json<InstanceView>, ApiError> {
    state
        .store
        .instance(&caller.business_id, &id)
        .await?
        .map(|i| Json(i.into()))
        .ok_or_else(|| instance_not_found(&id))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameInstance {
    name: InstanceName,
}

/// Renames an activation.
#[utoipa::path(patch, path = "/license_key_instances/{id}", tag = "License keys",
    params(("id" = String, Path, description = "`lki_…`")),
    request_body = RenameInstance,
    responses(
        (status = 200, description = "The instance", body = InstanceView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such instance in this business", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn rename_instance(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    PathParam(id): PathParam<InstanceId>,
    JsonBody(request): JsonBody<RenameInstance>,
) -> Result<Json<InstanceView>, ApiError> {
    state
        .store
        .rename_instance(&caller.business_id, &id, &request.name)
        .await?
        .map(|i| Json(i.into()))
        .ok_or_else(|| instance_not_found(&id))
}
