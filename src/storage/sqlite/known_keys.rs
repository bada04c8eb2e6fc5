//! API keys as this process finds them: looked up by digest in the database, and
//! remembered once found, since this process alone can revoke one.

use std::collections::HashMap;
use std::sync::RwLock;

use rusqlite::{Connection, OptionalExtension};

use super::error::internal;
use crate::domain::auth::{KeyDigest, Principal};
use crate::storage::error::Result;
use crate::storage::rows;

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

    pub(super) fn forget_all(&self) {
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
    conn.prepare_cached(
        "SELECT k.business_id, k.digest, k.read_only, b.brand_id FROM api_keys k
         JOIN businesses b ON b.id = k.business_id WHERE k.digest = ?1",
    )
    .and_then(|mut stmt| {
        stmt.query_row([&digest.0[..]], |r| Ok(rows::principal(r, digest)))
            .optional()
    })
    .map_err(internal)?
    .transpose()
    .map(Option::flatten)
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
