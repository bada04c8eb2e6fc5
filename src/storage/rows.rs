//! How records are read back from rows, for both backends: the decoding of a row
//! selected with the columns of `columns.rs` into a domain record, written once for both
//! drivers and checking every stored value.

use rust_decimal::Decimal;

use crate::domain::auth::{ApiKeyInfo, KeyDigest, Principal};
use crate::domain::catalog::{
    Customer, Instance, KeySource, LicenseKey, Locale, Product, ProductDetails,
};
use crate::domain::console::{ConsoleSession, Overview, SessionDigest};
use crate::domain::delivery::{Message, MessageStatus};
use crate::domain::entry::LedgerEntry;
use crate::domain::ids::{
    AccountId, ApiKeyId, BusinessId, CustomerId, InstanceId, LicenseId, LicenseKeyId, MessageId,
    ProductId, SigningKeyId, WebhookId,
};
use crate::domain::ledger::{LaterEntry, Position, Shift, shifted};
use crate::domain::license::KeyDuration;
use crate::domain::metadata::Metadata;
use crate::domain::quantity::Quantity;
use crate::domain::seats::{HeartbeatInterval, SeatBinding, seats_in};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{Endpoint, EventType, RateLimit, WebhookHeaders, WebhookUrl};
use crate::storage::error::{Result, StorageError};
use crate::storage::listing::ListedEntry;
use crate::storage::store::{KeyValidity, StoredSigningKey};

/// A row as a driver returns it, read column by column (0-based). Each backend
/// implements it for its driver's row; a value of the wrong type is [`corrupt`].
pub trait Columns {
    fn text(&self, column: usize) -> Result<String>;
    fn text_or_null(&self, column: usize) -> Result<Option<String>>;
    fn int(&self, column: usize) -> Result<i64>;
    fn int_or_null(&self, column: usize) -> Result<Option<i64>>;
    fn flag(&self, column: usize) -> Result<bool>;
    fn bytes(&self, column: usize) -> Result<Vec<u8>>;
    /// An exact quantity, however the backend stores it (text, or NUMERIC).
    fn quantity(&self, column: usize) -> Result<Quantity>;
    fn quantity_or_null(&self, column: usize) -> Result<Option<Quantity>>;
    /// An exact decimal, not bounded as a quantity is: a stored absolute quantity less
    /// its shifts, or a shift's delta.
    fn decimal(&self, column: usize) -> Result<Decimal>;
    /// Whether the column holds `digest` (compared in constant time).
    fn digest_matches(&self, column: usize, digest: KeyDigest) -> Result<bool>;
}

/// A customer selected with [`CUSTOMER_COLUMNS`](crate::storage::columns::CUSTOMER_COLUMNS).
pub fn customer(row: &impl Columns) -> Result<Customer> {
    Ok(Customer {
        id: CustomerId::from(row.text(0)?),
        business_id: BusinessId::from(row.text(1)?),
        email: row.text(2)?,
        name: row.text(3)?,
        phone_number: row.text_or_null(4)?,
        metadata: metadata(&row.text(5)?)?,
        created_at: timestamp(row.int(6)?)?,
        preferred_locale: match row.text_or_null(7)? {
            Some(code) => Some(Locale::from_code(&code).ok_or_else(|| {
                StorageError::Internal(format!("a stored locale `{code}` is not one of Dodo's"))
            })?),
            None => None,
        },
    })
}

/// A product selected with [`PRODUCT_COLUMNS`](crate::storage::columns::PRODUCT_COLUMNS).
pub fn product(row: &impl Columns) -> Result<Product> {
    let duration = match (row.int_or_null(5)?, row.text_or_null(6)?) {
        (Some(count), Some(interval)) => Some(KeyDuration {
            count: u32::try_from(count).map_err(corrupt)?,
            interval: serde_json::from_value(serde_json::Value::String(interval))
                .map_err(corrupt)?,
        }),
        _ => None,
    };
    Ok(Product {
        id: ProductId::from(row.text(0)?),
        business_id: BusinessId::from(row.text(1)?),
        name: row.text(2)?,
        description: row.text_or_null(3)?,
        license_key_activations_limit: row.int_or_null(4)?.map(count).transpose()?,
        license_key_duration: duration,
        license_key_activation_message: row.text_or_null(7)?,
        metadata: metadata(&row.text(8)?)?,
        // Products made before their details were kept have none: they answer the defaults.
        details: (row.text_or_null(11)?)
            .map(|text| serde_json::from_str::<ProductDetails>(&text).map_err(corrupt))
            .transpose()?
            .unwrap_or_default(),
        created_at: timestamp(row.int(9)?)?,
        updated_at: timestamp(row.int(10)?)?,
        heartbeat_interval: heartbeat_interval(row.int_or_null(12)?)?,
    })
}

