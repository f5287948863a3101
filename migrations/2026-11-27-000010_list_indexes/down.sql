DROP TABLE data_fixes;
DROP INDEX contacts_location_name_idx;
CREATE INDEX contacts_location_name_idx ON contacts (location_id, lower(name), id);
DROP INDEX contacts_status_phone_idx;
