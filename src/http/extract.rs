//! Extractors that turn bad input into clear 4xx errors naming the problem, and the
//! API-key check.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;

use super::error::{ApiError, JSON};
use super::state::AppState;
use crate::domain::auth::{Access, Caller, KeyDigest, Principal, admit};
use crate::domain::ids::shorten;
use crate::domain::time::Timestamp;

/// A whole number from a query string, within `range`: 422 for a number outside it, however
/// many digits it has, and 400 for text that is no whole number.
pub fn bounded_integer(
    field: &str,
    text: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ApiError> {
    let text = text.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "`{field}` must be a whole number, got `{}`",
            shorten(text)
        )));
    }
    match text.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ApiError::Unprocessable(format!(
            "`{field}` must be between {} and {}, got {}",
            range.start(),
            range.end(),
            shorten(text)
        ))),
    }
}

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body: 415 unless the content type is JSON and the body is not encoded, 413 over
/// [`BODY_LIMIT`], 400 naming the field for anything that does not parse.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        if sent_twice(request.headers(), header::CONTENT_TYPE) {
            return Err(ApiError::BadRequest(
                "`Content-Type` is sent more than once".into(),
            ));
        }
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == JSON || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(JSON));
        }
        // A compressed body would otherwise be read as malformed JSON.
        let coding = header_tokens(request.headers(), header::CONTENT_ENCODING)
            .find(|coding| !coding.eq_ignore_ascii_case("identity"));
        if let Some(coding) = coding {
            return Err(ApiError::UnsupportedEncoding(shorten(&coding)));
        }
        let bytes = match axum::body::to_bytes(request.into_body(), BODY_LIMIT).await {
            Ok(bytes) => bytes,
            Err(error)
                if std::error::Error::source(&error)
                    .is_some_and(|e| e.is::<LengthLimitError>()) =>
            {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
            }
            Err(error) => {
                return Err(ApiError::BadRequest(format!(
                    "the request body could not be read: {error}"
                )));
            }
        };
        parse_json(&bytes).map(JsonBody)
    }
}

/// The items of every `name` header, a comma-separated list (`Connection: keep-alive,
/// Upgrade`), trimmed, empty ones left out.
pub fn header_tokens(
    headers: &axum::http::HeaderMap,
    name: header::HeaderName,
) -> impl Iterator<Item = String> + '_ {
    headers.get_all(name).iter().flat_map(|value| {
        let list = String::from_utf8_lossy(value.as_bytes());
        (list.split(',').map(str::trim))
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    })
}

/// Whether the request carries the header `name` more than once: which one counts is not
/// for the server to guess.
pub fn sent_twice(headers: &axum::http::HeaderMap, name: impl header::AsHeaderName) -> bool {
    headers.get_all(name).iter().nth(1).is_some()
}

/// Whether the request's `Content-Length` is over [`BODY_LIMIT`]: refused before it is read.
pub fn declares_too_long_body(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > BODY_LIMIT as u64)
}

/// A JSON body without the byte-order mark that some editors and Windows tools write
/// before it, which a JSON parser may ignore (RFC 8259 §8.1).
pub fn without_byte_order_mark(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Parses a JSON object, naming the offending field in the error. Only objects are
/// accepted: serde would otherwise read a struct from an array of its fields' values.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = without_byte_order_mark(bytes);
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    // Tracking the path costs on every request; it is needed only to explain a failure.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *deserializer).map_err(|error| {
        let path = error.path().to_string();
        let found = error.path().clone();
        let inner = error.into_inner();
        let reason = strip_position(&inner.to_string());
        let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        ApiError::BadRequest(if path == "." || !well_formed {
            format!("invalid JSON body: {reason}")
        } else if inner.is_syntax() {
            // serde_json's "expected value" for a JSON value of a type the field cannot
            // take at all, such as a number where a name from a list is expected.
            format!("invalid `{path}`: {}", not_of_its_type::<T>(bytes, &found))
        } else {
            format!("invalid `{path}`: {}", in_plain_words(&reason))
        })
    })?;
    deserializer.end().map_err(|error| {
        ApiError::BadRequest(format!(
            "invalid JSON body: {}",
            strip_position(&error.to_string())
        ))
    })?;
    Ok(value)
}

