-- Shifts of a ledger pair: every entry of the pair whose position (effective_from, seq)
-- lies strictly after (from_at, from_seq) and strictly before (to_at, to_seq) has a true
-- absolute quantity of its stored one plus `delta` (an exact decimal, as text). A
-- backdated entry before many later ones records one instead of rewriting them.
CREATE TABLE ledger_shifts (
    business_id TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    license_id  TEXT NOT NULL,
    from_at     INTEGER NOT NULL,
    from_seq    INTEGER NOT NULL,
    to_at       INTEGER NOT NULL,
    to_seq      INTEGER NOT NULL,
    delta       TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_shifts_by_pair ON ledger_shifts (business_id, account_id, license_id);
-- Where a backdated entry's effect ends: the pair's next ABSOLUTE entry, found without
-- reading the RELATIVE ones before it.
CREATE INDEX ledger_entries_absolutes ON ledger_entries (account_id, license_id, business_id, effective_from, seq)
    WHERE update_type = 'ABSOLUTE';
