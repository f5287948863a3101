-- Sign-in attempts are limited per client address as well as per email
-- (random emails from one client were never limited), and an attempt is
-- written before its password is checked, so parallel tries count too.
ALTER TABLE login_failures ADD COLUMN client TEXT;
CREATE INDEX login_failures_client_time_idx ON login_failures (client, attempted_at)
    WHERE client IS NOT NULL;
