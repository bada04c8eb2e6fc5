//! The one interface both backends implement: the store's traits, what their calls
//! return, and how to reach the database.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::auth::{ApiKeyInfo, Caller, KeyDigest, Principal};
use crate::domain::catalog::{Activation, Customer, Instance, LicenseKey, Product, ProductPatch};
use crate::domain::console::{ConsoleSession, Overview, SessionDigest};
use crate::domain::delivery::{Message, MessageStatus, Outcome};
use crate::domain::entry::{LedgerEntry, NewEntry};
use crate::domain::ids::{
    AccountId, ApiKeyId, BusinessId, BusinessName, CustomerId, InstanceId, InstanceName, KeyString,
    LicenseId, LicenseKeyId, MessageId, ProductId, SigningKeyId, WebhookId,
};
use crate::domain::license::{KeyPatch, KeyStatus};
use crate::domain::metadata::Metadata;
use crate::domain::quantity::Quantity;
use crate::domain::seats::Fingerprint;
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{Endpoint, EndpointPatch};

use super::error::Result;
use super::listing::{KeyFilter, ListEntries, ListedEntry, PageRequest};

/// The outcome of adding a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Created(LedgerEntry),
    /// A repeat of an earlier request with the same idempotency key: its original response.
    Replayed(LedgerEntry),
}

/// Businesses, API keys and what the server needs at start.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// The principal an API key digest belongs to, if any.
    async fn authenticate(&self, digest: KeyDigest) -> Result<Option<Principal>>;
    /// Creates the business if no business has that name; returns its id.
    async fn ensure_business(&self, name: &BusinessName) -> Result<BusinessId>;
    /// Creates an API key; returns its id.
    async fn create_api_key(
        &self,
        business_id: &BusinessId,
        digest: KeyDigest,
        read_only: bool,
    ) -> Result<ApiKeyId>;
    /// Every API key, by business name, then oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>>;
    /// Deletes the API key with that id; false if there is none.
    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool>;
    /// On a database that has never been bootstrapped and holds no business, creates
    /// business `default` with an admin key of that digest. True if it did. Runs once
    /// even when several processes start together.
    async fn bootstrap(&self, digest: KeyDigest) -> Result<bool>;
    /// A random secret kept in the database, shared by every process (signs page tokens).
    async fn token_secret(&self) -> Result<Vec<u8>>;
    /// The business the license key with that key string belongs to, if any.
    async fn business_of_key(&self, key: &KeyString) -> Result<Option<BusinessId>>;
    /// Whether a key other than `meant` exists that reads as `meant` in capitals with `I`
    /// and `L` read as `1` and `O` as `0` (how a typed key of the generated shape is read),
    /// from an index of the keys so read.
    async fn key_read_as(&self, meant: &KeyString) -> Result<bool>;
    /// The business created first (`default` on a bootstrapped server), if any.
    async fn first_business(&self) -> Result<Option<BusinessId>>;
    /// The id of the business with that name, if there is one.
    async fn business_id(&self, name: &BusinessName) -> Result<Option<BusinessId>>;
    /// The signing keys of one business, or of every business, oldest first.
    async fn signing_keys(&self, business_id: Option<&BusinessId>)
    -> Result<Vec<StoredSigningKey>>;
    /// The businesses without an active signing key.
    async fn businesses_without_signing_key(&self) -> Result<Vec<BusinessId>>;
    /// Makes `key` its business's active signing key, the others inactive, in one
    /// transaction; with `only_if_none`, adds nothing (false) when the business has one.
    async fn add_signing_key(&self, key: &StoredSigningKey, only_if_none: bool) -> Result<bool>;
    /// Replaces how a signing key's private half is stored (sealed under a master key).
    async fn reseal_signing_key(&self, id: &SigningKeyId, private_key: &[u8]) -> Result<()>;
}

/// A signing key as the database keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub id: SigningKeyId,
    pub business_id: BusinessId,
    pub public_key: Vec<u8>,
    /// In clear or sealed, as `domain::signing::stored_private_key` writes it.
    pub private_key: Vec<u8>,
    pub active: bool,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("id", &self.id)
            .field("business_id", &self.business_id)
            .finish_non_exhaustive()
    }
}

