//! License keys: their status, the activation limit, the rules of a change, and the
//! format of generated keys.

use chrono::{Days, Months};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ids::KeyString;
use super::seats::{HeartbeatInterval, SeatBinding};
use super::time::Timestamp;
use super::whole_number::whole_number_within;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Expired,
    Disabled,
}

impl KeyStatus {
    /// Status is derived when read: disabled wins, then expiry, else active.
    pub fn of(disabled: bool, expires_at: Option<Timestamp>, now: Timestamp) -> Self {
        if disabled {
            KeyStatus::Disabled
        } else if expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(KeyStatus::Active),
            "expired" => Some(KeyStatus::Expired),
            "disabled" => Some(KeyStatus::Disabled),
            _ => None,
        }
    }
}

/// What the activation rules need to know about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    pub disabled: bool,
    pub expires_at: Option<Timestamp>,
    /// `None` is unlimited.
    pub activations_limit: Option<u32>,
    pub instances_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("this license key is disabled or expired")]
    Inactive,
    #[error("this license key has reached its activation limit")]
    LimitReached,
}

impl KeyState {
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        KeyStatus::of(self.disabled, self.expires_at, now)
    }

    /// Whether one more instance may be activated now.
    pub fn check_activation(&self, now: Timestamp) -> Result<(), ActivationError> {
        if self.status(now) != KeyStatus::Active {
            return Err(ActivationError::Inactive);
        }
        match self.activations_limit {
            Some(limit) if self.instances_count >= limit => Err(ActivationError::LimitReached),
            _ => Ok(()),
        }
    }
}

/// A field of a PATCH: absent leaves it unchanged, `null` clears it, a value sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Change<T> {
    #[default]
    Unchanged,
    Clear,
    Set(T),
}

impl<T> Change<T> {
    /// The same change with its value, if any, converted.
    pub fn map<U>(self, convert: impl FnOnce(T) -> U) -> Change<U> {
        match self {
            Change::Unchanged => Change::Unchanged,
            Change::Clear => Change::Clear,
            Change::Set(value) => Change::Set(convert(value)),
        }
    }

    /// The same change with its value, if any, converted or refused.
    pub fn try_map<U, E>(self, convert: impl FnOnce(T) -> Result<U, E>) -> Result<Change<U>, E> {
        Ok(match self {
            Change::Unchanged => Change::Unchanged,
            Change::Clear => Change::Clear,
            Change::Set(value) => Change::Set(convert(value)?),
        })
    }

    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Change::Unchanged => current,
            Change::Clear => None,
            Change::Set(value) => Some(value),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Change<T> {
    /// Called only when the field is present (absent fields take the default).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Change::Clear,
            Some(value) => Change::Set(value),
        })
    }
}

/// A change to a license key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPatch {
    pub activations_limit: Change<u32>,
    pub disabled: Option<bool>,
    pub expires_at: Change<Timestamp>,
    pub heartbeat_interval: Change<HeartbeatInterval>,
    /// Binds the key to a ledger pair's seats, or (cleared) unbinds it.
    pub seats: Change<SeatBinding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the activation limit ({limit}) is below the number of current activations ({count})")]
    LimitBelowInstances { limit: u32, count: u32 },
    #[error(
        "unbinding keeps the seats' figure ({figure}) as the key's activation limit, below the number of current activations ({count}); send `activations_limit` with `\"seats\": null`, or deactivate instances first"
    )]
    UnbindingBelowInstances { figure: u32, count: u32 },
    #[error(
        "the expiry of a subscription's license key follows the subscription and cannot be set"
    )]
    ExpiryOnSubscriptionKey,
    #[error(
        "`seats` and `activations_limit` cannot be set together: a key bound to seats takes its limit from the ledger"
    )]
    LimitWithSeats,
    #[error(
        "this key's activations limit follows the ledger pair it is bound to; send `\"seats\": null` with the limit to unbind it"
    )]
    LimitFollowsSeats,
}

/// A subscription's key expires with the subscription: no expiry may be set on it.
pub fn check_expiry(
    has_subscription: bool,
    expires_at: &Change<Timestamp>,
) -> Result<(), PatchError> {
    if has_subscription && matches!(expires_at, Change::Set(_)) {
        return Err(PatchError::ExpiryOnSubscriptionKey);
    }
    Ok(())
}

