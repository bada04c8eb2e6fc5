-- Every ledger write reads the entries of its (account, license) pair, which only
-- ledger_entries_by_pair serves well. The per-account and per-license listing indexes
-- could be chosen for those reads instead (a scan of every entry of the license) while
-- the table's statistics are young; they also slow every insert. Account-filtered
-- listings use ledger_entries_by_pair; license-filtered ones scan ledger_entries_by_created.
DROP INDEX ledger_entries_by_account;
DROP INDEX ledger_entries_by_license;