/// What operators watch.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;
    /// Connections open to the database: how many are idle, and how many are shared.
    fn connections(&self) -> PoolUsage;
    /// Writes a whole copy of the database to the file `to`, blocking until it is written;
    /// its size in bytes. SQLite only: PostgreSQL is backed up with its own tools.
    fn back_up(&self, to: &std::path::Path) -> Result<u64>;
    /// Interrupts the backup being written, if any, and refuses those asked for after: for a
    /// server that stops.
    fn stop_backups(&self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub open: usize,
    pub idle: usize,
    /// Held for good by the point reads that share them (PostgreSQL): neither idle nor
    /// taken by one request.
    pub shared: usize,
}

impl PoolUsage {
    /// Connections taken by a request or a background job each.
    pub fn in_use(&self) -> usize {
        self.open.saturating_sub(self.idle + self.shared)
    }
}

/// The license-updates ledger.
///
/// A write and a quantity act for a [`Caller`]. Given an API key not yet checked, the
/// backend checks it by [`admit`](crate::domain::auth::admit)'s rule with the call's own
/// first statement (PostgreSQL: in the same round trip, except for a write with an
/// idempotency key, whose key is checked first; SQLite: on the same connection) rather
/// than in a call of its own, and fails with
/// [`StorageError::Refused`](crate::storage::StorageError::Refused).
#[async_trait]
pub trait LedgerStore: AccountStore {
    /// Resolves and writes an entry atomically, with its idempotency key if it has one.
    async fn append_entry(&self, caller: &Caller, entry: &NewEntry) -> Result<Appended>;
    /// One page of entries; asks for `limit` rows.
    async fn list_entries(
        &self,
        business_id: &BusinessId,
        query: &ListEntries,
    ) -> Result<Vec<ListedEntry>>;
    /// Replaces the metadata of the latest entry of the pair at exactly `at`.
    async fn update_metadata(
        &self,
        business_id: &BusinessId,
        pair: (&AccountId, &LicenseId),
        at: Timestamp,
        metadata: &Metadata,
    ) -> Result<Option<LedgerEntry>>;
    /// The governing entry's instant and absolute quantity at `at`, if any entry is in effect.
    async fn quantity_at(
        &self,
        caller: &Caller,
        pair: (&AccountId, &LicenseId),
        at: Timestamp,
    ) -> Result<Option<(Timestamp, Quantity)>>;
    /// The quantity in effect at `start`, then `(instant, absolute)` of every entry strictly
    /// between `start` and `end`, in ledger order.
    async fn history(
        &self,
        business_id: &BusinessId,
        pair: (&AccountId, &LicenseId),
        start: Timestamp,
        end: Timestamp,
    ) -> Result<(Quantity, Vec<(Timestamp, Quantity)>)>;
}

/// Customers, products, license keys and their activations.
#[async_trait]
pub trait LicenseStore: Send + Sync {
    async fn create_customer(&self, customer: &Customer) -> Result<()>;
    async fn customer(&self, business_id: &BusinessId, id: &CustomerId)
    -> Result<Option<Customer>>;
    async fn list_customers(
        &self,
        business_id: &BusinessId,
        email: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<Customer>>;

    async fn create_product(&self, product: &Product) -> Result<()>;
    async fn product(&self, business_id: &BusinessId, id: &ProductId) -> Result<Option<Product>>;
    async fn list_products(
        &self,
        business_id: &BusinessId,
        page: PageRequest,
    ) -> Result<Vec<Product>>;
    async fn update_product(
        &self,
        business_id: &BusinessId,
        id: &ProductId,
        patch: ProductPatch,
    ) -> Result<Option<Product>>;

    /// Fails with `Duplicate` if the key string exists in any business. `brand_id` is
    /// the business's brand, which the key's event names.
    async fn create_license_key(&self, key: &LicenseKey, brand_id: &str) -> Result<()>;
    async fn license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
    ) -> Result<Option<LicenseKey>>;
    /// The key with that key string, in any business: what an app holding the key may
    /// learn about it.
    async fn license_key_with_key(&self, key: &KeyString) -> Result<Option<LicenseKey>>;
    async fn list_license_keys(
        &self,
        business_id: &BusinessId,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> Result<Vec<LicenseKey>>;
    /// Applies the patch under a lock on the key, so it cannot race an activation.
    async fn update_license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
        patch: KeyPatch,
        brand_id: &str,
    ) -> Result<Option<LicenseKey>>;