fn heartbeat_interval(stored: Option<i64>) -> Result<Option<HeartbeatInterval>> {
    stored
        .map(|seconds| {
            u32::try_from(seconds)
                .ok()
                .and_then(HeartbeatInterval::new)
                .ok_or_else(|| corrupt(format!("heartbeat interval {seconds}")))
        })
        .transpose()
}

/// A license key selected with [`LICENSE_KEY_COLUMNS`](crate::storage::columns::LICENSE_KEY_COLUMNS).
pub fn license_key(row: &impl Columns) -> Result<LicenseKey> {
    license_key_after(row, 0)
}

/// A license key whose [`LICENSE_KEY_COLUMNS`](crate::storage::columns::LICENSE_KEY_COLUMNS)
/// start at column `first`.
pub fn license_key_after(row: &impl Columns, first: usize) -> Result<LicenseKey> {
    let row = &Offset { row, first };
    let source = row.text(5)?;
    Ok(LicenseKey {
        id: LicenseKeyId::from(row.text(0)?),
        business_id: BusinessId::from(row.text(1)?),
        key: row.text(2)?,
        customer_id: CustomerId::from(row.text(3)?),
        product_id: ProductId::from(row.text(4)?),
        source: KeySource::parse(&source).ok_or_else(|| corrupt(format!("key source {source}")))?,
        activations_limit: row.int_or_null(6)?.map(count).transpose()?,
        instances_count: count(row.int(7)?)?,
        disabled: row.flag(8)?,
        expires_at: row.int_or_null(9)?.map(timestamp).transpose()?,
        payment_id: row.text_or_null(10)?,
        subscription_id: row.text_or_null(11)?,
        created_at: timestamp(row.int(12)?)?,
        heartbeat_interval: heartbeat_interval(row.int_or_null(13)?)?,
        seats: match (row.text_or_null(14)?, row.text_or_null(15)?) {
            (Some(account), Some(license)) => Some(SeatBinding {
                account_id: AccountId::from_stored(account).map_err(corrupt)?,
                license_id: LicenseId::from_stored(license).map_err(corrupt)?,
            }),
            _ => None,
        },
    })
}

/// The columns of a row from `first` on, numbered from 0.
struct Offset<'a, R> {
    row: &'a R,
    first: usize,
}

impl<R: Columns> Columns for Offset<'_, R> {
    fn text(&self, column: usize) -> Result<String> {
        self.row.text(self.first + column)
    }
    fn text_or_null(&self, column: usize) -> Result<Option<String>> {
        self.row.text_or_null(self.first + column)
    }
    fn int(&self, column: usize) -> Result<i64> {
        self.row.int(self.first + column)
    }
    fn int_or_null(&self, column: usize) -> Result<Option<i64>> {
        self.row.int_or_null(self.first + column)
    }
    fn flag(&self, column: usize) -> Result<bool> {
        self.row.flag(self.first + column)
    }
    fn bytes(&self, column: usize) -> Result<Vec<u8>> {
        self.row.bytes(self.first + column)
    }
    fn quantity(&self, column: usize) -> Result<Quantity> {
        self.row.quantity(self.first + column)
    }
    fn quantity_or_null(&self, column: usize) -> Result<Option<Quantity>> {
        self.row.quantity_or_null(self.first + column)
    }
    fn decimal(&self, column: usize) -> Result<Decimal> {
        self.row.decimal(self.first + column)
    }
    fn digest_matches(&self, column: usize, digest: KeyDigest) -> Result<bool> {
        self.row.digest_matches(self.first + column, digest)
    }
}

/// A license key selected with
/// [`license_key_columns_at`](crate::storage::columns::license_key_columns_at): its live
/// instances counted, and a bound key's limit the seats its pair has then.
pub fn license_key_at(row: &impl Columns) -> Result<LicenseKey> {
    let mut key = license_key(row)?;
    key.instances_count = key.instances_count.saturating_sub(count(row.int(16)?)?);
    if key.seats.is_some() {
        key.activations_limit = Some(row.quantity_or_null(17)?.map_or(0, seats_in));
    }
    Ok(key)
}

