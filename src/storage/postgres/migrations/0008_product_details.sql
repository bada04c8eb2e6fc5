-- Dodo's descriptive product fields (price, tax category, pricing mode, add-ons, image,
-- delivery, whether a purchase issues a key), which the server stores and echoes but
-- never reads in a query: one JSON text. NULL on the products made before, which answer
-- the documented defaults.
ALTER TABLE products ADD COLUMN details TEXT;
