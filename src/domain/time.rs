//! Instants: microsecond precision in UTC, parsed leniently and printed one way.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds in one UTC day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A UTC instant with microsecond precision, stored as microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The first and last instants accepted: years 0001 to 9999, so every value prints as RFC 3339.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid timestamp: expected RFC 3339 such as 2021-03-04T14:25:10Z (years 0001 to 9999)"
)]
pub struct InvalidTimestamp(pub String);

impl Timestamp {
    /// The last instant accepted, 9999-12-31T23:59:59.999999Z.
    pub const LAST: Self = Self(MAX_MICROS);

    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    pub fn from_micros(micros: i64) -> Option<Self> {
        (MIN_MICROS..=MAX_MICROS)
            .contains(&micros)
            .then_some(Self(micros))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Accepts RFC 3339 with any offset, the basic offset form `+0000`, and no offset at
    /// all (read as UTC). Digits beyond microseconds are truncated.
    pub fn parse(text: &str) -> Result<Self, InvalidTimestamp> {
        let invalid = || InvalidTimestamp(text.chars().take(64).collect());
        let trimmed = text.trim();
        let utc = if let Ok(dt) = DateTime::parse_from_rfc3339(trimmed) {
            dt.with_timezone(&Utc)
        } else if let Ok(dt) = DateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f%z") {
            dt.with_timezone(&Utc)
        } else if let Ok(naive) = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f") {
            naive.and_utc()
        } else {
            return Err(invalid());
        };
        Self::from_micros(utc.timestamp_micros()).ok_or_else(invalid)
    }

    /// Midnight (UTC) of `date`.
    pub fn midnight(date: NaiveDate) -> Self {
        Self(
            date.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_micros(),
        )
    }

    pub fn is_midnight(self) -> bool {
        self.0.rem_euclid(MICROS_PER_DAY) == 0
    }

    pub fn date(self) -> NaiveDate {
        self.to_chrono().date_naive()
    }

    pub fn plus_micros(self, micros: i64) -> Option<Self> {
        self.0.checked_add(micros).and_then(Self::from_micros)
    }

    fn to_chrono(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with `Z`; the fraction only when it is not zero. Written by hand
    /// into `buf`: every response prints instants, and this is the only form they take.
    fn rfc3339(self, buf: &mut [u8; 27]) -> &str {
        let t = self.to_chrono();
        *buf = *b"0000-00-00T00:00:00.000000Z";
        // Years are 0001 to 9999 (MIN_MICROS, MAX_MICROS): four digits always suffice.
        put_digits(&mut buf[0..4], t.year().unsigned_abs());
        put_digits(&mut buf[5..7], t.month());
        put_digits(&mut buf[8..10], t.day());
        put_digits(&mut buf[11..13], t.hour());
        put_digits(&mut buf[14..16], t.minute());
        put_digits(&mut buf[17..19], t.second());
        let micros = self.0.rem_euclid(1_000_000) as u32;
        let len = if micros == 0 {
            buf[19] = b'Z';
            20
        } else {
            put_digits(&mut buf[20..26], micros);
            27
        };
        std::str::from_utf8(&buf[..len]).unwrap_or_default()
    }
}

/// Writes `n` as decimal digits filling `out`, with leading zeros.
fn put_digits(out: &mut [u8], mut n: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339(&mut [0; 27]))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rfc3339(&mut [0; 27]))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .examples([serde_json::json!("2021-03-04T14:25:10Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

/// Reads one wait such as `50ms`, `5s`, `5m` or `2h`, of at most a week.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a wait such as 5s, 5m or 2h"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}`: the unit is ms, s, m or h")),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms <= 7 * 24 * 3_600_000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is longer than a week"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    fn parse(text: &str) -> String {
        Timestamp::parse(text).unwrap().to_string()
    }

    #[test]
    fn accepts_the_forms_clients_send() {
        assert_eq!(parse("2021-03-04T14:25:10Z"), "2021-03-04T14:25:10Z");
        assert_eq!(
            parse("2021-03-04T14:25:10.000000+0000"),
            "2021-03-04T14:25:10Z"
        );
        assert_eq!(
            parse("2021-03-04T14:25:10.5+01:00"),
            "2021-03-04T13:25:10.500000Z"
        );
        assert_eq!(
            parse("2021-03-04T14:25:10.123456"),
            "2021-03-04T14:25:10.123456Z"
        );
        assert_eq!(parse("2021-03-04T14:25:10"), "2021-03-04T14:25:10Z");
        assert_eq!(
            parse("2021-03-04T14:25:10.1234567Z"),
            "2021-03-04T14:25:10.123456Z"
        );
    }

    #[test]
    fn rejects_what_is_not_an_instant() {
        for bad in [
            "",
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-03-04",
            "+10000-01-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn prints_as_chrono_does(micros in MIN_MICROS..=MAX_MICROS, whole in proptest::bool::ANY) {
            let micros = if whole { micros - micros.rem_euclid(1_000_000) } else { micros };
            let t = Timestamp::from_micros(micros).unwrap();
            let format = if whole { SecondsFormat::Secs } else { SecondsFormat::Micros };
            let expected = t.to_chrono().to_rfc3339_opts(format, true);
            proptest::prop_assert_eq!(t.to_string(), expected.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{expected}\""));
        }
    }

    #[test]
    fn prints_the_first_and_last_instants() {
        let first = Timestamp::from_micros(MIN_MICROS).unwrap();
        let last = Timestamp::from_micros(MAX_MICROS).unwrap();
        assert_eq!(first.to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn days_and_midnights() {
        let t = Timestamp::parse("2024-02-29T23:59:59.999999Z").unwrap();
        assert_eq!(t.date().to_string(), "2024-02-29");
        assert!(!t.is_midnight());
        assert!(t.plus_micros(1).unwrap().is_midnight());
        assert!(
            Timestamp::parse("1960-01-01T00:00:00Z")
                .unwrap()
                .is_midnight()
        );
    }
}
