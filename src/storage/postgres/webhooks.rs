//! Webhook endpoints on PostgreSQL. A patch locks the endpoint's row (`FOR UPDATE`) for
//! its transaction, so concurrent patches of its headers each see the other's.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::tx::Tx;
use crate::domain::ids::{BusinessId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhooks::{Endpoint, EndpointPatch};
use crate::storage::columns::{WEBHOOK_COLUMNS, json_text};
use crate::storage::error::{Result, StorageError};
use crate::storage::rows::{self, Columns};
use crate::storage::store::WebhookStore;

/// An endpoint's columns as stored, in [`WEBHOOK_COLUMNS`]'s order.
struct EndpointColumns<'a> {
    endpoint: &'a Endpoint,
    url: &'a str,
    filter_types: String,
    headers: String,
    metadata: String,
    rate_limit: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl<'a> EndpointColumns<'a> {
    fn of(endpoint: &'a Endpoint) -> Result<Self> {
        let types: Vec<&str> = endpoint.filter_types.iter().map(|t| t.as_str()).collect();
        Ok(Self {
            endpoint,
            url: endpoint.url.as_str(),
            filter_types: json_text(&types)?,
            headers: json_text(&endpoint.headers)?,
            metadata: json_text(&endpoint.metadata)?,
            rate_limit: endpoint.rate_limit.map(|r| i64::from(r.per_second())),
            created_at: endpoint.created_at.micros(),
            updated_at: endpoint.updated_at.micros(),
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 14] {
        let e = self.endpoint;
        [
            &e.id,
            &e.business_id,
            &self.url,
            &e.description,
            &e.disabled,
            &self.filter_types,
            &self.headers,
            &self.metadata,
            &self.rate_limit,
            &e.secret,
            &e.idempotency_key,
            &e.idempotency_digest,
            &self.created_at,
            &self.updated_at,
        ]
    }
}

fn by_id(lock: &str) -> String {
    format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE business_id = $1 AND id = $2 {lock}"
    )
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(&self, endpoint: &Endpoint) -> Result<Endpoint> {
        let columns = EndpointColumns::of(endpoint)?;
        let inserted = self
            .change_one(
                &format!(
                    "INSERT INTO webhook_endpoints ({WEBHOOK_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT (business_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                     DO NOTHING RETURNING id"
                ),
                &columns.params(),
            )
            .await?;
        if inserted.is_some() {
            return Ok(endpoint.clone());
        }
        self.query_opt(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints
                 WHERE business_id = $1 AND idempotency_key = $2"
            ),
            &[&endpoint.business_id, &endpoint.idempotency_key],
        )
        .await?
        .as_ref()
        .map(rows::webhook_endpoint)
        .transpose()?
        .ok_or_else(|| StorageError::Internal("an idempotent endpoint vanished".into()))
        .and_then(|earlier| {
            if earlier.idempotency_digest == endpoint.idempotency_digest {
                Ok(earlier)
            } else {
                Err(StorageError::IdempotencyMismatch)
            }
        })
    }

    async fn webhook(&self, business_id: &BusinessId, id: &WebhookId) -> Result<Option<Endpoint>> {
        self.query_opt(&by_id(""), &[&business_id, &id])
            .await?
            .as_ref()
            .map(rows::webhook_endpoint)
            .transpose()
    }

    async fn list_webhooks(
        &self,
        business_id: &BusinessId,
        after: Option<(Timestamp, &WebhookId)>,
        limit: u32,
    ) -> Result<Vec<Endpoint>> {
        self.query(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints
                 WHERE business_id = $1 AND ($2::BIGINT IS NULL OR (created_at, id) > ($2, $3::TEXT))
                 ORDER BY created_at, id LIMIT $4"
            ),
            &[
                &business_id,
                &after.map(|(at, _)| at.micros()),
                &after.map(|(_, id)| id.as_str()),
                &i64::from(limit),
            ],
        )
        .await?
        .iter()
        .map(rows::webhook_endpoint)
        .collect()
    }

    async fn update_webhook(
        &self,
        business_id: &BusinessId,
        id: &WebhookId,
        patch: EndpointPatch,
    ) -> Result<Option<Endpoint>> {
        let mut tx = Tx::open(self).await?;
        let outcome = async {
            let rows = tx
                .begin_with(&by_id("FOR UPDATE"), &[&business_id, &id])
                .await?;
            let Some(mut endpoint) = rows.first().map(rows::webhook_endpoint).transpose()? else {
                return Ok(None);
            };
            patch
                .apply(&mut endpoint, Timestamp::now())
                .map_err(StorageError::Invalid)?;
            let columns = EndpointColumns::of(&endpoint)?;
            tx.commit_with(
                "UPDATE webhook_endpoints SET url = $3, description = $4, disabled = $5,
                     filter_types = $6, headers = $7, metadata = $8, rate_limit = $9, secret = $10,
                     idempotency_key = $11, idempotency_digest = $12, created_at = $13,
                     updated_at = $14
                 WHERE id = $1 AND business_id = $2",
                &columns.params(),
            )
            .await?;
            Ok(Some(endpoint))
        }
        .await;
        tx.finish(outcome).await
    }

    async fn delete_webhook(&self, business_id: &BusinessId, id: &WebhookId) -> Result<bool> {
        let deleted = self
            .execute(
                "DELETE FROM webhook_endpoints WHERE business_id = $1 AND id = $2",
                &[&business_id, &id],
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn webhook_secrets(&self) -> Result<Vec<(WebhookId, Vec<u8>)>> {
        self.query("SELECT id, secret FROM webhook_endpoints ORDER BY id", &[])
            .await?
            .iter()
            .map(|row| Ok((WebhookId::from(row.text(0)?), row.bytes(1)?)))
            .collect()
    }

    async fn reseal_webhook_secret(&self, id: &WebhookId, secret: &[u8]) -> Result<()> {
        self.execute(
            "UPDATE webhook_endpoints SET secret = $2 WHERE id = $1",
            &[&id, &secret],
        )
        .await?;
        Ok(())
    }
}
