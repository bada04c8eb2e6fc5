//! Businesses, API keys and the store's settings on SQLite. API keys are stored by digest,
//! and looked up through the store's `KnownKeys`.

use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::error::internal;
use crate::domain::auth::{ApiKeyInfo, KeyDigest, Principal};
use crate::domain::ids::{ApiKeyId, BusinessId, BusinessName, KeyString, SigningKeyId, new_id};
use crate::domain::time::Timestamp;
use crate::storage::columns::{LIST_API_KEYS, SIGNING_KEY_COLUMNS, key_read_as_query};
use crate::storage::error::Result;
use crate::storage::rows;
use crate::storage::store::{AccountStore, StoredSigningKey};

/// Whether a key other than `?1` reads as `?1`, from the index of keys as read.
pub(super) static KEY_READ_AS: LazyLock<String> =
    LazyLock::new(|| key_read_as_query("upper(key)", |n| format!("?{n}")));

#[async_trait]
impl AccountStore for SqliteStore {
    async fn authenticate(&self, digest: KeyDigest) -> Result<Option<Principal>> {
        self.read(|conn| self.known_keys.principal(conn, digest))
    }

    async fn ensure_business(&self, name: &BusinessName) -> Result<BusinessId> {
        let name = name.as_str().to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO businesses (id, name, brand_id, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![
                    BusinessId::generate(),
                    name,
                    new_id("brnd"),
                    Timestamp::now().micros()
                ],
            )
            .map_err(internal)?;
            tx.query_row("SELECT id FROM businesses WHERE name = ?1", [&name], |r| {
                r.get::<_, String>(0)
            })
            .map(BusinessId::from)
            .map_err(internal)
        })
        .await
    }

    async fn create_api_key(
        &self,
        business_id: &BusinessId,
        digest: KeyDigest,
        read_only: bool,
    ) -> Result<ApiKeyId> {
        let business_id = business_id.clone();
        self.write(move |tx| insert_api_key(tx, &business_id, digest, read_only))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(LIST_API_KEYS).map_err(internal)?;
            let keys = stmt
                .query_map([], |r| Ok(rows::api_key_info(r)))
                .map_err(internal)?;
            keys.map(|key| key.map_err(internal)?).collect()
        })
    }

    /// `licensed api-key revoke` cannot run beside a server on the same file (see
    /// `KnownKeys`); a store that revokes a key itself forgets every key it remembers.
    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool> {
        let id = id.clone();
        let revoked = self
            .write(move |tx| {
                tx.execute("DELETE FROM api_keys WHERE id = ?1", [&id])
                    .map_err(internal)
            })
            .await?;
        self.known_keys.forget_all();
        Ok(revoked > 0)
    }

    async fn bootstrap(&self, digest: KeyDigest) -> Result<bool> {
        self.write(move |tx| {
            let first = tx
                .execute(
                    "INSERT INTO settings (name, value) VALUES ('bootstrapped', '1')
                     ON CONFLICT (name) DO NOTHING",
                    [],
                )
                .map_err(internal)?
                == 1;
            let empty: bool = tx
                .query_row("SELECT NOT EXISTS (SELECT 1 FROM businesses)", [], |r| {
                    r.get(0)
                })
                .map_err(internal)?;
            if !(first && empty) {
                return Ok(false);
            }
            let business_id = BusinessId::generate();
            tx.execute(
                "INSERT INTO businesses (id, name, brand_id, created_at) VALUES (?1, 'default', ?2, ?3)",
                params![business_id, new_id("brnd"), Timestamp::now().micros()],
            )
            .map_err(internal)?;
            insert_api_key(tx, &business_id, digest, false)?;
            Ok(true)
        })
        .await
    }

    async fn token_secret(&self) -> Result<Vec<u8>> {
        let fresh = crate::domain::auth::ApiKeySecret::generate()
            .expose()
            .to_owned();
        let secret: String = self
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO settings (name, value) VALUES ('token_secret', ?1)
                     ON CONFLICT (name) DO NOTHING",
                    [fresh],
                )
                .map_err(internal)?;
                tx.query_row(
                    "SELECT value FROM settings WHERE name = 'token_secret'",
                    [],
                    |r| r.get(0),
                )
                .map_err(internal)
            })
            .await?;
        Ok(secret.into_bytes())
    }

    async fn business_of_key(&self, key: &KeyString) -> Result<Option<BusinessId>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT business_id FROM license_keys WHERE key = ?1",
                [key.as_str()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|id| id.map(BusinessId::from))
            .map_err(internal)
        })
    }

    async fn key_read_as(&self, meant: &KeyString) -> Result<bool> {
        self.read(|conn| {
            conn.query_row(&KEY_READ_AS, [meant.as_str()], |r| r.get::<_, bool>(0))
                .map_err(internal)
        })
    }

    async fn first_business(&self) -> Result<Option<BusinessId>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT id FROM businesses ORDER BY created_at, id LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|id| id.map(BusinessId::from))
            .map_err(internal)
        })
    }

    async fn business_id(&self, name: &BusinessName) -> Result<Option<BusinessId>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT id FROM businesses WHERE name = ?1",
                [name.as_str()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|id| id.map(BusinessId::from))
            .map_err(internal)
        })
    }

    async fn signing_keys(
        &self,
        business_id: Option<&BusinessId>,
    ) -> Result<Vec<StoredSigningKey>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys
                     WHERE ?1 IS NULL OR business_id = ?1 ORDER BY business_id, created_at, id"
                ))
                .map_err(internal)?;
            let found = stmt
                .query_map([business_id], |r| Ok(rows::signing_key(r)))
                .map_err(internal)?;
            found.map(|row| row.map_err(internal)?).collect()
        })
    }

    async fn businesses_without_signing_key(&self) -> Result<Vec<BusinessId>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM businesses b WHERE NOT EXISTS (
                         SELECT 1 FROM signing_keys k WHERE k.business_id = b.id AND k.active)
                     ORDER BY created_at, id",
                )
                .map_err(internal)?;
            let found = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(internal)?;
            found
                .map(|id| id.map(BusinessId::from).map_err(internal))
                .collect()
        })
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, only_if_none: bool) -> Result<bool> {
        let key = key.clone();
        self.write(move |tx| {
            let has_one: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE business_id = ?1 AND active)",
                    [&key.business_id],
                    |r| r.get(0),
                )
                .map_err(internal)?;
            if has_one && only_if_none {
                return Ok(false);
            }
            tx.execute(
                "UPDATE signing_keys SET active = 0 WHERE business_id = ?1 AND active",
                [&key.business_id],
            )
            .map_err(internal)?;
            tx.execute(
                "INSERT INTO signing_keys (id, business_id, public_key, private_key, active, created_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                params![
                    key.id,
                    key.business_id,
                    key.public_key,
                    key.private_key,
                    key.created_at.micros()
                ],
            )
            .map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn reseal_signing_key(&self, id: &SigningKeyId, private_key: &[u8]) -> Result<()> {
        let (id, private_key) = (id.clone(), private_key.to_vec());
        self.write(move |tx| {
            tx.execute(
                "UPDATE signing_keys SET private_key = ?2 WHERE id = ?1",
                params![id, private_key],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}

fn insert_api_key(
    tx: &Connection,
    business_id: &BusinessId,
    digest: KeyDigest,
    read_only: bool,
) -> Result<ApiKeyId> {
    let id = ApiKeyId::generate();
    tx.execute(
        "INSERT INTO api_keys (id, business_id, digest, read_only, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, business_id, &digest.0[..], read_only, Timestamp::now().micros()],
    )
    .map_err(internal)?;
    Ok(id)
}
