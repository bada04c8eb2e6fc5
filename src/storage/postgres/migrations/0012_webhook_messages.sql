-- The outbox: one row per event and endpoint subscribed when the change was written, in
-- the change's transaction. `seq` orders an endpoint's messages: a message becomes
-- visible when its change commits, and those of one key or one ledger pair, whose
-- writers take turns, are numbered in commit order. `body` is the JSON delivered;
-- `attempts` a JSON list of what each attempt got.
CREATE TABLE webhook_messages (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- pending, delivered or failed
    status          TEXT NOT NULL,
    -- Failed attempts in the current retry schedule.
    tries           BIGINT NOT NULL,
    -- When the next attempt is due; null once delivered or failed.
    next_attempt_at BIGINT,
    attempts        TEXT NOT NULL,
    UNIQUE (endpoint_id, id)
);
CREATE INDEX webhook_messages_by_endpoint ON webhook_messages (endpoint_id, seq);
CREATE INDEX webhook_messages_pending ON webhook_messages (endpoint_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_messages_by_age ON webhook_messages (created_at);
CREATE INDEX webhook_messages_undelivered ON webhook_messages (created_at) WHERE status = 'pending';

-- Which process delivers an endpoint's messages, until when: one at a time, in order.
ALTER TABLE webhook_endpoints ADD COLUMN lease_owner TEXT, ADD COLUMN lease_until BIGINT;
