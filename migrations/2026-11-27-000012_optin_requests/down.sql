DROP TABLE optin_open_requests;
DROP TABLE optin_decisions;
DROP TABLE optin_requests;
DROP FUNCTION refuse_rewrite();
DROP FUNCTION optin_request_opened();
DROP FUNCTION optin_request_decided();
