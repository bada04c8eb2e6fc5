//! `/customers`: the customers license keys are issued to.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::listing::{Items, Paging};
use crate::domain::catalog::{Customer, Locale};
use crate::domain::ids::{CustomerId, Email, Name, ResourceId, shorten};
use crate::domain::metadata::{Metadata, optional_metadata_schema};
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, ErrorBody, ReadErrors, WriteErrors};
use crate::http::extract::{JsonBody, NoQuery, PathParam, Query, QueryParams, Reader, Writer};
use crate::http::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    email: Email,
    name: Name,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")]
    phone_number: Option<ResourceId>,
    /// The language of the customer's emails.
    #[serde(default)]
    preferred_locale: Option<Locale>,
    #[serde(default)]
    #[schema(schema_with = optional_metadata_schema)]
    metadata: Option<Metadata>,
}

/// Dodo's `Customer`.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerView {
    business_id: String,
    created_at: Timestamp,
    customer_id: String,
    email: String,
    name: String,
    /// Always null: customers are not blocked here.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    blocked_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, required = true)]
    blocklist_entry_id: Option<String>,
    metadata: Metadata,
    #[schema(required = true)]
    phone_number: Option<String>,
    #[schema(required = true)]
    preferred_locale: Option<Locale>,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> Self {
        Self {
            business_id: c.business_id.into_string(),
            created_at: c.created_at,
            customer_id: c.id.into_string(),
            email: c.email,
            name: c.name,
            blocked_at: None,
            blocklist_entry_id: None,
            metadata: c.metadata,
            phone_number: c.phone_number,
            preferred_locale: c.preferred_locale,
        }
    }
}

/// Creates a customer.
#[utoipa::path(post, path = "/customers", tag = "Customers", request_body = CreateCustomer,
    responses(
        (status = 201, description = "The customer", body = CustomerView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        WriteErrors,
    ),
    security(("bearer" = [])))]
pub async fn create_customer(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    JsonBody(request): JsonBody<CreateCustomer>,
) -> Result<(StatusCode, Json<CustomerView>), ApiError> {
    let customer = Customer {
        id: CustomerId::generate(),
        business_id: caller.business_id,
        email: request.email.as_str().to_owned(),
        name: request.name.to_string(),
        phone_number: request.phone_number.map(|p| p.to_string()),
        preferred_locale: request.preferred_locale,
        metadata: request.metadata.unwrap_or_default(),
        created_at: Timestamp::now(),
    };
    state.store.create_customer(&customer).await?;
    Ok((StatusCode::CREATED, Json(customer.into())))
}

/// A customer by id.
#[utoipa::path(get, path = "/customers/{customer_id}", tag = "Customers",
    params(("customer_id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        (status = 400, description = "A malformed id (such as one with NUL)", body = ErrorBody),
        (status = 404, description = "No such customer in this business", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn get_customer(
    State(state): State<AppState>,
    Reader(caller): Reader,
    _: NoQuery,
    PathParam(id): PathParam<CustomerId>,
) -> Result<Json<CustomerView>, ApiError> {
    state
        .store
        .customer(&caller.business_id, &id)
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| customer_not_found(&id))
}

fn customer_not_found(id: &CustomerId) -> ApiError {
    ApiError::NotFound(format!("customer `{}` not found", shorten(id.as_str())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerFilter {
    /// Only the customers with this email, whatever the case of its ASCII letters.
    #[serde(default)]
    email: Option<String>,
}

impl QueryParams for CustomerFilter {
    const PAGED: bool = true;
}

/// Lists customers, oldest first.
#[utoipa::path(get, path = "/customers", tag = "Customers", params(CustomerFilter, Paging),
    responses(
        (status = 200, description = "One page", body = Items<CustomerView>),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 422, description = "page_size outside 1–100, or page_number over 100 000", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_customers(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Query(filter): Query<CustomerFilter>,
    Paging(page): Paging,
) -> Result<Json<Items<CustomerView>>, ApiError> {
    let customers = state
        .store
        .list_customers(&caller.business_id, filter.email.as_deref(), page)
        .await?;
    Ok(Json(Items {
        items: customers.into_iter().map(Into::into).collect(),
    }))
}
