-- Businesses, API keys and the license-updates ledger.
-- Instants are microseconds since the Unix epoch (UTC).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE businesses (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    brand_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    digest      BYTEA NOT NULL UNIQUE,
    read_only   BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE ledger_entries (
    seq            BIGSERIAL PRIMARY KEY,
    business_id    TEXT NOT NULL REFERENCES businesses (id),
    account_id     TEXT NOT NULL,
    license_id     TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    update_type    TEXT NOT NULL CHECK (update_type IN ('RELATIVE', 'ABSOLUTE')),
    given          NUMERIC NOT NULL,
    absolute       NUMERIC NOT NULL CHECK (absolute >= 0),
    metadata       TEXT,
    created_at     BIGINT NOT NULL
);

CREATE INDEX ledger_entries_by_pair ON ledger_entries (business_id, account_id, license_id, effective_from, seq);
CREATE INDEX ledger_entries_by_created ON ledger_entries (business_id, created_at, seq);
CREATE INDEX ledger_entries_by_effective ON ledger_entries (business_id, effective_from, seq);
CREATE INDEX ledger_entries_by_account ON ledger_entries (business_id, account_id, created_at, seq);
CREATE INDEX ledger_entries_by_license ON ledger_entries (business_id, license_id, created_at, seq);

CREATE TABLE ledger_idempotency (
    business_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    response    TEXT,
    PRIMARY KEY (business_id, key)
);
