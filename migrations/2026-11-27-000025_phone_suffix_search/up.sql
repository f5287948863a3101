-- A phone search matches the end of a number too ("0196", "555-0196"):
-- the number reversed makes its end an indexable prefix
-- (reverse(phone) LIKE '6910%'), within the location. reverse() keeps the
-- column's "C" collation, so LIKE 'prefix%' is an index range here without
-- text_pattern_ops. Built-in functions only: no extension needed.
CREATE INDEX contacts_phone_suffix_idx ON contacts (location_id, reverse(phone));
-- The planner needs the expression's statistics to see how few numbers
-- share an ending; without them it may walk the whole location instead.
ANALYZE contacts;
