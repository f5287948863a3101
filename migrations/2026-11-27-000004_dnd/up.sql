-- The DND state of a contact: the all-channels switch and a bit per
-- channel that holds at least one reason (bit i is the i-th of sms, call,
-- email, facebook, gmb, whatsapp), kept in the same transaction as the
-- reasons so the contact list can filter on them without a join.
ALTER TABLE contacts
    ADD COLUMN dnd_all BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN dnd_mask SMALLINT NOT NULL DEFAULT 0 CHECK (dnd_mask BETWEEN 0 AND 63),
    -- 2 = on (switch on, or every channel blocked), 1 = partial, 0 = off
    ADD COLUMN dnd_status SMALLINT NOT NULL GENERATED ALWAYS AS (
        CASE WHEN dnd_all OR dnd_mask = 63 THEN 2 WHEN dnd_mask <> 0 THEN 1 ELSE 0 END
    ) STORED;

-- The status filter, in list order, so every page of it is an index range.
CREATE INDEX contacts_dnd_status_name_idx ON contacts (location_id, dnd_status, lower(name), id);
-- "Blocked on channel X": one small partial index per channel (about one
-- contact in ten has any reason).
CREATE INDEX contacts_dnd_sms_idx ON contacts (location_id, lower(name), id) WHERE dnd_all OR (dnd_mask & 1) <> 0;
CREATE INDEX contacts_dnd_call_idx ON contacts (location_id, lower(name), id) WHERE dnd_all OR (dnd_mask & 2) <> 0;
CREATE INDEX contacts_dnd_email_idx ON contacts (location_id, lower(name), id) WHERE dnd_all OR (dnd_mask & 4) <> 0;
CREATE INDEX contacts_dnd_facebook_idx ON contacts (location_id, lower(name), id) WHERE dnd_all OR (dnd_mask & 8) <> 0;
CREATE INDEX contacts_dnd_gmb_idx ON contacts (location_id, lower(name), id) WHERE dnd_all OR (dnd_mask & 16) <> 0;
CREATE INDEX contacts_dnd_whatsapp_idx ON contacts (location_id, lower(name), id) WHERE dnd_all OR (dnd_mask & 32) <> 0;

-- The reasons in force, one row per (contact, channel, reason).
CREATE TABLE contact_dnd_reasons (
    location_id  BIGINT NOT NULL,
    contact_id   BIGINT NOT NULL,
    channel      TEXT NOT NULL CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    reason       TEXT NOT NULL CHECK (reason IN ('manual', 'sms_opt_out', 'carrier_blocked', 'sms_unsubscribed',
                     'carrier_unreachable', 'number_unknown', 'not_mobile', 'email_bounced',
                     'email_unsubscribed', 'email_spam_complaint', 'channel_opt_out')),
    kind         TEXT NOT NULL CHECK (kind IN ('temporary', 'permanent')),
    -- the phone or email a provider event concerned
    address      TEXT,
    set_at       TIMESTAMPTZ NOT NULL,
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('location_user', 'agency_user', 'support', 'api', 'contact', 'provider')),
    actor_id     BIGINT,
    actor_label  TEXT NOT NULL,
    -- the event that set it (message SID, event id, keyword)
    source       TEXT,
    PRIMARY KEY (location_id, contact_id, channel, reason),
    FOREIGN KEY (location_id, contact_id) REFERENCES contacts (location_id, id) ON DELETE CASCADE
);

-- Every change, by a person or a provider event. Append-only: the trigger
-- below refuses UPDATE, DELETE and TRUNCATE, so no code path can rewrite
-- what happened. No cascade from contacts: a contact with history stays.
CREATE TABLE dnd_history (
    location_id  BIGINT NOT NULL,
    id           BIGSERIAL NOT NULL,
    contact_id   BIGINT NOT NULL,
    -- NULL channel and reason: the all-channels switch
    channel      TEXT CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    reason       TEXT,
    kind         TEXT CHECK (kind IN ('temporary', 'permanent')),
    action       TEXT NOT NULL CHECK (action IN ('set', 'lifted', 'repeated')),
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('location_user', 'agency_user', 'support', 'api', 'contact', 'provider')),
    actor_id     BIGINT,
    actor_label  TEXT NOT NULL,
    address      TEXT,
    source       TEXT,
    at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (location_id, id),
    FOREIGN KEY (location_id, contact_id) REFERENCES contacts (location_id, id),
    CHECK ((channel IS NULL) = (reason IS NULL))
);
CREATE INDEX dnd_history_contact_idx ON dnd_history (location_id, contact_id, id DESC);

CREATE FUNCTION dnd_history_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dnd_history is append-only: % is not allowed', TG_OP;
END
$$;
CREATE TRIGGER dnd_history_no_rewrite
    BEFORE UPDATE OR DELETE ON dnd_history
    FOR EACH ROW EXECUTE FUNCTION dnd_history_is_append_only();
CREATE TRIGGER dnd_history_no_truncate
    BEFORE TRUNCATE ON dnd_history
    FOR EACH STATEMENT EXECUTE FUNCTION dnd_history_is_append_only();
