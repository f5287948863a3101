-- The list no longer calls `dnd_contacts_estimate` (migration 26): the
-- planner's estimate of a whole location is asked for with EXPLAIN as a
-- statement of its own, at most once a minute per location (the app keeps
-- it: `contacts::Estimates`), which costs less than planning it inside
-- PL/pgSQL on every page. A function nothing calls is dropped rather than
-- kept in step with the schema.
DROP FUNCTION dnd_contacts_estimate(bigint);
