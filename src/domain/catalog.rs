//! Customers and products, as far as license keys need them, and the records of keys
//! and their activations (instances).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::{
    BusinessId, CustomerId, InstanceId, LicenseKeyId, LongText, ProductId, ResourceId, WebUrl,
};
use super::license::{ActivationError, Change, KeyDuration, KeyPatch, KeyState, PatchError};
use super::metadata::Metadata;
use super::pricing::{Price, PricingMode, TaxCategory};
use super::seats::{Fingerprint, HeartbeatInterval, SeatBinding};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub business_id: BusinessId,
    pub email: String,
    pub name: String,
    pub phone_number: Option<String>,
    pub preferred_locale: Option<Locale>,
    pub metadata: Metadata,
    pub created_at: Timestamp,
}

/// The language of a customer's emails: one of the codes of Dodo's `GET /locales`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    Ar,
    Ca,
    Zh,
    Nl,
    En,
    Fr,
    De,
    He,
    Id,
    It,
    Ja,
    Ka,
    Ko,
    Ms,
    Pl,
    Pt,
    Ro,
    Ru,
    Es,
    Sv,
    Th,
    Tr,
}

impl Locale {
    /// The code, as stored and sent.
    pub fn code(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A stored code; `None` if it is not one.
    pub fn from_code(code: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(code.to_owned())).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub business_id: BusinessId,
    pub name: String,
    pub description: Option<String>,
    pub license_key_activations_limit: Option<u32>,
    pub license_key_duration: Option<KeyDuration>,
    pub license_key_activation_message: Option<String>,
    /// The heartbeat interval of the product's new keys; none: no heartbeats.
    pub heartbeat_interval: Option<HeartbeatInterval>,
    pub metadata: Metadata,
    pub details: ProductDetails,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What Dodo's product says besides its license-key defaults: how it is sold and
/// delivered. Recorded for the vendor and echoed; none of it changes how keys behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub price: Price,
    pub tax_category: TaxCategory,
    pub pricing_mode: Option<PricingMode>,
    /// The add-ons offered with a subscription, by id.
    pub addons: Option<Vec<ResourceId>>,
    pub image: Option<WebUrl>,
    pub digital_product_delivery: Option<Delivery>,
    /// Whether a purchase issues a key, for the vendor's payment flow; keys can be issued
    /// here for any product.
    pub license_key_enabled: bool,
}

impl Default for ProductDetails {
    /// What a product answers when created without them: free, once, in USD, SaaS, and
    /// issuing license keys (what products here are for).
    fn default() -> Self {
        Self {
            price: Price::default(),
            tax_category: TaxCategory::default(),
            pricing_mode: None,
            addons: None,
            image: None,
            digital_product_delivery: None,
            license_key_enabled: true,
        }
    }
}

/// Where a buyer finds the product: a link and instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub external_url: Option<WebUrl>,
    pub instructions: Option<LongText>,
}

/// A change to a product: each field absent (unchanged), null (cleared) or set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Change<String>,
    pub license_key_activations_limit: Change<u32>,
    pub license_key_duration: Change<KeyDuration>,
    pub license_key_activation_message: Change<String>,
    pub heartbeat_interval: Change<HeartbeatInterval>,
    pub metadata: Option<Metadata>,
    pub details: DetailsPatch,
}

/// A change to a product's [`ProductDetails`]: a price, tax category or flag can be
/// replaced but not cleared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DetailsPatch {
    pub price: Option<Price>,
    pub tax_category: Option<TaxCategory>,
    pub pricing_mode: Change<PricingMode>,
    pub addons: Change<Vec<ResourceId>>,
    pub image: Change<WebUrl>,
    pub digital_product_delivery: Change<Delivery>,
    pub license_key_enabled: Option<bool>,
}

impl DetailsPatch {
    fn apply(self, details: &mut ProductDetails) {
        if let Some(price) = self.price {
            details.price = price;
        }
        if let Some(category) = self.tax_category {
            details.tax_category = category;
        }
        details.pricing_mode = self.pricing_mode.apply(details.pricing_mode);
        details.addons = self.addons.apply(details.addons.take());
        details.image = self.image.apply(details.image.take());
        details.digital_product_delivery = self
            .digital_product_delivery
            .apply(details.digital_product_delivery.take());
        if let Some(enabled) = self.license_key_enabled {
            details.license_key_enabled = enabled;
        }
    }
}

