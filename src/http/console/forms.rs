//! What the console's forms share: the CSRF field, the notice a redirect after a form
//! names, the redirect itself, and telling a refused form (shown again, with the API's
//! words) from a failure (an error page).

use std::num::IntErrorKind;

use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ConsoleError;
use crate::http::error::ApiError;
use crate::storage::PageRequest;

/// What a page lists, or a form offers to choose from: the newest hundred.
pub const NEWEST_HUNDRED: PageRequest = PageRequest {
    index: 0,
    size: 100,
    newest_first: true,
    one_more: false,
};

/// The rows of a page of a list.
const PAGE_ROWS: u32 = 50;

/// The page `?page=` asks for (the first when absent), newest first, with one row more
/// to tell whether an older page follows: its index and the request.
pub fn page_of(page: Option<u32>) -> (u32, PageRequest) {
    let index = page.unwrap_or(0).min(100_000);
    let request = PageRequest {
        index,
        size: PAGE_ROWS,
        newest_first: true,
        one_more: true,
    };
    (index, request)
}

/// Whether another page follows the rows read for a page of `shown` rows (one more than
/// it shows), and the page's rows alone.
pub fn another_page_follows<T>(rows: &mut Vec<T>, shown: u32) -> bool {
    let more = rows.len() > shown as usize;
    rows.truncate(shown as usize);
    more
}

/// [`another_page_follows`] for a page of [`page_of`].
pub fn older_page_follows<T>(rows: &mut Vec<T>) -> bool {
    another_page_follows(rows, PAGE_ROWS)
}

/// Links to the newer and older pages of the list at `path`, keeping its `filters`;
/// `more` when an older page follows.
pub fn pager(path: &str, filters: &[(&str, Option<&str>)], index: u32, more: bool) -> Markup {
    let link = |to: u32| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters {
            if let Some(value) = value {
                params.append_pair(name, value);
            }
        }
        params.append_pair("page", &to.to_string());
        format!("{path}?{}", params.finish())
    };
    html! {
        nav.pager aria-label="Pages" {
            @if index > 0 { a href=(link(index - 1)) { "← Newer" } " " }
            @if more { a href=(link(index + 1)) { "Older →" } }
        }
    }
}

/// A form with nothing but its session's token.
#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default)]
    pub csrf: String,
}

/// `?done=…`: what the form before the redirect did, for the page to say.
#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    pub done: Option<String>,
}

/// A field's text, trimmed; `None` when it was left empty.
pub fn filled(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// An optional field's or query parameter's text, trimmed; `None` when absent or empty.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().and_then(filled)
}

/// A number field as the API's JSON: null when left empty, else a whole number. One too
/// large is refused as such (with the largest the field takes, if `max` is known), not as
/// "not a number".
pub fn whole_number(
    text: &str,
    what: &str,
    max: Option<u32>,
) -> Result<serde_json::Value, ApiError> {
    let Some(text) = filled(text) else {
        return Ok(serde_json::Value::Null);
    };
    let too_large = || match max {
        Some(max) => ApiError::BadRequest(format!("The {what} must be at most {max}.")),
        None => ApiError::BadRequest(format!("The {what} is too large.")),
    };
    match text.parse::<u64>() {
        Ok(n) if max.is_some_and(|max| n > u64::from(max)) => Err(too_large()),
        Ok(n) => Ok(n.into()),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(too_large()),
        Err(_) => Err(ApiError::BadRequest(format!(
            "The {what} must be a whole number."
        ))),
    }
}

/// The fields of a form as posted, in order.
pub type Posted = Vec<(String, String)>;

/// The value of the field `name` as posted, or the empty text.
pub fn field<'a>(posted: &'a Posted, name: &str) -> &'a str {
    let found = posted.iter().find(|(n, _)| n == name);
    found.map_or("", |(_, value)| value.as_str())
}

/// The hidden field in which a change form carries the values it showed, urlencoded.
const SHOWN: &str = "shown";

/// A change form's hidden field of the values it shows: what the user changed is then
/// told by what differs from them, not from the record as it is when the form comes
/// back, which someone may have changed meanwhile (their change then stands).
pub fn shown_field<T: Serialize>(shown: &T) -> Markup {
    let text = serde_urlencoded::to_string(shown).unwrap_or_default();
    html! { input type="hidden" name=(SHOWN) value=(text); }
}

/// A change form as it came back.
pub struct Edited<T> {
    /// The values it showed.
    pub shown: T,
    /// Its fields: the values it showed, with what was posted over them.
    pub form: T,
}

impl<T: Clone> Edited<T> {
    /// A form not yet posted, showing `values`.
    pub fn showing(values: T) -> Self {
        Self {
            shown: values.clone(),
            form: values,
        }
    }
}

/// A change form as it came back: the values it showed (its [`shown_field`], else
/// `current`), and those values with what was posted over them, so that a field left out
/// of the request keeps its value rather than reading as emptied. A field posted twice
/// stays twice, and is refused as the form's parser refuses it.
pub fn posted_over<T: Serialize + DeserializeOwned>(
    current: T,
    mut posted: Posted,
) -> Result<Edited<T>, ApiError> {
    let carried = (posted.iter().position(|(name, _)| name == SHOWN)).map(|at| posted.remove(at));
    let was =
        (carried.and_then(|(_, text)| serde_urlencoded::from_str(&text).ok())).unwrap_or(current);
    let failed =
        |e: &dyn std::fmt::Display| ApiError::BadRequest(format!("the form does not parse: {e}"));
    let shown = serde_urlencoded::to_string(&was).map_err(|e| failed(&e))?;
    let mut fields: Posted = serde_urlencoded::from_str(&shown).map_err(|e| failed(&e))?;
    let mut seen = std::collections::HashSet::new();
    for (name, value) in posted {
        let first = seen.insert(name.clone());
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some(shown) if first => shown.1 = value,
            _ => fields.push((name, value)),
        }
    }
    let merged = serde_urlencoded::to_string(&fields).map_err(|e| failed(&e))?;
    let form = serde_urlencoded::from_str(&merged).map_err(|e| failed(&e))?;
    Ok(Edited { shown: was, form })
}

/// 303 to `path`, after a form.
pub fn see_other(path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// What a refused form shows again: its status and the API's message. A failure of the
/// server's own is no refusal: it becomes the error page.
pub fn refusal(error: ApiError) -> Result<(StatusCode, String), ConsoleError> {
    let (status, message) = error.shown();
    if status.is_server_error() {
        return Err(error.into());
    }
    Ok((status, message))
}
