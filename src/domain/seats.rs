//! Seats: which instances of a key count. Heartbeats give a dead machine's seat back,
//! fingerprints recognise a machine that comes back, and a key bound to a ledger pair
//! has as many seats as the pair's quantity.

use std::ops::RangeInclusive;

use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize};

use super::ids::{AccountId, InvalidText, LicenseId, check_text, is_invisible, visible_class};
use super::quantity::Quantity;
use super::time::Timestamp;
use super::whole_number::whole_number_within;

/// How often an instance of a key must beat, in seconds: 1 s to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HeartbeatInterval(u32);

impl HeartbeatInterval {
    pub const MAX_SECONDS: u32 = 2_592_000;
    const RANGE: RangeInclusive<u32> = 1..=Self::MAX_SECONDS;

    pub fn new(seconds: u32) -> Option<Self> {
        Self::RANGE.contains(&seconds).then_some(Self(seconds))
    }

    pub fn seconds(self) -> u32 {
        self.0
    }

    /// The deadline of a beat at `at`; at the latest the last instant there is.
    pub fn deadline_after(self, at: Timestamp) -> Timestamp {
        at.plus_micros(i64::from(self.0) * 1_000_000)
            .unwrap_or(Timestamp::LAST)
    }
}

impl<'de> Deserialize<'de> for HeartbeatInterval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number_within(deserializer, Self::RANGE, " seconds").map(Self)
    }
}

impl utoipa::PartialSchema for HeartbeatInterval {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(Self::MAX_SECONDS))
            .description(Some(
                "Seconds between an instance's heartbeats, at most; null: no heartbeats",
            ))
            .into()
    }
}

impl utoipa::ToSchema for HeartbeatInterval {}

/// An app's stable id of the machine it runs on: 1–255 visible characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidFingerprint> {
        let text = text.into();
        check_text(&text, Self::MAX_CHARS)?;
        if text.chars().any(char::is_whitespace) {
            return Err(InvalidFingerprint::Whitespace);
        }
        // Characters that show nothing may sit among others (a byte-order mark read from
        // a file, a variation selector), as long as something shows.
        if text.chars().all(is_invisible) {
            return Err(InvalidFingerprint::Invisible);
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFingerprint {
    #[error(transparent)]
    Text(#[from] InvalidText),
    #[error("must not contain whitespace")]
    Whitespace,
    #[error("must not be only invisible characters")]
    Invisible,
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Fingerprint::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Fingerprint {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(concat!(
                "^[^\\s\\u0000-\\u001F\\u007F-\\u009F]*",
                visible_class!(),
                "[^\\s\\u0000-\\u001F\\u007F-\\u009F]*$"
            )))
            .description(Some("The app's stable id of its machine"))
            .into()
    }
}

impl utoipa::ToSchema for Fingerprint {}

/// The ledger pair whose quantity is a key's number of seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatBinding {
    pub account_id: AccountId,
    pub license_id: LicenseId,
}

/// The seats a quantity buys: rounded down, none below zero.
pub fn seats_in(quantity: Quantity) -> u32 {
    let whole = quantity.decimal().floor();
    if whole.is_sign_negative() {
        0
    } else {
        whole.to_u32().unwrap_or(u32::MAX)
    }
}

/// Whether a live instance has a seat, given how many live instances of its key are older
/// (created earlier, or at once with a smaller id): the newest beyond the limit are over
/// seat.
pub fn has_seat(older_live_instances: u64, limit: Option<u32>) -> bool {
    limit.is_none_or(|limit| older_live_instances < u64::from(limit))
}

/// Why an instance went away: the `reason` of its `license_key_instance.deleted` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// `POST /licenses/deactivate`.
    Deactivated,
    /// It missed its heartbeat deadline.
    Heartbeat,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Deactivated => "deactivated",
            Departure::Heartbeat => "heartbeat",
        }
    }
}

/// How long the id of an instance that went away is remembered, so that a late beat
/// learns it must activate again (at least 24 hours).
pub const DEPARTED_RETENTION_MICROS: i64 = 48 * 3_600_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_the_whole_quantity_and_never_negative() {
        let q = |text: &str| Quantity::parse(text).unwrap();
        assert_eq!(seats_in(q("3")), 3);
        assert_eq!(seats_in(q("2.999999")), 2);
        assert_eq!(seats_in(q("0.5")), 0);
        assert_eq!(seats_in(q("-4")), 0);
        assert_eq!(seats_in(q("-0.5")), 0);
        assert_eq!(seats_in(q("100000000000")), u32::MAX);
    }

    #[test]
    fn the_newest_instances_beyond_the_limit_are_over_seat() {
        assert!(has_seat(0, Some(1)));
        assert!(!has_seat(1, Some(1)));
        assert!(!has_seat(0, Some(0)));
        assert!(has_seat(1_000_000, None));
    }

    #[test]
    fn intervals_are_one_second_to_thirty_days() {
        assert_eq!(HeartbeatInterval::new(0), None);
        assert_eq!(
            HeartbeatInterval::new(1).map(HeartbeatInterval::seconds),
            Some(1)
        );
        assert!(HeartbeatInterval::new(2_592_000).is_some());
        assert_eq!(HeartbeatInterval::new(2_592_001), None);
        assert!(serde_json::from_str::<HeartbeatInterval>("0").is_err());
        assert!(serde_json::from_str::<HeartbeatInterval>("-1").is_err());
        assert!(serde_json::from_str::<HeartbeatInterval>("1.5").is_err());
        let at = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(
            HeartbeatInterval::new(90)
                .unwrap()
                .deadline_after(at)
                .to_string(),
            "2024-01-01T00:01:30Z"
        );
    }

    #[test]
    fn fingerprints_are_visible_characters() {
        assert!(Fingerprint::parse("4c4c4544-0038-3010").is_ok());
        assert!(Fingerprint::parse("é".repeat(255)).is_ok());
        assert!(Fingerprint::parse("a".repeat(256)).is_err());
        assert!(Fingerprint::parse("").is_err());
        assert_eq!(
            Fingerprint::parse("a b"),
            Err(InvalidFingerprint::Whitespace)
        );
        assert_eq!(
            Fingerprint::parse("\u{200B}\u{FEFF}"),
            Err(InvalidFingerprint::Invisible)
        );
        // Among visible characters, as read from a file or typed with an emoji.
        for among in ["\u{FEFF}4c4c4544", "\u{2764}\u{FE0F}", "a\u{200D}b"] {
            assert!(Fingerprint::parse(among).is_ok(), "{among}");
        }
        assert!(Fingerprint::parse("a\u{7}b").is_err());
    }
}
