//! Customers, products, license keys and instances on SQLite. Every write that reads
//! before it writes (activation, deactivation, patches) runs on the writer thread inside
//! one immediate transaction, so the activation limit holds.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::SqliteStore;
use super::error::internal;
use super::ledger::governing;
use super::outbox::announce;
use super::shifts::{self, read_with};
use crate::domain::catalog::{
    Activation, Customer, Instance, LicenseKey, Locale, Product, ProductPatch,
};
use crate::domain::events::Event;
use crate::domain::ids::{
    BusinessId, CustomerId, InstanceId, InstanceName, KeyString, LicenseKeyId, ProductId,
};
use crate::domain::license::KeyPatch;
use crate::domain::seats::{
    DEPARTED_RETENTION_MICROS, Departure, Fingerprint, HeartbeatInterval, SeatBinding, has_seat,
    seats_in,
};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::EventType;
use crate::storage::columns::{
    CUSTOMER_COLUMNS, INSTANCE_COLUMNS, LICENSE_KEY_COLUMNS, PRODUCT_COLUMNS, RETIME_INSTANCES,
};
use crate::storage::columns::{Shifts, duration_columns, json_text, license_key_columns_at};
use crate::storage::error::{Result, StorageError};
use crate::storage::listing::{KeyFilter, PageRequest, list_license_keys};
use crate::storage::rows::{self, Columns};
use crate::storage::store::{Heartbeat, KeyValidity, LicenseStore};

/// Runs a query expected to return at most one row, decoded by `decode`.
fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: fn(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, |row| Ok(decode(row))).optional())
        .map_err(internal)?
        .transpose()
}

/// Runs a query returning many rows, each decoded by `decode`.
fn many<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(internal)?;
    let rows = stmt
        .query_map(params, |row| Ok(decode(row)))
        .map_err(internal)?;
    rows.map(|row| row.map_err(internal)?).collect()
}

/// The key as stored; writers then [`settle`] it.
fn key_by_id(
    conn: &Connection,
    business_id: &BusinessId,
    id: &LicenseKeyId,
) -> Result<Option<LicenseKey>> {
    one(
        conn,
        &format!(
            "SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE business_id = ?1 AND id = ?2"
        ),
        params![business_id, id],
        |r| rows::license_key(r),
    )
}

/// The key as read at `now`: live instances counted, a bound key's seats then.
fn key_by_id_at(
    conn: &Connection,
    business_id: &BusinessId,
    id: &LicenseKeyId,
    now: Timestamp,
) -> Result<Option<LicenseKey>> {
    read_with(shifts::any, |shifts| {
        one(
            conn,
            &format!(
                "SELECT {} FROM license_keys WHERE business_id = ?1 AND id = ?2",
                license_key_columns_at("?3", shifts)
            ),
            params![business_id, id, now.micros()],
            |r| rows::license_key_at(r),
        )
    })
}

/// Brings a key read for a write to `now`: deletes its dead instances (recording why
/// they went) and, for a key bound to seats, takes its pair's figure as the limit.
fn settle(tx: &Connection, key: &mut LicenseKey, now: Timestamp) -> Result<()> {
    if key.heartbeat_interval.is_some() {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO departed_instances
                 (id, business_id, license_key_id, name, fingerprint, created_at, reason, departed_at)
             SELECT id, business_id, license_key_id, name, fingerprint, created_at, 'heartbeat', heartbeat_expires_at
             FROM license_key_instances WHERE license_key_id = ?1 AND heartbeat_expires_at <= ?2",
        )
        .and_then(|mut stmt| stmt.execute(params![key.id, now.micros()]))
        .map_err(internal)?;
        let dead = delete_instances(
            tx,
            "license_key_id = ?1 AND heartbeat_expires_at <= ?2",
            params![key.id, now.micros()],
            Departure::Heartbeat,
            now,
        )?;
        key.instances_count = key
            .instances_count
            .saturating_sub(u32::try_from(dead).unwrap_or(u32::MAX));
    }
    if let Some(seats) = &key.seats {
        key.activations_limit = Some(seat_figure(tx, &key.business_id, seats, now)?);
    }
    Ok(())
}

