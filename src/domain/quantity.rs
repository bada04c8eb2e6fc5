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

    /// Parses the text of a JSON number (plain or with an exponent). The digits are read
    /// here rather than by rust_decimal, which holds at most 28 of them: `10.` followed by
    /// thirty zeros is 10, and `1e-30` is too precise, not too large.
    pub fn parse(text: &str) -> Result<Self, InvalidQuantity> {
        let shown = || text.chars().take(64).collect::<String>();
        let Some(number) = DecimalText::read(text) else {
            return Err(InvalidQuantity::NotANumber(shown()));
        };
        let digits = || number.whole.bytes().chain(number.fraction.bytes());
        let all = number.whole.len() + number.fraction.len();
        let leading = digits().take_while(|&d| d == b'0').count();
        if leading == all {
            return Ok(Self::ZERO);
        }
        let trailing = digits().rev().take_while(|&d| d == b'0').count();
        let significant = all - leading - trailing;
        // The value is `significant digits × 10^exponent`, the first digit not zero.
        let exponent = number.exponent - number.fraction.len() as i64 + trailing as i64;
        if significant as i64 + exponent > MAX_DIGITS {
            return Err(InvalidQuantity::OutOfRange(shown()));
        }
        if exponent < -i64::from(MAX_SCALE) {
            return Err(InvalidQuantity::TooPrecise(shown()));
        }
        // At most MAX_DIGITS + MAX_SCALE digits remain: an i128 holds them.
        let mantissa = (digits().skip(leading).take(significant))
            .fold(0i128, |m, d| m * 10 + i128::from(d - b'0'));
        let (mantissa, scale) = match u32::try_from(exponent) {
            Ok(up) => (mantissa * 10i128.pow(up), 0),
            Err(_) => (mantissa, exponent.unsigned_abs() as u32),
        };
        let signed = if number.negative { -mantissa } else { mantissa };
        Decimal::try_from_i128_with_scale(signed, scale)
            .map(Self)
            .map_err(|_| InvalidQuantity::OutOfRange(shown()))
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

/// Digits allowed before the decimal point: every quantity is below [`MAX_MAGNITUDE`].
const MAX_DIGITS: i64 = MAX_MAGNITUDE.ilog10() as i64;

/// The parts of a decimal number's text: `-`, digits, `.` and digits, an exponent.
struct DecimalText<'a> {
    negative: bool,
    whole: &'a str,
    fraction: &'a str,
    /// Saturated far beyond any exponent a quantity can have.
    exponent: i64,
}

impl<'a> DecimalText<'a> {
    fn read(text: &'a str) -> Option<Self> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, Some(exponent)),
            None => (unsigned, None),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let is_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !is_digits(whole) || (mantissa.contains('.') && !is_digits(fraction)) {
            return None;
        }
        let exponent = match exponent {
            None => 0,
            Some(exponent) => {
                let (sign, digits) = match exponent.strip_prefix('-') {
                    Some(digits) => (-1, digits),
                    None => (1, exponent.strip_prefix('+').unwrap_or(exponent)),
                };
                if !is_digits(digits) {
                    return None;
                }
                sign * digits
                    .parse::<i64>()
                    .map_or(EXPONENT_CAP, |e| e.min(EXPONENT_CAP))
            }
        };
        Some(Self {
            negative,
            whole,
            fraction,
            exponent,
        })
    }
}

/// Beyond any exponent that could matter, and far from overflowing an i64 in sums with a
/// body's length.
const EXPONENT_CAP: i64 = 1 << 40;

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
            // 10^18 itself is refused: the bounds are exclusive (999…999.999999 is no f64).
            .exclusive_minimum(Some(-1e18))
            .exclusive_maximum(Some(1e18))
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
    fn reads_any_number_of_digits_by_its_value() {
        let ten_with_zeros = format!("10.{}", "0".repeat(40));
        assert_eq!(q(&ten_with_zeros), q("10"));
        assert_eq!(q("0e-50"), Quantity::ZERO);
        assert_eq!(q("-0.000"), Quantity::ZERO);
        assert_eq!(q("100e-2"), q("1"));
        assert_eq!(q("0.0000010").to_string(), "0.000001");
        assert_eq!(q("1.5E+2").to_string(), "150");
        assert_eq!(
            q("-999999999999999999.999999").to_string(),
            "-999999999999999999.999999"
        );
        assert_eq!(q("0.000000000000000000000000000000001e33"), q("1"));

        use InvalidQuantity::{NotANumber, OutOfRange, TooPrecise};
        type Refusal = fn(String) -> InvalidQuantity;
        let refusals: [(&str, Refusal); 16] = [
            ("1e-29", TooPrecise),
            ("99999999999999999.9999999999999", TooPrecise),
            ("1e-99999999999999999999999", TooPrecise),
            ("1000000000000000000.5", OutOfRange),
            ("1e99999999999999999999999", OutOfRange),
            ("12345678901234567890123456.0000001", OutOfRange),
            ("", NotANumber),
            ("-", NotANumber),
            ("1.", NotANumber),
            (".5", NotANumber),
            ("1e", NotANumber),
            ("1e+", NotANumber),
            ("--1", NotANumber),
            ("1.2.3", NotANumber),
            ("0x10", NotANumber),
            ("1e5.5", NotANumber),
        ];
        for (text, refusal) in refusals {
            assert_eq!(Quantity::parse(text), Err(refusal(text.into())), "{text}");
        }
    }

    #[test]
    fn deserializes_only_numbers() {
        assert_eq!(serde_json::from_str::<Quantity>("0.1").unwrap(), q("0.1"));
        assert!(serde_json::from_str::<Quantity>("\"5\"").is_err());
        assert!(serde_json::from_str::<Quantity>("null").is_err());
        assert!(serde_json::from_str::<Quantity>("true").is_err());
    }
}
