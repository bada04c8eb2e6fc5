//! Customers, products, license keys and instances on PostgreSQL. Activation,
//! deactivation and patches lock the key's row (`FOR UPDATE`) for their transaction, so
//! the activation limit holds across every process sharing the database; a CHECK
//! constraint guards it as well.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::pool::execute;
use super::tx::Tx;
use super::values::params;
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

/// The key with that key string, its row locked until the transaction ends. `BEGIN`
/// travels with it.
async fn begin_and_lock_key(tx: &Tx, key: &KeyString) -> Result<Option<LicenseKey>> {
    let sql = format!("SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE key = $1 FOR UPDATE");
    tx.begin_with(&sql, &[&key.as_str()])
        .await?
        .first()
        .map(rows::license_key)
        .transpose()
}

async fn save_key_state(tx: &mut Tx, key: &LicenseKey) -> Result<()> {
    tx.commit_with(
        "UPDATE license_keys SET activations_limit = $2, instances_count = $3, disabled = $4, expires_at = $5
         WHERE id = $1",
        &[
            &key.id,
            &key.activations_limit.map(i64::from),
            &i64::from(key.instances_count),
            &key.disabled,
            &key.expires_at.map(Timestamp::micros),
        ],
    )
    .await?;
    Ok(())
}

const INSERT_PRODUCT: &str = "INSERT INTO products (id, business_id, name, description,
         license_key_activations_limit, license_key_duration_count, license_key_duration_interval,
         license_key_activation_message, metadata, created_at, updated_at, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const UPDATE_PRODUCT: &str = "UPDATE products SET name = $3, description = $4,
         license_key_activations_limit = $5, license_key_duration_count = $6,
         license_key_duration_interval = $7, license_key_activation_message = $8, metadata = $9,
         updated_at = $11, details = $12
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
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
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
        ]
    }
}

#[async_trait]
impl LicenseStore for PgStore {
    async fn create_customer(&self, c: &Customer) -> Result<()> {
        let metadata = json_text(&c.metadata)?;
        self.execute(
            "INSERT INTO customers (id, business_id, email, name, phone_number, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &c.id,
                &c.business_id,
                &c.email,
                &c.name,
                &c.phone_number,
                &metadata,
                &c.created_at.micros(),
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
                 WHERE business_id = $1 AND ($2::TEXT IS NULL OR email = $2)
                 ORDER BY created_at, id LIMIT $3 OFFSET $4"
            ),
            &[&business_id, &email, &i64::from(page.size), &page.offset()],
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
                 ORDER BY created_at, id LIMIT $2 OFFSET $3"
            ),
            &[&business_id, &i64::from(page.size), &page.offset()],
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

    async fn create_license_key(&self, k: &LicenseKey) -> Result<()> {
        let inserted = self
            .execute(
                "INSERT INTO license_keys (id, business_id, key, customer_id, product_id, source, activations_limit,
                     instances_count, disabled, expires_at, payment_id, subscription_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (key) DO NOTHING",
                &[
                    &k.id,
                    &k.business_id,
                    &k.key,
                    &k.customer_id,
                    &k.product_id,
                    &k.source.as_str(),
                    &k.activations_limit.map(i64::from),
                    &i64::from(k.instances_count),
                    &k.disabled,
                    &k.expires_at.map(Timestamp::micros),
                    &k.payment_id,
                    &k.subscription_id,
                    &k.created_at.micros(),
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StorageError::Duplicate(
                "this license key already exists".into(),
            ));
        }
        Ok(())
    }

