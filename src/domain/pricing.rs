//! How a product is priced, as Dodo Payments describes it: its price (one-time,
//! recurring or usage-based), currency, tax category and pricing mode. Nothing is charged
//! here: a license server records these for the vendor and echoes them to Dodo's clients.
//! Each value is checked against Dodo's schema when it is parsed; one in hand is valid.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, SchemaFormat};

use super::ids::{LongText, Name, ResourceId, shorten};
use super::license::Interval;
use super::object::Object;

/// The currencies Dodo's clients accept, as their `Currency` types list them.
pub const CURRENCIES: [&str; 145] = [
    "AED", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD", "CHF", "CLP",
    "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK",
    "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS",
    "SRD", "SSP", "STN", "SVC", "SZL", "THB", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "UGX", "USD", "UYU", "UZS", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER",
    "ZAR", "ZMW",
];

/// One of [`CURRENCIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Currency(&'static str);

impl Currency {
    pub const USD: Currency = Currency("USD");

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CURRENCIES
            .iter()
            .find(|c| **c == text)
            .map(|c| Currency(c))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{}` is not a currency Dodo accepts (an ISO 4217 code in capitals, such as USD)",
                    shorten(&text)
                ))
            })
    }
}

impl utoipa::PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(CURRENCIES))
            .into()
    }
}

impl ToSchema for Currency {}

/// Declares a whole number that can only hold a value in `$min..=$max`.
macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const MIN: i64 = $min;
            pub const MAX: i64 = $max;

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let n = i64::deserialize(deserializer)?;
                if !(Self::MIN..=Self::MAX).contains(&n) {
                    return Err(serde::de::Error::custom(format!(
                        "must be between {} and {}, got {n}",
                        Self::MIN,
                        Self::MAX
                    )));
                }
                Ok(Self(n))
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
                    .minimum(Some($min))
                    .maximum(Some($max))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

bounded_number!(
    /// An amount in the currency's smallest unit (cents for USD); Dodo's are 32-bit.
    Amount,
    0,
    i32::MAX as i64
);
bounded_number!(
    /// A percentage, 0 to 100.
    Percent,
    0,
    100
);
bounded_number!(
    /// Hundredths of a percent: 1250 is 12.5 %.
    BasisPoints,
    0,
    10_000
);
bounded_number!(
    /// How many intervals a period lasts (at least one).
    PeriodCount,
    1,
    i32::MAX as i64
);
bounded_number!(
    /// A count or number of days that may be zero.
    Count,
    0,
    i32::MAX as i64
);
bounded_number!(
    /// A number of meter units, which may be zero.
    Units,
    0,
    i64::MAX
);

/// A decimal number greater than zero, as text (Dodo sends such numbers as strings): at
/// most 5 digits before the point and 12 after, as Dodo's prices per unit allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UnitPrice(String);

/// The schema pattern of [`UnitPrice`]: digits, at most 5 before the point and 12 after.
const UNIT_PRICE_PATTERN: &str = "^[0-9]{1,5}(\\.[0-9]{1,12})?$";

impl<'de> Deserialize<'de> for UnitPrice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let shaped = (1..=5).contains(&whole.len())
            && digits(whole)
            && (!text.contains('.') || (1..=12).contains(&fraction.len()))
            && digits(fraction);
        if !shaped || !text.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return Err(serde::de::Error::custom(format!(
                "must be a decimal number greater than 0 with at most 5 digits before the \
                 point and 12 after, such as \"0.25\", got \"{}\"",
                shorten(&text)
            )));
        }
        Ok(Self(text))
    }
}

impl utoipa::PartialSchema for UnitPrice {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(UNIT_PRICE_PATTERN))
            .description(Some("A decimal number greater than 0, as text"))
            .into()
    }
}

impl ToSchema for UnitPrice {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaxCategory {
    DigitalProducts,
    #[default]
    Saas,
    EBook,
    Edtech,
    LiveTutoring,
}

/// Which localized prices apply at checkout (none: the base price only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PricingMode {
    ByCurrency,
    ByCountry,
}

/// A meter whose usage a usage-based price bills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Meter {
    pub meter_id: ResourceId,
    #[serde(default)]
    pub credit_entitlement_id: Option<ResourceId>,
    #[serde(default)]
    pub description: Option<LongText>,
    /// Units free of charge.
    #[serde(default)]
    pub free_threshold: Option<Units>,
    #[serde(default)]
    pub measurement_unit: Option<Name>,
    #[serde(default)]
    pub meter_units_per_credit: Option<UnitPrice>,
    #[serde(default)]
    pub name: Option<Name>,
    #[serde(default)]
    pub price_per_unit: Option<UnitPrice>,
}

/// The most meters one price bills.
pub const MAX_METERS: usize = 50;

/// Dodo's price object, told apart by `type`. Absent optional fields are echoed as null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Price {
    /// Paid once.
    OneTimePrice {
        currency: Currency,
        /// The amount; with `pay_what_you_want`, the least a customer may pay.
        price: Amount,
        /// Deprecated in Dodo for `discount_bps`.
        discount: Option<Percent>,
        discount_bps: Option<BasisPoints>,
        pay_what_you_want: Option<bool>,
        purchasing_power_parity: Option<bool>,
        suggested_price: Option<Amount>,
        tax_inclusive: Option<bool>,
    },
    /// A subscription, paid every `payment_frequency_count` intervals.
    RecurringPrice {
        currency: Currency,
        price: Amount,
        payment_frequency_count: PeriodCount,
        payment_frequency_interval: Interval,
        subscription_period_count: PeriodCount,
        subscription_period_interval: Interval,
        discount: Option<Percent>,
        discount_bps: Option<BasisPoints>,
        purchasing_power_parity: Option<bool>,
        tax_inclusive: Option<bool>,
        trial_amount: Option<Amount>,
        trial_apply_discounts: Option<bool>,
        trial_payment_method_optional: Option<bool>,
        trial_period_days: Option<Count>,
        zero_amount_payment_method_optional: Option<bool>,
    },
    /// A subscription with a fixed part and metered usage.
    UsageBasedPrice {
        currency: Currency,
        fixed_price: Amount,
        payment_frequency_count: PeriodCount,
        payment_frequency_interval: Interval,
        subscription_period_count: PeriodCount,
        subscription_period_interval: Interval,
        discount: Option<Percent>,
        discount_bps: Option<BasisPoints>,
        #[schema(max_items = 50)]
        meters: Option<Vec<Meter>>,
        purchasing_power_parity: Option<bool>,
        tax_inclusive: Option<bool>,
    },
}

impl Default for Price {
    /// What a product created without a price answers: free, once, in USD.
    fn default() -> Self {
        Price::OneTimePrice {
            currency: Currency::USD,
            price: Amount(0),
            discount: None,
            discount_bps: None,
            pay_what_you_want: None,
            purchasing_power_parity: None,
            suggested_price: None,
            tax_inclusive: None,
        }
    }
}

impl Price {
    /// Whether it bills again and again (a subscription), as Dodo's `is_recurring` says.
    pub fn is_recurring(&self) -> bool {
        !matches!(self, Price::OneTimePrice { .. })
    }

    pub fn currency(&self) -> Currency {
        match self {
            Price::OneTimePrice { currency, .. }
            | Price::RecurringPrice { currency, .. }
            | Price::UsageBasedPrice { currency, .. } => *currency,
        }
    }

    /// The amount Dodo's product lists show as `price`: the fixed part of a usage-based one.
    pub fn amount(&self) -> Amount {
        match self {
            Price::OneTimePrice { price, .. } | Price::RecurringPrice { price, .. } => *price,
            Price::UsageBasedPrice { fixed_price, .. } => *fixed_price,
        }
    }

    pub fn tax_inclusive(&self) -> Option<bool> {
        match self {
            Price::OneTimePrice { tax_inclusive, .. }
            | Price::RecurringPrice { tax_inclusive, .. }
            | Price::UsageBasedPrice { tax_inclusive, .. } => *tax_inclusive,
        }
    }
}

/// Every field any kind of price has, read in one pass so that a wrong value is reported
/// with its path (`price.discount`); [`Price`]'s parse then checks which the kind needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFields {
    #[serde(rename = "type")]
    kind: PriceKind,
    #[serde(default)]
    currency: Option<Currency>,
    #[serde(default)]
    price: Option<Amount>,
    #[serde(default)]
    fixed_price: Option<Amount>,
    #[serde(default)]
    payment_frequency_count: Option<PeriodCount>,
    #[serde(default)]
    payment_frequency_interval: Option<Interval>,
    #[serde(default)]
    subscription_period_count: Option<PeriodCount>,
    #[serde(default)]
    subscription_period_interval: Option<Interval>,
    #[serde(default)]
    discount: Option<Percent>,
    #[serde(default)]
    discount_bps: Option<BasisPoints>,
    #[serde(default)]
    pay_what_you_want: Option<bool>,
    #[serde(default)]
    purchasing_power_parity: Option<bool>,
    #[serde(default)]
    suggested_price: Option<Amount>,
    #[serde(default)]
    tax_inclusive: Option<bool>,
    #[serde(default)]
    trial_amount: Option<Amount>,
    #[serde(default)]
    trial_apply_discounts: Option<bool>,
    #[serde(default)]
    trial_payment_method_optional: Option<bool>,
    #[serde(default)]
    trial_period_days: Option<Count>,
    #[serde(default)]
    zero_amount_payment_method_optional: Option<bool>,
    #[serde(default)]
    meters: Option<Vec<Object<Meter>>>,
}

#[derive(Deserialize, Clone, Copy)]
enum PriceKind {
    #[serde(rename = "one_time_price")]
    OneTime,
    #[serde(rename = "recurring_price")]
    Recurring,
    #[serde(rename = "usage_based_price")]
    UsageBased,
}

impl PriceKind {
    fn name(self) -> &'static str {
        match self {
            PriceKind::OneTime => "one_time_price",
            PriceKind::Recurring => "recurring_price",
            PriceKind::UsageBased => "usage_based_price",
        }
    }
}

impl PriceFields {
    /// The fields set that `kind` has no use for.
    fn foreign(&self) -> Vec<&'static str> {
        let one_time = [
            ("pay_what_you_want", self.pay_what_you_want.is_some()),
            ("suggested_price", self.suggested_price.is_some()),
        ];
        let subscription = [
            (
                "payment_frequency_count",
                self.payment_frequency_count.is_some(),
            ),
            (
                "payment_frequency_interval",
                self.payment_frequency_interval.is_some(),
            ),
            (
                "subscription_period_count",
                self.subscription_period_count.is_some(),
            ),
            (
                "subscription_period_interval",
                self.subscription_period_interval.is_some(),
            ),
        ];
        let trial = [
            ("trial_amount", self.trial_amount.is_some()),
            (
                "trial_apply_discounts",
                self.trial_apply_discounts.is_some(),
            ),
            (
                "trial_payment_method_optional",
                self.trial_payment_method_optional.is_some(),
            ),
            ("trial_period_days", self.trial_period_days.is_some()),
            (
                "zero_amount_payment_method_optional",
                self.zero_amount_payment_method_optional.is_some(),
            ),
        ];
        let price = [("price", self.price.is_some())];
        let usage = [
            ("fixed_price", self.fixed_price.is_some()),
            ("meters", self.meters.is_some()),
        ];
        let foreign: Vec<(&'static str, bool)> = match self.kind {
            PriceKind::OneTime => [&subscription[..], &trial, &usage].concat(),
            PriceKind::Recurring => [&one_time[..], &usage].concat(),
            PriceKind::UsageBased => [&one_time[..], &trial, &price].concat(),
        };
        foreign
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

impl TryFrom<PriceFields> for Price {
    type Error = String;

    fn try_from(f: PriceFields) -> Result<Self, String> {
        let kind = f.kind.name();
        if let Some(field) = f.foreign().first() {
            return Err(format!("a {kind} has no field `{field}`"));
        }
        fn required<T>(value: Option<T>, field: &str, kind: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("a {kind} needs `{field}`"))
        }
        let currency = required(f.currency, "currency", kind)?;
        Ok(match f.kind {
            PriceKind::OneTime => Price::OneTimePrice {
                currency,
                price: required(f.price, "price", kind)?,
                discount: f.discount,
                discount_bps: f.discount_bps,
                pay_what_you_want: f.pay_what_you_want,
                purchasing_power_parity: f.purchasing_power_parity,
                suggested_price: f.suggested_price,
                tax_inclusive: f.tax_inclusive,
            },
            PriceKind::Recurring => Price::RecurringPrice {
                currency,
                price: required(f.price, "price", kind)?,
                payment_frequency_count: required(
                    f.payment_frequency_count,
                    "payment_frequency_count",
                    kind,
                )?,
                payment_frequency_interval: required(
                    f.payment_frequency_interval,
                    "payment_frequency_interval",
                    kind,
                )?,
                subscription_period_count: required(
                    f.subscription_period_count,
                    "subscription_period_count",
                    kind,
                )?,
                subscription_period_interval: required(
                    f.subscription_period_interval,
                    "subscription_period_interval",
                    kind,
                )?,
                discount: f.discount,
                discount_bps: f.discount_bps,
                purchasing_power_parity: f.purchasing_power_parity,
                tax_inclusive: f.tax_inclusive,
                trial_amount: f.trial_amount,
                trial_apply_discounts: f.trial_apply_discounts,
                trial_payment_method_optional: f.trial_payment_method_optional,
                trial_period_days: f.trial_period_days,
                zero_amount_payment_method_optional: f.zero_amount_payment_method_optional,
            },
            PriceKind::UsageBased => {
                let meters: Option<Vec<Meter>> = f
                    .meters
                    .map(|meters| meters.into_iter().map(Object::into_inner).collect());
                if let Some(meters) = &meters
                    && meters.len() > MAX_METERS
                {
                    return Err(format!(
                        "`meters` has {} entries; at most {MAX_METERS} are allowed",
                        meters.len()
                    ));
                }
                Price::UsageBasedPrice {
                    currency,
                    fixed_price: required(f.fixed_price, "fixed_price", kind)?,
                    payment_frequency_count: required(
                        f.payment_frequency_count,
                        "payment_frequency_count",
                        kind,
                    )?,
                    payment_frequency_interval: required(
                        f.payment_frequency_interval,
                        "payment_frequency_interval",
                        kind,
                    )?,
                    subscription_period_count: required(
                        f.subscription_period_count,
                        "subscription_period_count",
                        kind,
                    )?,
                    subscription_period_interval: required(
                        f.subscription_period_interval,
                        "subscription_period_interval",
                        kind,
                    )?,
                    discount: f.discount,
                    discount_bps: f.discount_bps,
                    meters,
                    purchasing_power_parity: f.purchasing_power_parity,
                    tax_inclusive: f.tax_inclusive,
                }
            }
        })
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Object::<PriceFields>::deserialize(deserializer)?
            .into_inner()
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<Price, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_of_price_round_trips() {
        for price in [
            json!({"type": "one_time_price", "currency": "EUR", "price": 1999, "discount": 10}),
            json!({"type": "recurring_price", "currency": "USD", "price": 500,
                "payment_frequency_count": 1, "payment_frequency_interval": "Month",
                "subscription_period_count": 20, "subscription_period_interval": "Year",
                "trial_period_days": 14}),
            json!({"type": "usage_based_price", "currency": "INR", "fixed_price": 0,
                "payment_frequency_count": 1, "payment_frequency_interval": "Month",
                "subscription_period_count": 1, "subscription_period_interval": "Year",
                "meters": [{"meter_id": "mtr_1", "price_per_unit": "0.25"}]}),
        ] {
            let parsed = parse(price.clone()).unwrap();
            let echoed = serde_json::to_value(&parsed).unwrap();
            for (field, value) in price.as_object().unwrap() {
                if field != "meters" {
                    assert_eq!(&echoed[field], value, "{field}");
                }
            }
            assert_eq!(parse(echoed).unwrap(), parsed, "what is stored reads back");
        }
    }

    #[test]
    fn only_recurring_and_usage_based_prices_recur() {
        assert!(!Price::default().is_recurring());
        let recurring = parse(
            json!({"type": "recurring_price", "currency": "USD", "price": 1,
            "payment_frequency_count": 1, "payment_frequency_interval": "Month",
            "subscription_period_count": 1, "subscription_period_interval": "Year"}),
        )
        .unwrap();
        assert!(recurring.is_recurring());
        assert_eq!(Price::default().currency(), Currency::USD);
        assert_eq!(Price::default().amount().get(), 0);
    }

    #[test]
    fn a_price_outside_dodos_schema_is_refused_saying_why() {
        for (price, says) in [
            (json!({"currency": "USD", "price": 1}), "type"),
            (
                json!({"type": "free", "currency": "USD", "price": 1}),
                "free",
            ),
            (json!({"type": "one_time_price", "price": 1}), "currency"),
            (
                json!({"type": "one_time_price", "currency": "usd", "price": 1}),
                "usd",
            ),
            (
                json!({"type": "one_time_price", "currency": "USD", "price": -1}),
                "between 0",
            ),
            (
                json!({"type": "one_time_price", "currency": "USD", "price": 2147483648_i64}),
                "between 0",
            ),
            (
                json!({"type": "one_time_price", "currency": "USD", "price": 1.5}),
                "floating point",
            ),
            (
                json!({"type": "one_time_price", "currency": "USD", "price": 1, "discount": 101}),
                "100",
            ),
            (
                json!({"type": "one_time_price", "currency": "USD", "price": 1, "trial_period_days": 3}),
                "trial_period_days",
            ),
            (
                json!({"type": "one_time_price", "currency": "USD", "price": 1, "surprise": 3}),
                "surprise",
            ),
            (
                json!({"type": "recurring_price", "currency": "USD", "price": 1}),
                "payment_frequency_count",
            ),
            (
                json!({"type": "usage_based_price", "currency": "USD", "price": 1}),
                "price",
            ),
            (
                json!({"type": "usage_based_price", "currency": "USD", "fixed_price": 1,
                    "payment_frequency_count": 0, "payment_frequency_interval": "Month",
                    "subscription_period_count": 1, "subscription_period_interval": "Year"}),
                "between 1",
            ),
        ] {
            let error = parse(price.clone()).unwrap_err();
            assert!(error.contains(says), "{price}: {error}");
        }
    }

    #[test]
    fn unit_prices_are_positive_decimals_of_bounded_precision() {
        let parse = |s: &str| serde_json::from_value::<UnitPrice>(json!(s));
        for good in ["1", "0.25", "99999.000000000001", "00001"] {
            assert!(parse(good).is_ok(), "{good}");
        }
        for bad in [
            "0",
            "0.000",
            "-1",
            "1.",
            ".5",
            "123456",
            "1.0000000000001",
            "1e3",
            " 1",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
