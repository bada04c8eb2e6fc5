-- /license_quantity, /license_usage and every ledger write read a pair's entry at or
-- before an instant for its absolute quantity. Carried in the pair index, that read
-- never visits the table.
DROP INDEX ledger_entries_by_pair;
CREATE INDEX ledger_entries_by_pair
    ON ledger_entries (business_id, account_id, license_id, effective_from, seq, absolute);
