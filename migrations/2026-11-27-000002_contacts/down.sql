DROP TABLE contacts;
-- pg_trgm is left installed: other objects may use it, and it holds no data.
