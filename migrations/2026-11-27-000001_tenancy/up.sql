-- Agencies own locations; a location is one business account (the tenant).
-- Agencies and users are reference data (replicated if the schema is ever
-- sharded by location_id); every tenant table carries location_id.
CREATE TABLE agencies (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(trim(name)) > 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE locations (
    id          BIGSERIAL PRIMARY KEY,
    agency_id   BIGINT NOT NULL REFERENCES agencies(id),
    name        TEXT NOT NULL CHECK (length(trim(name)) > 0),
    time_zone   TEXT NOT NULL DEFAULT 'UTC',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (agency_id, name)
);

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    -- stored lower-cased by the application; the unique index guards it too
    email          TEXT NOT NULL CHECK (email = lower(email)),
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('location', 'agency', 'support')),
    agency_id      BIGINT REFERENCES agencies(id),
    is_admin       BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- an agency user works across one agency's locations, so must name it
    CHECK (role <> 'agency' OR agency_id IS NOT NULL)
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Which locations a location user works in (agency and support users reach
-- locations through their role, not through this table).
CREATE TABLE location_memberships (
    location_id  BIGINT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, user_id)
);
CREATE INDEX location_memberships_user_idx ON location_memberships (user_id);

-- Failed sign-ins, kept in the database (not in memory) so the limit holds
-- across restarts and across several application servers.
CREATE TABLE login_failures (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL,
    attempted_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_time_idx ON login_failures (email, attempted_at);
