//! Customers, products, license keys and instances on PostgreSQL. Activation,
//! deactivation and patches lock the key's row (`FOR UPDATE`) for their transaction, so
//! the activation limit holds across every process sharing the database; a CHECK
//! constraint guards it as well. Activations of one key that arrive while it is locked
//! are made together in the next transaction (see `batches`).

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::batches::Batches;
use super::ledger::{GOVERNING, LOCK_PAIR};
use super::outbox::{RECORD, Recorded, subscribed};
use super::pool::execute;
use super::pool::{query, query_one};
use super::tx::Tx;
use super::values::params;
use crate::domain::catalog::{
    Activation, Customer, Instance, LicenseKey, Locale, Product, ProductPatch,
};
use crate::domain::events::Event;
use crate::domain::ids::{
    BusinessId, CustomerId, InstanceId, InstanceName, KeyString, LicenseKeyId, ProductId,
};
use crate::domain::license::KeyPatch;
use crate::domain::seats::{
    DEPARTED_RETENTION_MICROS, Departure, Fingerprint, SeatBinding, has_seat, seats_in,
};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::EventType;
use crate::storage::columns::{
    CUSTOMER_COLUMNS, INSTANCE_COLUMNS, LICENSE_KEY_COLUMNS, PRODUCT_COLUMNS,
};
use crate::storage::columns::{Shifts, duration_columns, json_text, license_key_columns_at};
use crate::storage::error::{Result, StorageError};
use crate::storage::listing::{KeyFilter, PageRequest, list_license_keys};
use crate::storage::rows::timestamp;
use crate::storage::rows::{self, Columns};
use crate::storage::store::{Heartbeat, KeyValidity, LicenseStore};
use deadpool_postgres::{ClientWrapper, Pool};
use tokio_postgres::Row;

/// A key's columns at the instant parameter `$n` binds, read through a subquery that hides
/// the instant from the planner. Seeing it, PostgreSQL estimates the key's dead instances
/// from it (none, at the current instant), finds the generic plan costlier, and so plans
/// the statement anew on every execution: three times slower on a database where one key
/// has many instances. The plan is the same either way.
fn key_columns_at(n: usize) -> String {
    license_key_columns_at(&format!("(SELECT ${n}::bigint)"), Shifts::Postgres)
}

/// The key with key string `$1` at instant `$2`.
pub(super) fn key_by_string() -> String {
    format!(
        "SELECT {} FROM license_keys WHERE key = $1",
        key_columns_at(2)
    )
}

/// A key's columns, then whether its business has an enabled endpoint, read with the
/// key's lock: a write records its events only then, as the ledger's writes do, so that a
/// business without endpoints does not pay for the outbox's statement.
static LOCKED_KEY_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{LICENSE_KEY_COLUMNS}, {}",
        subscribed!("license_keys.business_id")
    )
});

/// A key read by [`LOCKED_KEY_COLUMNS`] (its 16 columns, then the flag), and whether its
/// business has an endpoint.
fn locked_key(row: &Row) -> Result<(LicenseKey, bool)> {
    Ok((rows::license_key(row)?, row.flag(16)?))
}

/// The events a write records: none in a business that had no enabled endpoint when the
/// write took its lock.
fn to_record(events: Vec<Event>, subscribed: bool) -> Vec<Event> {
    if subscribed { events } else { Vec::new() }
}

/// The key with that key string, its row locked until the transaction ends, and whether
/// its business has an endpoint. `BEGIN` travels with it.
async fn begin_and_lock_key(tx: &Tx, key: &KeyString) -> Result<Option<(LicenseKey, bool)>> {
    let sql = format!(
        "SELECT {} FROM license_keys WHERE key = $1 FOR UPDATE",
        *LOCKED_KEY_COLUMNS
    );
    tx.begin_with(&sql, &[&key.as_str()])
        .await?
        .first()
        .map(locked_key)
        .transpose()
}

/// A new key (`$1` to `$16`), unless its key string is taken; its one row says whether
/// its business has an endpoint.
const INSERT_KEY: &str = concat!(
    "INSERT INTO license_keys (id, business_id, key, customer_id, product_id, source,
         activations_limit, instances_count, disabled, expires_at, payment_id, subscription_id,
         created_at, heartbeat_interval, seats_account_id, seats_license_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT (key) DO NOTHING RETURNING ",
    subscribed!("$2")
);

const SAVE_KEY_STATE: &str = "UPDATE license_keys SET activations_limit = $2, instances_count = $3,
         disabled = $4, expires_at = $5, heartbeat_interval = $6, seats_account_id = $7,
         seats_license_id = $8
     WHERE id = $1";

