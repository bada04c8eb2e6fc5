-- Each key as a customer's typing of it is read (in capitals, with I and L as 1 and O as
-- 0: `meant_key`), so that an import finds an existing key that is another spelling of
-- it without reading every key; under the "C" collation `upper` folds ASCII letters
-- alone, as SQLite's and `meant_key` do.
CREATE INDEX license_keys_as_read
    ON license_keys (replace(replace(replace(upper(key COLLATE "C"), 'I', '1'), 'L', '1'), 'O', '0'));
