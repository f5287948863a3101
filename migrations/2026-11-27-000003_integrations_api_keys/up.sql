-- A location's connection to a provider, one per channel. DND state never
-- depends on this table; only what the contact page offers does.
CREATE TABLE integrations (
    location_id      BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    id               BIGSERIAL NOT NULL,
    channel          TEXT NOT NULL CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    provider         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('connected', 'disconnected', 'error')),
    -- the provider account (e.g. Twilio account SID, Mailgun domain)
    account          TEXT,
    -- the secret that signs the provider's webhooks (Twilio auth token,
    -- Mailgun webhook signing key, Meta app secret); never logged or shown
    secret           TEXT,
    connected_at     TIMESTAMPTZ,
    disconnected_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, id),
    UNIQUE (location_id, channel)
);

-- Automation API keys: only the SHA-256 of the key is stored.
CREATE TABLE api_keys (
    location_id   BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    id            BIGSERIAL NOT NULL,
    name          TEXT NOT NULL,
    key_sha256    TEXT NOT NULL CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    PRIMARY KEY (location_id, id),
    UNIQUE (location_id, key_sha256)
);
-- A request arrives with only the key, so it is looked up by hash first.
CREATE INDEX api_keys_hash_idx ON api_keys (key_sha256);