    async fn license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
    ) -> Result<Option<LicenseKey>> {
        self.query_opt(&key_by_id(""), &[&business_id, &id])
            .await?
            .as_ref()
            .map(rows::license_key)
            .transpose()
    }

    async fn list_license_keys(
        &self,
        business_id: &BusinessId,
        filter: &KeyFilter,
        page: PageRequest,
    ) -> Result<Vec<LicenseKey>> {
        let (sql, bound) = list_license_keys(business_id, filter, page, Timestamp::now(), |n| {
            format!("${n}")
        });
        self.query(&sql, &params(&bound))
            .await?
            .iter()
            .map(rows::license_key)
            .collect()
    }

    async fn update_license_key(
        &self,
        business_id: &BusinessId,
        id: &LicenseKeyId,
        patch: KeyPatch,
    ) -> Result<Option<LicenseKey>> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let sql = key_by_id("FOR UPDATE");
            let rows = tx.begin_with(&sql, &[&business_id, &id]).await?;
            let Some(mut key) = rows.first().map(rows::license_key).transpose()? else {
                return Ok(None);
            };
            let state = patch.apply(key.state(), key.subscription_id.is_some())?;
            key.set_state(state);
            save_key_state(&mut tx, &key).await?;
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
                "SELECT {INSTANCE_COLUMNS} FROM license_key_instances WHERE business_id = $1 AND id = $2"
            ),
            &[&business_id, &id],
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
                 ORDER BY created_at, id LIMIT $3 OFFSET $4"
            ),
            &[
                &business_id,
                &license_key_id,
                &i64::from(page.size),
                &page.offset(),
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
                 RETURNING {INSTANCE_COLUMNS}"
            ),
            &[&business_id, &id, &name.as_str()],
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
    ) -> Result<Activation> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let mut license = begin_and_lock_key(&tx, key)
                .await?
                .ok_or(StorageError::KeyNotFound)?;
            let now = Timestamp::now();
            let instance = license.activate(instance_id.clone(), name.as_str().to_owned(), now)?;
            // One round trip, while the key's row is locked: the instance, the new count,
            // the customer's and product's details for the answer, and the commit.
            let rows = tx
                .commit_with(
                    &format!(
                        "WITH instance AS (
                             INSERT INTO license_key_instances (id, business_id, license_key_id, name, created_at)
                             VALUES ($1, $2, $3, $4, $5)
                         ), counted AS (
                             UPDATE license_keys SET instances_count = $6 WHERE id = $3
                         )
                         SELECT {CUSTOMER_COLUMNS}, (SELECT name FROM products WHERE id = $8)
                         FROM customers WHERE id = $7"
                    ),
                    &[
                        &instance.id,
                        &instance.business_id,
                        &instance.license_key_id,
                        &instance.name,
                        &now.micros(),
                        &i64::from(license.instances_count),
                        &license.customer_id,
                        &license.product_id,
                    ],
                )
                .await?;
            let details = rows
                .first()
                .ok_or_else(|| StorageError::Internal("the key's customer vanished".into()))?;
            Ok(Activation {
                instance,
                customer: rows::customer(details)?,
                product_name: details.text(7)?,
                product_id: license.product_id,
            })
        }
        .await;
        tx.finish(outcome).await
    }

    async fn deactivate(&self, key: &KeyString, instance_id: &InstanceId) -> Result<()> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let mut license = begin_and_lock_key(&tx, key)
                .await?
                .ok_or(StorageError::KeyNotFound)?;
            let removed = execute(
                &tx,
                "DELETE FROM license_key_instances WHERE id = $1 AND license_key_id = $2",
                &[&instance_id, &license.id],
            )
            .await?;
            if removed == 0 {
                return Err(StorageError::KeyNotFound);
            }
            license.deactivate();
            save_key_state(&mut tx, &license).await
        }
        .await;
        tx.finish(outcome).await
    }

    async fn key_validity(
        &self,
        key: &KeyString,
        instance_id: Option<&InstanceId>,
    ) -> Result<Option<KeyValidity>> {
        // Two statements rather than one with `$2 IS NULL OR EXISTS (…)`: PostgreSQL would
        // plan that one anew on every execution, its plan for a NULL instance looking
        // cheaper than the generic plan.
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
                    "SELECT disabled, expires_at, EXISTS (
                         SELECT 1 FROM license_key_instances i
                         WHERE i.id = $2 AND i.license_key_id = license_keys.id)
                     FROM license_keys WHERE key = $1",
                    &[&key, &instance_id],
                )
                .await?
            }
        };
        row.as_ref().map(rows::key_validity).transpose()
    }
}

/// `lock` is empty or `FOR UPDATE`.
fn product_by_id(lock: &str) -> String {
    format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE business_id = $1 AND id = $2 {lock}")
}

/// `lock` is empty or `FOR UPDATE`.
fn key_by_id(lock: &str) -> String {
    format!(
        "SELECT {LICENSE_KEY_COLUMNS} FROM license_keys WHERE business_id = $1 AND id = $2 {lock}"
    )
}
