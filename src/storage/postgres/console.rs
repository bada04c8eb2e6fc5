//! The console's sessions and overview on PostgreSQL, where every process sees them.

use async_trait::async_trait;

use super::PgStore;
use super::pool::Params;
use crate::domain::console::{
    ConsoleSession, Overview, SessionDigest, TOUCH_EVERY_MICROS, idle_since,
};
use crate::domain::ids::{AccountId, BusinessId, LicenseId};
use crate::domain::time::{MICROS_PER_DAY, Timestamp};
use crate::storage::columns::{SESSION_COLUMNS, ledger_pairs_query, overview_query};
use crate::storage::error::{Result, StorageError};
use crate::storage::rows;
use crate::storage::store::ConsoleStore;

#[async_trait]
impl ConsoleStore for PgStore {
    async fn create_session(&self, s: &ConsoleSession) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO console_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            ),
            &[
                &&s.digest.0[..],
                &&s.api_key.0[..],
                &s.csrf_token,
                &s.created_at.micros(),
                &s.last_seen_at.micros(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        digest: &SessionDigest,
        now: Timestamp,
    ) -> Result<Option<ConsoleSession>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM console_sessions WHERE digest = $1 AND last_seen_at >= $2"
        );
        let row = self
            .query_opt(&sql, &[&&digest.0[..], &idle_since(now).micros()])
            .await?;
        let Some(mut session) = row.as_ref().map(rows::console_session).transpose()? else {
            return Ok(None);
        };
        if now.micros() - session.last_seen_at.micros() >= TOUCH_EVERY_MICROS {
            self.execute(
                "UPDATE console_sessions SET last_seen_at = $2 WHERE digest = $1",
                &[&&digest.0[..], &now.micros()],
            )
            .await?;
            session.last_seen_at = now;
        }
        Ok(Some(session))
    }

    async fn delete_session(&self, digest: &SessionDigest) -> Result<()> {
        self.execute(
            "DELETE FROM console_sessions WHERE digest = $1",
            &[&&digest.0[..]],
        )
        .await?;
        Ok(())
    }

    async fn forget_sessions(&self, idle_since: Timestamp) -> Result<u64> {
        self.execute(
            "DELETE FROM console_sessions WHERE last_seen_at < $1",
            &[&idle_since.micros()],
        )
        .await
    }

    async fn ledger_pairs(
        &self,
        business_id: &BusinessId,
        account: Option<&AccountId>,
        after: Option<(&AccountId, &LicenseId)>,
        limit: u32,
    ) -> Result<Vec<(AccountId, LicenseId)>> {
        let sql = ledger_pairs_query(after.is_some(), |n| match n {
            2 => "$2::TEXT".to_owned(),
            _ => format!("${n}"),
        });
        let (account, limit) = (account.map(AccountId::as_str), i64::from(limit));
        let rows = match after {
            None => self.query(&sql, &[&business_id, &account, &limit]).await?,
            Some((after_account, after_license)) => {
                let parameters: &Params = &[
                    &business_id,
                    &account,
                    &limit,
                    &after_account.as_str(),
                    &after_license.as_str(),
                ];
                self.query(&sql, parameters).await?
            }
        };
        (rows.iter()).map(rows::pair).collect()
    }

    async fn overview(&self, business_id: &BusinessId, now: Timestamp) -> Result<Overview> {
        let sql = overview_query(|n| format!("${n}"));
        let day_ago = now.micros() - MICROS_PER_DAY;
        let row = self
            .query_opt(&sql, &[&business_id, &now.micros(), &day_ago])
            .await?
            .ok_or_else(|| StorageError::Internal("the overview returned no row".into()))?;
        rows::overview(&row)
    }
}
