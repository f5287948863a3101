-- Consent follows the address. Every reason that comes from the person's
-- own act or a provider is kept against (location, channel, address), not
-- on a contact row, so moving a number or an email to another contact
-- never unblocks it. `manual` reasons and the all-channels switch stay on
-- the contact. See DESIGN.md, "Consent follows the address".

-- The bit of each channel in contacts.dnd_mask, and the address a contact
-- is reached at on each channel: the same as domain::Channel::bit and
-- domain::Addresses::on (a test compares them for every channel).
CREATE FUNCTION dnd_channel_bit(channel TEXT) RETURNS SMALLINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE channel WHEN 'sms' THEN 1 WHEN 'call' THEN 2 WHEN 'email' THEN 4
                         WHEN 'facebook' THEN 8 WHEN 'gmb' THEN 16 WHEN 'whatsapp' THEN 32 END)::smallint
$$;

CREATE FUNCTION dnd_contact_address(channel TEXT, phone TEXT, email TEXT, facebook_id TEXT,
                                    gmb_id TEXT, whatsapp_id TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE channel WHEN 'sms' THEN phone WHEN 'call' THEN phone WHEN 'email' THEN email
                        WHEN 'facebook' THEN facebook_id WHEN 'gmb' THEN gmb_id
                        WHEN 'whatsapp' THEN coalesce(whatsapp_id, phone) END
$$;

-- Everything about one address of a location (a consent event on it, a
-- contact taking it) is serialised by a transaction-level advisory lock on
-- this key, so a contact created with an address at the moment a STOP for
-- that address is written always ends up blocked. Phones and WhatsApp ids
-- share one lock (both are E.164).
CREATE FUNCTION dnd_address_lock_key(location_id BIGINT, address TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended(location_id::text || ' ' || address, 0)
$$;

-- Every address is compared byte for byte ("C"), as phones already are:
-- the contacts' address columns, the reasons' and the history's, so a
-- comparison between any two of them can use any of their indexes.
ALTER TABLE contacts
    ALTER COLUMN email TYPE TEXT COLLATE "C",
    ALTER COLUMN facebook_id TYPE TEXT COLLATE "C",
    ALTER COLUMN whatsapp_id TYPE TEXT COLLATE "C",
    ALTER COLUMN gmb_id TYPE TEXT COLLATE "C";
ALTER TABLE dnd_history ALTER COLUMN address TYPE TEXT COLLATE "C";

-- The reasons in force on an address, one row per (address, channel, reason).
CREATE TABLE address_dnd_reasons (
    location_id  BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    address      TEXT COLLATE "C" NOT NULL CHECK (length(address) > 0),
    channel      TEXT NOT NULL CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    reason       TEXT NOT NULL CHECK (reason IN ('sms_opt_out', 'carrier_blocked', 'sms_unsubscribed',
                     'carrier_unreachable', 'number_unknown', 'not_mobile', 'email_bounced',
                     'email_unsubscribed', 'email_spam_complaint', 'channel_opt_out', 'imported_opt_out')),
    kind         TEXT NOT NULL CHECK (kind IN ('temporary', 'permanent')),
    set_at       TIMESTAMPTZ NOT NULL,
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('location_user', 'agency_user', 'support', 'api', 'contact', 'provider')),
    actor_id     BIGINT,
    actor_label  TEXT NOT NULL,
    source       TEXT,
    PRIMARY KEY (location_id, address, channel, reason)
);

-- When the last consent change on an address and channel happened (the
-- provider's time of the event, or when a user lifted a reason): an event
-- older than this is stale and changes nothing.
CREATE TABLE address_consent (
    location_id     BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    address         TEXT COLLATE "C" NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('sms', 'call', 'email', 'facebook', 'gmb', 'whatsapp')),
    last_change_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (location_id, address, channel)
);

ALTER TABLE contact_dnd_reasons DROP CONSTRAINT contact_dnd_reasons_reason_check;
ALTER TABLE contact_dnd_reasons ADD CONSTRAINT contact_dnd_reasons_reason_check
    CHECK (reason IN ('manual', 'sms_opt_out', 'carrier_blocked', 'sms_unsubscribed',
                      'carrier_unreachable', 'number_unknown', 'not_mobile', 'email_bounced',
                      'email_unsubscribed', 'email_spam_complaint', 'channel_opt_out', 'imported_opt_out'));

-- History rows about an address no contact holds have no contact; stale
-- events and address changes are recorded too; the provider's time of a
-- consent event and a sentence for people are kept with it.
ALTER TABLE dnd_history
    ALTER COLUMN contact_id DROP NOT NULL,
    ADD COLUMN event_at TIMESTAMPTZ,
    ADD COLUMN detail TEXT,
    DROP CONSTRAINT dnd_history_check,
    DROP CONSTRAINT dnd_history_action_check,
    ADD CONSTRAINT dnd_history_action_check
        CHECK (action IN ('set', 'lifted', 'repeated', 'stale', 'address_changed')),
    ADD CONSTRAINT dnd_history_switch_check
        CHECK (action = 'address_changed' OR (channel IS NULL) = (reason IS NULL)),
    ADD CONSTRAINT dnd_history_subject_check CHECK (contact_id IS NOT NULL OR address IS NOT NULL);
-- A contact's page shows the history of the addresses it has now.
CREATE INDEX dnd_history_address_idx ON dnd_history (location_id, address, id DESC)
    WHERE address IS NOT NULL;

-- One spelling per address: WhatsApp ids in E.164 like phones (Meta sends
-- them without the +), platform ids without surrounding spaces.
UPDATE contacts SET whatsapp_id = '+' || regexp_replace(whatsapp_id, '[^0-9]', '', 'g')
WHERE whatsapp_id ~ '^[+ ]*[1-9][0-9 ().-]{6,}$'
  AND length(regexp_replace(whatsapp_id, '[^0-9]', '', 'g')) BETWEEN 8 AND 15
  AND whatsapp_id <> '+' || regexp_replace(whatsapp_id, '[^0-9]', '', 'g');
UPDATE contacts SET facebook_id = nullif(trim(facebook_id), '') WHERE facebook_id <> trim(facebook_id);
UPDATE contacts SET gmb_id = nullif(trim(gmb_id), '') WHERE gmb_id <> trim(gmb_id);

-- WhatsApp and Messenger ids become unique per location, as phones and
-- emails are. Where two contacts share one, the oldest keeps it; the
-- others lose it, and their history says which id they had.
INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action, actor_kind,
                         actor_label, address, source, detail, at)