/// Deletes the instances `condition` selects, and announces each departure.
fn delete_instances(
    tx: &Connection,
    condition: &str,
    params: impl rusqlite::Params,
    reason: Departure,
    now: Timestamp,
) -> Result<usize> {
    let gone = many(
        tx,
        &format!(
            "DELETE FROM license_key_instances WHERE {condition} RETURNING {INSTANCE_COLUMNS}"
        ),
        params,
        |r| rows::instance(r),
    )?;
    for instance in &gone {
        announce(
            tx,
            &instance.business_id,
            EventType::LicenseKeyInstanceDeleted,
            || Event::instance_deleted(instance, reason, now),
        )?;
    }
    Ok(gone.len())
}

/// The seats a pair has at `now`.
fn seat_figure(
    conn: &Connection,
    business_id: &BusinessId,
    seats: &SeatBinding,
    now: Timestamp,
) -> Result<u32> {
    let governing = governing(
        conn,
        business_id,
        (&seats.account_id, &seats.license_id),
        now,
    )?;
    Ok(governing.map_or(0, |(_, quantity)| seats_in(quantity)))
}

/// Whether a live instance of a settled key has a seat: how many live instances are
/// older, against the key's figure.
fn has_seat_now(
    conn: &Connection,
    key: &LicenseKey,
    instance: &Instance,
    now: Timestamp,
) -> Result<bool> {
    if key.seats.is_none() {
        return Ok(true);
    }
    let older: i64 = one(
        conn,
        "SELECT count(*) FROM license_key_instances
         WHERE license_key_id = ?1 AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > ?2)
           AND (created_at < ?3 OR (created_at = ?3 AND id < ?4))",
        params![
            key.id,
            now.micros(),
            instance.created_at.micros(),
            instance.id
        ],
        |r| r.int(0),
    )?
    .unwrap_or(0);
    Ok(has_seat(
        older.try_into().unwrap_or(u64::MAX),
        key.activations_limit,
    ))
}

fn instance_of_key(
    conn: &Connection,
    key: &LicenseKeyId,
    condition: &str,
    value: &str,
) -> Result<Option<Instance>> {
    one(
        conn,
        &format!(
            "SELECT {INSTANCE_COLUMNS} FROM license_key_instances WHERE license_key_id = ?1 AND {condition} = ?2"
        ),
        params![key, value],
        |r| rows::instance(r),
    )
}

fn save_beat(tx: &Connection, instance: &Instance) -> Result<()> {
    tx.execute(
        "UPDATE license_key_instances SET last_heartbeat_at = ?2, heartbeat_expires_at = ?3 WHERE id = ?1",
        params![
            instance.id,
            instance.last_heartbeat_at.map(Timestamp::micros),
            instance.heartbeat_expires_at.map(Timestamp::micros)
        ],
    )
    .map_err(internal)?;
    Ok(())
}

fn key_by_key(conn: &Connection, key: &KeyString) -> Result<Option<LicenseKey>> {
    one(
        conn,
        &format!("SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE key = ?1"),
        params![key.as_str()],
        |r| rows::license_key(r),
    )
}

fn save_key_state(tx: &Connection, key: &LicenseKey) -> Result<()> {
    tx.execute(
        "UPDATE license_keys SET activations_limit = ?2, instances_count = ?3, disabled = ?4, expires_at = ?5,
             heartbeat_interval = ?6, seats_account_id = ?7, seats_license_id = ?8
         WHERE id = ?1",
        params![
            key.id,
            key.stored_limit(),
            key.instances_count,
            key.disabled,
            key.expires_at.map(Timestamp::micros),
            key.heartbeat_interval.map(HeartbeatInterval::seconds),
            key.seats.as_ref().map(|s| s.account_id.as_str()),
            key.seats.as_ref().map(|s| s.license_id.as_str()),
        ],
    )
    .map_err(internal)?;
    Ok(())
}

fn write_product(tx: &Connection, product: &Product, insert: bool) -> Result<()> {
    let (count, interval) = duration_columns(product.license_key_duration);
    let sql = if insert {
        "INSERT INTO products (id, business_id, name, description, license_key_activations_limit,
             license_key_duration_count, license_key_duration_interval, license_key_activation_message,
             metadata, created_at, updated_at, details, heartbeat_interval)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    } else {
        "UPDATE products SET name = ?3, description = ?4, license_key_activations_limit = ?5,
             license_key_duration_count = ?6, license_key_duration_interval = ?7,
             license_key_activation_message = ?8, metadata = ?9, updated_at = ?11, details = ?12,
             heartbeat_interval = ?13
         WHERE id = ?1 AND business_id = ?2 AND created_at = ?10"
    };
    tx.execute(
        sql,
        params![
            product.id,
            product.business_id,
            product.name,
            product.description,
            product.license_key_activations_limit,
            count,
            interval,
            product.license_key_activation_message,
            json_text(&product.metadata)?,
            product.created_at.micros(),
            product.updated_at.micros(),
            json_text(&product.details)?,
            product.heartbeat_interval.map(HeartbeatInterval::seconds),
        ],
    )
    .map_err(internal)?;
    Ok(())
}

