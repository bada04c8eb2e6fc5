//! Webhook endpoints on SQLite. A patch reads and writes the endpoint in one immediate
//! transaction on the writer thread.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::error::internal;
use crate::domain::ids::{BusinessId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{Endpoint, EndpointPatch};
use crate::storage::columns::{WEBHOOK_COLUMNS, json_text};
use crate::storage::error::{Result, StorageError};
use crate::storage::rows;
use crate::storage::store::WebhookStore;

fn endpoint_by(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<Endpoint>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_row(params, |row| Ok(rows::webhook_endpoint(row)))
                .optional()
        })
        .map_err(internal)?
        .transpose()
}

fn endpoint_by_id(
    conn: &Connection,
    business_id: &BusinessId,
    id: &WebhookId,
) -> Result<Option<Endpoint>> {
    endpoint_by(
        conn,
        &format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE business_id = ?1 AND id = ?2"
        ),
        params![business_id, id],
    )
}

fn write_endpoint(tx: &Connection, e: &Endpoint, insert: bool) -> Result<()> {
    let sql = if insert {
        "INSERT INTO webhook_endpoints (id, business_id, url, description, disabled, filter_types,
             headers, metadata, rate_limit, secret, idempotency_key, idempotency_digest, created_at,
             updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    } else {
        "UPDATE webhook_endpoints SET url = ?3, description = ?4, disabled = ?5,
             filter_types = ?6, headers = ?7, metadata = ?8, rate_limit = ?9, secret = ?10,
             idempotency_key = ?11, idempotency_digest = ?12, created_at = ?13, updated_at = ?14
         WHERE id = ?1 AND business_id = ?2"
    };
    let types: Vec<&str> = e.filter_types.iter().map(|t| t.as_str()).collect();
    tx.execute(
        sql,
        params![
            e.id,
            e.business_id,
            e.url.as_str(),
            e.description,
            e.disabled,
            json_text(&types)?,
            json_text(&e.headers)?,
            json_text(&e.metadata)?,
            e.rate_limit.map(|r| r.per_second()),
            e.secret,
            e.idempotency_key,
            e.idempotency_digest,
            e.created_at.micros(),
            e.updated_at.micros(),
        ],
    )
    .map_err(internal)?;
    Ok(())
}

/// The endpoint an earlier create with the same idempotency key made, if it asked the same.
fn replayed(earlier: Endpoint, asked: &Endpoint) -> Result<Endpoint> {
    if earlier.idempotency_digest == asked.idempotency_digest {
        Ok(earlier)
    } else {
        Err(StorageError::IdempotencyMismatch)
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, endpoint: &Endpoint) -> Result<Endpoint> {
        let endpoint = endpoint.clone();
        self.write(move |tx| {
            if let Some(key) = &endpoint.idempotency_key {
                let earlier = endpoint_by(
                    tx,
                    &format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints
                         WHERE business_id = ?1 AND idempotency_key = ?2"
                    ),
                    params![endpoint.business_id, key],
                )?;
                if let Some(earlier) = earlier {
                    return replayed(earlier, &endpoint);
                }
            }
            write_endpoint(tx, &endpoint, true)?;
            Ok(endpoint)
        })
        .await
    }

    async fn webhook(&self, business_id: &BusinessId, id: &WebhookId) -> Result<Option<Endpoint>> {
        self.read(|conn| endpoint_by_id(conn, business_id, id))
    }

    async fn list_webhooks(
        &self,
        business_id: &BusinessId,
        after: Option<(Timestamp, &WebhookId)>,
        limit: u32,
    ) -> Result<Vec<Endpoint>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints
                     WHERE business_id = ?1 AND (?2 IS NULL OR (created_at, id) > (?2, ?3))
                     ORDER BY created_at, id LIMIT ?4"
                ))
                .map_err(internal)?;
            let found = stmt
                .query_map(
                    params![
                        business_id,
                        after.map(|(at, _)| at.micros()),
                        after.map(|(_, id)| id.as_str()),
                        limit
                    ],
                    |row| Ok(rows::webhook_endpoint(row)),
                )
                .map_err(internal)?;
            found.map(|row| row.map_err(internal)?).collect()
        })
    }

    async fn update_webhook(
        &self,
        business_id: &BusinessId,
        id: &WebhookId,
        patch: EndpointPatch,
    ) -> Result<Option<Endpoint>> {
        let (business_id, id) = (business_id.clone(), id.clone());
        self.write(move |tx| {
            let Some(mut endpoint) = endpoint_by_id(tx, &business_id, &id)? else {
                return Ok(None);
            };
            patch
                .apply(&mut endpoint, Timestamp::now())
                .map_err(StorageError::Invalid)?;
            write_endpoint(tx, &endpoint, false)?;
            Ok(Some(endpoint))
        })
        .await
    }

    async fn delete_webhook(&self, business_id: &BusinessId, id: &WebhookId) -> Result<bool> {
        let (business_id, id) = (business_id.clone(), id.clone());
        self.write(move |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM webhook_endpoints WHERE business_id = ?1 AND id = ?2",
                    params![business_id, id],
                )
                .map_err(internal)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn webhook_secrets(&self) -> Result<Vec<(WebhookId, Vec<u8>)>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, secret FROM webhook_endpoints ORDER BY id")
                .map_err(internal)?;
            let found = stmt
                .query_map([], |r| {
                    Ok((
                        WebhookId::from(r.get::<_, String>(0)?),
                        r.get::<_, Vec<u8>>(1)?,
                    ))
                })
                .map_err(internal)?;
            found.map(|row| row.map_err(internal)).collect()
        })
    }

    async fn reseal_webhook_secret(&self, id: &WebhookId, secret: &[u8]) -> Result<()> {
        let (id, secret) = (id.clone(), secret.to_vec());
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook_endpoints SET secret = ?2 WHERE id = ?1",
                params![id, secret],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}
