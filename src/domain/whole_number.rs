//! Whole numbers that a request gives within a range: a limit, an interval, a count.

use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer};

/// A whole number within `range`, `unit` (such as " seconds") after it in the message.
/// Any JSON number is read, so that one below the range, with a fraction or past what a
/// `u32` holds is told the range it takes, rather than the range of a Rust type.
pub fn whole_number_within<'de, D: Deserializer<'de>>(
    deserializer: D,
    range: RangeInclusive<u32>,
    unit: &str,
) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(deserializer)?;
    // `1e3` and `1.0` are whole numbers too, as JSON Schema's `integer` counts them.
    let whole = n.as_u64().or_else(|| {
        let float = n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0)?;
        (float <= f64::from(u32::MAX)).then_some(float as u64)
    });
    let whole = whole.and_then(|n| u32::try_from(n).ok());
    whole.filter(|n| range.contains(n)).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "must be a whole number from {} to {}{unit}, got {n}",
            range.start(),
            range.end()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<u32, String> {
        let deserializer = &mut serde_json::Deserializer::from_str(json);
        whole_number_within(deserializer, 1..=10, " seconds").map_err(|e| e.to_string())
    }

    #[test]
    fn a_number_outside_the_range_is_told_the_range() {
        assert_eq!(read("1"), Ok(1));
        assert_eq!(read("10"), Ok(10));
        assert_eq!(read("1e1"), Ok(10));
        assert_eq!(read("2.0"), Ok(2));
        for wrong in ["0", "-0", "11", "-1", "1.5", "5000000000", "1e20", "1e-1"] {
            let told = read(wrong).unwrap_err();
            assert!(
                told.starts_with("must be a whole number from 1 to 10 seconds, got "),
                "{wrong}: {told}"
            );
        }
        assert!(
            read("\"3\"")
                .unwrap_err()
                .contains("expected a JSON number")
        );
    }
}
