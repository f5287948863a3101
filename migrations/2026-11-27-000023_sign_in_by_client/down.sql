DROP INDEX login_failures_client_time_idx;
ALTER TABLE login_failures DROP COLUMN client;
