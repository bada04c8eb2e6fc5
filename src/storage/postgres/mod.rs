//! The shared backend: many server processes may use one PostgreSQL database, so every
//! rule that must hold across them is enforced with transactions, locks and constraints.

mod ledger;
mod licenses;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{
    AccountStore, HealthStore, OpenError, PoolUsage, Result, StorageError, StorageOptions,
};
use crate::domain::auth::{ApiKeySecret, KeyDigest, Principal};
use crate::domain::ids::{BusinessName, new_id};
use crate::domain::time::Timestamp;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(options: &StorageOptions) -> Result<Self, OpenError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.timeout)
            .connect(&options.url)
            .await
            .map_err(|e| OpenError::Failed(format!("cannot connect to PostgreSQL: {e}")))?;
        sqlx::migrate!("src/storage/postgres/migrations")
            .run(&pool)
            .await
            .map_err(|e| OpenError::Failed(format!("migrations: {e}")))?;
        Ok(Self { pool })
    }
}

/// Binds the shared listing queries' parameters, in order.
pub(super) fn bind_all<'q>(
    mut statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: Vec<super::sql::Param<'q>>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for param in params {
        statement = match param {
            super::sql::Param::Text(text) => statement.bind(text),
            super::sql::Param::Int(int) => statement.bind(int),
        };
    }
    statement
}

/// Maps a driver error: lost or exhausted connections are an outage, the rest a failure.
pub(super) fn classify(error: sqlx::Error) -> StorageError {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(error.to_string()),
        other => StorageError::Internal(other.to_string()),
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn authenticate(&self, digest: KeyDigest) -> Result<Option<Principal>> {
        let row: Option<(String, Vec<u8>, bool, String)> = sqlx::query_as(
            "SELECT k.business_id, k.digest, k.read_only, b.brand_id FROM api_keys k
                     JOIN businesses b ON b.id = k.business_id WHERE k.digest = $1",
        )
        .bind(&digest.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.filter(|(_, stored, _, _)| digest.matches(stored)).map(
            |(business_id, _, read_only, brand_id)| Principal {
                business_id,
                brand_id,
                read_only,
            },
        ))
    }

    async fn ensure_business(&self, name: &BusinessName) -> Result<String> {
        sqlx::query(
            "INSERT INTO businesses (id, name, brand_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(new_id("bus"))
        .bind(name.as_str())
        .bind(new_id("brnd"))
        .bind(Timestamp::now().micros())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        sqlx::query_scalar("SELECT id FROM businesses WHERE name = $1")
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(classify)
    }

    async fn create_api_key(
        &self,
        business_id: &str,
        digest: KeyDigest,
        read_only: bool,
    ) -> Result<()> {
        insert_api_key(&self.pool, business_id, digest, read_only).await
    }

    async fn bootstrap(&self, digest: KeyDigest) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Of several processes starting together, only the one whose insert lands bootstraps.
        let first = sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('bootstrapped', '1') ON CONFLICT (name) DO NOTHING",
        )
        .execute(&mut *tx)
        .await
        .map_err(classify)?
        .rows_affected()
            == 1;
        let empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM businesses)")
            .fetch_one(&mut *tx)
            .await
            .map_err(classify)?;
        if !(first && empty) {
            tx.commit().await.map_err(classify)?;
            return Ok(false);
        }
        let business_id = new_id("bus");
        sqlx::query(
            "INSERT INTO businesses (id, name, brand_id, created_at) VALUES ($1, 'default', $2, $3)",
        )
        .bind(&business_id)
        .bind(new_id("brnd"))
        .bind(Timestamp::now().micros())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        insert_api_key(&mut *tx, &business_id, digest, false).await?;
        tx.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn token_secret(&self) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('token_secret', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(ApiKeySecret::generate().expose())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        let secret: String =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'token_secret'")
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?;
        Ok(secret.into_bytes())
    }
}

#[async_trait]
impl HealthStore for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(())
    }

    fn connections(&self) -> PoolUsage {
        PoolUsage {
            open: self.pool.size() as usize,
            idle: self.pool.num_idle(),
        }
    }
}

async fn insert_api_key<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    business_id: &str,
    digest: KeyDigest,
    read_only: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, business_id, digest, read_only, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id("key"))
    .bind(business_id)
    .bind(&digest.0[..])
    .bind(read_only)
    .bind(Timestamp::now().micros())
    .execute(executor)
    .await
    .map_err(classify)?;
    Ok(())
}
