DROP INDEX contacts_phone_order_idx;
ALTER TABLE contacts ALTER COLUMN phone TYPE TEXT COLLATE "default";
CREATE INDEX contacts_phone_prefix_idx ON contacts (location_id, phone text_pattern_ops);
