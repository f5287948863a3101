DROP INDEX messages_sending_idx;
ALTER TABLE messages DROP COLUMN handed_over_at, DROP COLUMN claimed_at;

DROP TRIGGER contact_dnd_reasons_added ON contact_dnd_reasons;
DROP TRIGGER contact_dnd_reasons_removed ON contact_dnd_reasons;
DROP FUNCTION contact_dnd_reasons_refresh_masks();
DROP FUNCTION dnd_recompute_contacts(BIGINT[], BIGINT[]);
DROP TRIGGER address_dnd_reasons_added ON address_dnd_reasons;
DROP TRIGGER address_dnd_reasons_removed ON address_dnd_reasons;
DROP FUNCTION address_dnd_reasons_added();
DROP FUNCTION address_dnd_reasons_removed();
DROP FUNCTION dnd_lock_addresses(BIGINT[], TEXT[]);
DROP FUNCTION dnd_mark_holders(BIGINT[], TEXT[], TEXT[]);
DROP FUNCTION dnd_recompute_holders(BIGINT[], TEXT[], TEXT[]);
DROP FUNCTION dnd_holders(BIGINT[], TEXT[], TEXT[]);
DROP TRIGGER contacts_dnd_mask_on_insert ON contacts;
DROP TRIGGER contacts_dnd_mask_on_address_change ON contacts;
DROP FUNCTION contacts_dnd_mask();

-- Address reasons go back onto the contacts that hold the address.
INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind, address, set_at,
                                 actor_kind, actor_id, actor_label, source)
SELECT a.location_id, c.id, a.channel, a.reason, a.kind, a.address, a.set_at, a.actor_kind,
       a.actor_id, a.actor_label, a.source
FROM address_dnd_reasons a
JOIN contacts c ON c.location_id = a.location_id
 AND dnd_contact_address(a.channel, c.phone, c.email, c.facebook_id, c.gmb_id, c.whatsapp_id) = a.address
WHERE a.reason <> 'imported_opt_out'
ON CONFLICT DO NOTHING;
UPDATE contacts c SET dnd_mask = dnd_mask_of(c) WHERE dnd_mask <> dnd_mask_of(c);
DROP FUNCTION dnd_mask_of(contacts);

DROP INDEX contacts_gmb_idx;
DROP INDEX contacts_facebook_key;
DROP INDEX contacts_whatsapp_key;

DROP INDEX dnd_history_address_idx;
ALTER TABLE dnd_history
    DROP CONSTRAINT dnd_history_subject_check,
    DROP CONSTRAINT dnd_history_switch_check,
    DROP CONSTRAINT dnd_history_action_check;
-- Rows only this version writes cannot be kept under the old rules; the
-- history is append-only, so the downgrade stops here if there are any.
ALTER TABLE dnd_history
    ADD CONSTRAINT dnd_history_action_check CHECK (action IN ('set', 'lifted', 'repeated')),
    ADD CONSTRAINT dnd_history_check CHECK ((channel IS NULL) = (reason IS NULL)),
    DROP COLUMN detail,
    DROP COLUMN event_at,
    ALTER COLUMN contact_id SET NOT NULL;

ALTER TABLE contact_dnd_reasons DROP CONSTRAINT contact_dnd_reasons_reason_check;
ALTER TABLE contact_dnd_reasons ADD CONSTRAINT contact_dnd_reasons_reason_check
    CHECK (reason IN ('manual', 'sms_opt_out', 'carrier_blocked', 'sms_unsubscribed',
                      'carrier_unreachable', 'number_unknown', 'not_mobile', 'email_bounced',
                      'email_unsubscribed', 'email_spam_complaint', 'channel_opt_out'));

ALTER TABLE dnd_history ALTER COLUMN address TYPE TEXT COLLATE "default";
ALTER TABLE contacts
    ALTER COLUMN email TYPE TEXT COLLATE "default",
    ALTER COLUMN facebook_id TYPE TEXT COLLATE "default",
    ALTER COLUMN whatsapp_id TYPE TEXT COLLATE "default",
    ALTER COLUMN gmb_id TYPE TEXT COLLATE "default";

DROP TABLE address_consent;
DROP TABLE address_dnd_reasons;
DROP FUNCTION dnd_address_lock_key(BIGINT, TEXT);
DROP FUNCTION dnd_contact_address(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION dnd_channel_bit(TEXT);
