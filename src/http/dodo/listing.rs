//! What every Dodo list shares: the `{"items": [...]}` envelope and `page_number` /
//! `page_size` paging, with the one rule for where page numbers start.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, schema::Type};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::ApiError;
use crate::http::extract::{QueryParams, bounded_integer, parse_query};
use crate::storage::PageRequest;

pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// The deepest page served; beyond it a list is better filtered than paged.
pub const MAX_PAGE_NUMBER: u32 = 100_000;

/// The header Dodo's generated clients name their language in.
const CLIENT_LANGUAGE: &str = "x-stainless-lang";

/// The query of a list without filters: a parameter besides the page's is refused.
#[derive(Deserialize)]
pub struct NoFilters {}

impl QueryParams for NoFilters {
    const PAGED: bool = true;
}

/// `{"items": [...]}`, the envelope of every list.
#[derive(Serialize, ToSchema)]
pub struct Items<T> {
    pub(super) items: Vec<T>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The page: 0 (or none) is the first, 1 the second, as in Dodo's API reference.
    /// Requests from Dodo's Python and JavaScript clients (`X-Stainless-Lang: python` or
    /// `js`) count from 1 instead: none, 0 and 1 are the first page, 2 the second.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 0, maximum = 100_000)]
    page_number: Option<String>,
    /// Items per page, 1 to 100 (default 10).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

/// The page a list request asks for, from its `page_number` and `page_size` and the
/// client that sends it. Dodo's API reference counts pages from 0, and so does its Rust
/// crate's auto-pagination (after a request without `page_number` it asks for 1), but
/// its Python and JavaScript clients count from 1 (they ask for 2 next). Each one's
/// auto-pagination sees every item once only if the numbering follows the client, which
/// those two name in `X-Stainless-Lang`.
pub struct Paging(pub PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // The route's own parameters are the route's `Query` to check.
        let query: PageQuery = parse_query(parts.uri.query().unwrap_or_default(), |_| ())?;
        let number = match &query.page_number {
            None => 0,
            Some(text) => bounded_integer("page_number", text, 0..=MAX_PAGE_NUMBER)?,
        };
        let size = match &query.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => bounded_integer("page_size", text, 1..=MAX_PAGE_SIZE)?,
        };
        let index = if counts_from_one(&parts.headers) {
            number.saturating_sub(1)
        } else {
            number
        };
        Ok(Paging(PageRequest {
            index,
            size,
            ..PageRequest::default()
        }))
    }
}

fn counts_from_one(headers: &HeaderMap) -> bool {
    headers
        .get(CLIENT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|lang| {
            let lang = lang.trim();
            lang.eq_ignore_ascii_case("python") || lang.eq_ignore_ascii_case("js")
        })
}

impl IntoParams for Paging {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = PageQuery::into_params(|| Some(ParameterIn::Query));
        params.push(
            ParameterBuilder::new()
                .name("X-Stainless-Lang")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "The language of the Dodo client sending the request: with `python` or \
                     `js`, `page_number` counts from 1; otherwise from 0.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        params
    }
}
