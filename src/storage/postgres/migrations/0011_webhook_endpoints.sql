-- Each business's webhook endpoints. `filter_types` (a JSON list; empty: every event),
-- `headers` and `metadata` (JSON objects) are JSON text; `secret` is stored sealed under
-- the master key when the server has one (see domain/signing.rs for the format).
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    business_id     TEXT NOT NULL REFERENCES businesses (id),
    url             TEXT NOT NULL,
    description     TEXT NOT NULL,
    disabled        BOOLEAN NOT NULL,
    filter_types    TEXT NOT NULL,
    headers         TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    rate_limit      BIGINT,
    secret          BYTEA NOT NULL,
    idempotency_key TEXT,
    -- A digest of the create request that used the idempotency key (empty without one).
    idempotency_digest BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_business ON webhook_endpoints (business_id, created_at, id);
CREATE UNIQUE INDEX webhook_endpoints_idempotency ON webhook_endpoints (business_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
