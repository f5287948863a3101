-- Back to migration 26: the function as it made it.
-- The planner's estimate of how many contacts a location holds: the first
-- line of EXPLAIN's answer, `... rows=N ...`, for the query the contact
-- list counts (`contacts::total`). The list shows "about N" for a location
-- too large to count on every page; as a function, the estimate comes in
-- the same statement as the page's rows instead of a round trip of its
-- own (VOLATILE: PostgreSQL allows EXPLAIN only there; it reads no rows).
-- It takes a number, not query text: nothing else can be EXPLAINed
-- (or run, as EXPLAIN ANALYZE would) through it.
CREATE FUNCTION dnd_contacts_estimate(location bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    line text;
BEGIN
    IF location IS NULL THEN
        RETURN NULL;
    END IF;
    FOR line IN EXECUTE format(
        'EXPLAIN SELECT 1 FROM contacts WHERE contacts.location_id = %s', location)
    LOOP
        RETURN substring(line FROM ' rows=([0-9]+)')::bigint;
    END LOOP;
    RETURN NULL;
END
$$;
