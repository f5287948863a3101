-- Bulk DND changes write thousands of contacts' own reasons per statement.
-- Adding a reason can only add its channel's bit, so the added side ORs the
-- bits in (no lookups); the removed side looks again only at the channels
-- whose reasons were removed (it computed every channel, twice). Both
-- write only the rows whose mask changes.

CREATE FUNCTION dnd_add_contact_bits(locations BIGINT[], ids BIGINT[], channels TEXT[])
RETURNS VOID
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM 1 FROM contacts c
    JOIN (SELECT DISTINCT location_id, contact_id FROM unnest(locations, ids) AS r (location_id, contact_id)) r
      ON c.location_id = r.location_id AND c.id = r.contact_id
    ORDER BY c.location_id, c.id FOR UPDATE OF c;
    UPDATE contacts c SET dnd_mask = c.dnd_mask | b.bits
    FROM (
        SELECT r.location_id, r.contact_id, bit_or(dnd_channel_bit(r.channel))::smallint AS bits
        FROM unnest(locations, ids, channels) AS r (location_id, contact_id, channel)
        GROUP BY r.location_id, r.contact_id
    ) b
    WHERE c.location_id = b.location_id AND c.id = b.contact_id
      AND (c.dnd_mask | b.bits) <> c.dnd_mask;
END
$$;

-- The bits of `bits` that a contact still holds: the same lookups as
-- dnd_mask_of, each made only for a channel asked about (a condition on the
-- argument alone is decided once per call, before any index is read).
CREATE FUNCTION dnd_mask_on(c contacts, bits SMALLINT) RETURNS SMALLINT
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    mask SMALLINT;
BEGIN
    SELECT coalesce(bit_or(dnd_channel_bit(x.channel)), 0)::smallint INTO mask FROM (
        SELECT r.channel FROM contact_dnd_reasons r
        WHERE r.location_id = c.location_id AND r.contact_id = c.id
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE (bits & 3) <> 0 AND a.location_id = c.location_id AND a.address = c.phone
          AND a.channel IN ('sms', 'call')
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE (bits & 4) <> 0 AND a.location_id = c.location_id AND a.address = c.email
          AND a.channel = 'email'
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE (bits & 32) <> 0 AND a.location_id = c.location_id
          AND a.address = coalesce(c.whatsapp_id, c.phone) AND a.channel = 'whatsapp'
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE (bits & 8) <> 0 AND a.location_id = c.location_id AND a.address = c.facebook_id
          AND a.channel = 'facebook'
        UNION ALL
        SELECT a.channel FROM address_dnd_reasons a
        WHERE (bits & 16) <> 0 AND a.location_id = c.location_id AND a.address = c.gmb_id
          AND a.channel = 'gmb'
    ) x;
    RETURN mask & bits;
END
$$;

-- A contact's own reasons removed: only the removed channels' bits can
-- clear, and each is kept if another reason still holds it.
CREATE FUNCTION dnd_clear_contact_bits(locations BIGINT[], ids BIGINT[], channels TEXT[])
RETURNS VOID
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM 1 FROM contacts c
    JOIN (SELECT DISTINCT location_id, contact_id FROM unnest(locations, ids) AS r (location_id, contact_id)) r
      ON c.location_id = r.location_id AND c.id = r.contact_id
    ORDER BY c.location_id, c.id FOR UPDATE OF c;
    UPDATE contacts c SET dnd_mask = m.mask
    FROM (
        SELECT c2.location_id, c2.id,
               ((c2.dnd_mask & ~b.bits) | dnd_mask_on(c2, b.bits))::smallint AS mask
        FROM (
            SELECT r.location_id, r.contact_id, bit_or(dnd_channel_bit(r.channel))::smallint AS bits
            FROM unnest(locations, ids, channels) AS r (location_id, contact_id, channel)
            GROUP BY r.location_id, r.contact_id
        ) b
        JOIN contacts c2 ON c2.location_id = b.location_id AND c2.id = b.contact_id
    ) m
    WHERE c.location_id = m.location_id AND c.id = m.id AND c.dnd_mask <> m.mask;
END
$$;

CREATE FUNCTION contact_dnd_reasons_clear_masks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    locations BIGINT[];
    ids BIGINT[];
    channels TEXT[];
BEGIN
    SELECT array_agg(location_id), array_agg(contact_id), array_agg(channel)
    INTO locations, ids, channels FROM changed;
    IF locations IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM dnd_clear_contact_bits(locations, ids, channels);
    RETURN NULL;
END
$$;

DROP TRIGGER contact_dnd_reasons_removed ON contact_dnd_reasons;
CREATE TRIGGER contact_dnd_reasons_removed AFTER DELETE ON contact_dnd_reasons
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION contact_dnd_reasons_clear_masks();

CREATE FUNCTION contact_dnd_reasons_add_masks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    locations BIGINT[];
    ids BIGINT[];
    channels TEXT[];
BEGIN
    SELECT array_agg(location_id), array_agg(contact_id), array_agg(channel)
    INTO locations, ids, channels FROM changed;
    -- A statement that changed no row (a write of other things) fires it too.
    IF locations IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM dnd_add_contact_bits(locations, ids, channels);
    RETURN NULL;
END
$$;

DROP TRIGGER contact_dnd_reasons_added ON contact_dnd_reasons;
CREATE TRIGGER contact_dnd_reasons_added AFTER INSERT ON contact_dnd_reasons
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION contact_dnd_reasons_add_masks();
