DROP TABLE messages;
DROP TABLE mailgun_tokens;
DROP TABLE webhook_events;
DROP TABLE location_sms_settings;
ALTER TABLE integrations DROP COLUMN verify_token;
ALTER TABLE locations DROP COLUMN default_region;
