ALTER TABLE integrations DROP COLUMN last_error, DROP COLUMN last_error_at;
