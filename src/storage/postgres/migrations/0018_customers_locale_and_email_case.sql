-- The language of a customer's emails (Dodo's `preferred_locale`); null: none chosen.
ALTER TABLE customers ADD COLUMN preferred_locale TEXT;

-- Customers are found by email whatever the case of its ASCII letters, as people type
-- addresses; under the "C" collation `lower` folds those alone, as SQLite's does.
DROP INDEX customers_by_email;
CREATE INDEX customers_by_email ON customers (business_id, lower(email COLLATE "C"), created_at, id);