impl ProductPatch {
    pub fn apply(self, product: &mut Product, now: Timestamp) {
        if let Some(name) = self.name {
            product.name = name;
        }
        product.description = self.description.apply(product.description.take());
        product.license_key_activations_limit = self
            .license_key_activations_limit
            .apply(product.license_key_activations_limit);
        product.license_key_duration = self
            .license_key_duration
            .apply(product.license_key_duration);
        product.license_key_activation_message = self
            .license_key_activation_message
            .apply(product.license_key_activation_message.take());
        product.heartbeat_interval = self.heartbeat_interval.apply(product.heartbeat_interval);
        if let Some(metadata) = self.metadata {
            product.metadata = metadata;
        }
        self.details.apply(&mut product.details);
        product.updated_at = now;
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// Issued by a payment or subscription flow (not produced by this server).
    Auto,
    /// Brought in by the business with its own key string.
    Import,
    /// Generated by this server on request.
    Manual,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Auto => "auto",
            KeySource::Import => "import",
            KeySource::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(KeySource::Auto),
            "import" => Some(KeySource::Import),
            "manual" => Some(KeySource::Manual),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseKey {
    pub id: LicenseKeyId,
    pub business_id: BusinessId,
    pub key: String,
    pub customer_id: CustomerId,
    pub product_id: ProductId,
    pub source: KeySource,
    /// `None` is unlimited. A key bound to seats has the pair's figure at the instant the
    /// key was read (not stored with the key).
    pub activations_limit: Option<u32>,
    /// Its live instances: a dead one stops counting at once, before it is deleted.
    pub instances_count: u32,
    pub disabled: bool,
    pub expires_at: Option<Timestamp>,
    pub payment_id: Option<String>,
    pub subscription_id: Option<String>,
    pub heartbeat_interval: Option<HeartbeatInterval>,
    /// The ledger pair whose quantity is the key's limit.
    pub seats: Option<SeatBinding>,
    pub created_at: Timestamp,
}

impl LicenseKey {
    pub fn state(&self) -> KeyState {
        KeyState {
            disabled: self.disabled,
            expires_at: self.expires_at,
            activations_limit: self.activations_limit,
            instances_count: self.instances_count,
        }
    }

    /// The limit as the key's row stores it: none for a key bound to seats, whose limit
    /// is read from the ledger.
    pub fn stored_limit(&self) -> Option<u32> {
        match self.seats {
            Some(_) => None,
            None => self.activations_limit,
        }
    }

    /// A new instance of this key, counted, if the activation rules allow one at `now`
    /// (for a key bound to seats, `activations_limit` must be the pair's figure at `now`).
    /// Activation is the instance's first heartbeat.
    pub fn activate(
        &mut self,
        id: InstanceId,
        name: String,
        fingerprint: Option<Fingerprint>,
        now: Timestamp,
    ) -> Result<Instance, ActivationError> {
        self.state().check_activation(now)?;
        self.instances_count += 1;
        let mut instance = Instance {
            id,
            business_id: self.business_id.clone(),
            license_key_id: self.id.clone(),
            name,
            fingerprint: fingerprint.map(Fingerprint::into_string),
            created_at: now,
            last_heartbeat_at: None,
            heartbeat_expires_at: None,
        };
        instance.beat(self.heartbeat_interval, now);
        Ok(instance)
    }

    /// The answer to an activation from a machine that already holds one of the key's
    /// live instances: that instance, beaten, if the key is active. It takes no seat.
    pub fn reactivate(
        &self,
        mut instance: Instance,
        now: Timestamp,
    ) -> Result<Instance, ActivationError> {
        if self.state().status(now) != super::license::KeyStatus::Active {
            return Err(ActivationError::Inactive);
        }
        instance.beat(self.heartbeat_interval, now);
        Ok(instance)
    }

    /// Applies a PATCH, or says why it is refused. For a key bound to seats, the limit
    /// it keeps is the figure it was read with: the store reads the new one.
    pub fn apply(&mut self, patch: &KeyPatch) -> Result<(), PatchError> {
        let state = patch.apply(
            self.state(),
            self.subscription_id.is_some(),
            self.seats.is_some(),
        )?;
        self.set_state(state);
        self.seats = patch.seats.clone().apply(self.seats.take());
        self.heartbeat_interval = patch.heartbeat_interval.apply(self.heartbeat_interval);
        Ok(())
    }

    /// Stops counting one of the key's instances, which the caller has removed.
    pub fn deactivate(&mut self) {
        self.instances_count = self.instances_count.saturating_sub(1);
    }

    pub fn set_state(&mut self, state: KeyState) {
        self.disabled = state.disabled;
        self.expires_at = state.expires_at;
        self.activations_limit = state.activations_limit;
        self.instances_count = state.instances_count;
    }
}

/// What a new key starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTerms {
    pub activations_limit: Option<u32>,
    pub expires_at: Option<Timestamp>,
    pub heartbeat_interval: Option<HeartbeatInterval>,
}

/// What a new key's limit, expiry and heartbeat interval are, given what was asked and the
/// product's defaults: an absent field takes the product's default, `null` means none
/// (unlimited, never expires, no heartbeats). A subscription's key takes no expiry from
/// the product: it expires with the subscription, and no expiry could be set on it or
/// changed later.
pub fn key_terms(
    product: &Product,
    activations_limit: Change<u32>,
    expires_at: Change<Timestamp>,
    heartbeat_interval: Change<HeartbeatInterval>,
    has_subscription: bool,
    now: Timestamp,
) -> KeyTerms {
    let activations_limit = match activations_limit {
        Change::Unchanged => product.license_key_activations_limit,
        other => other.apply(None),
    };
    let expires_at = match expires_at {
        Change::Unchanged if has_subscription => None,
        Change::Unchanged => product
            .license_key_duration
            .and_then(|duration| duration.expiry_from(now)),
        other => other.apply(None),
    };
    let heartbeat_interval = match heartbeat_interval {
        Change::Unchanged => product.heartbeat_interval,
        other => other.apply(None),
    };
    KeyTerms {
        activations_limit,
        expires_at,
        heartbeat_interval,
    }
}

/// One activation of a license key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    pub business_id: BusinessId,
    pub license_key_id: LicenseKeyId,
    pub name: String,
    pub fingerprint: Option<String>,
    pub created_at: Timestamp,
    /// Both none when the key has no heartbeat interval.
    pub last_heartbeat_at: Option<Timestamp>,
    pub heartbeat_expires_at: Option<Timestamp>,
}