/// An instance selected with [`INSTANCE_COLUMNS`](crate::storage::columns::INSTANCE_COLUMNS).
pub fn instance(row: &impl Columns) -> Result<Instance> {
    Ok(Instance {
        id: InstanceId::from(row.text(0)?),
        business_id: BusinessId::from(row.text(1)?),
        license_key_id: LicenseKeyId::from(row.text(2)?),
        name: row.text(3)?,
        created_at: timestamp(row.int(4)?)?,
        fingerprint: row.text_or_null(5)?,
        last_heartbeat_at: row.int_or_null(6)?.map(timestamp).transpose()?,
        heartbeat_expires_at: row.int_or_null(7)?.map(timestamp).transpose()?,
    })
}

/// The principal of an API key found by `digest`, from `business_id, digest, read_only,
/// brand_id`: `None` if the stored digest is not `digest`.
pub fn principal(row: &impl Columns, digest: KeyDigest) -> Result<Option<Principal>> {
    if !row.digest_matches(1, digest)? {
        return Ok(None);
    }
    Ok(Some(Principal {
        business_id: BusinessId::from(row.text(0)?),
        read_only: row.flag(2)?,
        brand_id: row.text(3)?,
    }))
}

/// A signing key selected with
/// [`SIGNING_KEY_COLUMNS`](crate::storage::columns::SIGNING_KEY_COLUMNS).
pub fn signing_key(row: &impl Columns) -> Result<StoredSigningKey> {
    Ok(StoredSigningKey {
        id: SigningKeyId::from(row.text(0)?),
        business_id: BusinessId::from(row.text(1)?),
        public_key: row.bytes(2)?,
        private_key: row.bytes(3)?,
        active: row.flag(4)?,
        created_at: timestamp(row.int(5)?)?,
    })
}

/// An API key as [`LIST_API_KEYS`](crate::storage::columns::LIST_API_KEYS) lists it.
pub fn api_key_info(row: &impl Columns) -> Result<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: ApiKeyId::from(row.text(0)?),
        business: row.text(1)?,
        read_only: row.flag(2)?,
        created_at: timestamp(row.int(3)?)?,
    })
}

/// What validation needs of a key, from `disabled, expires_at, has_instance`.
pub fn key_validity(row: &impl Columns) -> Result<KeyValidity> {
    Ok(KeyValidity {
        disabled: row.flag(0)?,
        expires_at: row.int_or_null(1)?.map(timestamp).transpose()?,
        has_instance: row.flag(2)?,
    })
}

/// An entry selected with [`ENTRY_COLUMNS`](crate::storage::columns::ENTRY_COLUMNS).
pub fn listed_entry(row: &impl Columns) -> Result<ListedEntry> {
    Ok(ListedEntry {
        seq: row.int(0)?,
        entry: LedgerEntry {
            account_id: AccountId::from_stored(row.text(1)?).map_err(corrupt)?,
            license_id: LicenseId::from_stored(row.text(2)?).map_err(corrupt)?,
            quantity: row.quantity(3)?,
            effective_from: timestamp(row.int(4)?)?,
            metadata: (row.text_or_null(5)?).map(|m| metadata(&m)).transpose()?,
            created_at: timestamp(row.int(6)?)?,
        },
    })
}

/// An entry after a new one, from columns `seq, effective_from, absolute` from `first`
/// on; its absolute quantity is the stored one with the pair's `shifts`.
pub fn later_entry(row: &impl Columns, first: usize, shifts: &[Shift]) -> Result<LaterEntry> {
    let position = Position {
        at: row.int(first + 1)?,
        seq: row.int(first)?,
    };
    let stored = row.decimal(first + 2)?;
    Ok(LaterEntry {
        seq: position.seq,
        effective_from: timestamp(position.at)?,
        absolute: shifted(stored, position, shifts)
            .ok_or_else(|| corrupt(format!("shifted quantity {stored} out of range")))?,
    })
}

/// A shift from columns `from_at, from_seq, to_at, to_seq, delta`, from `first` on.
pub fn shift(row: &impl Columns, first: usize) -> Result<Shift> {
    Ok(Shift {
        from: Position {
            at: row.int(first)?,
            seq: row.int(first + 1)?,
        },
        to: Position {
            at: row.int(first + 2)?,
            seq: row.int(first + 3)?,
        },
        delta: row.decimal(first + 4)?,
    })
}

/// `(position, stored absolute)` from columns `effective_from, seq, absolute`, from
/// `first` on.
pub fn stored_at(row: &impl Columns, first: usize) -> Result<(Position, Decimal)> {
    let position = Position {
        at: row.int(first)?,
        seq: row.int(first + 1)?,
    };
    Ok((position, row.decimal(first + 2)?))
}