/// What to say of a value of a JSON type its field cannot take at all, which serde_json
/// reports as a syntax error ("expected value"): what was given and, for a field that takes
/// names from a list, the names, learnt by putting a name no list holds in its place (when
/// no other field of the body is wrong before it in the order of their names).
fn not_of_its_type<T: DeserializeOwned>(bytes: &[u8], path: &serde_path_to_error::Path) -> String {
    const NO_NAME: &str = "\u{0}";
    let unexplained = "not a value of the type it takes".to_owned();
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return unexplained;
    };
    let mut at = &mut body;
    for segment in path.iter() {
        let inner = match (segment, at) {
            (serde_path_to_error::Segment::Map { key }, serde_json::Value::Object(map)) => {
                map.get_mut(key)
            }
            (serde_path_to_error::Segment::Seq { index }, serde_json::Value::Array(items)) => {
                items.get_mut(*index)
            }
            _ => None,
        };
        let Some(inner) = inner else {
            return unexplained;
        };
        at = inner;
    }
    let given = match at {
        serde_json::Value::Null => "null".to_owned(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => format!("the number {n}"),
        serde_json::Value::String(_) => return unexplained,
        serde_json::Value::Array(_) => "an array".to_owned(),
        serde_json::Value::Object(_) => "an object".to_owned(),
    };
    *at = serde_json::Value::String(NO_NAME.to_owned());
    // Told of this field, not of another that the object's keys, sorted, put first.
    let told = serde_path_to_error::deserialize::<_, T>(body)
        .err()
        .filter(|error| error.path().to_string() == path.to_string())
        .map(|error| error.into_inner().to_string());
    let names = told.as_deref().and_then(|told| {
        let (_, names) = told.split_once(&format!("unknown variant `{NO_NAME}`, expected "))?;
        Some(names.to_owned())
    });
    match names {
        Some(names) => format!("expected {names}, got {given}"),
        None => format!("{given} is {unexplained}"),
    }
}

/// serde's reason with the Rust number types it names ("expected u32") in the words of a
/// client that has never seen them.
fn in_plain_words(reason: &str) -> String {
    const TYPES: [(&str, &str); 6] = [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number from 0 to 18446744073709551615"),
        ("i32", "a whole number from -2147483648 to 2147483647"),
        (
            "i64",
            "a whole number from -9223372036854775808 to 9223372036854775807",
        ),
    ];
    let Some((before, named)) = reason.rsplit_once("expected ") else {
        return reason.to_owned();
    };
    match TYPES.iter().find(|(rust, _)| *rust == named) {
        Some((_, words)) => format!("{before}expected {words}"),
        None => reason.to_owned(),
    }
}

/// serde_json appends "at line 1 column 12"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// The query parameters every paged list takes, read by its paging beside the route's
/// own parameters.
pub const PAGE_PARAMETERS: [&str; 2] = ["page_number", "page_size"];

/// A route's query parameters, as [`Query`] reads them.
pub trait QueryParams: DeserializeOwned {
    /// Whether the route pages too: it then also takes [`PAGE_PARAMETERS`].
    const PAGED: bool = false;
}

