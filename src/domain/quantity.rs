//! Exact decimal quantities, read from and written as JSON numbers without going through
//! binary floating point (so `0.1 + 0.2` is `0.3`).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Digits allowed after the decimal point.
pub const MAX_SCALE: u32 = 6;
/// Every quantity, given or resolved, stays strictly below this in magnitude (10^18).
pub const MAX_MAGNITUDE: i64 = 1_000_000_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuantity {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}` has more than {MAX_SCALE} digits after the decimal point")]
    TooPrecise(String),
    #[error("`{0}` is out of range: quantities must be below 10^18 in magnitude")]
    OutOfRange(String),
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(Decimal::ZERO);

    /// A quantity from a decimal, if it is within the precision and range every quantity obeys.
    pub fn new(value: Decimal) -> Result<Self, InvalidQuantity> {
        let value = value.normalize();
        if value.scale() > MAX_SCALE {
            return Err(InvalidQuantity::TooPrecise(value.to_string()));
        }
        if value.abs() >= Decimal::from(MAX_MAGNITUDE) {
            return Err(InvalidQuantity::OutOfRange(value.to_string()));
        }
        Ok(Self(value))
    }

    /// Parses the text of a JSON number (plain or with an exponent).
    pub fn parse(text: &str) -> Result<Self, InvalidQuantity> {
        let shown: String = text.chars().take(64).collect();
        let decimal = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        };
        match decimal {
            Ok(value) => Self::new(value),
            // A well-formed number that rust_decimal cannot hold is too large or too precise.
            Err(_) if looks_numeric(text) => Err(InvalidQuantity::OutOfRange(shown)),
            Err(_) => Err(InvalidQuantity::NotANumber(shown)),
        }
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// `self + other`, or `None` when the sum leaves the allowed range.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0
            .checked_add(other.0)
            .and_then(|sum| Quantity::new(sum).ok())
    }
}

fn looks_numeric(text: &str) -> bool {
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), f)
    }
}

impl FromStr for Quantity {
    type Err = InvalidQuantity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_number(&self.0, serializer)
    }
}

/// Writes a decimal as a raw JSON number, so no digit is lost to floating point.
pub fn serialize_number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    RawValue::from_string(value.normalize().to_string())
        .map_err(serde::ser::Error::custom)?
        .serialize(serializer)
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        let text = raw.get();
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(serde::de::Error::custom(format!(
                "expected a number, found {}",
                text.chars().take(64).collect::<String>()
            )));
        }
        Quantity::parse(text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Quantity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some(
                "An exact decimal: below 10^18 in magnitude, at most 6 digits after the point.",
            ))
            .minimum(Some(-999_999_999_999_999_999.0))
            .maximum(Some(999_999_999_999_999_999.0))
            .examples([serde_json::json!(10)])
            .into()
    }
}

impl utoipa::ToSchema for Quantity {}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn adds_exactly() {
        assert_eq!(q("0.1").checked_add(q("0.2")), Some(q("0.3")));
        assert_eq!(q("0.1").checked_add(q("0.2")).unwrap().to_string(), "0.3");
    }

    #[test]
    fn prints_integers_without_a_fraction() {
        assert_eq!(q("10.000").to_string(), "10");
        assert_eq!(q("1e3").to_string(), "1000");
        assert_eq!(q("-2.50").to_string(), "-2.5");
        assert_eq!(serde_json::to_string(&q("7.0")).unwrap(), "7");
    }

    #[test]
    fn keeps_eighteen_significant_digits() {
        assert_eq!(q("123456789012.345678").to_string(), "123456789012.345678");
        assert_eq!(q("999999999999999999").to_string(), "999999999999999999");
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        assert!(matches!(
            Quantity::parse("0.1234567"),
            Err(InvalidQuantity::TooPrecise(_))
        ));
        assert!(matches!(
            Quantity::parse("1e18"),
            Err(InvalidQuantity::OutOfRange(_))
        ));
        assert!(matches!(
            Quantity::parse("1e400"),
            Err(InvalidQuantity::OutOfRange(_))
        ));
        assert!(matches!(
            Quantity::parse("abc"),
            Err(InvalidQuantity::NotANumber(_))
        ));
        assert_eq!(q("999999999999999999").checked_add(q("1")), None);
    }

    #[test]
    fn deserializes_only_numbers() {
        assert_eq!(serde_json::from_str::<Quantity>("0.1").unwrap(), q("0.1"));
        assert!(serde_json::from_str::<Quantity>("\"5\"").is_err());
        assert!(serde_json::from_str::<Quantity>("null").is_err());
        assert!(serde_json::from_str::<Quantity>("true").is_err());
    }
}
