-- Shifts of a ledger pair: every entry of the pair whose position (effective_from, seq)
-- lies strictly after (from_at, from_seq) and strictly before (to_at, to_seq) has a true
-- absolute quantity of its stored one plus `delta`. A backdated entry before many later
-- ones records one instead of rewriting them. A stored quantity is the true one less the
-- shifts covering it, so it may be negative; the true one never is.
CREATE TABLE ledger_shifts (
    business_id TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    license_id  TEXT NOT NULL,
    from_at     BIGINT NOT NULL,
    from_seq    BIGINT NOT NULL,
    to_at       BIGINT NOT NULL,
    to_seq      BIGINT NOT NULL,
    delta       NUMERIC NOT NULL
);
CREATE INDEX ledger_shifts_by_pair ON ledger_shifts (business_id, account_id, license_id);
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_absolute_check;
-- Where a backdated entry's effect ends: the pair's next ABSOLUTE entry, found without
-- reading the RELATIVE ones before it.
CREATE INDEX ledger_entries_absolutes ON ledger_entries (business_id, account_id, license_id, effective_from, seq)
    WHERE update_type = 'ABSOLUTE';
-- How many shifts each business has: a read of a quantity that finds none needs not look
-- for them. Kept in the transaction that adds or folds shifts.
ALTER TABLE businesses ADD COLUMN ledger_shifts BIGINT NOT NULL DEFAULT 0;