/// Query parameters: 400 naming a parameter that does not parse, or that the route does
/// not take: a filter spelled wrong would otherwise be dropped, and the list answered
/// unfiltered.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: QueryParams> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let mut unknown = None;
        let value = parse_query(query, |name| {
            let paging = T::PAGED && PAGE_PARAMETERS.contains(&name);
            if !paging && unknown.is_none() {
                unknown = Some(shorten(name));
            }
        })?;
        if let Some(name) = unknown {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{name}`"
            )));
        }
        // `?customer_id=` would otherwise filter on the empty string and answer nothing.
        // Found on the raw pairs, which a value's percent-escapes do not make empty; only
        // the name of one found is decoded.
        let empty = (query.split('&').filter(|pair| !pair.is_empty())).find(|pair| {
            pair.split_once('=')
                .is_none_or(|(_, value)| value.is_empty())
        });
        match empty.and_then(|pair| form_urlencoded::parse(pair.as_bytes()).next()) {
            None => Ok(Query(value)),
            Some((name, _)) => Err(ApiError::BadRequest(format!(
                "query parameter `{}` is empty: give it a value, or leave it out",
                shorten(&name)
            ))),
        }
    }
}

/// For a route that takes no query parameter: one sent is refused as [`Query`] refuses a
/// parameter its route does not take, rather than ignored. Listed after the caller's
/// extractor, so that a request without a valid key is refused for its key first.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        match form_urlencoded::parse(query.as_bytes()).next() {
            None => Ok(NoQuery),
            Some((name, _)) => Err(ApiError::BadRequest(format!(
                "unknown query parameter `{}`: this route takes none",
                shorten(&name)
            ))),
        }
    }
}

/// An instant from a query string, 400 naming the parameter. A `+` sent unencoded reads
/// as a space, so the offset `+0000` arrives as ` 0000`: the message says so.
pub fn query_instant(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|error| {
        let hint = match value.contains(' ') {
            true => " (a `+` in a query string is sent as `%2B`: unencoded, it reads as a space)",
            false => "",
        };
        ApiError::BadRequest(format!("`{name}`: {error}{hint}"))
    })
}

/// Whether a query string or a form is UTF-8 once percent-decoded: read as it is, other
/// bytes would be kept with U+FFFD in their place.
pub fn decodes_to_utf8(encoded: &[u8]) -> bool {
    percent_encoding::percent_decode(encoded)
        .decode_utf8()
        .is_ok()
}

/// Parses a query string into `T`, calling `ignored` with each parameter `T` does not
/// take: 400 naming a parameter that does not parse, or a query that is not UTF-8 once
/// decoded (which would otherwise be read with U+FFFD in place of its bytes).
pub fn parse_query<T: DeserializeOwned>(
    query: &str,
    mut ignored: impl FnMut(&str),
) -> Result<T, ApiError> {
    if !decodes_to_utf8(query.as_bytes()) {
        return Err(ApiError::BadRequest(
            "the query string is not valid UTF-8 once percent-decoded".into(),
        ));
    }
    let pairs = || serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    // As for a body: the path is tracked only to explain a failure.
    if let Ok(value) = serde_ignored::deserialize(pairs(), |path| ignored(&path.to_string())) {
        return Ok(value);
    }
    serde_path_to_error::deserialize(pairs()).map_err(|error| {
        let path = error.path().to_string();
        let reason = error.into_inner().to_string();
        if let Some(name) = duplicated(&reason) {
            return ApiError::BadRequest(given_twice(name, query));
        }
        ApiError::BadRequest(if path == "." {
            format!("invalid query: {reason}")
        } else {
            format!("invalid query parameter `{path}`: {reason}")
        })
    })
}

/// The parameter serde found twice (`duplicate field `name``).
fn duplicated(reason: &str) -> Option<&str> {
    reason.strip_prefix("duplicate field `")?.strip_suffix('`')
}

