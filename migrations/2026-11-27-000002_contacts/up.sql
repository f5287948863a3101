CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The key is (location_id, id) so that every unique key includes the tenant
-- (the table can later be distributed by location_id without a redesign).
CREATE TABLE contacts (
    location_id  BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    id           BIGSERIAL NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    -- E.164 (+ and 8 to 15 digits), validated by the application
    phone        TEXT CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    -- normalised (trimmed, lower-cased) by the application
    email        TEXT CHECK (email = lower(email)),
    facebook_id  TEXT,
    whatsapp_id  TEXT,
    gmb_id       TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, id),
    UNIQUE (location_id, phone),
    UNIQUE (location_id, email)
);

-- The contact list is ordered by (name, id) within a location.
CREATE INDEX contacts_location_name_idx ON contacts (location_id, lower(name), id);
-- Search by any part of the name or email.
CREATE INDEX contacts_name_trgm_idx ON contacts USING gin (lower(name) gin_trgm_ops);
CREATE INDEX contacts_email_trgm_idx ON contacts USING gin (email gin_trgm_ops);
-- Search by phone prefix (text_pattern_ops makes LIKE 'prefix%' indexable).
CREATE INDEX contacts_phone_prefix_idx ON contacts (location_id, phone text_pattern_ops);
