-- How an integration sends: 'log' records a message as sent without it
-- leaving the machine (the demo's default); 'twilio' and 'mailgun' call the
-- providers' APIs at api_base_url (configurable, so tests and staging can
-- point at a local server).
ALTER TABLE integrations
    ADD COLUMN transport TEXT NOT NULL DEFAULT 'log' CHECK (transport IN ('log', 'twilio', 'mailgun')),
    ADD COLUMN api_base_url TEXT,
    -- Mailgun's sending API key (its webhook signing key is `secret`);
    -- Twilio's API uses the auth token in `secret`.
    ADD COLUMN api_key TEXT,
    -- the sending number or address
    ADD COLUMN sender TEXT;
