-- POST /licenses/validate reads a key's validity from this index alone: the table's rows
-- are several times larger, and a read that visits them needs that many more pages in
-- each connection's cache.
CREATE INDEX license_keys_validity ON license_keys (key, disabled, expires_at, id);