/// A request that binds a key to seats cannot set its limit too: a bound key takes its
/// limit from the ledger. Checked before the pair is looked up, so that such a request is
/// refused for what it asks whatever the ledger holds.
pub fn check_limit_with_seats(binds: bool, limit: &Change<u32>) -> Result<(), PatchError> {
    match binds && *limit != Change::Unchanged {
        true => Err(PatchError::LimitWithSeats),
        false => Ok(()),
    }
}

/// The largest activation limit a key or product may have of its own.
pub const MAX_ACTIVATIONS_LIMIT: u32 = 1_000_000;

/// An activation limit as a request gives it: a whole number from 0 to
/// [`MAX_ACTIVATIONS_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationsLimit(u32);

impl ActivationsLimit {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for ActivationsLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number_within(deserializer, 0..=MAX_ACTIVATIONS_LIMIT, "").map(Self)
    }
}

impl utoipa::PartialSchema for ActivationsLimit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(MAX_ACTIVATIONS_LIMIT))
            .description(Some("Activations a key allows at once"))
            .into()
    }
}

impl utoipa::ToSchema for ActivationsLimit {}

impl KeyPatch {
    /// The key after this change, or why the change is refused. A key bound to seats
    /// (`bound`, or bound by this change) keeps the figure it has: its instances count
    /// never refuses a binding. Unbinding without a limit keeps the figure as the limit,
    /// within the largest a key may have of its own (a pair may hold more seats).
    pub fn apply(
        &self,
        key: KeyState,
        has_subscription: bool,
        bound: bool,
    ) -> Result<KeyState, PatchError> {
        check_expiry(has_subscription, &self.expires_at)?;
        let binds = matches!(self.seats, Change::Set(_));
        check_limit_with_seats(binds, &self.activations_limit)?;
        let limit_given = self.activations_limit != Change::Unchanged;
        let bound_after = match self.seats {
            Change::Set(_) => true,
            Change::Clear => false,
            Change::Unchanged if bound && limit_given => {
                return Err(PatchError::LimitFollowsSeats);
            }
            Change::Unchanged => bound,
        };
        let activations_limit = match (&self.seats, self.activations_limit) {
            (Change::Clear, Change::Unchanged) => key
                .activations_limit
                .map(|figure| figure.min(MAX_ACTIVATIONS_LIMIT)),
            _ => self.activations_limit.apply(key.activations_limit),
        };
        if let Some(limit) = activations_limit
            && limit < key.instances_count
            && !bound_after
        {
            let count = key.instances_count;
            return Err(match (&self.seats, limit_given) {
                (Change::Clear, false) => PatchError::UnbindingBelowInstances {
                    figure: limit,
                    count,
                },
                _ => PatchError::LimitBelowInstances { limit, count },
            });
        }
        Ok(KeyState {
            disabled: self.disabled.unwrap_or(key.disabled),
            expires_at: self.expires_at.apply(key.expires_at),
            activations_limit,
            instances_count: key.instances_count,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

/// How long a product's license keys last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyDuration {
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "count_of_intervals")]
    pub count: u32,
    pub interval: Interval,
}

fn count_of_intervals<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    whole_number_within(deserializer, 1..=KeyDuration::MAX_COUNT, "")
}

impl KeyDuration {
    pub const MAX_COUNT: u32 = 1000;

    /// When a key issued at `from` expires; `None` if that is past year 9999.
    pub fn expiry_from(&self, from: Timestamp) -> Option<Timestamp> {
        let start = chrono::DateTime::from_timestamp_micros(from.micros())?;
        let end = match self.interval {
            Interval::Day => start.checked_add_days(Days::new(self.count.into())),
            Interval::Week => start.checked_add_days(Days::new(u64::from(self.count) * 7)),
            Interval::Month => start.checked_add_months(Months::new(self.count)),
            Interval::Year => start.checked_add_months(Months::new(self.count.checked_mul(12)?)),
        }?;
        Timestamp::from_micros(end.timestamp_micros())
    }
}

