-- Mailgun signs only timestamp + token, not the location: a signature
-- captured for one location verifies for every location sharing the
-- signing key. So a token is remembered once for all locations (a
-- reference table, like agencies and users, not tenant data).
CREATE TABLE mailgun_seen_tokens (
    token TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX mailgun_seen_tokens_seen_idx ON mailgun_seen_tokens (seen_at);
INSERT INTO mailgun_seen_tokens (token, seen_at)
SELECT token, max(seen_at) FROM mailgun_tokens GROUP BY token;
DROP TABLE mailgun_tokens;
