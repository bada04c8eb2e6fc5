//! The console's sessions and overview on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, ToSql, params, params_from_iter};

use super::SqliteStore;
use super::error::internal;
use crate::domain::console::{
    ConsoleSession, Overview, SessionDigest, TOUCH_EVERY_MICROS, idle_since,
};
use crate::domain::ids::{AccountId, BusinessId, LicenseId};
use crate::domain::time::{MICROS_PER_DAY, Timestamp};
use crate::storage::columns::{SESSION_COLUMNS, ledger_pairs_query, overview_query};
use crate::storage::error::Result;
use crate::storage::rows;
use crate::storage::store::ConsoleStore;

#[async_trait]
impl ConsoleStore for SqliteStore {
    async fn create_session(&self, session: &ConsoleSession) -> Result<()> {
        let s = session.clone();
        self.write(move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO console_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
                ),
                params![
                    &s.digest.0[..],
                    &s.api_key.0[..],
                    s.csrf_token,
                    s.created_at.micros(),
                    s.last_seen_at.micros()
                ],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        digest: &SessionDigest,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let found = self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM console_sessions WHERE digest = ?1 AND last_seen_at >= ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![&digest.0[..], idle_since(now).micros()], |r| {
                    Ok(rows::console_session(r))
                })
                .optional()
            })
            .map_err(internal)?
            .transpose()
        })?;
        let Some(mut session) = found else {
            return Ok(None);
        };
        if now.micros() - session.last_seen_at.micros() >= TOUCH_EVERY_MICROS {
            let digest = *digest;
            self.write(move |tx| {
                tx.execute(
                    "UPDATE console_sessions SET last_seen_at = ?2 WHERE digest = ?1",
                    params![&digest.0[..], now.micros()],
                )
                .map_err(internal)?;
                Ok(())
            })
            .await?;
            session.last_seen_at = now;
        }
        Ok(Some(session))
    }

    async fn delete_session(&self, digest: &SessionDigest) -> Result<()> {
        let digest = *digest;
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM console_sessions WHERE digest = ?1",
                params![&digest.0[..]],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn forget_sessions(&self, idle_since: Timestamp) -> Result<u64> {
        self.write(move |tx| {
            let forgotten = tx
                .execute(
                    "DELETE FROM console_sessions WHERE last_seen_at < ?1",
                    params![idle_since.micros()],
                )
                .map_err(internal)?;
            Ok(forgotten as u64)
        })
        .await
    }

    async fn ledger_pairs(
        &self,
        business_id: &BusinessId,
        account: Option<&AccountId>,
        after: Option<(&AccountId, &LicenseId)>,
        limit: u32,
    ) -> Result<Vec<(AccountId, LicenseId)>> {
        let sql = ledger_pairs_query(after.is_some(), |n| format!("?{n}"));
        let account = account.map(AccountId::as_str);
        let after = after.map(|(a, l)| [a.as_str(), l.as_str()]);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
            let mut values: Vec<&dyn ToSql> = vec![business_id, &account, &limit];
            values.extend(after.iter().flatten().map(|v| v as &dyn ToSql));
            let pairs = stmt
                .query_map(params_from_iter(values), |r| Ok(rows::pair(r)))
                .map_err(internal)?;
            pairs.map(|p| p.map_err(internal)?).collect()
        })
    }

    async fn overview(&self, business_id: &BusinessId, now: Timestamp) -> Result<Overview> {
        let sql = overview_query(|n| format!("?{n}"));
        let day_ago = now.micros() - MICROS_PER_DAY;
        self.read(|conn| {
            conn.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.query_row(params![business_id, now.micros(), day_ago], |r| {
                        Ok(rows::overview(r))
                    })
                })
                .map_err(internal)?
        })
    }
}
