//! Metadata: the string-to-string pairs a client attaches to a record, kept in key order.
//! Its limits are checked once, when it is read from a request; a `Metadata` in hand is
//! within them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::ids::{InvalidText, NO_CONTROL_PATTERN, NO_NUL_PATTERN, check_text, shorten};

pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 100;
pub const MAX_METADATA_VALUE_CHARS: usize = 500;

/// A JSON object of strings on the wire and in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

/// The first thing over metadata's limits. Worded to follow "invalid `metadata`: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMetadata {
    #[error("has {0} keys; at most {MAX_METADATA_KEYS} are allowed")]
    TooManyKeys(usize),
    #[error("key `{key}` {reason}")]
    Key { key: String, reason: InvalidText },
    #[error("the value of `{key}` must not contain NUL characters")]
    NulInValue { key: String },
    #[error("the value of `{key}` must be at most {MAX_METADATA_VALUE_CHARS} characters")]
    ValueTooLong { key: String },
}

impl Metadata {
    /// The pairs, if they are within the limits.
    pub fn parse(pairs: BTreeMap<String, String>) -> Result<Self, InvalidMetadata> {
        if pairs.len() > MAX_METADATA_KEYS {
            return Err(InvalidMetadata::TooManyKeys(pairs.len()));
        }
        for (key, value) in &pairs {
            check_text(key, MAX_METADATA_KEY_CHARS).map_err(|reason| InvalidMetadata::Key {
                key: shorten(key),
                reason,
            })?;
            if value.contains('\0') {
                return Err(InvalidMetadata::NulInValue { key: key.clone() });
            }
            if value.chars().count() > MAX_METADATA_VALUE_CHARS {
                return Err(InvalidMetadata::ValueTooLong { key: key.clone() });
            }
        }
        Ok(Self(pairs))
    }

    /// Metadata read back from the database, taken as it was stored: a row written under
    /// earlier limits must still be readable.
    pub fn from_stored(pairs: BTreeMap<String, String>) -> Self {
        Self(pairs)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = deserializer.deserialize_map(Pairs)?;
        Metadata::parse(pairs).map_err(serde::de::Error::custom)
    }
}

/// Reads metadata's pairs, refusing a key given twice: a map would keep one of the values
/// without a word, where a field given twice in a body is refused.
struct Pairs;

impl<'de> serde::de::Visitor<'de> for Pairs {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, String>()? {
            if pairs.contains_key(&key) {
                let key = crate::domain::ids::shorten(&key);
                return Err(serde::de::Error::custom(format!(
                    "has the key `{key}` twice"
                )));
            }
            pairs.insert(key, value);
        }
        Ok(pairs)
    }
}

/// Responses document metadata as the plain map it wraps, under the name utoipa gives
/// that map, which the published document and its clients already use.
impl utoipa::PartialSchema for Metadata {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <BTreeMap<String, String> as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Metadata {
    fn name() -> Cow<'static, str> {
        <BTreeMap<String, String> as utoipa::ToSchema>::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <BTreeMap<String, String> as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The schema of metadata as [`Metadata::parse`] accepts it, for requests.
pub fn metadata_schema() -> utoipa::openapi::schema::Object {
    metadata_schema_of(utoipa::openapi::schema::Type::Object.into())
}

/// [`metadata_schema`], or null: an optional field, which a client may also send as null.
pub fn optional_metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::Type;
    metadata_schema_of([Type::Object, Type::Null].into_iter().collect())
}

fn metadata_schema_of(
    schema_type: utoipa::openapi::schema::SchemaType,
) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_METADATA_KEY_CHARS))
        .pattern(Some(NO_CONTROL_PATTERN));
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_METADATA_VALUE_CHARS))
        .pattern(Some(NO_NUL_PATTERN));
    ObjectBuilder::new()
        .schema_type(schema_type)
        .max_properties(Some(MAX_METADATA_KEYS))
        .property_names(Some(key))
        .additional_properties(Some(value))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Metadata, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn metadata_over_its_limits_does_not_deserialize() {
        let many: BTreeMap<_, _> = (0..=MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let many = serde_json::to_string(&many).unwrap();
        assert!(
            read(&many)
                .unwrap_err()
                .starts_with("has 51 keys; at most 50 are allowed")
        );
        assert!(
            read(r#"{"": "v"}"#)
                .unwrap_err()
                .starts_with("key `` must not be empty")
        );
        assert!(
            read(r#"{"a\nb": "v"}"#)
                .unwrap_err()
                .contains("control characters")
        );
        let long_key = format!(r#"{{"{}": "v"}}"#, "k".repeat(101));
        assert!(
            read(&long_key)
                .unwrap_err()
                .contains("at most 100 characters, got 101")
        );
        assert!(
            read(r#"{"k": "a\u0000b"}"#)
                .unwrap_err()
                .starts_with("the value of `k` must not contain NUL characters")
        );
        let long_value = format!(r#"{{"k": "{}"}}"#, "é".repeat(501));
        assert!(
            read(&long_value)
                .unwrap_err()
                .starts_with("the value of `k` must be at most 500 characters")
        );
    }

    #[test]
    fn metadata_within_its_limits_round_trips_as_an_object() {
        let at_limits = format!(r#"{{"a":"","{}":"{}"}}"#, "k".repeat(100), "é".repeat(500));
        let metadata = read(&at_limits).unwrap();
        assert_eq!(metadata.len(), 2);
        assert_eq!(serde_json::to_string(&metadata).unwrap(), at_limits);
        assert!(read("{}").unwrap().is_empty());
        assert!(read(r#"{"k": 1}"#).is_err());
    }
}
