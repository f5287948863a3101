-- Inbound DND (DESIGN "Inbound DND"): per contact, for SMS and calls.
-- Messages from the contact are kept but raise nothing; calls from them
-- are rejected. Separate from outbound DND: it never blocks a send.
ALTER TABLE contacts
    ADD COLUMN inbound_sms_dnd BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN inbound_calls_dnd BOOLEAN NOT NULL DEFAULT false;

-- Its changes are history rows like any change: the channel, no reason,
-- and an action of their own.
ALTER TABLE dnd_history
    DROP CONSTRAINT dnd_history_action_check,
    DROP CONSTRAINT dnd_history_switch_check,
    ADD CONSTRAINT dnd_history_action_check
        CHECK (action IN ('set', 'lifted', 'repeated', 'stale', 'address_changed',
                          'inbound_on', 'inbound_off')),
    ADD CONSTRAINT dnd_history_switch_check
        CHECK (action = 'address_changed'
               OR (action IN ('inbound_on', 'inbound_off') AND channel IN ('sms', 'call')
                   AND reason IS NULL)
               OR (action NOT IN ('inbound_on', 'inbound_off')
                   AND (channel IS NULL) = (reason IS NULL)));

-- An inbound SMS from a contact with inbound SMS DND is stored muted,
-- whatever path stores it.
ALTER TABLE messages ADD COLUMN muted BOOLEAN NOT NULL DEFAULT false;
CREATE FUNCTION messages_mute_inbound() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.direction = 'inbound' AND NEW.channel = 'sms' THEN
        NEW.muted := coalesce((SELECT c.inbound_sms_dnd FROM contacts c
                               WHERE c.location_id = NEW.location_id AND c.id = NEW.contact_id),
                              false);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_mute_inbound BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_mute_inbound();

-- What a call to the location's number gets when the caller has no
-- inbound call DND: forwarded to a number, else a spoken message.
CREATE TABLE location_voice_settings (
    location_id BIGINT PRIMARY KEY REFERENCES locations (id) ON DELETE CASCADE,
    forward_to TEXT CHECK (forward_to ~ '^\+[1-9][0-9]{7,14}$'),
    message TEXT NOT NULL DEFAULT '' CHECK (length(message) <= 500),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