    async fn instance(&self, business_id: &BusinessId, id: &InstanceId)
    -> Result<Option<Instance>>;
    async fn list_instances(
        &self,
        business_id: &BusinessId,
        license_key_id: Option<&LicenseKeyId>,
        page: PageRequest,
    ) -> Result<Vec<Instance>>;
    async fn rename_instance(
        &self,
        business_id: &BusinessId,
        id: &InstanceId,
        name: &InstanceName,
    ) -> Result<Option<Instance>>;

    /// Adds an instance with that new id and name to the key with that key string, if the
    /// activation rules allow, atomically with its count; first deletes the key's dead
    /// instances. A fingerprint of one of the key's live instances answers that instance
    /// instead, beaten, and takes no seat. A key bound to seats is checked against its
    /// pair's quantity in the state the activation commits into.
    async fn activate(
        &self,
        key: &KeyString,
        instance_id: &InstanceId,
        name: &InstanceName,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<Activation>;
    /// Removes the key's instance; `KeyNotFound` if the key or its instance does not exist.
    async fn deactivate(&self, key: &KeyString, instance_id: &InstanceId) -> Result<()>;
    /// A heartbeat of the key's instance: `KeyNotFound` if the key or the instance is
    /// unknown, `InstanceDead` if the instance missed its deadline.
    async fn heartbeat(&self, key: &KeyString, instance_id: &InstanceId) -> Result<Heartbeat>;
    /// What validating the key with that key string needs, in any business.
    async fn key_validity(
        &self,
        key: &KeyString,
        instance_id: Option<&InstanceId>,
    ) -> Result<Option<KeyValidity>>;
    /// Deletes the instances dead at `now` (each with its key's count) and forgets the ids
    /// of instances gone for longer than the retention; how many instances it deleted.
    /// Several sweepers on one database share the work without waiting on each other.
    async fn sweep(&self, now: Timestamp) -> Result<u64>;
}

/// A license key's status fields, and whether the instance named with it (if any) is one
/// of its current instances: live, and within the key's seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValidity {
    pub disabled: bool,
    pub expires_at: Option<Timestamp>,
    pub has_instance: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub validity: KeyValidity,
    /// None when the key has no heartbeat interval.
    pub heartbeat_expires_at: Option<Timestamp>,
}

impl KeyValidity {
    pub fn valid_at(&self, now: Timestamp) -> bool {
        KeyStatus::of(self.disabled, self.expires_at, now) == KeyStatus::Active && self.has_instance
    }
}

/// Webhook endpoints: where a business's events are delivered.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds the endpoint. One with an idempotency key that an endpoint of its business
    /// already has adds nothing and answers that endpoint instead.
    async fn create_webhook(&self, endpoint: &Endpoint) -> Result<Endpoint>;
    async fn webhook(&self, business_id: &BusinessId, id: &WebhookId) -> Result<Option<Endpoint>>;
    /// Up to `limit` endpoints, oldest first, after the one created at `after`'s instant
    /// with `after`'s id (endpoints are ordered by creation, then id).
    async fn list_webhooks(
        &self,
        business_id: &BusinessId,
        after: Option<(Timestamp, &WebhookId)>,
        limit: u32,
    ) -> Result<Vec<Endpoint>>;
    /// Applies the patch under a lock on the endpoint; `Invalid` if the patch breaks a
    /// rule of the endpoint as a whole (too many headers).
    async fn update_webhook(
        &self,
        business_id: &BusinessId,
        id: &WebhookId,
        patch: EndpointPatch,
    ) -> Result<Option<Endpoint>>;
    /// Deletes the endpoint; false if the business has none with that id.
    async fn delete_webhook(&self, business_id: &BusinessId, id: &WebhookId) -> Result<bool>;
    /// Every endpoint's id and secret as stored, in every business.
    async fn webhook_secrets(&self) -> Result<Vec<(WebhookId, Vec<u8>)>>;
    /// Replaces how an endpoint's secret is stored (sealed under a master key).
    async fn reseal_webhook_secret(&self, id: &WebhookId, secret: &[u8]) -> Result<()>;
}

