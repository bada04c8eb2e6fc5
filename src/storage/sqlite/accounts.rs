//! Businesses, API keys and the store's settings on SQLite. API keys are stored by digest;
//! a key found once is remembered in memory (`KnownKeys`), since this process alone can
//! revoke one.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::error::internal;
use crate::domain::auth::{ApiKeyInfo, KeyDigest, Principal};
use crate::domain::ids::{ApiKeyId, BusinessId, BusinessName, new_id};
use crate::domain::time::Timestamp;
use crate::storage::{AccountStore, Result, rows};

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
            let mut stmt = conn.prepare_cached(rows::LIST_API_KEYS).map_err(internal)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(internal)?;
            rows.map(|row| {
                let (id, business, read_only, created_at) = row.map_err(internal)?;
                Ok(ApiKeyInfo {
                    id: ApiKeyId::from(id),
                    business,
                    read_only,
                    created_at: rows::timestamp(created_at)?,
                })
            })
            .collect()
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
}

/// API keys found so far, by digest. This process holds the database file exclusively
/// (`unix-excl`), so no other process can revoke a key while it runs, and an API key is
/// never changed once created: a key found in committed data stays as it was until this
/// process revokes one. It is read from the database once.
/// Unknown digests are not remembered (a client could send endless ones).
#[derive(Default)]
pub(super) struct KnownKeys(RwLock<Known>);

#[derive(Default)]
struct Known {
    keys: HashMap<[u8; 32], Principal>,
    /// How many times this process has revoked keys: a key read before a revoke is not
    /// remembered after it.
    revokes: u64,
}

impl KnownKeys {
    pub(super) fn get(&self, digest: KeyDigest) -> Option<Principal> {
        self.0.read().ok()?.keys.get(&digest.0).cloned()
    }

    /// Read before looking a key up in the database, and given to [`Self::remember`].
    pub(super) fn revokes(&self) -> u64 {
        self.0.read().map_or(0, |known| known.revokes)
    }

    fn forget_all(&self) {
        if let Ok(mut known) = self.0.write() {
            known.keys.clear();
            known.revokes += 1;
        }
    }

    /// Call only with a principal read from committed data: a key inserted by a write
    /// that is later rolled back must not be remembered. `revokes_before` is
    /// [`Self::revokes`] from before the read.
    pub(super) fn remember(&self, digest: KeyDigest, principal: &Principal, revokes_before: u64) {
        if let Ok(mut known) = self.0.write()
            && known.revokes == revokes_before
        {
            known.keys.insert(digest.0, principal.clone());
        }
    }

    /// The key's principal, from memory or else from `conn`, a read connection (which
    /// sees committed data only).
    pub(super) fn principal(
        &self,
        conn: &Connection,
        digest: KeyDigest,
    ) -> Result<Option<Principal>> {
        if let Some(principal) = self.get(digest) {
            return Ok(Some(principal));
        }
        let revokes = self.revokes();
        let found = principal_of_key(conn, digest)?;
        if let Some(principal) = &found {
            self.remember(digest, principal, revokes);
        }
        Ok(found)
    }
}

/// The principal of the API key with that digest, if any.
pub(super) fn principal_of_key(conn: &Connection, digest: KeyDigest) -> Result<Option<Principal>> {
    let row: Option<(String, Vec<u8>, bool, String)> = conn
        .prepare_cached(
            "SELECT k.business_id, k.digest, k.read_only, b.brand_id FROM api_keys k
             JOIN businesses b ON b.id = k.business_id WHERE k.digest = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([&digest.0[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(internal)?;
    Ok(row.filter(|(_, stored, _, _)| digest.matches(stored)).map(
        |(business_id, _, read_only, brand_id)| Principal {
            business_id: BusinessId::from(business_id),
            brand_id,
            read_only,
        },
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_read_before_a_revoke_is_not_remembered_after_it() {
        let known = KnownKeys::default();
        let digest = KeyDigest::of("lsk_admin");
        let principal = Principal {
            business_id: "bus_1".into(),
            brand_id: "brnd_1".into(),
            read_only: false,
        };
        let before = known.revokes();
        known.forget_all();
        known.remember(digest, &principal, before);
        assert_eq!(known.get(digest), None);
        known.remember(digest, &principal, known.revokes());
        assert_eq!(known.get(digest), Some(principal));
    }
}
