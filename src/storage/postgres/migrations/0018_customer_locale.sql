-- The language of a customer's emails (Dodo's `preferred_locale`); null: none chosen.
ALTER TABLE customers ADD COLUMN preferred_locale TEXT;
