-- A ledger entry's business is the one of the API key that wrote it, and businesses are
-- never deleted: the foreign key guarded nothing a client can reach, and it made every
-- insert share-lock the business's one row. Under concurrent writes PostgreSQL records
-- that row's many lockers in multixacts: a plain insert committed by 32 clients at once
-- took 150-175 us of CPU with the key and 119-126 us without. (ledger_idempotency never
-- had the key.)
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_business_id_fkey;
