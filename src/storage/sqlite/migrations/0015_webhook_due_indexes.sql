-- An endpoint's due messages, found without walking the ones waiting for a retry: during
-- an outage every message fails and waits, and reading the due ones from one index of all
-- pending messages in order walked all of those for every batch and every lease. A
-- message on its first attempt is due once recorded, and is read in commit order; a retry
-- is due at `next_attempt_at`.
DROP INDEX webhook_messages_pending;
CREATE INDEX webhook_messages_first_attempts ON webhook_messages (endpoint_id, seq)
    WHERE status = 'pending' AND tries = 0;
CREATE INDEX webhook_messages_retries ON webhook_messages (endpoint_id, next_attempt_at)
    WHERE status = 'pending' AND tries > 0;
