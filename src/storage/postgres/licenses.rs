//! Customers, products, license keys and instances on PostgreSQL. Activation,
//! deactivation and patches lock the key's row (`FOR UPDATE`) for their transaction, so
//! the activation limit holds across every process sharing the database; a CHECK
//! constraint guards it as well.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PgStore, bind_all, classify};
use crate::domain::catalog::{Activation, Customer, Instance, LicenseKey, Product, ProductPatch};
use crate::domain::license::KeyPatch;
use crate::domain::time::Timestamp;
use crate::storage::sql::{
    self, CUSTOMER_COLUMNS, CustomerRow, INSTANCE_COLUMNS, InstanceRow, KeyFilter,
    LICENSE_KEY_COLUMNS, LicenseKeyRow, PRODUCT_COLUMNS, PageRequest, ProductRow, corrupt,
    duration_columns,
};
use crate::storage::{LicenseStore, Result, StorageError};

fn customer_row(r: &PgRow) -> Result<Customer> {
    CustomerRow {
        id: r.try_get(0).map_err(corrupt)?,
        business_id: r.try_get(1).map_err(corrupt)?,
        email: r.try_get(2).map_err(corrupt)?,
        name: r.try_get(3).map_err(corrupt)?,
        phone_number: r.try_get(4).map_err(corrupt)?,
        metadata: r.try_get(5).map_err(corrupt)?,
        created_at: r.try_get(6).map_err(corrupt)?,
    }
    .decode()
}

fn product_row(r: &PgRow) -> Result<Product> {
    ProductRow {
        id: r.try_get(0).map_err(corrupt)?,
        business_id: r.try_get(1).map_err(corrupt)?,
        name: r.try_get(2).map_err(corrupt)?,
        description: r.try_get(3).map_err(corrupt)?,
        activations_limit: r.try_get(4).map_err(corrupt)?,
        duration_count: r.try_get(5).map_err(corrupt)?,
        duration_interval: r.try_get(6).map_err(corrupt)?,
        activation_message: r.try_get(7).map_err(corrupt)?,
        metadata: r.try_get(8).map_err(corrupt)?,
        created_at: r.try_get(9).map_err(corrupt)?,
        updated_at: r.try_get(10).map_err(corrupt)?,
    }
    .decode()
}

fn key_row(r: &PgRow) -> Result<LicenseKey> {
    LicenseKeyRow {
        id: r.try_get(0).map_err(corrupt)?,
        business_id: r.try_get(1).map_err(corrupt)?,
        key: r.try_get(2).map_err(corrupt)?,
        customer_id: r.try_get(3).map_err(corrupt)?,
        product_id: r.try_get(4).map_err(corrupt)?,
        source: r.try_get(5).map_err(corrupt)?,
        activations_limit: r.try_get(6).map_err(corrupt)?,
        instances_count: r.try_get(7).map_err(corrupt)?,
        disabled: r.try_get(8).map_err(corrupt)?,
        expires_at: r.try_get(9).map_err(corrupt)?,
        payment_id: r.try_get(10).map_err(corrupt)?,
        subscription_id: r.try_get(11).map_err(corrupt)?,
        created_at: r.try_get(12).map_err(corrupt)?,
    }
    .decode()
}

fn instance_row(r: &PgRow) -> Result<Instance> {
    InstanceRow {
        id: r.try_get(0).map_err(corrupt)?,
        business_id: r.try_get(1).map_err(corrupt)?,
        license_key_id: r.try_get(2).map_err(corrupt)?,
        name: r.try_get(3).map_err(corrupt)?,
        created_at: r.try_get(4).map_err(corrupt)?,
    }
    .decode()
}

/// The key with that key string, its row locked until the transaction ends.
async fn lock_key_by_key(conn: &mut PgConnection, key: &str) -> Result<Option<LicenseKey>> {
    sqlx::query(&format!(
        "SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE key = $1 FOR UPDATE"
    ))
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(classify)?
    .as_ref()
    .map(key_row)
    .transpose()
}

async fn save_key_state(conn: &mut PgConnection, key: &LicenseKey) -> Result<()> {
    sqlx::query(
        "UPDATE license_keys SET activations_limit = $2, instances_count = $3, disabled = $4, expires_at = $5
         WHERE id = $1",
    )
    .bind(&key.id)
    .bind(key.activations_limit.map(i64::from))
    .bind(i64::from(key.instances_count))
    .bind(key.disabled)
    .bind(key.expires_at.map(Timestamp::micros))
    .execute(conn)
    .await
    .map_err(classify)?;
    Ok(())
}

