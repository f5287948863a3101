DROP TABLE location_voice_settings;
DROP TRIGGER messages_mute_inbound ON messages;
DROP FUNCTION messages_mute_inbound();
ALTER TABLE messages DROP COLUMN muted;
ALTER TABLE dnd_history
    DROP CONSTRAINT dnd_history_action_check,
    DROP CONSTRAINT dnd_history_switch_check,
    ADD CONSTRAINT dnd_history_action_check
        CHECK (action IN ('set', 'lifted', 'repeated', 'stale', 'address_changed')),
    ADD CONSTRAINT dnd_history_switch_check
        CHECK (action = 'address_changed' OR (channel IS NULL) = (reason IS NULL));
ALTER TABLE contacts DROP COLUMN inbound_sms_dnd, DROP COLUMN inbound_calls_dnd;
