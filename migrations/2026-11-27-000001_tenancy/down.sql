DROP TABLE login_failures;
DROP TABLE location_memberships;
DROP TABLE users;
DROP TABLE locations;
DROP TABLE agencies;