/// The outbox: the messages each change recorded for its business's endpoints, and the
/// leases that let one process at a time deliver an endpoint's messages, in order.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Leases to `owner`, until `until`, up to `limit` enabled endpoints that have a
    /// message due at `now` and no unexpired lease of another owner.
    async fn lease_endpoints(
        &self,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Endpoint>>;
    /// Up to `limit` of the endpoint's messages due at `now`, oldest first, and the lease
    /// renewed until `until`; `None` if `owner` no longer holds the lease.
    async fn due_messages(
        &self,
        endpoint: &WebhookId,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Option<Vec<Message>>>;
    /// Records what attempts got under the lease `owner` took or last renewed until
    /// `until`; `disable` turns the endpoint off (it answered 410). False, and nothing
    /// recorded, if that lease is no longer held: it ended and the endpoint was leased
    /// again (by another process, or anew by this one), or the endpoint is gone.
    async fn record_attempts(
        &self,
        endpoint: &WebhookId,
        (owner, until): (&str, Timestamp),
        outcomes: &[Outcome],
        disable: bool,
    ) -> Result<bool>;
    /// Gives up `owner`'s lease on the endpoint.
    async fn release_endpoint(&self, endpoint: &WebhookId, owner: &str) -> Result<()>;
    /// The endpoint's most recent messages, newest first, with that status if given, older
    /// than the message `before` if given.
    async fn messages(
        &self,
        business_id: &BusinessId,
        endpoint: &WebhookId,
        status: Option<MessageStatus>,
        before: Option<&MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>>;
    /// Makes the message due at `now`. A delivered or failed one gets one more attempt;
    /// a pending one keeps its place in its schedule (`attempts`: how many the schedule
    /// gives). `None` if there is no such message.
    async fn retry_message(
        &self,
        business_id: &BusinessId,
        endpoint: &WebhookId,
        id: &MessageId,
        now: Timestamp,
        attempts: u32,
    ) -> Result<Option<Message>>;
    /// When the oldest message still pending for an enabled endpoint was recorded.
    async fn oldest_undelivered(&self) -> Result<Option<Timestamp>>;
    /// Deletes delivered and failed messages recorded before `before`; how many.
    async fn forget_messages(&self, before: Timestamp) -> Result<u64>;
}

/// The console's sessions, and the figures of its overview.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    async fn create_session(&self, session: &ConsoleSession) -> Result<()>;
    /// The session with that digest if it was used since `idle_since(now)`; its last use
    /// becomes `now` (written only when a minute old).
    async fn session(
        &self,
        digest: &SessionDigest,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>>;
    async fn delete_session(&self, digest: &SessionDigest) -> Result<()>;
    /// Deletes the sessions not used since `idle_since`; how many.
    async fn forget_sessions(&self, idle_since: Timestamp) -> Result<u64>;
    /// The business's counts at `now`.
    async fn overview(&self, business_id: &BusinessId, now: Timestamp) -> Result<Overview>;
    /// Up to `limit` of the ledger's (account, license) pairs, of `account` if given,
    /// after the pair `after` if given, in order.
    async fn ledger_pairs(
        &self,
        business_id: &BusinessId,
        account: Option<&AccountId>,
        after: Option<(&AccountId, &LicenseId)>,
        limit: u32,
    ) -> Result<Vec<(AccountId, LicenseId)>>;
}

pub trait Store:
    AccountStore + LedgerStore + LicenseStore + WebhookStore + OutboxStore + ConsoleStore + HealthStore
{
}
impl<
    T: AccountStore
        + LedgerStore
        + LicenseStore
        + WebhookStore
        + OutboxStore
        + ConsoleStore
        + HealthStore,
> Store for T
{
}

/// How to reach and use the database.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub url: String,
    /// How long a request may wait for the database before it fails with 503.
    pub timeout: Duration,
    /// Connections to PostgreSQL per process.
    pub max_connections: u32,
    /// Whether a database that has never had the schema gets it. The commands that only
    /// manage keys refuse one instead: a mistyped URL would otherwise put the schema, and
    /// a key the server never sees, into some other database.
    pub create_schema: bool,
}
