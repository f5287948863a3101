-- Cookie sessions carry the user's session generation; every request
-- compares it with this column, so signing out, a new password or a
-- deactivation (each bumps it) ends every cookie issued before.
ALTER TABLE users
    ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN deactivated_at TIMESTAMPTZ;

-- One-time links where a new user (or one whose password is reset) sets a
-- password: only the SHA-256 of the token is kept, shown once to the admin.
CREATE TABLE password_links (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_by   BIGINT NOT NULL REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    -- used, or replaced by a newer link
    ended_at     TIMESTAMPTZ
);
CREATE INDEX password_links_user_idx ON password_links (user_id) WHERE ended_at IS NULL;