/// A parameter given twice, perhaps once in each spelling a route takes (`accountId` and
/// `account_id`), which serde names by one of them only: both are named if both were sent.
fn given_twice(name: &str, query: &str) -> String {
    let folded = |n: &str| n.replace('_', "").to_ascii_lowercase();
    let mut spellings: Vec<String> = Vec::new();
    for (sent, _) in form_urlencoded::parse(query.as_bytes()) {
        if folded(&sent) == folded(name) && !spellings.iter().any(|s| *s == sent) {
            spellings.push(sent.into_owned());
        }
    }
    match &spellings[..] {
        [first, second, ..] => format!(
            "the query parameter `{first}` is given more than once (`{first}` and `{second}` are one parameter)"
        ),
        _ => format!("the query parameter `{name}` is given more than once"),
    }
}

/// A route's one path parameter, as text or as the record id it names (which may name
/// nothing: the lookup then finds nothing): 400 when it does not percent-decode to UTF-8.
pub struct PathParam<T = String>(pub T);

impl<S: Send + Sync, T: From<String>> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(path_error)?;
        Ok(Self(T::from(value)))
    }
}

/// A route's two path parameters, as text, read as [`PathParam`] reads one.
pub struct PathPair(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path((first, second)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(path_error)?;
        Ok(Self(first, second))
    }
}

fn path_error(rejection: axum::extract::rejection::PathRejection) -> ApiError {
    if rejection.status().is_client_error() {
        ApiError::BadRequest(format!(
            "the URL's path cannot be read: {}",
            rejection.body_text()
        ))
    } else {
        ApiError::Internal(rejection.body_text())
    }
}

/// The API key a request presents, not yet checked: 401 without one.
struct PresentedKey(KeyDigest);

impl<S: Send + Sync> FromRequestParts<S> for PresentedKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // A proxy or a log that reads the other one would disagree about who called.
        if sent_twice(&parts.headers, header::AUTHORIZATION) {
            return Err(ApiError::BadRequest(
                "`Authorization` is sent more than once".into(),
            ));
        }
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            // An authentication scheme's name is case-insensitive (RFC 9110, 11.1).
            .and_then(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer").then_some(key))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(|key| PresentedKey(KeyDigest::of(key)))
            .ok_or(ApiError::Unauthorized)
    }
}

impl PresentedKey {
    /// The caller, if the key exists and allows `access`, within its rate limit: a
    /// round trip of its own.
    async fn check(&self, state: &AppState, access: Access) -> Result<Principal, ApiError> {
        let principal = admit(state.store.authenticate(self.0).await?, access)?;
        state.limits.check_api_key(&self.0)?;
        Ok(principal)
    }

    /// Who a storage call that takes a [`Caller`] acts for: the key, which the store
    /// checks with the call itself. If API keys are rate-limited, the key is also checked
    /// first, so that a call over the limit does not run; the store still checks it, so a
    /// key revoked in between is refused.
    async fn caller(&self, state: &AppState, access: Access) -> Result<Caller, ApiError> {
        if state.limits.limits_api_keys() {
            self.check(state, access).await?;
        }
        Ok(Caller::Key(self.0, access))
    }

    /// The answer to a bad request found before the key was checked: 401 or 403 if the
    /// key does not allow `access`, as on routes that check it first; `error` otherwise.
    async fn refuse(&self, state: &AppState, access: Access, error: ApiError) -> ApiError {
        match self.check(state, access).await {
            Ok(_) => error,
            Err(refused) => refused,
        }
    }
}

/// What a route needs its caller's API key to allow.
pub(crate) trait Needs: Send {
    const ACCESS: Access;
}

/// A route that reads.
pub(crate) struct ToRead;
/// A route that writes: 403 for a read-only key.
pub(crate) struct ToWrite;

impl Needs for ToRead {
    const ACCESS: Access = Access::Read;
}

impl Needs for ToWrite {
    const ACCESS: Access = Access::Write;
}

/// A request's caller and its input `I`, for a route whose storage call checks the key
/// itself (it takes a [`Caller`]). The answers come in the order every route gives them:
/// 401 without a key; for input that does not parse, 401 or 403 if the key does not
/// allow the route, else the input's error; then the call.
pub(crate) struct Checked<I, A> {
    pub caller: Caller,
    pub input: I,
    needs: PhantomData<A>,
}

