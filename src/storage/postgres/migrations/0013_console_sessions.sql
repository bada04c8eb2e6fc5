-- The console's sessions. `digest` is the SHA-256 of the session cookie's value and
-- `api_key_digest` that of the API key signed in with (as api_keys stores it): neither
-- the cookie nor the key is kept.
CREATE TABLE console_sessions (
    digest         BYTEA PRIMARY KEY,
    api_key_digest BYTEA NOT NULL,
    csrf_token     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
