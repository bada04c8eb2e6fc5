-- Customers, products, license keys and their activations (instances).

CREATE TABLE customers (
    id           TEXT PRIMARY KEY,
    business_id  TEXT NOT NULL REFERENCES businesses (id),
    email        TEXT NOT NULL,
    name         TEXT NOT NULL,
    phone_number TEXT,
    metadata     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX customers_by_business ON customers (business_id, created_at, id);
CREATE INDEX customers_by_email ON customers (business_id, email, created_at, id);

CREATE TABLE products (
    id                             TEXT PRIMARY KEY,
    business_id                    TEXT NOT NULL REFERENCES businesses (id),
    name                           TEXT NOT NULL,
    description                    TEXT,
    license_key_activations_limit  BIGINT,
    license_key_duration_count     BIGINT,
    license_key_duration_interval  TEXT,
    license_key_activation_message TEXT,
    metadata                       TEXT NOT NULL,
    created_at                     BIGINT NOT NULL,
    updated_at                     BIGINT NOT NULL
);
CREATE INDEX products_by_business ON products (business_id, created_at, id);

CREATE TABLE license_keys (
    id                TEXT PRIMARY KEY,
    business_id       TEXT NOT NULL REFERENCES businesses (id),
    key               TEXT NOT NULL UNIQUE,
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    product_id        TEXT NOT NULL REFERENCES products (id),
    source            TEXT NOT NULL CHECK (source IN ('import', 'manual')),
    activations_limit BIGINT CHECK (activations_limit >= 0),
    instances_count   BIGINT NOT NULL DEFAULT 0,
    disabled          BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at        BIGINT,
    payment_id        TEXT,
    subscription_id   TEXT,
    created_at        BIGINT NOT NULL,
    -- The invariant, guarded by the database as well as by the code.
    CHECK (instances_count >= 0 AND (activations_limit IS NULL OR instances_count <= activations_limit))
);
CREATE INDEX license_keys_by_business ON license_keys (business_id, created_at, id);

CREATE TABLE license_key_instances (
    id             TEXT PRIMARY KEY,
    business_id    TEXT NOT NULL REFERENCES businesses (id),
    license_key_id TEXT NOT NULL REFERENCES license_keys (id),
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX license_key_instances_by_key ON license_key_instances (license_key_id, created_at, id);
CREATE INDEX license_key_instances_by_business ON license_key_instances (business_id, created_at, id);
