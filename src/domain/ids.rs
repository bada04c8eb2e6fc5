//! Identifiers and bounded strings, checked once where they enter.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidText {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, got {got}")]
    TooLong { max: usize, got: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("must not be only whitespace or invisible characters")]
    Blank,
}

/// Checks the rules every bounded string shares, stored ones included.
pub fn check_text(text: &str, max: usize) -> Result<(), InvalidText> {
    // Ids and keys are nearly always ASCII, where bytes are characters.
    let (got, has_control) = if text.is_ascii() {
        (text.len(), text.bytes().any(|b| b.is_ascii_control()))
    } else {
        (text.chars().count(), text.chars().any(char::is_control))
    };
    if got == 0 {
        Err(InvalidText::Empty)
    } else if got > max {
        Err(InvalidText::TooLong { max, got })
    } else if has_control {
        Err(InvalidText::ControlCharacter)
    } else {
        Ok(())
    }
}

/// Whether the text is whitespace and invisible characters alone (and not empty).
fn is_blank(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_invisible)
}

/// Whether `c` shows nothing: whitespace, a character Unicode says to ignore when it
/// cannot be shown (Default_Ignorable_Code_Point: zero-width spaces and joiners, the
/// byte-order mark, bidirectional marks, variation selectors, tags, fillers), or the blank
/// Braille pattern, which is none of these and shows nothing either.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// The first 40 characters of a client's text, to quote in an error.
pub fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The schema pattern of text [`check_text`] accepts: no control characters, not empty.
pub const NO_CONTROL_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";
/// The characters of a pattern's class that show something: not whitespace, not
/// controls, and not [`is_invisible`]'s (those of the Basic Multilingual Plane, which
/// every regular expression engine reads).
macro_rules! visible_class {
    () => {
        "[^\\s\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u034F\\u061C\\u115F\\u1160\\u17B4\\u17B5\\u180B-\\u180F\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u206F\\u2800\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF0-\\uFFF8]"
    };
}
pub(crate) use visible_class;
/// The same, with something visible: the pattern of ids and names.
pub const NOT_BLANK_PATTERN: &str = concat!(
    "^[^\\u0000-\\u001F\\u007F-\\u009F]*",
    visible_class!(),
    "[^\\u0000-\\u001F\\u007F-\\u009F]*$"
);
/// The schema pattern of free text: anything but NUL.
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// Declares a string newtype that can only hold a non-empty value of at most `$max`
/// characters. With `not blank`, a client's value must also hold more than whitespace
/// ("   " would be an account or a name that reads as none); a stored value written
/// before that rule still reads ([`from_stored`](AccountId::from_stored)).
macro_rules! bounded_string {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        bounded_string!($(#[$doc])* $name, $max, blank allowed: true, NO_CONTROL_PATTERN);
    };
    ($(#[$doc:meta])* $name:ident, $max:expr, not blank) => {
        bounded_string!($(#[$doc])* $name, $max, blank allowed: false, NOT_BLANK_PATTERN);
    };
    ($(#[$doc:meta])* $name:ident, $max:expr, blank allowed: $blank_allowed:expr, $pattern:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// A value a client sent.
            pub fn parse(text: impl Into<String>) -> Result<Self, InvalidText> {
                let text = text.into();
                check_text(&text, $max)?;
                if !$blank_allowed && is_blank(&text) {
                    return Err(InvalidText::Blank);
                }
                Ok(Self(text))
            }

            /// A value read back from the database, under the rules it was written with.
            pub fn from_stored(text: impl Into<String>) -> Result<Self, InvalidText> {
                let text = text.into();
                check_text(&text, $max)?;
                Ok(Self(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(text).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some($pattern))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

bounded_string!(
    /// The customer account a ledger entry belongs to.
    AccountId,
    50,
    not blank
);
bounded_string!(
    /// The license (seat type or add-on) a ledger entry counts.
    LicenseId,
    50,
    not blank
);
bounded_string!(
    /// A client-chosen key that makes a ledger write safe to retry.
    IdempotencyKey,
    255
);
bounded_string!(
    /// The name of a business (tenant).
    BusinessName,
    100,
    not blank
);

bounded_string!(
    /// A customer's or product's name.
    Name,
    200,
    not blank
);
bounded_string!(
    /// A license key string as a customer types it in.
    KeyString,
    255
);
bounded_string!(
    /// The name an app gives one activation (instance) of a key.
    InstanceName,
    255,
    not blank
);
bounded_string!(
    /// An id assigned by this server or by a payment system (payment, subscription).
    ResourceId,
    100
);

/// A customer's email address: one `@` with something on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        check_text(&text, Self::MAX_CHARS).map_err(serde::de::Error::custom)?;
        match text.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !text.contains(char::is_whitespace) =>
            {
                Ok(Self(text))
            }
            _ => Err(serde::de::Error::custom(format!(
                "`{}` is not an email address",
                text.chars().take(64).collect::<String>()
            ))),
        }
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Email,
            )))
            .max_length(Some(Self::MAX_CHARS))
            .into()
    }
}

impl utoipa::ToSchema for Email {}

/// Free text such as a description: line breaks allowed, at most 5000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LongText(String);

impl LongText {
    pub const MAX_CHARS: usize = 5000;

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for LongText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let got = text.chars().count();
        if got > Self::MAX_CHARS {
            return Err(serde::de::Error::custom(InvalidText::TooLong {
                max: Self::MAX_CHARS,
                got,
            }));
        }
        if text.contains('\0') {
            return Err(serde::de::Error::custom(InvalidText::ControlCharacter));
        }
        Ok(Self(text))
    }
}

impl utoipa::PartialSchema for LongText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(NO_NUL_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for LongText {}

/// An absolute `http` or `https` URL (a product's image, a download page): no spaces or
/// control characters, at most 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebUrl(String);

impl WebUrl {
    pub const MAX_CHARS: usize = 2000;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one rule for a web address a client gives: `http://` or `https://` (in any case,
/// as schemes are; kept in lower case), then something, with no spaces or control
/// characters, at most `max` characters. The address as kept.
pub fn web_url(mut text: String, max: usize) -> Result<String, String> {
    if let Some((scheme, _)) = text.split_once("://")
        && ["http", "https"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        let lower = scheme.to_ascii_lowercase();
        text.replace_range(..lower.len(), &lower);
    }
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let got = text.chars().count();
    match rest {
        _ if got > max => Err(InvalidText::TooLong { max, got }.to_string()),
        Some(rest) if !rest.is_empty() && !rest.chars().any(|c| c == ' ' || c.is_control()) => {
            Ok(text)
        }
        _ => Err(format!(
            "`{}` is not an http(s) URL without spaces",
            shorten(&text)
        )),
    }
}

/// The schema pattern of what [`web_url`] accepts, character for character.
pub const WEB_URL_PATTERN: &str = "^[hH][tT][tT][pP][sS]?://[^ \\u0000-\\u001F\\u007F-\\u009F]+$";

impl<'de> Deserialize<'de> for WebUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        web_url(text, Self::MAX_CHARS)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for WebUrl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(WEB_URL_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for WebUrl {}

/// Declares the id of a record this server creates. [`generate`](Self::generate) draws a
/// new one with the record's prefix; `From<String>` takes one read back from the database
/// or named by a client, which may name nothing (a lookup then finds nothing). The types
/// keep one kind of id from being passed where another is meant.
macro_rules! record_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        record_id!($(#[$doc])* $name, $prefix, new_id);
    };
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $make:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self($make($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

record_id!(
    /// A business (tenant): every record belongs to one.
    BusinessId,
    "bus"
);
record_id!(
    /// A customer of a business.
    CustomerId,
    "cus"
);
record_id!(
    /// A product of a business.
    ProductId,
    "pdt"
);
record_id!(
    /// A license key's record (not its key string, which the customer types).
    LicenseKeyId,
    "lic"
);
record_id!(
    /// One activation (instance) of a license key.
    InstanceId,
    "lki"
);
record_id!(
    /// An API key's record (not its secret).
    ApiKeyId,
    "key"
);
record_id!(
    /// A webhook endpoint.
    WebhookId,
    "wh"
);
record_id!(
    /// One event as delivered to webhook endpoints: the same on every attempt, and for
    /// every endpoint the event is delivered to. Ordered by creation, as the outbox's
    /// index of them grows with every write.
    MessageId,
    "msg",
    new_ordered_id
);
record_id!(
    /// A signing key, which a signature names so that the verifier picks its key.
    SigningKeyId,
    "sk"
);

/// A new random id with a type prefix, such as `bus_4ZbX…`. Drawn from the thread's
/// CSPRNG (seeded from the operating system), not from the operating system per
/// character: ids are made on the write paths, where 22 system calls each would show.
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    let suffix: String = rand::thread_rng()
        .sample_iter(Alphanumeric)
        .take(22)
        .map(char::from)
        .collect();
    format!("{prefix}_{suffix}")
}

/// The characters of an id of [`new_ordered_id`] after its prefix.
const ORDERED_ID_CHARS: usize = 22;

/// Whether `text` has the shape of an id [`new_ordered_id`] makes with `prefix`.
pub fn is_ordered_id(prefix: &str, text: &str) -> bool {
    let rest = (text.strip_prefix(prefix)).and_then(|rest| rest.strip_prefix('_'));
    rest.is_some_and(|rest| {
        rest.len() == ORDERED_ID_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A new id that sorts after those the process made before it: 9 base-62 characters of
/// the microseconds since the Unix epoch (enough until the year 2397), in an alphabet in
/// ASCII order, then 13 random ones. Two ids made in one microsecond take the next one for
/// the later, so that listings in id order are in creation order. An index of such ids
/// grows at its end as a sequence's does; one of random ids writes a page of its own for
/// nearly every insert.
pub fn new_ordered_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rand::Rng;
    use rand::distributions::Alphanumeric;
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(crate::domain::time::Timestamp::now().micros()).unwrap_or(0);
    let taken = |last: u64| now.max(last + 1);
    let (Ok(last) | Err(last)) = LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
        Some(taken(last))
    });
    let mut micros = taken(last);
    let mut id = [0u8; ORDERED_ID_CHARS];
    for digit in id[..9].iter_mut().rev() {
        *digit = DIGITS[(micros % 62) as usize];
        micros /= 62;
    }
    for (digit, random) in id[9..]
        .iter_mut()
        .zip(rand::thread_rng().sample_iter(Alphanumeric))
    {
        *digit = random;
    }
    let id: String = id.iter().copied().map(char::from).collect();
    format!("{prefix}_{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_strings_check_length_in_characters() {
        assert!(AccountId::parse("a".repeat(50)).is_ok());
        assert_eq!(
            AccountId::parse("a".repeat(51)),
            Err(InvalidText::TooLong { max: 50, got: 51 })
        );
        assert!(AccountId::parse("é".repeat(50)).is_ok());
        assert_eq!(LicenseId::parse(""), Err(InvalidText::Empty));
        assert_eq!(LicenseId::parse("a\nb"), Err(InvalidText::ControlCharacter));
        assert_eq!(AccountId::parse("   "), Err(InvalidText::Blank));
        assert_eq!(AccountId::parse("\u{3000}"), Err(InvalidText::Blank));
        // Zero-width spaces and joiners, a byte-order mark, a tag: nothing shows.
        let invisible = "\u{200B}\u{2060}\u{FEFF}\u{E0041}";
        assert_eq!(InstanceName::parse(invisible), Err(InvalidText::Blank));
        assert!(InstanceName::parse("a\u{200D}b").is_ok());
        assert!(AccountId::parse(" a ").is_ok());
        assert!(
            AccountId::from_stored("   ").is_ok(),
            "as written before the rule"
        );
        assert!(KeyString::parse("   ").is_ok(), "a key only looks one up");
    }

    #[test]
    fn ids_carry_their_prefix() {
        let id = new_id("bus");
        assert!(id.starts_with("bus_"));
        assert_eq!(id.len(), 26);
        assert_ne!(id, new_id("bus"));
        assert!(CustomerId::generate().as_str().starts_with("cus_"));
        assert!(InstanceId::generate().as_str().starts_with("lki_"));
        assert_ne!(LicenseKeyId::generate(), LicenseKeyId::generate());
    }

    /// Made back to back, many in one microsecond: still in order.
    #[test]
    fn ordered_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000).map(|_| new_ordered_id("msg")).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert!(
            ids.iter()
                .all(|id| id.len() == 26 && id.starts_with("msg_"))
        );
        assert!(ids[0][4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(MessageId::generate().as_str() > ids[9_999].as_str());
    }
}