/// Saves the key's state, records the events, and commits.
async fn save_key_state(tx: &mut Tx, key: &LicenseKey, events: Vec<Event>) -> Result<()> {
    tx.commit_with_events(
        SAVE_KEY_STATE,
        &[
            &key.id,
            &key.stored_limit().map(i64::from),
            &i64::from(key.instances_count),
            &key.disabled,
            &key.expires_at.map(Timestamp::micros),
            &key.heartbeat_interval.map(|i| i64::from(i.seconds())),
            &key.seats.as_ref().map(|s| s.account_id.as_str()),
            &key.seats.as_ref().map(|s| s.license_id.as_str()),
        ],
        events,
    )
    .await?;
    Ok(())
}

/// Brings a key locked for a write to `now`: deletes its dead instances (recording why
/// they went) and, for a key bound to seats, takes its pair's figure as the limit, read
/// under the pair's lock when `lock_pair` (an activation: no ledger write of the pair can
/// commit between the read and the activation's commit). Returns the events of the
/// deaths, which the write's commit records.
async fn settle(
    tx: &Tx,
    key: &mut LicenseKey,
    now: Timestamp,
    lock_pair: bool,
) -> Result<Vec<Event>> {
    let mut deaths = Vec::new();
    if key.heartbeat_interval.is_some() {
        let sql = format!(
            "WITH gone AS (
                 DELETE FROM license_key_instances WHERE license_key_id = $1 AND heartbeat_expires_at <= $2
                 RETURNING {INSTANCE_COLUMNS}
             ), departed AS (
                 INSERT INTO departed_instances
                     (id, business_id, license_key_id, name, fingerprint, created_at, reason, departed_at)
                 SELECT id, business_id, license_key_id, name, fingerprint, created_at, 'heartbeat', heartbeat_expires_at
                 FROM gone ON CONFLICT (id) DO NOTHING
             )
             SELECT {INSTANCE_COLUMNS} FROM gone"
        );
        let rows = query(tx, &sql, &[&key.id, &now.micros()]).await?;
        deaths = departures(&rows, Departure::Heartbeat, now)?;
        key.instances_count = key
            .instances_count
            .saturating_sub(u32::try_from(deaths.len()).unwrap_or(u32::MAX));
    }
    if let Some(seats) = &key.seats {
        let figure = if lock_pair {
            let (account, license, at) = (
                seats.account_id.as_str(),
                seats.license_id.as_str(),
                now.micros(),
            );
            let pair: [&(dyn ToSql + Sync); 3] = [&key.business_id, &account, &license];
            let read: [&(dyn ToSql + Sync); 4] = [&key.business_id, &account, &license, &at];
            let (_, governing) = tx.two((LOCK_PAIR, &pair), (&GOVERNING, &read)).await?;
            figure_of(governing.first())?
        } else {
            seat_figure(tx, &key.business_id, seats, now).await?
        };
        key.activations_limit = Some(figure);
    }
    Ok(deaths)
}

/// The events of the instances in `rows` (selected with `INSTANCE_COLUMNS`), deleted.
fn departures<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    reason: Departure,
    now: Timestamp,
) -> Result<Vec<Event>> {
    rows.into_iter()
        .map(|row| Ok(Event::instance_deleted(&rows::instance(row)?, reason, now)))
        .collect()
}

/// The seats a pair has at `now`.
async fn seat_figure(
    client: &ClientWrapper,
    business_id: &BusinessId,
    seats: &SeatBinding,
    now: Timestamp,
) -> Result<u32> {
    let governing = query(
        client,
        &GOVERNING,
        &[
            business_id,
            &seats.account_id.as_str(),
            &seats.license_id.as_str(),
            &now.micros(),
        ],
    )
    .await?;
    figure_of(governing.first())
}

/// The seats in the quantity a [`GOVERNING`] read found; none without an entry.
fn figure_of(governing: Option<&Row>) -> Result<u32> {
    let quantity = governing.map(|r| r.quantity(1)).transpose()?;
    Ok(quantity.map_or(0, seats_in))
}

/// Whether a live instance of a settled key has a seat: how many live instances are
/// older, against the key's figure.
async fn has_seat_now(
    client: &ClientWrapper,
    key: &LicenseKey,
    instance_id: &InstanceId,
    created_at: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    if key.seats.is_none() {
        return Ok(true);
    }
    let older = query_one(
        client,
        "SELECT count(*) FROM license_key_instances
         WHERE license_key_id = $1 AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > $2)
           AND (created_at < $3 OR (created_at = $3 AND id < $4))",
        &[&key.id, &now.micros(), &created_at.micros(), &instance_id],
    )
    .await?
    .int(0)?;
    Ok(has_seat(
        older.try_into().unwrap_or(u64::MAX),
        key.activations_limit,
    ))
}

