-- An index search compares keys column by column. With the business first, a value
-- that every key of a one-business database shares, each comparison of a pair's search
-- went on to the account; with the account first, most end there.
DROP INDEX ledger_entries_by_pair;
CREATE INDEX ledger_entries_by_pair
    ON ledger_entries (account_id, license_id, business_id, effective_from, seq, absolute);