async fn write_product(conn: &mut PgConnection, product: &Product, insert: bool) -> Result<()> {
    let (count, interval) = duration_columns(product.license_key_duration);
    let sql = if insert {
        "INSERT INTO products (id, business_id, name, description, license_key_activations_limit,
             license_key_duration_count, license_key_duration_interval, license_key_activation_message,
             metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    } else {
        "UPDATE products SET name = $3, description = $4, license_key_activations_limit = $5,
             license_key_duration_count = $6, license_key_duration_interval = $7,
             license_key_activation_message = $8, metadata = $9, updated_at = $11
         WHERE id = $1 AND business_id = $2 AND created_at = $10"
    };
    sqlx::query(sql)
        .bind(&product.id)
        .bind(&product.business_id)
        .bind(&product.name)
        .bind(&product.description)
        .bind(product.license_key_activations_limit.map(i64::from))
        .bind(count)
        .bind(interval)
        .bind(&product.license_key_activation_message)
        .bind(serde_json::to_string(&product.metadata).map_err(corrupt)?)
        .bind(product.created_at.micros())
        .bind(product.updated_at.micros())
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl LicenseStore for PgStore {
    async fn create_customer(&self, c: &Customer) -> Result<()> {
        sqlx::query(
            "INSERT INTO customers (id, business_id, email, name, phone_number, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.business_id)
        .bind(&c.email)
        .bind(&c.name)
        .bind(&c.phone_number)
        .bind(serde_json::to_string(&c.metadata).map_err(corrupt)?)
        .bind(c.created_at.micros())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn customer(&self, business_id: &str, id: &str) -> Result<Option<Customer>> {
        sqlx::query(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE business_id = $1 AND id = $2"
        ))
        .bind(business_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?
        .as_ref()
        .map(customer_row)
        .transpose()
    }

    async fn list_customers(
        &self,
        business_id: &str,
        email: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<Customer>> {
        sqlx::query(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers
             WHERE business_id = $1 AND ($2::TEXT IS NULL OR email = $2)
             ORDER BY created_at, id LIMIT $3 OFFSET $4"
        ))
        .bind(business_id)
        .bind(email)
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?
        .iter()
        .map(customer_row)
        .collect()
    }

    async fn create_product(&self, product: &Product) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        write_product(&mut conn, product, true).await
    }

    async fn product(&self, business_id: &str, id: &str) -> Result<Option<Product>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        product_by_id(&mut conn, business_id, id, "").await
    }

    async fn list_products(&self, business_id: &str, page: PageRequest) -> Result<Vec<Product>> {
        sqlx::query(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = $1
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(business_id)
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?
        .iter()
        .map(product_row)
        .collect()
    }

    async fn update_product(
        &self,
        business_id: &str,
        id: &str,
        patch: ProductPatch,
    ) -> Result<Option<Product>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let Some(mut product) = product_by_id(&mut tx, business_id, id, "FOR UPDATE").await? else {
            return Ok(None);
        };
        patch.apply(&mut product, Timestamp::now());
        write_product(&mut tx, &product, false).await?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(product))
    }

    async fn create_license_key(&self, k: &LicenseKey) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO license_keys (id, business_id, key, customer_id, product_id, source, activations_limit,
                 instances_count, disabled, expires_at, payment_id, subscription_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&k.id)
        .bind(&k.business_id)
        .bind(&k.key)
        .bind(&k.customer_id)
        .bind(&k.product_id)
        .bind(k.source.as_str())
        .bind(k.activations_limit.map(i64::from))
        .bind(i64::from(k.instances_count))
        .bind(k.disabled)
        .bind(k.expires_at.map(Timestamp::micros))
        .bind(&k.payment_id)
        .bind(&k.subscription_id)
        .bind(k.created_at.micros())
        .execute(&self.pool)
        .await
        .map_err(classify)?
        .rows_affected();
        if inserted == 0 {
            return Err(StorageError::Duplicate(
                "this license key already exists".into(),
            ));
        }
        Ok(())
    }

    async fn license_key(&self, business_id: &str, id: &str) -> Result<Option<LicenseKey>> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        key_by_id(&mut conn, business_id, id, "").await
    }

    async fn list_license_keys(
        &self,
        business_id: &str,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> Result<Vec<LicenseKey>> {
        let (sql, params) =
            sql::list_license_keys(business_id, filter, page, Timestamp::now(), |n| {
                format!("${n}")
            });
        let statement = bind_all(sqlx::query(&sql), params);
        statement
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?
            .iter()
            .map(key_row)
            .collect()
    }

    async fn update_license_key(
        &self,
        business_id: &str,
        id: &str,
        patch: KeyPatch,
    ) -> Result<Option<LicenseKey>> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let Some(mut key) = key_by_id(&mut tx, business_id, id, "FOR UPDATE").await? else {
            return Ok(None);
        };
        let state = patch.apply(key.state(), key.subscription_id.is_some())?;
        key.set_state(state);
        save_key_state(&mut tx, &key).await?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(key))
    }

    async fn instance(&self, business_id: &str, id: &str) -> Result<Option<Instance>> {
        sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM license_key_instances WHERE business_id = $1 AND id = $2"
        ))
        .bind(business_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?
        .as_ref()
        .map(instance_row)
        .transpose()
    }

    async fn list_instances(
        &self,
        business_id: &str,
        license_key_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<Instance>> {
        sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM license_key_instances
             WHERE business_id = $1 AND ($2::TEXT IS NULL OR license_key_id = $2)
             ORDER BY created_at, id LIMIT $3 OFFSET $4"
        ))
        .bind(business_id)
        .bind(license_key_id)
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?
        .iter()
        .map(instance_row)
        .collect()
    }

    async fn rename_instance(
        &self,
        business_id: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<Instance>> {
        sqlx::query(&format!(
            "UPDATE license_key_instances SET name = $3 WHERE business_id = $1 AND id = $2
             RETURNING {INSTANCE_COLUMNS}"
        ))
        .bind(business_id)
        .bind(id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?
        .as_ref()
        .map(instance_row)
        .transpose()
    }

    async fn activate(&self, key: &str, instance_id: &str, name: &str) -> Result<Activation> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut license = lock_key_by_key(&mut tx, key)
            .await?
            .ok_or(StorageError::KeyNotFound)?;
        let now = Timestamp::now();
        license.state().check_activation(now)?;
        let instance = Instance {
            id: instance_id.to_owned(),
            business_id: license.business_id.clone(),
            license_key_id: license.id.clone(),
            name: name.to_owned(),
            created_at: now,
        };
        license.instances_count += 1;
        // One round trip, while the key's row is locked: the instance, the new count, and
        // the customer's and product's details for the answer.
        let details = sqlx::query(&format!(
            "WITH instance AS (
                 INSERT INTO license_key_instances (id, business_id, license_key_id, name, created_at)
                 VALUES ($1, $2, $3, $4, $5)
             ), counted AS (
                 UPDATE license_keys SET instances_count = $6 WHERE id = $3
             )
             SELECT {CUSTOMER_COLUMNS}, (SELECT name FROM products WHERE id = $8)
             FROM customers WHERE id = $7"
        ))
        .bind(&instance.id)
        .bind(&instance.business_id)
        .bind(&instance.license_key_id)
        .bind(&instance.name)
        .bind(now.micros())
        .bind(i64::from(license.instances_count))
        .bind(&license.customer_id)
        .bind(&license.product_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        let customer = customer_row(&details)?;
        let product_name: String = details.try_get(7).map_err(corrupt)?;
        tx.commit().await.map_err(classify)?;
        Ok(Activation {
            instance,
            customer,
            product_id: license.product_id,
            product_name,
        })
    }

    async fn deactivate(&self, key: &str, instance_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut license = lock_key_by_key(&mut tx, key)
            .await?
            .ok_or(StorageError::KeyNotFound)?;
        let removed =
            sqlx::query("DELETE FROM license_key_instances WHERE id = $1 AND license_key_id = $2")
                .bind(instance_id)
                .bind(&license.id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
        if removed == 0 {
            return Err(StorageError::KeyNotFound);
        }
        license.instances_count = license.instances_count.saturating_sub(1);
        save_key_state(&mut tx, &license).await?;
        tx.commit().await.map_err(classify)?;
        Ok(())
    }

    async fn find_key(
        &self,
        key: &str,
        instance_id: Option<&str>,
    ) -> Result<Option<(LicenseKey, bool)>> {
        let row = sqlx::query(&format!(
            "SELECT {LICENSE_KEY_COLUMNS},
                 $2::TEXT IS NULL OR EXISTS (
                     SELECT 1 FROM license_key_instances i WHERE i.id = $2 AND i.license_key_id = license_keys.id)
             FROM license_keys WHERE key = $1"
        ))
        .bind(key)
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|row| Ok((key_row(&row)?, row.try_get(13).map_err(corrupt)?)))
            .transpose()
    }
}

/// `lock` is empty or `FOR UPDATE`.
async fn product_by_id(
    conn: &mut PgConnection,
    business_id: &str,
    id: &str,
    lock: &str,
) -> Result<Option<Product>> {
    sqlx::query(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = $1 AND id = $2 {lock}"
    ))
    .bind(business_id)
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(classify)?
    .as_ref()
    .map(product_row)
    .transpose()
}

/// `lock` is empty or `FOR UPDATE`.
async fn key_by_id(
    conn: &mut PgConnection,
    business_id: &str,
    id: &str,
    lock: &str,
) -> Result<Option<LicenseKey>> {
    sqlx::query(&format!(
        "SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE business_id = $1 AND id = $2 {lock}"
    ))
    .bind(business_id)
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(classify)?
    .as_ref()
    .map(key_row)
    .transpose()
}