/// The activation answer's customer and product details, after `changes` (named
/// data-modifying statements), in the statement that commits.
fn with_details(changes: &str) -> String {
    format!(
        "WITH {changes}
         SELECT {CUSTOMER_COLUMNS}, (SELECT name FROM products WHERE id = $2)
         FROM customers WHERE id = $1"
    )
}

/// One activation asked for: what `LicenseStore::activate` is given besides the key.
pub(super) struct Activating {
    instance_id: InstanceId,
    name: InstanceName,
    fingerprint: Option<Fingerprint>,
}

/// Activations waiting for their key, by the key string they name.
pub(super) type ActivationBatches = Batches<KeyString, Activating, Activation>;

/// Makes the activations of one key, in one transaction that holds the key's row lock,
/// as if one after another in the order given: each answer is the one it would get
/// alone at that point (a limit reached by an earlier one of the batch refuses a later
/// one, a machine activated earlier in the batch gets its instance back).
async fn activate_all(
    pool: &Pool,
    key: &KeyString,
    requests: &[Activating],
) -> Vec<Result<Activation>> {
    match activate_together(pool, key, requests).await {
        Ok(answers) => answers,
        Err(error) => requests.iter().map(|_| Err(error.clone())).collect(),
    }
}

async fn activate_together(
    pool: &Pool,
    key: &KeyString,
    requests: &[Activating],
) -> Result<Vec<Result<Activation>>> {
    type Answers = Vec<Result<Instance>>;
    let mut tx = Tx::open_on(pool).await?;
    let outcome: Result<(Answers, Option<Details>)> = async {
        let (mut license, subscribed) = begin_and_lock_key(&tx, key)
            .await?
            .ok_or(StorageError::KeyNotFound)?;
        let now = Timestamp::now();
        let mut events = settle(&tx, &mut license, now, true).await?;
        // The machines' live instances (settled: the dead are gone), and whether each is
        // stored (`true`) or made by this batch.
        let fingerprints: Vec<&str> = (requests.iter())
            .filter_map(|r| r.fingerprint.as_ref().map(Fingerprint::as_str))
            .collect();
        let mut machines: HashMap<String, (Instance, bool)> = HashMap::new();
        if !fingerprints.is_empty() {
            let sql = format!(
                "SELECT {INSTANCE_COLUMNS} FROM license_key_instances
                 WHERE license_key_id = $1 AND fingerprint = ANY($2)"
            );
            for row in query(&tx, &sql, &[&license.id, &fingerprints]).await? {
                let instance = rows::instance(&row)?;
                if let Some(fingerprint) = instance.fingerprint.clone() {
                    machines.entry(fingerprint).or_insert((instance, true));
                }
            }
        }
        let mut created = Vec::new();
        let mut beaten = Vec::new();
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let known = (request.fingerprint.as_ref())
                .and_then(|f| machines.get(f.as_str()))
                .cloned();
            let answer = match known {
                Some((known, stored)) => license.reactivate(known, now).inspect(|instance| {
                    if stored {
                        beaten.push(instance.clone());
                    }
                }),
                None => license
                    .activate(
                        request.instance_id.clone(),
                        request.name.as_str().to_owned(),
                        request.fingerprint.clone(),
                        now,
                    )
                    .inspect(|instance| {
                        events.push(Event::instance_created(instance, now));
                        if let Some(fingerprint) = instance.fingerprint.clone() {
                            machines.insert(fingerprint, (instance.clone(), false));
                        }
                        created.push(instance.clone());
                    }),
            };
            answers.push(answer.map_err(StorageError::from));
        }
        if created.is_empty() && beaten.is_empty() {
            // Every one refused: nothing of this transaction stays, as when each is alone.
            return Ok((answers, None));
        }
        let (created, beaten) = (InstanceColumns::of(&created), InstanceColumns::of(&beaten));
        // One round trip, while the key's row is locked: the new instances, the beats of
        // the machines' own, the count, the answers' details, the events, and the commit.
        let rows = tx
            .commit_with_events(
                &with_details(
                    "counted AS (
                         UPDATE license_keys SET instances_count = $3 WHERE id = $4
                     ), created AS (
                         INSERT INTO license_key_instances (id, business_id, license_key_id, name,
                             created_at, fingerprint, last_heartbeat_at, heartbeat_expires_at)
                         SELECT n.id, $5, $4, n.name, n.created_at, n.fingerprint, n.beat, n.expires
                         FROM UNNEST($6::TEXT[], $7::TEXT[], $8::BIGINT[], $9::TEXT[], $10::BIGINT[],
                             $11::BIGINT[]) AS n (id, name, created_at, fingerprint, beat, expires)
                     ), beaten AS (
                         UPDATE license_key_instances i
                         SET last_heartbeat_at = b.beat, heartbeat_expires_at = b.expires
                         FROM UNNEST($12::TEXT[], $13::BIGINT[], $14::BIGINT[]) AS b (id, beat, expires)
                         WHERE i.id = b.id
                     )",
                ),
                &[
                    &license.customer_id,
                    &license.product_id,
                    &i64::from(license.instances_count),
                    &license.id,
                    &license.business_id,
                    &created.ids,
                    &created.names,
                    &created.created_at,
                    &created.fingerprints,
                    &created.beats,
                    &created.expiries,
                    &beaten.ids,
                    &beaten.beats,
                    &beaten.expiries,
                ],
                to_record(events, subscribed),
            )
            .await?;
        let details = rows
            .first()
            .ok_or_else(|| StorageError::Internal("the key's customer vanished".into()))?;
        let details = Details {
            customer: rows::customer(details)?,
            product_id: license.product_id,
            // The column after the customer's.
            product_name: details.text(CUSTOMER_COLUMNS.split(',').count())?,
        };
        Ok((answers, Some(details)))
    }
    .await;
    let (answers, details) = match outcome {
        Ok((answers, None)) => {
            tx.roll_back().await;
            (answers, None)
        }
        outcome => tx.finish(outcome).await?,
    };
    let activation = |instance: Instance| -> Result<Activation> {
        let details = details.clone().ok_or_else(|| {
            StorageError::Internal("an activation made without its details".into())
        })?;
        Ok(Activation {
            instance,
            customer: details.customer,
            product_id: details.product_id,
            product_name: details.product_name,
        })
    };
    Ok((answers.into_iter())
        .map(|answer| answer.and_then(activation))
        .collect())
}

