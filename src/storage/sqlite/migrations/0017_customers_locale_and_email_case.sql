-- The language of a customer's emails (Dodo's `preferred_locale`); null: none chosen.
ALTER TABLE customers ADD COLUMN preferred_locale TEXT;

-- Customers are found by email whatever the case of its ASCII letters, as people type
-- addresses (SQLite's `lower` folds those alone).
DROP INDEX customers_by_email;
CREATE INDEX customers_by_email ON customers (business_id, lower(email), created_at, id);
