//! Businesses and their API keys on PostgreSQL, and the settings kept beside them (whether
//! the server was bootstrapped, the secret that signs its tokens). An API key is stored
//! as its digest alone, found by that digest and compared in constant time; the key
//! itself is never written down.

use async_trait::async_trait;
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use super::PgStore;
use super::pool::{Params, execute, query_one};
use super::tx::Tx;
use crate::domain::auth::{
    Access, ApiKeyInfo, ApiKeySecret, KeyDigest, Principal, Refusal, admit_key,
};
use crate::domain::ids::{ApiKeyId, BusinessId, BusinessName, KeyString, SigningKeyId, new_id};
use crate::domain::time::Timestamp;
use crate::storage::columns::{LIST_API_KEYS, SIGNING_KEY_COLUMNS, key_read_as_query};
use crate::storage::error::Result;
use crate::storage::rows::{self, Columns};
use crate::storage::store::{AccountStore, StoredSigningKey};

#[async_trait]
impl AccountStore for PgStore {
    async fn authenticate(&self, digest: KeyDigest) -> Result<Option<Principal>> {
        let row = self
            .query_opt(
                "SELECT k.business_id, k.digest, k.read_only, b.brand_id FROM api_keys k
                 JOIN businesses b ON b.id = k.business_id WHERE k.digest = $1",
                &[&&digest.0[..]],
            )
            .await?;
        row.map_or(Ok(None), |row| rows::principal(&row, digest))
    }

    async fn ensure_business(&self, name: &BusinessName) -> Result<BusinessId> {
        let conn = self.conn().await?;
        execute(
            &conn,
            "INSERT INTO businesses (id, name, brand_id, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
            &[
                &BusinessId::generate(),
                &name.as_str(),
                &new_id("brnd"),
                &Timestamp::now().micros(),
            ],
        )
        .await?;
        // A statement of its own, so that it sees a business another process just created.
        query_one(
            &conn,
            "SELECT id FROM businesses WHERE name = $1",
            &[&name.as_str()],
        )
        .await?
        .text(0)
        .map(BusinessId::from)
    }