/// What every activation of a key answers besides its instance.
#[derive(Clone)]
struct Details {
    customer: Customer,
    product_id: ProductId,
    product_name: String,
}

/// Instances as arrays of their columns, for `UNNEST`.
struct InstanceColumns<'a> {
    ids: Vec<&'a str>,
    names: Vec<&'a str>,
    created_at: Vec<i64>,
    fingerprints: Vec<Option<&'a str>>,
    beats: Vec<Option<i64>>,
    expiries: Vec<Option<i64>>,
}

impl<'a> InstanceColumns<'a> {
    fn of(instances: &'a [Instance]) -> Self {
        Self {
            ids: instances.iter().map(|i| i.id.as_str()).collect(),
            names: instances.iter().map(|i| i.name.as_str()).collect(),
            created_at: instances.iter().map(|i| i.created_at.micros()).collect(),
            fingerprints: instances.iter().map(|i| i.fingerprint.as_deref()).collect(),
            beats: (instances.iter())
                .map(|i| i.last_heartbeat_at.map(Timestamp::micros))
                .collect(),
            expiries: (instances.iter())
                .map(|i| i.heartbeat_expires_at.map(Timestamp::micros))
                .collect(),
        }
    }
}

const INSERT_PRODUCT: &str = "INSERT INTO products (id, business_id, name, description,
         license_key_activations_limit, license_key_duration_count, license_key_duration_interval,
         license_key_activation_message, metadata, created_at, updated_at, details, heartbeat_interval)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const UPDATE_PRODUCT: &str = "UPDATE products SET name = $3, description = $4,
         license_key_activations_limit = $5, license_key_duration_count = $6,
         license_key_duration_interval = $7, license_key_activation_message = $8, metadata = $9,
         updated_at = $11, details = $12, heartbeat_interval = $13
     WHERE id = $1 AND business_id = $2 AND created_at = $10";

/// A product's columns as stored, for [`INSERT_PRODUCT`] and [`UPDATE_PRODUCT`].
struct ProductColumns<'a> {
    product: &'a Product,
    activations_limit: Option<i64>,
    duration: (Option<i64>, Option<String>),
    metadata: String,
    created_at: i64,
    updated_at: i64,
    details: String,
    heartbeat_interval: Option<i64>,
}