/// The key a customer most likely meant by `typed`, if it differs: a generated key typed
/// in small letters, or pasted with spaces around it (see [`licensed_verify::meant_key`],
/// which apps verifying files share).
pub fn meant_key(typed: &KeyString) -> Option<KeyString> {
    licensed_verify::meant_key(typed.as_str()).and_then(|meant| KeyString::parse(meant).ok())
}

/// Crockford's base32 alphabet: no I, L, O or U, so keys survive being read aloud.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new license key: 25 Crockford base32 characters (125 random bits from the OS
/// CSPRNG) in five dash-separated groups.
pub fn generate_key() -> String {
    let mut rng = rand::rngs::OsRng;
    let groups: Vec<String> = (0..5)
        .map(|_| {
            (0..5)
                .map(|_| CROCKFORD[rng.gen_range(0..32)] as char)
                .collect()
        })
        .collect();
    groups.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn key(limit: Option<u32>, count: u32) -> KeyState {
        KeyState {
            disabled: false,
            expires_at: None,
            activations_limit: limit,
            instances_count: count,
        }
    }

    #[test]
    fn status_is_disabled_then_expired_then_active() {
        let now = t("2024-06-01T00:00:00Z");
        assert_eq!(KeyStatus::of(false, None, now), KeyStatus::Active);
        assert_eq!(
            KeyStatus::of(false, Some(t("2024-06-01T00:00:01Z")), now),
            KeyStatus::Active
        );
        assert_eq!(
            KeyStatus::of(false, Some(now), now),
            KeyStatus::Expired,
            "expiry is inclusive"
        );
        assert_eq!(KeyStatus::of(true, Some(now), now), KeyStatus::Disabled);
        assert_eq!(KeyStatus::of(true, None, now), KeyStatus::Disabled);
    }

    #[test]
    fn activation_needs_an_active_key_below_its_limit() {
        let now = t("2024-06-01T00:00:00Z");
        assert_eq!(key(Some(2), 1).check_activation(now), Ok(()));
        assert_eq!(
            key(Some(2), 2).check_activation(now),
            Err(ActivationError::LimitReached)
        );
        assert_eq!(
            key(Some(0), 0).check_activation(now),
            Err(ActivationError::LimitReached)
        );
        assert_eq!(key(None, 10_000).check_activation(now), Ok(()));
        let disabled = KeyState {
            disabled: true,
            ..key(None, 0)
        };
        assert_eq!(
            disabled.check_activation(now),
            Err(ActivationError::Inactive)
        );
        let expired = KeyState {
            expires_at: Some(now),
            ..key(None, 0)
        };
        assert_eq!(
            expired.check_activation(now),
            Err(ActivationError::Inactive)
        );
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let current = KeyState {
            expires_at: Some(t("2025-01-01T00:00:00Z")),
            ..key(Some(5), 3)
        };
        assert_eq!(
            KeyPatch::default().apply(current, false, false),
            Ok(current)
        );
        let cleared = KeyPatch {
            activations_limit: Change::Clear,
            expires_at: Change::Clear,
            ..Default::default()
        };
        assert_eq!(
            cleared.apply(current, false, false),
            Ok(KeyState {
                activations_limit: None,
                expires_at: None,
                ..current
            })
        );
        let disable = KeyPatch {
            disabled: Some(true),
            ..Default::default()
        };
        assert!(disable.apply(current, false, false).unwrap().disabled);
    }

    #[test]
    fn a_limit_below_the_current_activations_is_refused() {
        let current = key(Some(5), 3);
        let to = |n| KeyPatch {
            activations_limit: Change::Set(n),
            ..Default::default()
        };
        assert_eq!(
            to(3)
                .apply(current, false, false)
                .unwrap()
                .activations_limit,
            Some(3)
        );
        assert_eq!(
            to(2).apply(current, false, false),
            Err(PatchError::LimitBelowInstances { limit: 2, count: 3 })
        );
    }

    #[test]
    fn a_subscription_key_takes_no_expiry_but_may_lose_one() {
        let current = key(None, 0);
        let set = KeyPatch {
            expires_at: Change::Set(t("2030-01-01T00:00:00Z")),
            ..Default::default()
        };
        assert_eq!(
            set.apply(current, true, false),
            Err(PatchError::ExpiryOnSubscriptionKey)
        );
        assert!(set.apply(current, false, false).is_ok());
        let clear = KeyPatch {
            expires_at: Change::Clear,
            ..Default::default()
        };
        assert!(clear.apply(current, true, false).is_ok());
    }

    #[test]
    fn a_bound_key_takes_no_limit_and_is_never_refused_for_its_instances() {
        let seats = || {
            Change::Set(SeatBinding {
                account_id: crate::domain::ids::AccountId::parse("acc").unwrap(),
                license_id: crate::domain::ids::LicenseId::parse("seats").unwrap(),
            })
        };
        let over_seat = key(Some(1), 3);
        let bind = KeyPatch {
            seats: seats(),
            ..Default::default()
        };
        assert_eq!(bind.apply(over_seat, false, false), Ok(over_seat));
        let bind_with_limit = KeyPatch {
            seats: seats(),
            activations_limit: Change::Set(5),
            ..Default::default()
        };
        assert_eq!(
            bind_with_limit.apply(over_seat, false, false),
            Err(PatchError::LimitWithSeats)
        );
        let limit_only = KeyPatch {
            activations_limit: Change::Clear,
            ..Default::default()
        };
        assert_eq!(
            limit_only.apply(over_seat, false, true),
            Err(PatchError::LimitFollowsSeats)
        );
        let unbind = KeyPatch {
            seats: Change::Clear,
            ..Default::default()
        };
        assert_eq!(
            unbind
                .apply(key(Some(4), 3), false, true)
                .unwrap()
                .activations_limit,
            Some(4),
            "unbinding keeps the figure as the limit"
        );
        assert_eq!(
            unbind
                .apply(key(Some(2_000_000), 3), false, true)
                .unwrap()
                .activations_limit,
            Some(MAX_ACTIVATIONS_LIMIT),
            "within the largest limit a key may have of its own"
        );
        // Refused for the figure it would keep, which the client did not send.
        assert_eq!(
            unbind.apply(over_seat, false, true),
            Err(PatchError::UnbindingBelowInstances {
                figure: 1,
                count: 3
            })
        );
        let unbind_unlimited = KeyPatch {
            seats: Change::Clear,
            activations_limit: Change::Clear,
            ..Default::default()
        };
        assert_eq!(
            unbind_unlimited
                .apply(over_seat, false, true)
                .unwrap()
                .activations_limit,
            None
        );
    }

    #[test]
    fn tri_state_fields_deserialize_from_absent_null_and_value() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            limit: Change<u32>,
        }
        let parse = |text: &str| serde_json::from_str::<Body>(text).unwrap().limit;
        assert_eq!(parse("{}"), Change::Unchanged);
        assert_eq!(parse(r#"{"limit": null}"#), Change::Clear);
        assert_eq!(parse(r#"{"limit": 4}"#), Change::Set(4));
    }

    #[test]
    fn durations_add_calendar_units() {
        let from = t("2024-01-31T10:00:00Z");
        let after = |count, interval| {
            KeyDuration { count, interval }
                .expiry_from(from)
                .unwrap()
                .to_string()
        };
        assert_eq!(after(1, Interval::Day), "2024-02-01T10:00:00Z");
        assert_eq!(after(2, Interval::Week), "2024-02-14T10:00:00Z");
        assert_eq!(after(1, Interval::Month), "2024-02-29T10:00:00Z");
        assert_eq!(after(1, Interval::Year), "2025-01-31T10:00:00Z");
        assert_eq!(
            KeyDuration {
                count: 1000,
                interval: Interval::Year
            }
            .expiry_from(t("9000-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn generated_keys_are_crockford_groups_with_125_random_bits() {
        let key = generate_key();
        let groups: Vec<&str> = key.split('-').collect();
        assert_eq!(groups.len(), 5);
        assert!(groups.iter().all(|g| g.len() == 5));
        assert!(
            key.chars()
                .filter(|c| *c != '-')
                .all(|c| CROCKFORD.contains(&(c as u8)))
        );
        let many: std::collections::HashSet<String> = (0..1000).map(|_| generate_key()).collect();
        assert_eq!(many.len(), 1000);
    }
}