    async fn create_api_key(
        &self,
        business_id: &BusinessId,
        digest: KeyDigest,
        read_only: bool,
    ) -> Result<ApiKeyId> {
        insert_api_key(&*self.conn().await?, business_id, digest, read_only).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let keys = self.query(LIST_API_KEYS, &[]).await?;
        keys.iter().map(rows::api_key_info).collect()
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool> {
        Ok(self
            .execute("DELETE FROM api_keys WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    async fn bootstrap(&self, digest: KeyDigest) -> Result<bool> {
        let tx = Tx::open(self).await?;
        let outcome = async {
            // Of several processes starting together, only the one whose insert lands
            // bootstraps.
            let first = !tx
                .begin_with(
                    "INSERT INTO settings (name, value) VALUES ('bootstrapped', '1')
                     ON CONFLICT (name) DO NOTHING RETURNING 1",
                    &[],
                )
                .await?
                .is_empty();
            let empty: bool = query_one(&tx, "SELECT NOT EXISTS (SELECT 1 FROM businesses)", &[])
                .await?
                .try_get(0)
                .map_err(rows::corrupt)?;
            if !(first && empty) {
                return Ok(false);
            }
            let business_id = BusinessId::generate();
            execute(
                &tx,
                "INSERT INTO businesses (id, name, brand_id, created_at) VALUES ($1, 'default', $2, $3)",
                &[&business_id, &new_id("brnd"), &Timestamp::now().micros()],
            )
            .await?;
            insert_api_key(&tx, &business_id, digest, false).await?;
            Ok(true)
        }
        .await;
        tx.finish(outcome).await
    }

    async fn token_secret(&self) -> Result<Vec<u8>> {
        let conn = self.conn().await?;
        execute(
            &conn,
            "INSERT INTO settings (name, value) VALUES ('token_secret', $1) ON CONFLICT (name) DO NOTHING",
            &[&ApiKeySecret::generate().expose()],
        )
        .await?;
        let secret: String = query_one(
            &conn,
            "SELECT value FROM settings WHERE name = 'token_secret'",
            &[],
        )
        .await?
        .try_get(0)
        .map_err(rows::corrupt)?;
        Ok(secret.into_bytes())
    }

    async fn business_of_key(&self, key: &KeyString) -> Result<Option<BusinessId>> {
        self.query_opt(
            "SELECT business_id FROM license_keys WHERE key = $1",
            &[&key.as_str()],
        )
        .await?
        .map(|row| row.text(0).map(BusinessId::from))
        .transpose()
    }

    async fn key_read_as(&self, meant: &KeyString) -> Result<bool> {
        let sql = key_read_as_query(r#"upper(key COLLATE "C")"#, |n| format!("${n}::TEXT"));
        let row = self.query_opt(&sql, &[&meant.as_str()]).await?;
        Ok(row.is_some_and(|row| row.get::<_, bool>(0)))
    }

    async fn first_business(&self) -> Result<Option<BusinessId>> {
        self.query_opt(
            "SELECT id FROM businesses ORDER BY created_at, id LIMIT 1",
            &[],
        )
        .await?
        .map(|row| row.text(0).map(BusinessId::from))
        .transpose()
    }

    async fn business_id(&self, name: &BusinessName) -> Result<Option<BusinessId>> {
        self.query_opt(
            "SELECT id FROM businesses WHERE name = $1",
            &[&name.as_str()],
        )
        .await?
        .map(|row| row.text(0).map(BusinessId::from))
        .transpose()
    }

    async fn signing_keys(
        &self,
        business_id: Option<&BusinessId>,
    ) -> Result<Vec<StoredSigningKey>> {
        self.query(
            &format!(
                "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys
                 WHERE $1::TEXT IS NULL OR business_id = $1 ORDER BY business_id, created_at, id"
            ),
            &[&business_id],
        )
        .await?
        .iter()
        .map(rows::signing_key)
        .collect()
    }

    async fn businesses_without_signing_key(&self) -> Result<Vec<BusinessId>> {
        self.query(
            "SELECT id FROM businesses b WHERE NOT EXISTS (
                 SELECT 1 FROM signing_keys k WHERE k.business_id = b.id AND k.active)
             ORDER BY created_at, id",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.text(0).map(BusinessId::from))
        .collect()
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, only_if_none: bool) -> Result<bool> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            // The business's row, locked: rotations and first keys of one business take turns.
            // The active key is looked for once the lock is held, in a statement of its own:
            // in the locking one it was read as it was before the wait, so callers that had
            // waited for a first key each made another.
            let business: &Params = &[&key.business_id];
            let (_, found) = tx
                .begin_with_two(
                    ("SELECT 1 FROM businesses WHERE id = $1 FOR UPDATE", business),
                    (
                        "SELECT EXISTS (
                             SELECT 1 FROM signing_keys WHERE business_id = $1 AND active)",
                        business,
                    ),
                )
                .await?;
            let has_one = found.first().map(|row| row.flag(0)).transpose()?.unwrap_or(false);
            if has_one && only_if_none {
                return Ok(false);
            }
            // Two statements: one with both changes would not order them, and the index
            // that allows one active key per business checks each row at once.
            execute(
                &tx,
                "UPDATE signing_keys SET active = FALSE WHERE business_id = $1 AND active",
                &[&key.business_id],
            )
            .await?;
            tx.commit_with(
                "INSERT INTO signing_keys (id, business_id, public_key, private_key, active, created_at)
                 VALUES ($1, $2, $3, $4, TRUE, $5)",
                &[
                    &key.id,
                    &key.business_id,
                    &key.public_key,
                    &key.private_key,
                    &key.created_at.micros(),
                ],
            )
            .await?;
            Ok(true)
        }
        .await;
        tx.finish(outcome).await
    }

    async fn reseal_signing_key(&self, id: &SigningKeyId, private_key: &[u8]) -> Result<()> {
        self.execute(
            "UPDATE signing_keys SET private_key = $2 WHERE id = $1",
            &[&id, &private_key],
        )
        .await?;
        Ok(())
    }
}

/// The business of the key in a row that starts with `business_id, digest, read_only` of
/// an `api_keys` row found by `digest`, if the key allows `access`.
pub(super) fn admitted_business(
    row: Option<&Row>,
    digest: KeyDigest,
    access: Access,
) -> Result<BusinessId> {
    admit_key(
        row.map_or(Ok(None), |row| read_only_of(row, digest))?,
        access,
    )?;
    let row = row.ok_or(Refusal::UnknownKey)?;
    row.text(0).map(BusinessId::from)
}

/// Whether the key is read-only, in a row that starts with `business_id, digest,
/// read_only` of an `api_keys` row found by `digest`; `None` if the digests differ.
fn read_only_of(row: &Row, digest: KeyDigest) -> Result<Option<bool>> {
    if !row.digest_matches(1, digest)? {
        return Ok(None);
    }
    row.flag(2).map(Some)
}

async fn insert_api_key(
    client: &ClientWrapper,
    business_id: &BusinessId,
    digest: KeyDigest,
    read_only: bool,
) -> Result<ApiKeyId> {
    let id = ApiKeyId::generate();
    execute(
        client,
        "INSERT INTO api_keys (id, business_id, digest, read_only, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &business_id,
            &&digest.0[..],
            &read_only,
            &Timestamp::now().micros(),
        ],
    )
    .await?;
    Ok(id)
}
