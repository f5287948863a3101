-- What the last test of an integration found, when it failed (shown with
-- the `error` state), and Meta's Graph API access token's home: api_key.
ALTER TABLE integrations
    ADD COLUMN last_error TEXT,
    ADD COLUMN last_error_at TIMESTAMPTZ;