/// `(effective_from, absolute)` from columns `first` and `first + 1`.
pub fn absolute_at(row: &impl Columns, first: usize) -> Result<(Timestamp, Quantity)> {
    Ok((timestamp(row.int(first)?)?, row.quantity(first + 1)?))
}

/// An instant read back from the database.
pub fn timestamp(micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros).ok_or_else(|| corrupt(format!("instant {micros} out of range")))
}

/// Metadata from the JSON text a column stores.
fn metadata(text: &str) -> Result<Metadata> {
    serde_json::from_str(text)
        .map(Metadata::from_stored)
        .map_err(corrupt)
}

/// A webhook endpoint selected with
/// [`WEBHOOK_COLUMNS`](crate::storage::columns::WEBHOOK_COLUMNS).
pub fn webhook_endpoint(row: &impl Columns) -> Result<Endpoint> {
    let types: Vec<String> = serde_json::from_str(&row.text(5)?).map_err(corrupt)?;
    let filter_types = types
        .iter()
        .map(|t| EventType::parse(t).ok_or_else(|| corrupt(format!("event type `{t}`"))))
        .collect::<Result<_>>()?;
    Ok(Endpoint {
        id: WebhookId::from(row.text(0)?),
        business_id: BusinessId::from(row.text(1)?),
        url: WebhookUrl::from_stored(row.text(2)?),
        description: row.text(3)?,
        disabled: row.flag(4)?,
        filter_types,
        headers: WebhookHeaders::from_stored(serde_json::from_str(&row.text(6)?).map_err(corrupt)?),
        metadata: metadata(&row.text(7)?)?,
        rate_limit: match row.int_or_null(8)? {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .and_then(RateLimit::new)
                    .ok_or_else(|| corrupt(format!("rate limit {n}")))?,
            ),
        },
        secret: row.bytes(9)?,
        idempotency_key: row.text_or_null(10)?,
        idempotency_digest: row.bytes(11)?,
        created_at: timestamp(row.int(12)?)?,
        updated_at: timestamp(row.int(13)?)?,
    })
}

/// A stored value that does not decode: the database holds something the server never writes.
pub fn corrupt(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("unreadable stored value: {error}"))
}

fn count(value: i64) -> Result<u32> {
    u32::try_from(value).map_err(corrupt)
}

/// A webhook message selected with [`MESSAGE_COLUMNS`](crate::storage::columns::MESSAGE_COLUMNS).
pub fn message(row: &impl Columns) -> Result<Message> {
    let event_type = row.text(2)?;
    let status = row.text(5)?;
    Ok(Message {
        seq: row.int(9)?,
        id: MessageId::from(row.text(0)?),
        endpoint_id: WebhookId::from(row.text(1)?),
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| corrupt(format!("event type `{event_type}`")))?,
        body: row.text(3)?,
        created_at: timestamp(row.int(4)?)?,
        status: MessageStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("message status `{status}`")))?,
        tries: u32::try_from(row.int(6)?).map_err(corrupt)?,
        next_attempt_at: row.int_or_null(7)?.map(timestamp).transpose()?,
        attempts: serde_json::from_str(&row.text(8)?).map_err(corrupt)?,
    })
}

/// A console session selected with [`SESSION_COLUMNS`](crate::storage::columns::SESSION_COLUMNS).
pub fn console_session(row: &impl Columns) -> Result<ConsoleSession> {
    let digest = |column| -> Result<[u8; 32]> {
        row.bytes(column)?
            .try_into()
            .map_err(|_| corrupt("a digest that is not 32 bytes"))
    };
    Ok(ConsoleSession {
        digest: SessionDigest(digest(0)?),
        api_key: KeyDigest(digest(1)?),
        csrf_token: row.text(2)?,
        created_at: timestamp(row.int(3)?)?,
        last_seen_at: timestamp(row.int(4)?)?,
    })
}

/// The overview's counts, in [`Overview`]'s order.
pub fn overview(row: &impl Columns) -> Result<Overview> {
    let n = |column| {
        row.int(column)
            .and_then(|v| u64::try_from(v).map_err(corrupt))
    };
    Ok(Overview {
        customers: n(0)?,
        keys_active: n(1)?,
        keys_expired: n(2)?,
        keys_disabled: n(3)?,
        activations_last_day: n(4)?,
        ledger_pairs: n(5)?,
    })
}

/// An (account, license) pair from its first two columns.
pub fn pair(row: &impl Columns) -> Result<(AccountId, LicenseId)> {
    let account = AccountId::from_stored(row.text(0)?).map_err(corrupt)?;
    let license = LicenseId::from_stored(row.text(1)?).map_err(corrupt)?;
    Ok((account, license))
}
