-- Seats: heartbeat intervals, fingerprints, keys bound to a ledger pair, and the
-- instances that went away (remembered so that a late heartbeat learns why).

ALTER TABLE products ADD COLUMN heartbeat_interval INTEGER CHECK (heartbeat_interval > 0);

ALTER TABLE license_keys ADD COLUMN heartbeat_interval INTEGER CHECK (heartbeat_interval > 0);
ALTER TABLE license_keys ADD COLUMN seats_account_id TEXT;
ALTER TABLE license_keys ADD COLUMN seats_license_id TEXT;

ALTER TABLE license_key_instances ADD COLUMN fingerprint TEXT;
ALTER TABLE license_key_instances ADD COLUMN last_heartbeat_at INTEGER;
ALTER TABLE license_key_instances ADD COLUMN heartbeat_expires_at INTEGER;

-- One live instance per machine and key: racing activations from one machine make one.
CREATE UNIQUE INDEX license_key_instances_by_fingerprint
    ON license_key_instances (license_key_id, fingerprint) WHERE fingerprint IS NOT NULL;
-- The sweeper's question: which instances have died?
CREATE INDEX license_key_instances_by_deadline
    ON license_key_instances (heartbeat_expires_at) WHERE heartbeat_expires_at IS NOT NULL;

CREATE TABLE departed_instances (
    id             TEXT PRIMARY KEY,
    business_id    TEXT NOT NULL,
    license_key_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    fingerprint    TEXT,
    created_at     INTEGER NOT NULL,
    reason         TEXT NOT NULL CHECK (reason IN ('deactivated', 'heartbeat')),
    departed_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX departed_instances_by_time ON departed_instances (departed_at);

-- Validation reads whether a key is bound to seats from its index too.
DROP INDEX license_keys_validity;
CREATE INDEX license_keys_validity ON license_keys (key, disabled, expires_at, id, seats_account_id);
