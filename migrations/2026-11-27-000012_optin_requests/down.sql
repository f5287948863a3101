DROP TABLE optin_decisions;
DROP TABLE optin_requests;
DROP FUNCTION refuse_rewrite();
DROP FUNCTION optin_requests_one_open();