impl<'a> ProductColumns<'a> {
    fn of(product: &'a Product) -> Result<Self> {
        Ok(Self {
            product,
            activations_limit: product.license_key_activations_limit.map(i64::from),
            duration: duration_columns(product.license_key_duration),
            metadata: json_text(&product.metadata)?,
            created_at: product.created_at.micros(),
            updated_at: product.updated_at.micros(),
            details: json_text(&product.details)?,
            heartbeat_interval: product.heartbeat_interval.map(|i| i64::from(i.seconds())),
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.product.id,
            &self.product.business_id,
            &self.product.name,
            &self.product.description,
            &self.activations_limit,
            &self.duration.0,
            &self.duration.1,
            &self.product.license_key_activation_message,
            &self.metadata,
            &self.created_at,
            &self.updated_at,
            &self.details,
            &self.heartbeat_interval,
        ]
    }
}

#[async_trait]
impl LicenseStore for PgStore {
    async fn create_customer(&self, c: &Customer) -> Result<()> {
        let metadata = json_text(&c.metadata)?;
        self.execute(
            "INSERT INTO customers
                 (id, business_id, email, name, phone_number, metadata, created_at, preferred_locale)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &c.id,
                &c.business_id,
                &c.email,
                &c.name,
                &c.phone_number,
                &metadata,
                &c.created_at.micros(),
                &c.preferred_locale.map(Locale::code),
            ],
        )
        .await?;
        Ok(())
    }

    async fn customer(
        &self,
        business_id: &BusinessId,
        id: &CustomerId,
    ) -> Result<Option<Customer>> {
        self.query_opt(
            &format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE business_id = $1 AND id = $2"),
            &[&business_id, &id],
        )
        .await?
        .as_ref()
        .map(rows::customer)
        .transpose()
    }

    async fn list_customers(
        &self,
        business_id: &BusinessId,
        email: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<Customer>> {
        self.query(
            &format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers
                 WHERE business_id = $1 AND ($2::TEXT IS NULL OR lower(email COLLATE \"C\") = lower($2 COLLATE \"C\"))
                 ORDER BY {} LIMIT $3 OFFSET $4",
                page.order()
            ),
            &[&business_id, &email, &page.limit(), &page.offset()],
        )
        .await?
        .iter()
        .map(rows::customer)
        .collect()
    }

    async fn create_product(&self, product: &Product) -> Result<()> {
        let columns = ProductColumns::of(product)?;
        self.execute(INSERT_PRODUCT, &columns.params()).await?;
        Ok(())
    }

    async fn product(&self, business_id: &BusinessId, id: &ProductId) -> Result<Option<Product>> {
        self.query_opt(&product_by_id(""), &[&business_id, &id])
            .await?
            .as_ref()
            .map(rows::product)
            .transpose()
    }

    async fn list_products(
        &self,
        business_id: &BusinessId,
        page: PageRequest,
    ) -> Result<Vec<Product>> {
        self.query(
            &format!(
                "SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = $1
                 ORDER BY {} LIMIT $2 OFFSET $3",
                page.order()
            ),
            &[&business_id, &page.limit(), &page.offset()],
        )
        .await?
        .iter()
        .map(rows::product)
        .collect()
    }

    async fn update_product(
        &self,
        business_id: &BusinessId,
        id: &ProductId,
        patch: ProductPatch,
    ) -> Result<Option<Product>> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let sql = product_by_id("FOR UPDATE");
            let rows = tx.begin_with(&sql, &[&business_id, &id]).await?;
            let Some(mut product) = rows.first().map(rows::product).transpose()? else {
                return Ok(None);
            };
            patch.apply(&mut product, Timestamp::now());
            let columns = ProductColumns::of(&product)?;
            tx.commit_with(UPDATE_PRODUCT, &columns.params()).await?;
            Ok(Some(product))
        }
        .await;
        tx.finish(outcome).await
    }

