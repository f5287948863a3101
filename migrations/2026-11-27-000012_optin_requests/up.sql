-- Opt-in evidence requests: a location/agency user asks support to lift a
-- contact's permanent DND on one channel, with evidence; support decides.
-- Both tables are append-only (a trigger refuses UPDATE, DELETE and
-- TRUNCATE): a request's state is whether a decision row exists, so a
-- decided request can never be rewritten or decided twice (the decision's
-- primary key is the request).
CREATE TABLE optin_requests (
    location_id          BIGINT NOT NULL REFERENCES locations (id),
    id                   BIGSERIAL NOT NULL,
    contact_id           BIGINT NOT NULL,
    channel              TEXT NOT NULL CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    -- the contact's address on the channel when the request was filed:
    -- what the evidence and the approval are about
    address              TEXT COLLATE "C" NOT NULL,
    relationship_numbers TEXT[] NOT NULL
        CHECK (cardinality(relationship_numbers) BETWEEN 1 AND 20),
    recording_url        TEXT NOT NULL
        CHECK (char_length(recording_url) <= 2000 AND recording_url ~* '^https?://[^/?#\s]+'),
    opted_in_on          DATE NOT NULL,
    note                 TEXT NOT NULL DEFAULT '' CHECK (char_length(note) <= 2000),
    requested_by         BIGINT NOT NULL REFERENCES users (id),
    requested_by_label   TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, id),
    FOREIGN KEY (location_id, contact_id) REFERENCES contacts (location_id, id)
);
-- Support opens a request by its id alone (ids come from one sequence;
-- unique keys of tenant tables include the location).
CREATE INDEX optin_requests_id_idx ON optin_requests (id);
CREATE INDEX optin_requests_contact_idx ON optin_requests (location_id, contact_id, id DESC);

CREATE TABLE optin_decisions (
    location_id      BIGINT NOT NULL,
    request_id       BIGINT NOT NULL,
    decision         TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    note             TEXT NOT NULL DEFAULT '' CHECK (char_length(note) <= 2000),
    decided_by       BIGINT NOT NULL REFERENCES users (id),
    decided_by_label TEXT NOT NULL,
    decided_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, request_id),
    FOREIGN KEY (location_id, request_id) REFERENCES optin_requests (location_id, id),
    -- a rejection says why
    CHECK (decision = 'approved' OR btrim(note) <> '')
);

-- The requests waiting for support: a work list kept by the triggers
-- below (a row per request from filing to decision), not a record. It is
-- what the open queue reads, so the queue costs what the open requests
-- cost, however many were decided before; and its unique key is the rule
-- "one open request per contact and channel", whatever path inserts.
CREATE TABLE optin_open_requests (
    location_id BIGINT NOT NULL,
    request_id  BIGINT NOT NULL,
    contact_id  BIGINT NOT NULL,
    channel     TEXT NOT NULL,
    PRIMARY KEY (location_id, request_id),
    CONSTRAINT optin_open_one_per_contact_channel UNIQUE (location_id, contact_id, channel),
    FOREIGN KEY (location_id, request_id) REFERENCES optin_requests (location_id, id)
);
CREATE INDEX optin_open_requests_order_idx ON optin_open_requests (request_id);

CREATE FUNCTION optin_request_opened() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO optin_open_requests (location_id, request_id, contact_id, channel)
    VALUES (NEW.location_id, NEW.id, NEW.contact_id, NEW.channel);
    RETURN NULL;
END
$$;
CREATE TRIGGER optin_request_opened AFTER INSERT ON optin_requests
    FOR EACH ROW EXECUTE FUNCTION optin_request_opened();

CREATE FUNCTION optin_request_decided() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM optin_open_requests
    WHERE location_id = NEW.location_id AND request_id = NEW.request_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER optin_request_decided AFTER INSERT ON optin_decisions
    FOR EACH ROW EXECUTE FUNCTION optin_request_decided();

CREATE FUNCTION refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER optin_requests_no_rewrite BEFORE UPDATE OR DELETE ON optin_requests
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER optin_requests_no_truncate BEFORE TRUNCATE ON optin_requests
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER optin_decisions_no_rewrite BEFORE UPDATE OR DELETE ON optin_decisions
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER optin_decisions_no_truncate BEFORE TRUNCATE ON optin_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_rewrite();
