-- Businesses, API keys and the license-updates ledger.
-- Instants are microseconds since the Unix epoch (UTC); quantities are decimal text.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE businesses (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    brand_id   TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    digest      BLOB NOT NULL UNIQUE,
    read_only   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE ledger_entries (
    seq            INTEGER PRIMARY KEY,
    business_id    TEXT NOT NULL REFERENCES businesses (id),
    account_id     TEXT NOT NULL,
    license_id     TEXT NOT NULL,
    effective_from INTEGER NOT NULL,
    update_type    TEXT NOT NULL CHECK (update_type IN ('RELATIVE', 'ABSOLUTE')),
    given          TEXT NOT NULL,
    absolute       TEXT NOT NULL,
    metadata       TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX ledger_entries_by_pair ON ledger_entries (business_id, account_id, license_id, effective_from, seq);
CREATE INDEX ledger_entries_by_created ON ledger_entries (business_id, created_at, seq);
CREATE INDEX ledger_entries_by_effective ON ledger_entries (business_id, effective_from, seq);
CREATE INDEX ledger_entries_by_account ON ledger_entries (business_id, account_id, created_at, seq);
CREATE INDEX ledger_entries_by_license ON ledger_entries (business_id, license_id, created_at, seq);

CREATE TABLE ledger_idempotency (
    business_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    response    TEXT NOT NULL,
    PRIMARY KEY (business_id, key)
) STRICT, WITHOUT ROWID;