    async fn create_license_key(&self, k: &LicenseKey, brand_id: &str) -> Result<()> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let inserted = tx
                .begin_with(
                    INSERT_KEY,
                    &[
                        &k.id,
                        &k.business_id,
                        &k.key,
                        &k.customer_id,
                        &k.product_id,
                        &k.source.as_str(),
                        &k.stored_limit().map(i64::from),
                        &i64::from(k.instances_count),
                        &k.disabled,
                        &k.expires_at.map(Timestamp::micros),
                        &k.payment_id,
                        &k.subscription_id,
                        &k.created_at.micros(),
                        &k.heartbeat_interval.map(|i| i64::from(i.seconds())),
                        &k.seats.as_ref().map(|s| s.account_id.as_str()),
                        &k.seats.as_ref().map(|s| s.license_id.as_str()),
                    ],
                )
                .await?;
            let Some(row) = inserted.first() else {
                return Err(StorageError::Duplicate(
                    "this license key already exists".into(),
                ));
            };
            // As for every key write, the event is rendered and recorded only in a
            // business with an endpoint; otherwise `finish` commits.
            if row.flag(0)? {
                let created =
                    Event::license_key(EventType::LicenseKeyCreated, k, brand_id, k.created_at);
                let recorded = Recorded::of(vec![created]);
                tx.commit_with(RECORD, &recorded.params()).await?;
            }
            Ok(())
        }
        .await;
        tx.finish(outcome).await
    }

    async fn license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
    ) -> Result<Option<LicenseKey>> {
        let sql = format!(
            "SELECT {} FROM license_keys WHERE business_id = $1 AND id = $2",
            key_columns_at(3)
        );
        self.query_opt(&sql, &[&business_id, &id, &Timestamp::now().micros()])
            .await?
            .as_ref()
            .map(rows::license_key_at)
            .transpose()
    }

    async fn license_key_with_key(&self, key: &KeyString) -> Result<Option<LicenseKey>> {
        self.query_opt(
            &key_by_string(),
            &[&key.as_str(), &Timestamp::now().micros()],
        )
        .await?
        .as_ref()
        .map(rows::license_key_at)
        .transpose()
    }

    async fn list_license_keys(
        &self,
        business_id: &BusinessId,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> Result<Vec<LicenseKey>> {
        let (sql, bound) = list_license_keys(
            business_id,
            filter,
            page,
            Timestamp::now(),
            |n| format!("${n}"),
            Shifts::Postgres,
        );
        self.query(&sql, &params(&bound))
            .await?
            .iter()
            .map(rows::license_key_at)
            .collect()
    }

    async fn update_license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
        patch: KeyPatch,
        brand_id: &str,
    ) -> Result<Option<LicenseKey>> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let sql = format!(
                "SELECT {} FROM license_keys WHERE business_id = $1 AND id = $2 FOR UPDATE",
                *LOCKED_KEY_COLUMNS
            );
            let rows = tx.begin_with(&sql, &[&business_id, &id]).await?;
            let Some((mut key, subscribed)) = rows.first().map(locked_key).transpose()? else {
                return Ok(None);
            };
            let now = Timestamp::now();
            let mut events = settle(&tx, &mut key, now, false).await?;
            let before = key.clone();
            key.apply(&patch)?;
            // A PATCH that changes nothing is answered, and not announced.
            let changed = key != before;
            if key.heartbeat_interval != before.heartbeat_interval {
                execute(
                    &tx,
                    "UPDATE license_key_instances SET
                         last_heartbeat_at = CASE WHEN $2::BIGINT IS NULL THEN NULL
                                                  ELSE COALESCE(last_heartbeat_at, $3) END,
                         heartbeat_expires_at = COALESCE(last_heartbeat_at, $3) + $2::BIGINT * 1000000
                     WHERE license_key_id = $1",
                    &[
                        &key.id,
                        &key.heartbeat_interval.map(|i| i64::from(i.seconds())),
                        &now.micros(),
                    ],
                )
                .await?;
            }
            if key.seats.is_some() {
                events.extend(settle(&tx, &mut key, now, false).await?);
            }
            if changed {
                events.push(Event::license_key(
                    EventType::LicenseKeyUpdated,
                    &key,
                    brand_id,
                    now,
                ));
            }
            save_key_state(&mut tx, &key, to_record(events, subscribed)).await?;
            Ok(Some(key))
        }
        .await;
        tx.finish(outcome).await
    }

    async fn instance(
        &self,
        business_id: &BusinessId,
        id: &InstanceId,
    ) -> Result<Option<Instance>> {
        self.query_opt(
            &format!(
                "SELECT {INSTANCE_COLUMNS} FROM license_key_instances WHERE business_id = $1 AND id = $2
                   AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > $3)"
            ),
            &[&business_id, &id, &Timestamp::now().micros()],
        )
        .await?
        .as_ref()
        .map(rows::instance)
        .transpose()
    }

    async fn list_instances(
        &self,
        business_id: &BusinessId,
        license_key_id: Option<&LicenseKeyId>,
        page: PageRequest,
    ) -> Result<Vec<Instance>> {
        self.query(
            &format!(
                "SELECT {INSTANCE_COLUMNS} FROM license_key_instances
                 WHERE business_id = $1 AND ($2::TEXT IS NULL OR license_key_id = $2)
                   AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > $5)
                 ORDER BY {} LIMIT $3 OFFSET $4",
                page.order()
            ),
            &[
                &business_id,
                &license_key_id,
                &page.limit(),
                &page.offset(),
                &Timestamp::now().micros(),
            ],
        )
        .await?
        .iter()
        .map(rows::instance)
        .collect()
    }

    async fn rename_instance(
        &self,
        business_id: &BusinessId,
        id: &InstanceId,
        name: &InstanceName,
    ) -> Result<Option<Instance>> {
        self.change_one(
            &format!(
                "UPDATE license_key_instances SET name = $3 WHERE business_id = $1 AND id = $2
                   AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > $4)
                 RETURNING {INSTANCE_COLUMNS}"
            ),
            &[
                &business_id,
                &id,
                &name.as_str(),
                &Timestamp::now().micros(),
            ],
        )
        .await?
        .as_ref()
        .map(rows::instance)
        .transpose()
    }

    async fn activate(
        &self,
        key: &KeyString,
        instance_id: &InstanceId,
        name: &InstanceName,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<Activation> {
        let request = Activating {
            instance_id: instance_id.clone(),
            name: name.clone(),
            fingerprint: fingerprint.cloned(),
        };
        let pool = self.pool.clone();
        self.activations
            .join(key.clone(), request, move |key, requests| {
                let pool = pool.clone();
                async move { activate_all(&pool, &key, &requests).await }
            })
            .await
    }

    async fn deactivate(&self, key: &KeyString, instance_id: &InstanceId) -> Result<()> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let (mut license, subscribed) = begin_and_lock_key(&tx, key)
                .await?
                .ok_or(StorageError::KeyNotFound)?;
            let now = Timestamp::now();
            let mut events = settle(&tx, &mut license, now, false).await?;
            let sql = format!(
                "WITH gone AS (
                     DELETE FROM license_key_instances WHERE id = $1 AND license_key_id = $2
                     RETURNING {INSTANCE_COLUMNS}
                 ), departed AS (
                     INSERT INTO departed_instances
                         (id, business_id, license_key_id, name, fingerprint, created_at, reason, departed_at)
                     SELECT id, business_id, license_key_id, name, fingerprint, created_at, 'deactivated', $3
                     FROM gone ON CONFLICT (id) DO NOTHING
                 )
                 SELECT {INSTANCE_COLUMNS} FROM gone"
            );
            let removed = query(&tx, &sql, &[&instance_id, &license.id, &now.micros()]).await?;
            if removed.is_empty() {
                return Err(StorageError::KeyNotFound);
            }
            events.extend(departures(&removed, Departure::Deactivated, now)?);
            license.deactivate();
            save_key_state(&mut tx, &license, to_record(events, subscribed)).await
        }
        .await;
        tx.finish(outcome).await
    }

    async fn heartbeat(&self, key: &KeyString, instance_id: &InstanceId) -> Result<Heartbeat> {
        let now = Timestamp::now();
        // One statement: the beat (a live instance's deadline moves one interval past now,
        // as `HeartbeatInterval::deadline_after` says), and what the answer needs.
        let sql = format!(
            "WITH k AS (
                 SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE key = $1
             ), beat AS (
                 UPDATE license_key_instances i SET
                     last_heartbeat_at = CASE WHEN k.heartbeat_interval IS NULL THEN NULL ELSE $3 END,
                     heartbeat_expires_at = $3 + k.heartbeat_interval * 1000000
                 FROM k
                 WHERE i.id = $2 AND i.license_key_id = k.id
                   AND (i.heartbeat_expires_at IS NULL OR i.heartbeat_expires_at > $3)
                 RETURNING i.heartbeat_expires_at, i.created_at
             )
             SELECT k.*,
                 (SELECT count(*) FROM beat), (SELECT heartbeat_expires_at FROM beat),
                 (SELECT created_at FROM beat),
                 EXISTS (SELECT 1 FROM license_key_instances i WHERE i.id = $2 AND i.license_key_id = k.id)
                 OR EXISTS (SELECT 1 FROM departed_instances d
                            WHERE d.id = $2 AND d.license_key_id = k.id AND d.reason = 'heartbeat')
             FROM k"
        );
        // A write, so on a pooled connection: one beat waiting for an instance's row lock
        // would hold up every read queued behind it on a shared connection.
        let row = self
            .change_one(&sql, &[&key.as_str(), &instance_id, &now.micros()])
            .await?
            .ok_or(StorageError::KeyNotFound)?;
        let mut license = rows::license_key(&row)?;
        if row.int(16)? == 0 {
            return Err(if row.flag(19)? {
                StorageError::InstanceDead
            } else {
                StorageError::KeyNotFound
            });
        }
        let heartbeat_expires_at = row.int_or_null(17)?.map(timestamp).transpose()?;
        let created_at = timestamp(row.int(18)?)?;
        let has_instance = match &license.seats {
            None => true,
            Some(seats) => {
                let conn = self.conn().await?;
                license.activations_limit =
                    Some(seat_figure(&conn, &license.business_id, seats, now).await?);
                has_seat_now(&conn, &license, instance_id, created_at, now).await?
            }
        };
        Ok(Heartbeat {
            validity: KeyValidity {
                disabled: license.disabled,
                expires_at: license.expires_at,
                has_instance,
            },
            heartbeat_expires_at,
        })
    }

    async fn key_validity(
        &self,
        key: &KeyString,
        instance_id: Option<&InstanceId>,
    ) -> Result<Option<KeyValidity>> {
        // Two statements rather than one with `$2 IS NULL OR EXISTS (…)`: PostgreSQL would
        // plan that one anew on every execution, its plan for a NULL instance looking
        // cheaper than the generic plan.
        let now = Timestamp::now();
        let key = key.as_str();
        let row = match instance_id {
            None => {
                self.query_opt(
                    "SELECT disabled, expires_at, TRUE FROM license_keys WHERE key = $1",
                    &[&key],
                )
                .await?
            }
            Some(instance_id) => {
                self.query_opt(
                    &format!(
                        "SELECT disabled, expires_at, live.instance_id IS NOT NULL, live.instance_created_at,
                             {LICENSE_KEY_COLUMNS}
                         FROM license_keys LEFT JOIN LATERAL (
                             SELECT id AS instance_id, created_at AS instance_created_at
                             FROM license_key_instances i
                             WHERE i.id = $2 AND i.license_key_id = license_keys.id
                               AND (i.heartbeat_expires_at IS NULL OR i.heartbeat_expires_at > $3)
                         ) live ON TRUE
                         WHERE key = $1"
                    ),
                    &[&key, &instance_id, &now.micros()],
                )
                .await?
            }
        };
        let Some(row) = row else { return Ok(None) };
        let mut validity = rows::key_validity(&row)?;
        // Only a bound key's instance can be over seat: the rare, slower path.
        if let Some(instance_id) = instance_id
            && validity.has_instance
        {
            let mut license = rows::license_key_after(&row, 4)?;
            if let Some(seats) = &license.seats {
                let conn = self.conn().await?;
                license.activations_limit =
                    Some(seat_figure(&conn, &license.business_id, seats, now).await?);
                let created_at = timestamp(row.int(3)?)?;
                validity.has_instance =
                    has_seat_now(&conn, &license, instance_id, created_at, now).await?;
            }
        }
        Ok(Some(validity))
    }

    async fn sweep(&self, now: Timestamp) -> Result<u64> {
        let forget_before = now.micros().saturating_sub(DEPARTED_RETENTION_MICROS);
        // Keys another transaction holds (an activation, another process's sweep) are
        // skipped, not waited for: their dead are deleted by that holder or the next sweep.
        let sql = format!(
                "WITH dying AS (
                     SELECT DISTINCT license_key_id FROM license_key_instances
                     WHERE heartbeat_expires_at <= $1 LIMIT 1000
                 ), locked AS (
                     SELECT id FROM license_keys WHERE id IN (SELECT license_key_id FROM dying)
                     FOR UPDATE SKIP LOCKED
                 ), gone AS (
                     DELETE FROM license_key_instances i USING locked
                     WHERE i.license_key_id = locked.id AND i.heartbeat_expires_at <= $1
                     RETURNING i.*
                 ), departed AS (
                     INSERT INTO departed_instances
                         (id, business_id, license_key_id, name, fingerprint, created_at, reason, departed_at)
                     SELECT id, business_id, license_key_id, name, fingerprint, created_at, 'heartbeat', heartbeat_expires_at
                     FROM gone ON CONFLICT (id) DO NOTHING
                 ), counted AS (
                     UPDATE license_keys k SET instances_count = k.instances_count - g.n
                     FROM (SELECT license_key_id, count(*) AS n FROM gone GROUP BY license_key_id) g
                     WHERE k.id = g.license_key_id
                 ), forgotten AS (
                     DELETE FROM departed_instances WHERE departed_at < $2
                 )
                 SELECT {INSTANCE_COLUMNS}, {} FROM gone",
                subscribed!("gone.business_id")
        );
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let gone = tx
                .begin_with(&sql, &[&now.micros(), &forget_before])
                .await?;
            // Recorded only in businesses with an endpoint, as for every key write: the
            // flag follows the instance's 8 columns.
            let mut subscribed = Vec::new();
            for row in &gone {
                if row.flag(8)? {
                    subscribed.push(row);
                }
            }
            let deaths = departures(subscribed, Departure::Heartbeat, now)?;
            if !deaths.is_empty() {
                let recorded = Recorded::of(deaths);
                tx.commit_with(RECORD, &recorded.params()).await?;
            }
            Ok(gone.len() as u64)
        }
        .await;
        tx.finish(outcome).await
    }
}

/// `lock` is empty or `FOR UPDATE`.
fn product_by_id(lock: &str) -> String {
    format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = $1 AND id = $2 {lock}")
}
