-- WhatsApp (Cloud API) and Messenger (Send API) send through Meta's Graph
-- API: a transport of their own. Integrations connected from now on send
-- through it; those connected before keep theirs until connected again
-- (they may have no access token stored).
ALTER TABLE integrations DROP CONSTRAINT integrations_transport_check,
    ADD CONSTRAINT integrations_transport_check CHECK (transport IN ('log', 'twilio', 'mailgun', 'meta'));