impl Instance {
    /// A heartbeat at `now`: the next one is due within the key's interval.
    pub fn beat(&mut self, interval: Option<HeartbeatInterval>, now: Timestamp) {
        self.last_heartbeat_at = interval.map(|_| now);
        self.heartbeat_expires_at = interval.map(|i| i.deadline_after(now));
    }

    /// Dead: it missed its deadline, and no longer counts.
    pub fn is_dead_at(&self, now: Timestamp) -> bool {
        self.heartbeat_expires_at
            .is_some_and(|deadline| deadline <= now)
    }
}

/// A successful activation, with what the app is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub instance: Instance,
    pub customer: Customer,
    pub product_id: ProductId,
    pub product_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license::Interval;

    fn product() -> Product {
        let at = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
        Product {
            id: "pdt_1".into(),
            business_id: "bus_1".into(),
            name: "App".into(),
            description: None,
            license_key_activations_limit: Some(3),
            license_key_duration: Some(KeyDuration {
                count: 1,
                interval: Interval::Year,
            }),
            license_key_activation_message: None,
            heartbeat_interval: HeartbeatInterval::new(60),
            metadata: Metadata::default(),
            details: ProductDetails::default(),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn new_keys_take_the_products_defaults_unless_told_otherwise() {
        let now = Timestamp::parse("2024-03-01T00:00:00Z").unwrap();
        let year_later = Timestamp::parse("2025-03-01T00:00:00Z").unwrap();
        let terms = |limit, expiry, interval, subscription| {
            let t = key_terms(&product(), limit, expiry, interval, subscription, now);
            (
                t.activations_limit,
                t.expires_at,
                t.heartbeat_interval.map(HeartbeatInterval::seconds),
            )
        };
        assert_eq!(
            terms(
                Change::Unchanged,
                Change::Unchanged,
                Change::Unchanged,
                false
            ),
            (Some(3), Some(year_later), Some(60))
        );
        assert_eq!(
            terms(Change::Clear, Change::Clear, Change::Clear, false),
            (None, None, None)
        );
        assert_eq!(
            terms(
                Change::Set(9),
                Change::Set(now),
                Change::Set(HeartbeatInterval::new(5).unwrap()),
                false
            ),
            (Some(9), Some(now), Some(5))
        );
        assert_eq!(
            terms(
                Change::Unchanged,
                Change::Unchanged,
                Change::Unchanged,
                true
            ),
            (Some(3), None, Some(60)),
            "a subscription's key keeps the product's limit but not its duration"
        );
    }

    #[test]
    fn a_product_patch_changes_only_what_it_names() {
        let mut p = product();
        let now = Timestamp::parse("2024-05-01T00:00:00Z").unwrap();
        ProductPatch {
            license_key_duration: Change::Clear,
            description: Change::Set("d".into()),
            ..Default::default()
        }
        .apply(&mut p, now);
        assert_eq!(p.license_key_duration, None);
        assert_eq!(p.description.as_deref(), Some("d"));
        assert_eq!(p.license_key_activations_limit, Some(3));
        assert_eq!(p.updated_at, now);

        ProductPatch {
            details: DetailsPatch {
                tax_category: Some(TaxCategory::EBook),
                license_key_enabled: Some(false),
                ..Default::default()
            },
            ..Default::default()
        }
        .apply(&mut p, now);
        assert_eq!(p.details.tax_category, TaxCategory::EBook);
        assert!(!p.details.license_key_enabled);
        assert_eq!(p.details.price, Price::default(), "the price is unchanged");
        assert_eq!(p.description.as_deref(), Some("d"));
    }

    #[test]
    fn an_activation_counts_its_instance_until_the_limit() {
        let now = Timestamp::parse("2024-03-01T00:00:00Z").unwrap();
        let mut key = LicenseKey {
            id: "lic_1".into(),
            business_id: "bus_1".into(),
            key: "K".into(),
            customer_id: "cus_1".into(),
            product_id: "pdt_1".into(),
            source: KeySource::Manual,
            activations_limit: Some(1),
            instances_count: 0,
            disabled: false,
            expires_at: None,
            payment_id: None,
            subscription_id: None,
            heartbeat_interval: None,
            seats: None,
            created_at: now,
        };
        let instance = key
            .activate("lki_1".into(), "laptop".into(), None, now)
            .unwrap();
        assert_eq!(instance.license_key_id.as_str(), "lic_1");
        assert_eq!(instance.business_id.as_str(), "bus_1");
        assert_eq!(key.instances_count, 1);
        assert_eq!(
            key.activate("lki_2".into(), "desktop".into(), None, now),
            Err(ActivationError::LimitReached)
        );
        assert_eq!(
            key.instances_count, 1,
            "a refused activation counts nothing"
        );
        key.deactivate();
        assert_eq!(key.instances_count, 0);
        key.disabled = true;
        assert_eq!(
            key.activate("lki_3".into(), "phone".into(), None, now),
            Err(ActivationError::Inactive)
        );
    }

    #[test]
    fn an_instance_of_a_key_with_heartbeats_dies_at_its_deadline() {
        let now = Timestamp::parse("2024-03-01T00:00:00Z").unwrap();
        let later = |s: i64| now.plus_micros(s * 1_000_000).unwrap();
        let mut instance = Instance {
            id: "lki_1".into(),
            business_id: "bus_1".into(),
            license_key_id: "lic_1".into(),
            name: "laptop".into(),
            fingerprint: None,
            created_at: now,
            last_heartbeat_at: None,
            heartbeat_expires_at: None,
        };
        assert!(
            !instance.is_dead_at(later(1_000_000)),
            "no interval: never dies"
        );
        instance.beat(HeartbeatInterval::new(10), now);
        assert_eq!(instance.last_heartbeat_at, Some(now));
        assert_eq!(instance.heartbeat_expires_at, Some(later(10)));
        assert!(!instance.is_dead_at(later(9)));
        assert!(instance.is_dead_at(later(10)));
        instance.beat(HeartbeatInterval::new(10), later(9));
        assert!(!instance.is_dead_at(later(18)));
        instance.beat(None, later(9));
        assert_eq!(instance.heartbeat_expires_at, None);
    }
}
