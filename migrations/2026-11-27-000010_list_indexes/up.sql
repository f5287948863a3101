-- The contact list finds a page's ids in an index alone, then reads those
-- 50 rows. A phone search with a status filter ("partial" contacts whose
-- number starts +1 212) is one index range in phone order, however many
-- numbers share the prefix and however few of them have that status.
CREATE INDEX contacts_status_phone_idx ON contacts (location_id, dnd_status, phone, id);
-- A name or email search walks the list order and tests each entry in the
-- index itself (name and email ride along), without reading the rows it
-- passes over.
DROP INDEX contacts_location_name_idx;
CREATE INDEX contacts_location_name_idx ON contacts (location_id, lower(name), id) INCLUDE (name, email);

-- Fixes of stored data that need the application's own rules (done once,
-- after the migrations, by `db::migrate`; see src/db/data_fixes.rs).
CREATE TABLE data_fixes (
    name     TEXT PRIMARY KEY,
    done_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
