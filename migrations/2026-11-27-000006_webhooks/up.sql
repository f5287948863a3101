-- Where a location's numbers are written without a country code.
ALTER TABLE locations
    ADD COLUMN default_region TEXT NOT NULL DEFAULT 'US' CHECK (default_region ~ '^[A-Z]{2}$');

-- Meta's GET handshake compares this token (set in the app's webhook
-- settings); the app secret that signs the POSTs is `secret`.
ALTER TABLE integrations ADD COLUMN verify_token TEXT;

-- A location's keyword lists and confirmation replies; no row means the
-- defaults (see domain::dnd::Keywords and webhooks::twilio).
CREATE TABLE location_sms_settings (
    location_id       BIGINT PRIMARY KEY REFERENCES locations(id) ON DELETE CASCADE,
    opt_out_keywords  TEXT[] NOT NULL,
    opt_in_keywords   TEXT[] NOT NULL,
    help_keywords     TEXT[] NOT NULL,
    opt_out_reply     TEXT NOT NULL CHECK (length(opt_out_reply) BETWEEN 1 AND 320),
    opt_in_reply      TEXT NOT NULL CHECK (length(opt_in_reply) BETWEEN 1 AND 320),
    help_reply        TEXT NOT NULL CHECK (length(help_reply) BETWEEN 1 AND 320),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every provider event, stored before it is acknowledged, in the same
-- transaction as its effect. The unique key makes a provider's retry of the
-- same event a no-op.
CREATE TABLE webhook_events (
    location_id  BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    id           BIGSERIAL NOT NULL,
    provider     TEXT NOT NULL CHECK (provider IN ('twilio', 'mailgun', 'meta')),
    kind         TEXT NOT NULL,
    event_key    TEXT NOT NULL,
    payload      TEXT NOT NULL,
    contact_id   BIGINT,
    -- what the event did: opt_out, opt_in, help, a reason, recorded
    outcome      TEXT NOT NULL DEFAULT 'recorded',
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, id),
    UNIQUE (location_id, provider, event_key)
);

-- Mailgun signature tokens already honoured: a replayed request is refused
-- even after a restart or on another server.
CREATE TABLE mailgun_tokens (
    location_id  BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    token        TEXT NOT NULL,
    seen_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, token)
);
CREATE INDEX mailgun_tokens_seen_idx ON mailgun_tokens (seen_at);

-- The contact's message timeline: inbound messages from webhooks, outbound
-- ones with their delivery status.
CREATE TABLE messages (
    location_id    BIGINT NOT NULL,
    id             BIGSERIAL NOT NULL,
    contact_id     BIGINT NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body           TEXT NOT NULL DEFAULT '',
    from_address   TEXT,
    to_address     TEXT,
    provider_sid   TEXT,
    status         TEXT NOT NULL,
    error_code     INTEGER,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, id),
    UNIQUE (location_id, provider_sid),
    FOREIGN KEY (location_id, contact_id) REFERENCES contacts (location_id, id)
);
CREATE INDEX messages_contact_idx ON messages (location_id, contact_id, id DESC);
