-- Phones are ASCII (+ and digits): with the "C" collation one plain index
-- serves both a prefix search (LIKE '+1617%') and the list ordered by
-- number, so a phone search costs the same however many contacts match.
DROP INDEX contacts_phone_prefix_idx;
ALTER TABLE contacts ALTER COLUMN phone TYPE TEXT COLLATE "C";
CREATE INDEX contacts_phone_order_idx ON contacts (location_id, phone, id);
