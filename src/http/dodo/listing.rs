//! What every Dodo list shares: the `{"items": [...]}` envelope and `page_number` /
//! `page_size` paging.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::ApiError;
use crate::http::extract::bounded_integer;
use crate::storage::PageRequest;

pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 10;
/// The deepest page served; beyond it a list is better filtered than paged.
pub const MAX_PAGE_NUMBER: u32 = 100_000;

/// `{"items": [...]}`, the envelope of every list.
#[derive(Serialize, ToSchema)]
pub struct Items<T> {
    pub(super) items: Vec<T>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1 is the first page; 0 or no value also mean the first page.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 0, maximum = 100_000)]
    page_number: Option<String>,
    /// Items per page, 1 to 100 (default 10).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    page_size: Option<String>,
}

impl Paging {
    pub(super) fn page(&self) -> Result<PageRequest, ApiError> {
        let number = match &self.page_number {
            None => 0,
            Some(text) => bounded_integer("page_number", text, 0..=MAX_PAGE_NUMBER)?,
        };
        let size = match &self.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => bounded_integer("page_size", text, 1..=MAX_PAGE_SIZE)?,
        };
        Ok(PageRequest { number, size })
    }
}