SELECT c.location_id, c.id, d.channel, NULL, NULL, 'address_changed', 'provider',
       'upgrade: one contact per address', d.address, NULL,
       d.field || ' ' || d.address || ' is also contact ' || d.keeper
           || '''s; it stays with that contact and any DND on it stays on the address', now()
FROM (
    SELECT location_id, id, 'whatsapp' AS channel, 'whatsapp_id' AS field, whatsapp_id AS address,
           first_value(id) OVER (PARTITION BY location_id, whatsapp_id ORDER BY id) AS keeper
    FROM contacts WHERE whatsapp_id IS NOT NULL
    UNION ALL
    SELECT location_id, id, 'facebook', 'facebook_id', facebook_id,
           first_value(id) OVER (PARTITION BY location_id, facebook_id ORDER BY id)
    FROM contacts WHERE facebook_id IS NOT NULL
) d
JOIN contacts c ON c.location_id = d.location_id AND c.id = d.id
WHERE d.id <> d.keeper;
UPDATE contacts c SET whatsapp_id = NULL
WHERE whatsapp_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM contacts o WHERE o.location_id = c.location_id AND o.whatsapp_id = c.whatsapp_id AND o.id < c.id);
UPDATE contacts c SET facebook_id = NULL
WHERE facebook_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM contacts o WHERE o.location_id = c.location_id AND o.facebook_id = c.facebook_id AND o.id < c.id);
-- (Only contacts that have one are indexed: most have neither.)
CREATE UNIQUE INDEX contacts_whatsapp_key ON contacts (location_id, whatsapp_id)
    WHERE whatsapp_id IS NOT NULL;
CREATE UNIQUE INDEX contacts_facebook_key ON contacts (location_id, facebook_id)
    WHERE facebook_id IS NOT NULL;
CREATE INDEX contacts_gmb_idx ON contacts (location_id, gmb_id) WHERE gmb_id IS NOT NULL;

-- Today's provider reasons move to the address they concern (each records
-- it; where none is recorded, the contact's address on that channel now).
-- A reason with no address at all stays on the contact.
INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at, actor_kind,
                                 actor_id, actor_label, source)
SELECT r.location_id,
       CASE WHEN r.channel = 'whatsapp' AND r.address ~ '^[1-9][0-9]{7,14}$' THEN '+' || r.address
            ELSE coalesce(r.address, dnd_contact_address(r.channel, c.phone, c.email, c.facebook_id,
                                                         c.gmb_id, c.whatsapp_id)) END,
       r.channel, r.reason, r.kind, r.set_at, r.actor_kind, r.actor_id, r.actor_label, r.source
FROM contact_dnd_reasons r
JOIN contacts c ON c.location_id = r.location_id AND c.id = r.contact_id
WHERE r.reason <> 'manual'
  AND coalesce(r.address, dnd_contact_address(r.channel, c.phone, c.email, c.facebook_id,
                                              c.gmb_id, c.whatsapp_id)) IS NOT NULL
ORDER BY r.set_at
ON CONFLICT DO NOTHING;
-- A reason recorded on an address the contact no longer has blocked the
-- contact before this upgrade, and still does (DND on before an upgrade is
-- kept): besides the address it names, it is kept on the address the
-- contact has on that channel now (where the person's own opt-in from that
-- address lifts it, as it did before), or on the contact when it has none;
-- the history says why.
CREATE TEMPORARY TABLE moved_reasons AS
SELECT r.*, dnd_contact_address(r.channel, c.phone, c.email, c.facebook_id, c.gmb_id,
                                c.whatsapp_id) AS current_address
FROM contact_dnd_reasons r
JOIN contacts c ON c.location_id = r.location_id AND c.id = r.contact_id
WHERE r.reason <> 'manual' AND r.address IS NOT NULL
  AND CASE WHEN r.channel = 'whatsapp' AND r.address ~ '^[1-9][0-9]{7,14}$' THEN '+' || r.address
           ELSE r.address END
      IS DISTINCT FROM dnd_contact_address(r.channel, c.phone, c.email, c.facebook_id, c.gmb_id,
                                           c.whatsapp_id);
INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at, actor_kind,
                                 actor_id, actor_label, source)
SELECT location_id, current_address, channel, reason, kind, set_at, actor_kind, actor_id,
       actor_label, 'kept from ' || address || ' by the upgrade'
FROM moved_reasons WHERE current_address IS NOT NULL
ON CONFLICT DO NOTHING;
INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action, actor_kind,
                         actor_label, address, source, detail, at)
SELECT location_id, contact_id, channel, reason, kind, 'address_changed', 'provider',
       'upgrade: consent kept by address', address, current_address,
       reason || ' was recorded on ' || address || ', no longer this contact''s ' || channel
           || ' address. It stays on that address and, as it blocked this contact before the '
           || 'upgrade, ' || CASE WHEN current_address IS NULL THEN 'on this contact too.'
                                  ELSE 'on ' || current_address || ' too.' END, now()
FROM moved_reasons;
DROP TABLE moved_reasons;
-- What is kept on addresses now leaves the contacts (a reason on a channel
-- where the contact has no address stays on it).
DELETE FROM contact_dnd_reasons r USING contacts c
WHERE c.location_id = r.location_id AND c.id = r.contact_id AND r.reason <> 'manual'
  AND dnd_contact_address(r.channel, c.phone, c.email, c.facebook_id, c.gmb_id,
                          c.whatsapp_id) IS NOT NULL;

-- A contact's mask, from the reasons that block it: its own, and those of
-- the address it has now on each channel.
-- (PL/pgSQL rather than SQL: its plan is kept for the session, where an
-- SQL function's would be made again at every call, and it is called for
-- every contact written. The functions here keep one plan per session,
-- whatever the sessions' own setting: every lookup in them names a whole
-- key, so one plan fits every call.)
CREATE FUNCTION dnd_mask_of(c contacts) RETURNS SMALLINT
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    mask SMALLINT;
BEGIN
    -- Each lookup names a whole key prefix (location, address, channel),
    -- so no plan, however it was made, reads more than the key's rows.
    SELECT coalesce(bit_or(dnd_channel_bit(x.channel)), 0)::smallint INTO mask FROM (
        SELECT r.channel FROM contact_dnd_reasons r
        WHERE r.location_id = c.location_id AND r.contact_id = c.id
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE a.location_id = c.location_id AND a.address = c.phone
          AND a.channel IN ('sms', 'call')
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE a.location_id = c.location_id AND a.address = c.email AND a.channel = 'email'
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE a.location_id = c.location_id AND a.address = coalesce(c.whatsapp_id, c.phone)
          AND a.channel = 'whatsapp'
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE a.location_id = c.location_id AND a.address = c.facebook_id
          AND a.channel = 'facebook'
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE a.location_id = c.location_id AND a.address = c.gmb_id AND a.channel = 'gmb'
    ) x;
    RETURN mask;
END
$$;

-- Kept by the database itself, whatever path writes a reason or an
-- address (the API, an import, a webhook, a migration), so the list and
-- the bulk gate, which read the mask, never see a contact as reachable
-- while its address holds a reason.
CREATE FUNCTION contacts_dnd_mask() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    -- Wait for any consent event being written on the addresses the row
    -- takes (on an update, those that change), then read the reasons it
    -- committed.
    PERFORM pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT dnd_address_lock_key(NEW.location_id, a.new) AS k
        FROM unnest(ARRAY[NEW.phone, NEW.email, NEW.facebook_id, NEW.gmb_id, NEW.whatsapp_id],
                    CASE WHEN TG_OP = 'UPDATE'
                         THEN ARRAY[OLD.phone, OLD.email, OLD.facebook_id, OLD.gmb_id, OLD.whatsapp_id]
                         ELSE ARRAY[NULL, NULL, NULL, NULL, NULL]::text[] END) AS a (new, old)
        WHERE a.new IS NOT NULL AND a.new IS DISTINCT FROM a.old ORDER BY 1) keys;
    NEW.dnd_mask := dnd_mask_of(NEW);
    RETURN NEW;
END
$$;
CREATE TRIGGER contacts_dnd_mask_on_insert BEFORE INSERT ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_dnd_mask();
CREATE TRIGGER contacts_dnd_mask_on_address_change
    BEFORE UPDATE OF phone, email, facebook_id, gmb_id, whatsapp_id ON contacts
    FOR EACH ROW WHEN (OLD.phone IS DISTINCT FROM NEW.phone OR OLD.email IS DISTINCT FROM NEW.email
                       OR OLD.facebook_id IS DISTINCT FROM NEW.facebook_id
                       OR OLD.gmb_id IS DISTINCT FROM NEW.gmb_id
                       OR OLD.whatsapp_id IS DISTINCT FROM NEW.whatsapp_id)
    EXECUTE FUNCTION contacts_dnd_mask();

-- The contacts that hold an address a reason was added to get the
-- channel's bit: one index probe per reason, on the column the channel
-- reads. (A large statement, such as an import, takes one advisory lock per
-- address for the rest of its transaction: keep those to thousands of
-- addresses per transaction.)
-- (A function of its own, called with arrays: a statement inside a
-- trigger function that has transition tables is planned again at every
-- call, one here keeps its plan.)
-- The contacts that hold each (address, channel) now: one index probe on
-- the column the channel reads.
CREATE FUNCTION dnd_holders(locations BIGINT[], addresses TEXT[], channels TEXT[])
RETURNS TABLE (holder_location BIGINT, holder_id BIGINT, holder_channel TEXT)
LANGUAGE plpgsql STABLE ROWS 10 SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    SELECT c.location_id, c.id, a.channel
    FROM unnest(locations, addresses, channels) AS a (location_id, address, channel)
    JOIN contacts c ON c.location_id = a.location_id AND c.phone = a.address
    WHERE a.channel IN ('sms', 'call') OR (a.channel = 'whatsapp' AND c.whatsapp_id IS NULL)
    UNION ALL
    SELECT c.location_id, c.id, a.channel
    FROM unnest(locations, addresses, channels) AS a (location_id, address, channel)
    JOIN contacts c ON c.location_id = a.location_id AND c.whatsapp_id = a.address
    WHERE a.channel = 'whatsapp'
    UNION ALL
    SELECT c.location_id, c.id, a.channel
    FROM unnest(locations, addresses, channels) AS a (location_id, address, channel)
    JOIN contacts c ON c.location_id = a.location_id AND c.email = a.address
    WHERE a.channel = 'email'
    UNION ALL
    SELECT c.location_id, c.id, a.channel
    FROM unnest(locations, addresses, channels) AS a (location_id, address, channel)
    JOIN contacts c ON c.location_id = a.location_id AND c.facebook_id = a.address
    WHERE a.channel = 'facebook'
    UNION ALL
    SELECT c.location_id, c.id, a.channel
    FROM unnest(locations, addresses, channels) AS a (location_id, address, channel)
    JOIN contacts c ON c.location_id = a.location_id AND c.gmb_id = a.address
    WHERE a.channel = 'gmb';
END
$$;

-- The holders' rows are locked in id order first (the order bulk sends
-- share-lock theirs in, so the two never wait on each other in a circle),
-- then written by a statement of its own, whose snapshot is taken once
-- the locks are held: it sees every change committed before them.
CREATE FUNCTION dnd_mark_holders(locations BIGINT[], addresses TEXT[], channels TEXT[])
RETURNS VOID
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM 1 FROM contacts c
    JOIN dnd_holders(locations, addresses, channels) h
      ON c.location_id = h.holder_location AND c.id = h.holder_id
    ORDER BY c.location_id, c.id FOR UPDATE OF c;
    UPDATE contacts c SET dnd_mask = c.dnd_mask | b.bits
    FROM (
        SELECT h.holder_location, h.holder_id,
               bit_or(dnd_channel_bit(h.holder_channel))::smallint AS bits
        FROM dnd_holders(locations, addresses, channels) h
        GROUP BY h.holder_location, h.holder_id
    ) b
    WHERE c.location_id = b.holder_location AND c.id = b.holder_id
      AND (c.dnd_mask | b.bits) <> c.dnd_mask;
END
$$;

-- Takes the locks of these addresses, in key order (the order every writer
-- takes them in, `lock_addresses` in the application too).
CREATE FUNCTION dnd_lock_addresses(locations BIGINT[], addresses TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(k) FROM (
        SELECT DISTINCT dnd_address_lock_key(l, a) AS k
        FROM unnest(locations, addresses) AS x (l, a) ORDER BY 1) keys;
END
$$;

CREATE FUNCTION address_dnd_reasons_added() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    locations BIGINT[];
    addresses TEXT[];
    channels TEXT[];
BEGIN
    SELECT array_agg(location_id), array_agg(address), array_agg(channel)
    INTO locations, addresses, channels FROM changed;
    -- A statement that changed no row (a write of other things) fires it too.
    IF locations IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM dnd_lock_addresses(locations, addresses);
    PERFORM dnd_mark_holders(locations, addresses, channels);
    RETURN NULL;
END
$$;
CREATE TRIGGER address_dnd_reasons_added AFTER INSERT ON address_dnd_reasons
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION address_dnd_reasons_added();

-- A lifted reason may leave others on the channel (the contact's own, or
-- another on the address): the holders' masks are computed again (locked
-- first, in id order, as in dnd_mark_holders).
CREATE FUNCTION dnd_recompute_holders(locations BIGINT[], addresses TEXT[], channels TEXT[])
RETURNS VOID
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    held_locations BIGINT[];
    held_ids BIGINT[];
BEGIN
    SELECT array_agg(x.location_id), array_agg(x.id) INTO held_locations, held_ids FROM (
        SELECT c.location_id, c.id FROM contacts c
        JOIN dnd_holders(locations, addresses, channels) h
          ON c.location_id = h.holder_location AND c.id = h.holder_id
        ORDER BY c.location_id, c.id FOR UPDATE OF c) x;
    IF held_ids IS NOT NULL THEN
        PERFORM dnd_recompute_contacts(held_locations, held_ids);
    END IF;
END
$$;

CREATE FUNCTION address_dnd_reasons_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    locations BIGINT[];
    addresses TEXT[];
    channels TEXT[];
BEGIN
    SELECT array_agg(d.location_id), array_agg(d.address), array_agg(d.channel)
    INTO locations, addresses, channels
    FROM (SELECT DISTINCT location_id, address, channel FROM changed) d;
    -- A statement that changed no row (a write of other things) fires it too.
    IF locations IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM dnd_lock_addresses(locations, addresses);
    PERFORM dnd_recompute_holders(locations, addresses, channels);
    RETURN NULL;
END
$$;
CREATE TRIGGER address_dnd_reasons_removed AFTER DELETE ON address_dnd_reasons
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION address_dnd_reasons_removed();

-- Masks computed again for these contacts: their rows locked in id order
-- first, then written by a statement that sees what was committed before
-- the locks (as in dnd_mark_holders).
CREATE FUNCTION dnd_recompute_contacts(locations BIGINT[], ids BIGINT[]) RETURNS VOID
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM 1 FROM contacts c
    JOIN unnest(locations, ids) AS r (location_id, contact_id)
      ON c.location_id = r.location_id AND c.id = r.contact_id
    ORDER BY c.location_id, c.id FOR UPDATE OF c;
    UPDATE contacts c SET dnd_mask = dnd_mask_of(c)
    FROM unnest(locations, ids) AS r (location_id, contact_id)
    WHERE c.location_id = r.location_id AND c.id = r.contact_id
      AND c.dnd_mask <> dnd_mask_of(c);
END
$$;

CREATE FUNCTION contact_dnd_reasons_refresh_masks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    locations BIGINT[];
    ids BIGINT[];
BEGIN
    SELECT array_agg(d.location_id), array_agg(d.contact_id) INTO locations, ids
    FROM (SELECT DISTINCT location_id, contact_id FROM changed) d;
    -- A statement that changed no row (a write of other things) fires it too.
    IF locations IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM dnd_recompute_contacts(locations, ids);
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_dnd_reasons_added AFTER INSERT ON contact_dnd_reasons
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION contact_dnd_reasons_refresh_masks();
CREATE TRIGGER contact_dnd_reasons_removed AFTER DELETE ON contact_dnd_reasons
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION contact_dnd_reasons_refresh_masks();

UPDATE contacts c SET dnd_mask = dnd_mask_of(c) WHERE dnd_mask <> dnd_mask_of(c);

-- The dispatcher: when a message was claimed, and when it was handed to
-- the provider (a message claimed but never handed over may be queued
-- again; one handed over without an answer is never re-sent blind).
ALTER TABLE messages
    ADD COLUMN claimed_at TIMESTAMPTZ,
    ADD COLUMN handed_over_at TIMESTAMPTZ;
CREATE INDEX messages_sending_idx ON messages (claimed_at) WHERE status = 'sending';
-- Messages the old dispatcher had in flight may have reached the provider:
-- they count as handed over (settled as `unknown` if no answer comes,
-- never sent again).
UPDATE messages SET claimed_at = updated_at, handed_over_at = updated_at WHERE status = 'sending';
