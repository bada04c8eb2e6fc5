-- A listing filtered by license alone had no index but the business's: 54-79 ms for a
-- page of a rare license at 1M entries (a parallel scan). This index holds a license's
-- entries in the order of the default listing (by creation). Its license column is an
-- expression, `license_id || ''`, that only such listings name: migration 0003 dropped
-- the plain (business_id, license_id, ...) index because a pair's reads, which also name
-- the business and the license, chose it while the table's statistics were young.
CREATE INDEX ledger_entries_by_license
    ON ledger_entries (business_id, (license_id || ''), created_at, seq);
-- The planner knows how rare a license is only from the expression's statistics, which
-- the next ANALYZE gathers. Until then it guessed a rare license to be common, and
-- walked every entry in effective order looking for its first page (0.7 s at 1M).
ANALYZE ledger_entries;
