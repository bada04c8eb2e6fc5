-- Each business's Ed25519 signing keys: the active one signs, the others stay listed so
-- that files signed before a rotation still verify. A private key is stored sealed under
-- the master key when the server has one (see domain/signing.rs for the format).
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    public_key  BYTEA NOT NULL,
    private_key BYTEA NOT NULL,
    active      BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (business_id) WHERE active;
CREATE INDEX signing_keys_by_business ON signing_keys (business_id, created_at, id);