impl<I, A> FromRequest<AppState> for Checked<I, A>
where
    I: FromRequest<AppState, Rejection = ApiError> + Send,
    A: Needs,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let key = PresentedKey::from_request_parts(&mut parts, state).await?;
        let input = match I::from_request(Request::from_parts(parts, body), state).await {
            Ok(input) => input,
            Err(error) => return Err(key.refuse(state, A::ACCESS, error).await),
        };
        Ok(Checked {
            caller: key.caller(state, A::ACCESS).await?,
            input,
            needs: PhantomData,
        })
    }
}

/// A caller with a valid API key (read-only or not).
pub struct Reader(pub Principal);

/// A caller whose API key may write: 403 for a read-only key.
pub struct Writer(pub Principal);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = PresentedKey::from_request_parts(parts, state).await?;
        key.check(state, Access::Read).await.map(Reader)
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = PresentedKey::from_request_parts(parts, state).await?;
        key.check(state, Access::Write).await.map(Writer)
    }
}

/// Whether the path or query holds an encoded NUL: no id or filter can hold one, and
/// PostgreSQL cannot even compare text with it.
pub fn has_nul(uri: &axum::http::Uri) -> bool {
    let nul = |text: &str| text.contains("%00");
    nul(uri.path()) || uri.query().is_some_and(nul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Body {
        count: u32,
    }

    fn message(result: Result<Body, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn json_bodies_parse_or_name_what_is_wrong() {
        assert_eq!(
            parse_json::<Body>(b" {\"count\": 3} ").unwrap(),
            Body { count: 3 }
        );
        assert_eq!(
            message(parse_json(b"{\"count\": \"three\"}")),
            "invalid `count`: invalid type: string \"three\", expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            message(parse_json(b"{\"count\": 3} {}")),
            "invalid JSON body: trailing characters"
        );
        assert_eq!(
            message(parse_json(b"[3]")),
            "the request body must be a JSON object"
        );
        // A byte-order mark before the object is ignored.
        assert_eq!(
            parse_json::<Body>(b"\xEF\xBB\xBF{\"count\": 3}").unwrap(),
            Body { count: 3 }
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Entry {
        kind: crate::domain::ledger::UpdateType,
        items: Vec<Entry>,
    }

    #[test]
    fn a_value_of_a_type_a_field_cannot_take_is_named_with_what_it_takes() {
        let told = |body: &str| match parse_json::<Entry>(body.as_bytes()) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        };
        for (given, said) in [("null", "null"), ("1", "the number 1"), ("[]", "an array")] {
            assert_eq!(
                told(&format!(r#"{{"kind": {given}, "items": []}}"#)),
                format!("invalid `kind`: expected `RELATIVE` or `ABSOLUTE`, got {said}")
            );
        }
        assert_eq!(
            told(r#"{"kind": "ABSOLUTE", "items": [{"kind": true, "items": []}]}"#),
            "invalid `items[0].kind`: expected `RELATIVE` or `ABSOLUTE`, got true"
        );
        // Another field wrong as well, after it in the body and before it in the keys'
        // order: no names of that other field's.
        assert_eq!(
            told(r#"{"kind": null, "items": 5}"#),
            "invalid `kind`: null is not a value of the type it takes"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Filter {
        #[serde(default, rename = "accountId", alias = "account_id")]
        account: Option<String>,
    }

    #[test]
    fn a_query_parameter_given_twice_is_named_in_the_spellings_sent() {
        let twice = |query: &str| match parse_query::<Filter>(query, |_| {}) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(
            twice("accountId=a&account_id=b"),
            "the query parameter `accountId` is given more than once (`accountId` and `account_id` are one parameter)"
        );
        assert_eq!(
            twice("accountId=a&accountId=b"),
            "the query parameter `accountId` is given more than once"
        );
    }
}
