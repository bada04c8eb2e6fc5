//! Customers, products, license keys and instances on SQLite. Every write that reads
//! before it writes (activation, deactivation, patches) runs on the writer thread inside
//! one immediate transaction, so the activation limit holds.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::SqliteStore;
use super::error::internal;
use crate::domain::catalog::{Activation, Customer, Instance, LicenseKey, Product, ProductPatch};
use crate::domain::ids::{
    BusinessId, CustomerId, InstanceId, InstanceName, KeyString, LicenseKeyId, ProductId,
};
use crate::domain::license::KeyPatch;
use crate::domain::time::Timestamp;
use crate::storage::columns::{
    CUSTOMER_COLUMNS, INSTANCE_COLUMNS, LICENSE_KEY_COLUMNS, PRODUCT_COLUMNS,
};
use crate::storage::columns::{duration_columns, json_text};
use crate::storage::error::{Result, StorageError};
use crate::storage::listing::{KeyFilter, PageRequest, list_license_keys};
use crate::storage::rows::{self, Columns};
use crate::storage::store::{KeyValidity, LicenseStore};

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
        "UPDATE license_keys SET activations_limit = ?2, instances_count = ?3, disabled = ?4, expires_at = ?5
         WHERE id = ?1",
        params![
            key.id,
            key.activations_limit,
            key.instances_count,
            key.disabled,
            key.expires_at.map(Timestamp::micros)
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
             metadata, created_at, updated_at, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    } else {
        "UPDATE products SET name = ?3, description = ?4, license_key_activations_limit = ?5,
             license_key_duration_count = ?6, license_key_duration_interval = ?7,
             license_key_activation_message = ?8, metadata = ?9, updated_at = ?11, details = ?12
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
                "INSERT INTO customers (id, business_id, email, name, phone_number, metadata, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    c.id,
                    c.business_id,
                    c.email,
                    c.name,
                    c.phone_number,
                    json_text(&c.metadata)?,
                    c.created_at.micros()
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
                     WHERE business_id = ?1 AND (?2 IS NULL OR email = ?2)
                     ORDER BY created_at, id LIMIT ?3 OFFSET ?4"
                ),
                params![business_id, email, page.size, page.offset()],
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
                     ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
                ),
                params![business_id, page.size, page.offset()],
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

    async fn create_license_key(&self, key: &LicenseKey) -> Result<()> {
        let k = key.clone();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO license_keys (id, business_id, key, customer_id, product_id, source, activations_limit,
                     instances_count, disabled, expires_at, payment_id, subscription_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (key) DO NOTHING",
                params![
                    k.id,
                    k.business_id,
                    k.key,
                    k.customer_id,
                    k.product_id,
                    k.source.as_str(),
                    k.activations_limit,
                    k.instances_count,
                    k.disabled,
                    k.expires_at.map(Timestamp::micros),
                    k.payment_id,
                    k.subscription_id,
                    k.created_at.micros()
                ],
            )
            .map_err(internal)?;
            if inserted == 0 {
                return Err(StorageError::Duplicate("this license key already exists".into()));
            }
            Ok(())
        })
        .await
    }

    async fn license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
    ) -> Result<Option<LicenseKey>> {
        self.read(|conn| key_by_id(conn, business_id, id))
    }

    async fn list_license_keys(
        &self,
        business_id: &BusinessId,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> Result<Vec<LicenseKey>> {
        let (sql, params) = list_license_keys(business_id, filter, page, Timestamp::now(), |n| {
            format!("?{n}")
        });
        self.read(|conn| {
            many(conn, &sql, params_from_iter(&params), |r| {
                rows::license_key(r)
            })
        })
    }

    async fn update_license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
        patch: KeyPatch,
    ) -> Result<Option<LicenseKey>> {
        let (business_id, id) = (business_id.clone(), id.clone());
        self.write(move |tx| {
            let Some(mut key) = key_by_id(tx, &business_id, &id)? else {
                return Ok(None);
            };
            let state = patch.apply(key.state(), key.subscription_id.is_some())?;
            key.set_state(state);
            save_key_state(tx, &key)?;
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
                &format!("SELECT {INSTANCE_COLUMNS} FROM license_key_instances WHERE business_id = ?1 AND id = ?2"),
                params![business_id, id],
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
                     ORDER BY created_at, id LIMIT ?3 OFFSET ?4"
                ),
                params![business_id, license_key_id, page.size, page.offset()],
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
                     RETURNING {INSTANCE_COLUMNS}"
                ),
                params![business_id, id, name.as_str()],
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
    ) -> Result<Activation> {
        let args = (key.clone(), instance_id.clone(), name.as_str().to_owned());
        self.write(move |tx| {
            let (key, instance_id, name) = args;
            let mut license = key_by_key(tx, &key)?.ok_or(StorageError::KeyNotFound)?;
            let now = Timestamp::now();
            let instance = license.activate(instance_id, name, now)?;
            tx.execute(
                "INSERT INTO license_key_instances (id, business_id, license_key_id, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![instance.id, instance.business_id, instance.license_key_id, instance.name, now.micros()],
            )
            .map_err(internal)?;
            save_key_state(tx, &license)?;
            activation(tx, &license, instance)
        })
        .await
    }

    async fn deactivate(&self, key: &KeyString, instance_id: &InstanceId) -> Result<()> {
        let args = (key.clone(), instance_id.clone());
        self.write(move |tx| {
            let (key, instance_id) = args;
            let mut license = key_by_key(tx, &key)?.ok_or(StorageError::KeyNotFound)?;
            let removed = tx
                .execute(
                    "DELETE FROM license_key_instances WHERE id = ?1 AND license_key_id = ?2",
                    params![instance_id, license.id],
                )
                .map_err(internal)?;
            if removed == 0 {
                return Err(StorageError::KeyNotFound);
            }
            license.deactivate();
            save_key_state(tx, &license)
        })
        .await
    }

    async fn key_validity(
        &self,
        key: &KeyString,
        instance_id: Option<&InstanceId>,
    ) -> Result<Option<KeyValidity>> {
        self.read(|conn| {
            one(
                conn,
                "SELECT disabled, expires_at, ?2 IS NULL OR EXISTS (
                     SELECT 1 FROM license_key_instances i
                     WHERE i.id = ?2 AND i.license_key_id = license_keys.id)
                 FROM license_keys INDEXED BY license_keys_validity WHERE key = ?1",
                params![key.as_str(), instance_id],
                |r| rows::key_validity(r),
            )
        })
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