#[async_trait]
impl LicenseStore for SqliteStore {
    async fn create_customer(&self, customer: &Customer) -> Result<()> {
        let c = customer.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO customers
                     (id, business_id, email, name, phone_number, metadata, created_at, preferred_locale)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    c.id,
                    c.business_id,
                    c.email,
                    c.name,
                    c.phone_number,
                    json_text(&c.metadata)?,
                    c.created_at.micros(),
                    c.preferred_locale.map(Locale::code)
                ],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn customer(
        &self,
        business_id: &BusinessId,
        id: &CustomerId,
    ) -> Result<Option<Customer>> {
        self.read(|conn| {
            one(
                conn,
                &format!(
                    "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE business_id = ?1 AND id = ?2"
                ),
                params![business_id, id],
                |r| rows::customer(r),
            )
        })
    }

    async fn list_customers(
        &self,
        business_id: &BusinessId,
        email: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<Customer>> {
        self.read(|conn| {
            many(
                conn,
                &format!(
                    "SELECT {CUSTOMER_COLUMNS} FROM customers
                     WHERE business_id = ?1 AND (?2 IS NULL OR lower(email) = lower(?2))
                     ORDER BY {} LIMIT ?3 OFFSET ?4",
                    page.order()
                ),
                params![business_id, email, page.limit(), page.offset()],
                |r| rows::customer(r),
            )
        })
    }

    async fn create_product(&self, product: &Product) -> Result<()> {
        let product = product.clone();
        self.write(move |tx| write_product(tx, &product, true))
            .await
    }

    async fn product(&self, business_id: &BusinessId, id: &ProductId) -> Result<Option<Product>> {
        self.read(|conn| product_by_id(conn, business_id, id))
    }

    async fn list_products(
        &self,
        business_id: &BusinessId,
        page: PageRequest,
    ) -> Result<Vec<Product>> {
        self.read(|conn| {
            many(
                conn,
                &format!(
                    "SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = ?1
                     ORDER BY {} LIMIT ?2 OFFSET ?3",
                    page.order()
                ),
                params![business_id, page.limit(), page.offset()],
                |r| rows::product(r),
            )
        })
    }

    async fn update_product(
        &self,
        business_id: &BusinessId,
        id: &ProductId,
        patch: ProductPatch,
    ) -> Result<Option<Product>> {
        let (business_id, id) = (business_id.clone(), id.clone());
        self.write(move |tx| {
            let Some(mut product) = product_by_id(tx, &business_id, &id)? else {
                return Ok(None);
            };
            patch.apply(&mut product, Timestamp::now());
            write_product(tx, &product, false)?;
            Ok(Some(product))
        })
        .await
    }

    async fn create_license_key(&self, key: &LicenseKey, brand_id: &str) -> Result<()> {
        let (k, brand_id) = (key.clone(), brand_id.to_owned());
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO license_keys (id, business_id, key, customer_id, product_id, source, activations_limit,
                     instances_count, disabled, expires_at, payment_id, subscription_id, created_at,
                     heartbeat_interval, seats_account_id, seats_license_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (key) DO NOTHING",
                params![
                    k.id,
                    k.business_id,
                    k.key,
                    k.customer_id,
                    k.product_id,
                    k.source.as_str(),
                    k.stored_limit(),
                    k.instances_count,
                    k.disabled,
                    k.expires_at.map(Timestamp::micros),
                    k.payment_id,
                    k.subscription_id,
                    k.created_at.micros(),
                    k.heartbeat_interval.map(HeartbeatInterval::seconds),
                    k.seats.as_ref().map(|s| s.account_id.as_str()),
                    k.seats.as_ref().map(|s| s.license_id.as_str()),
                ],
            )
            .map_err(internal)?;
            if inserted == 0 {
                return Err(StorageError::Duplicate("this license key already exists".into()));
            }
            announce(tx, &k.business_id, EventType::LicenseKeyCreated, || {
                Event::license_key(EventType::LicenseKeyCreated, &k, &brand_id, k.created_at)
            })
        })
        .await
    }

    async fn license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
    ) -> Result<Option<LicenseKey>> {
        self.read(|conn| key_by_id_at(conn, business_id, id, Timestamp::now()))
    }

    async fn license_key_with_key(&self, key: &KeyString) -> Result<Option<LicenseKey>> {
        let sql = |shifts| {
            format!(
                "SELECT {} FROM license_keys WHERE key = ?1",
                license_key_columns_at("?2", shifts)
            )
        };
        let now = Timestamp::now();
        self.read(|conn| {
            read_with(shifts::any, |shifts| {
                one(
                    conn,
                    &sql(shifts),
                    params![key.as_str(), now.micros()],
                    |r| rows::license_key_at(r),
                )
            })
        })
    }

    async fn list_license_keys(
        &self,
        business_id: &BusinessId,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> Result<Vec<LicenseKey>> {
        let now = Timestamp::now();
        self.read(|conn| {
            read_with(shifts::any, |shifts: Shifts| {
                let (sql, params) =
                    list_license_keys(business_id, filter, page, now, |n| format!("?{n}"), shifts);
                many(conn, &sql, params_from_iter(&params), |r| {
                    rows::license_key_at(r)
                })
            })
        })
    }

    async fn update_license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
        patch: KeyPatch,
        brand_id: &str,
    ) -> Result<Option<LicenseKey>> {
        let (business_id, id) = (business_id.clone(), id.clone());
        let brand_id = brand_id.to_owned();
        self.write(move |tx| {
            let Some(mut key) = key_by_id(tx, &business_id, &id)? else {
                return Ok(None);
            };
            let now = Timestamp::now();
            settle(tx, &mut key, now)?;
            let before = key.clone();
            key.apply(&patch)?;
            save_key_state(tx, &key)?;
            if key.heartbeat_interval != before.heartbeat_interval {
                tx.execute(
                    RETIME_INSTANCES,
                    params![
                        key.id,
                        key.heartbeat_interval.map(HeartbeatInterval::seconds),
                        now.micros()
                    ],
                )
                .map_err(internal)?;
            }
            // A PATCH that changes nothing is answered, and not announced.
            let changed = key != before;
            if let Some(seats) = &key.seats {
                key.activations_limit = Some(seat_figure(tx, &key.business_id, seats, now)?);
            }
            if changed {
                announce(tx, &key.business_id, EventType::LicenseKeyUpdated, || {
                    Event::license_key(EventType::LicenseKeyUpdated, &key, &brand_id, now)
                })?;
            }
            Ok(Some(key))
        })
        .await
    }

    async fn instance(
        &self,
        business_id: &BusinessId,
        id: &InstanceId,
    ) -> Result<Option<Instance>> {
        self.read(|conn| {
            one(
                conn,
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM license_key_instances WHERE business_id = ?1 AND id = ?2
                       AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > ?3)"
                ),
                params![business_id, id, Timestamp::now().micros()],
                |r| rows::instance(r),
            )
        })
    }

    async fn list_instances(
        &self,
        business_id: &BusinessId,
        license_key_id: Option<&LicenseKeyId>,
        page: PageRequest,
    ) -> Result<Vec<Instance>> {
        self.read(|conn| {
            many(
                conn,
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM license_key_instances
                     WHERE business_id = ?1 AND (?2 IS NULL OR license_key_id = ?2)
                       AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > ?5)
                     ORDER BY {} LIMIT ?3 OFFSET ?4",
                    page.order()
                ),
                params![
                    business_id,
                    license_key_id,
                    page.limit(),
                    page.offset(),
                    Timestamp::now().micros()
                ],
                |r| rows::instance(r),
            )
        })
    }

    async fn rename_instance(
        &self,
        business_id: &BusinessId,
        id: &InstanceId,
        name: &InstanceName,
    ) -> Result<Option<Instance>> {
        let args = (business_id.clone(), id.clone(), name.clone());
        self.write(move |tx| {
            let (business_id, id, name) = args;
            one(
                tx,
                &format!(
                    "UPDATE license_key_instances SET name = ?3 WHERE business_id = ?1 AND id = ?2
                       AND (heartbeat_expires_at IS NULL OR heartbeat_expires_at > ?4)
                     RETURNING {INSTANCE_COLUMNS}"
                ),
                params![business_id, id, name.as_str(), Timestamp::now().micros()],
                |r| rows::instance(r),
            )
        })
        .await
    }

    async fn activate(
        &self,
        key: &KeyString,
        instance_id: &InstanceId,
        name: &InstanceName,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<Activation> {
        let args = (
            key.clone(),
            instance_id.clone(),
            name.as_str().to_owned(),
            fingerprint.cloned(),
        );
        self.write(move |tx| {
            let (key, instance_id, name, fingerprint) = args;
            let mut license = key_by_key(tx, &key)?.ok_or(StorageError::KeyNotFound)?;
            let now = Timestamp::now();
            settle(tx, &mut license, now)?;
            if let Some(fingerprint) = &fingerprint
                && let Some(known) =
                    instance_of_key(tx, &license.id, "fingerprint", fingerprint.as_str())?
            {
                let instance = license.reactivate(known, now)?;
                save_beat(tx, &instance)?;
                // The count of the key settled: without the dead it deleted.
                save_key_state(tx, &license)?;
                return activation(tx, &license, instance);
            }
            let instance = license.activate(instance_id, name, fingerprint, now)?;
            tx.execute(
                "INSERT INTO license_key_instances (id, business_id, license_key_id, name, created_at,
                     fingerprint, last_heartbeat_at, heartbeat_expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    instance.id,
                    instance.business_id,
                    instance.license_key_id,
                    instance.name,
                    now.micros(),
                    instance.fingerprint,
                    instance.last_heartbeat_at.map(Timestamp::micros),
                    instance.heartbeat_expires_at.map(Timestamp::micros)
                ],
            )
            .map_err(internal)?;
            save_key_state(tx, &license)?;
            announce(
                tx,
                &license.business_id,
                EventType::LicenseKeyInstanceCreated,
                || Event::instance_created(&instance, now),
            )?;
            activation(tx, &license, instance)
        })
        .await
    }

    async fn deactivate(&self, key: &KeyString, instance_id: &InstanceId) -> Result<()> {
        let args = (key.clone(), instance_id.clone());
        self.write(move |tx| {
            let (key, instance_id) = args;
            let mut license = key_by_key(tx, &key)?.ok_or(StorageError::KeyNotFound)?;
            let now = Timestamp::now();
            settle(tx, &mut license, now)?;
            let departed = tx
                .execute(
                    "INSERT OR REPLACE INTO departed_instances
                         (id, business_id, license_key_id, name, fingerprint, created_at, reason, departed_at)
                     SELECT id, business_id, license_key_id, name, fingerprint, created_at, 'deactivated', ?3
                     FROM license_key_instances WHERE id = ?1 AND license_key_id = ?2",
                    params![instance_id, license.id, now.micros()],
                )
                .map_err(internal)?;
            if departed == 0 {
                return Err(StorageError::KeyNotFound);
            }
            delete_instances(
                tx,
                "id = ?1",
                params![instance_id],
                Departure::Deactivated,
                now,
            )?;
            license.deactivate();
            save_key_state(tx, &license)
        })
        .await
    }

    async fn heartbeat(&self, key: &KeyString, instance_id: &InstanceId) -> Result<Heartbeat> {
        let args = (key.clone(), instance_id.clone());
        self.write(move |tx| {
            let (key, instance_id) = args;
            let mut license = key_by_key(tx, &key)?.ok_or(StorageError::KeyNotFound)?;
            let now = Timestamp::now();
            let Some(mut instance) = instance_of_key(tx, &license.id, "id", instance_id.as_str())?
            else {
                return Err(departure_of(tx, &license.id, &instance_id)?);
            };
            if instance.is_dead_at(now) {
                return Err(StorageError::InstanceDead);
            }
            instance.beat(license.heartbeat_interval, now);
            save_beat(tx, &instance)?;
            if let Some(seats) = &license.seats {
                license.activations_limit =
                    Some(seat_figure(tx, &license.business_id, seats, now)?);
            }
            Ok(Heartbeat {
                validity: KeyValidity {
                    disabled: license.disabled,
                    expires_at: license.expires_at,
                    has_instance: has_seat_now(tx, &license, &instance, now)?,
                },
                heartbeat_expires_at: instance.heartbeat_expires_at,
            })
        })
        .await
    }

    async fn key_validity(
        &self,
        key: &KeyString,
        instance_id: Option<&InstanceId>,
    ) -> Result<Option<KeyValidity>> {
        let now = Timestamp::now();
        self.read(|conn| {
            let found = one(
                conn,
                "SELECT disabled, expires_at, ?2 IS NULL OR EXISTS (
                     SELECT 1 FROM license_key_instances i
                     WHERE i.id = ?2 AND i.license_key_id = license_keys.id
                       AND (i.heartbeat_expires_at IS NULL OR i.heartbeat_expires_at > ?3)),
                     seats_account_id IS NOT NULL
                 FROM license_keys INDEXED BY license_keys_validity WHERE key = ?1",
                params![key.as_str(), instance_id, now.micros()],
                |r| Ok((rows::key_validity(r)?, r.flag(3)?)),
            )?;
            let Some((mut validity, bound)) = found else {
                return Ok(None);
            };
            // Only a bound key's instance can be over seat: the rare, slower path.
            if let Some(instance_id) = instance_id
                && bound
                && validity.has_instance
            {
                let mut license = key_by_key(conn, key)?.ok_or(StorageError::KeyNotFound)?;
                let instance = instance_of_key(conn, &license.id, "id", instance_id.as_str())?
                    .ok_or(StorageError::KeyNotFound)?;
                if let Some(seats) = &license.seats {
                    license.activations_limit =
                        Some(seat_figure(conn, &license.business_id, seats, now)?);
                }
                validity.has_instance = has_seat_now(conn, &license, &instance, now)?;
            }
            Ok(Some(validity))
        })
    }

    async fn sweep(&self, now: Timestamp) -> Result<u64> {
        let forget_before = now.micros().saturating_sub(DEPARTED_RETENTION_MICROS);
        let due: bool = self.read(|conn| {
            one(
                conn,
                "SELECT EXISTS (SELECT 1 FROM license_key_instances WHERE heartbeat_expires_at <= ?1)
                     OR EXISTS (SELECT 1 FROM departed_instances WHERE departed_at < ?2)",
                params![now.micros(), forget_before],
                |r| r.flag(0),
            )
            .map(|due| due.unwrap_or(false))
        })?;
        if !due {
            return Ok(0);
        }
        self.write(move |tx| {
            let at = now.micros();
            tx.execute(
                "INSERT OR REPLACE INTO departed_instances
                     (id, business_id, license_key_id, name, fingerprint, created_at, reason, departed_at)
                 SELECT id, business_id, license_key_id, name, fingerprint, created_at, 'heartbeat', heartbeat_expires_at
                 FROM license_key_instances WHERE heartbeat_expires_at <= ?1",
                params![at],
            )
            .map_err(internal)?;
            tx.execute(
                "UPDATE license_keys SET instances_count = instances_count - (
                     SELECT count(*) FROM license_key_instances i
                     WHERE i.license_key_id = license_keys.id AND i.heartbeat_expires_at <= ?1)
                 WHERE id IN (SELECT license_key_id FROM license_key_instances WHERE heartbeat_expires_at <= ?1)",
                params![at],
            )
            .map_err(internal)?;
            let swept = delete_instances(
                tx,
                "heartbeat_expires_at <= ?1",
                params![at],
                Departure::Heartbeat,
                now,
            )?;
            tx.execute(
                "DELETE FROM departed_instances WHERE departed_at < ?1",
                params![forget_before],
            )
            .map_err(internal)?;
            Ok(swept as u64)
        })
        .await
    }
}

