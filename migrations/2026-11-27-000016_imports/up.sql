-- Each import a user or an API key ran: what it was, who ran it, how far
-- it got and what it did. History rows name it ("import #N"). A file
-- uploaded in the browser is kept here between its preview and the
-- user's confirmation, and dropped once it has been imported.
CREATE TABLE imports (
    location_id BIGINT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    id BIGSERIAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('contacts', 'suppressions')),
    channel TEXT CHECK (channel IN ('sms', 'email', 'whatsapp')),
    file_name TEXT NOT NULL DEFAULT '',
    file BYTEA,
    actor_kind TEXT NOT NULL,
    actor_id BIGINT,
    actor_label TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('preview', 'running', 'done', 'failed')),
    rows_total INT NOT NULL DEFAULT 0,
    rows_done INT NOT NULL DEFAULT 0,
    created INT NOT NULL DEFAULT 0,
    updated INT NOT NULL DEFAULT 0,
    unchanged INT NOT NULL DEFAULT 0,
    -- The row errors, as JSON: [{"line", "field", "message"}].
    errors TEXT NOT NULL DEFAULT '[]',
    failure TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (location_id, id),
    CHECK ((kind = 'suppressions') = (channel IS NOT NULL))
);
CREATE INDEX imports_newest_idx ON imports (location_id, created_at DESC);
