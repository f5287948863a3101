CREATE TABLE mailgun_tokens (
    location_id BIGINT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    token TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, token)
);
CREATE INDEX mailgun_tokens_seen_idx ON mailgun_tokens (seen_at);
DROP TABLE mailgun_seen_tokens;