fn product_by_id(
    conn: &Connection,
    business_id: &BusinessId,
    id: &ProductId,
) -> Result<Option<Product>> {
    one(
        conn,
        &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = ?1 AND id = ?2"),
        params![business_id, id],
        |r| rows::product(r),
    )
}

/// Why the key has no instance with that id: it died of missed heartbeats, or it is
/// unknown (never this key's, or deactivated).
fn departure_of(conn: &Connection, key: &LicenseKeyId, id: &InstanceId) -> Result<StorageError> {
    let died = one(
        conn,
        "SELECT 1 FROM departed_instances WHERE id = ?1 AND license_key_id = ?2 AND reason = 'heartbeat'",
        params![id, key],
        |r| r.int(0),
    )?;
    Ok(match died {
        Some(_) => StorageError::InstanceDead,
        None => StorageError::KeyNotFound,
    })
}

/// The activation response's customer and product details.
fn activation(conn: &Connection, license: &LicenseKey, instance: Instance) -> Result<Activation> {
    let customer = one(
        conn,
        &format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?1"),
        params![license.customer_id],
        |r| rows::customer(r),
    )?
    .ok_or_else(|| internal("license key without its customer"))?;
    let product_name: String = one(
        conn,
        "SELECT name FROM products WHERE id = ?1",
        params![license.product_id],
        |r| r.text(0),
    )?
    .ok_or_else(|| internal("license key without its product"))?;
    Ok(Activation {
        instance,
        customer,
        product_id: license.product_id.clone(),
        product_name,
    })
}
