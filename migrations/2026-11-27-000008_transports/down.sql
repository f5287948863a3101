ALTER TABLE integrations
    DROP COLUMN sender,
    DROP COLUMN api_key,
    DROP COLUMN api_base_url,
    DROP COLUMN transport;
