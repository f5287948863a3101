DROP TABLE password_links;
ALTER TABLE users DROP COLUMN deactivated_at, DROP COLUMN session_generation;
