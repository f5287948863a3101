UPDATE integrations SET transport = 'log' WHERE transport = 'meta';
ALTER TABLE integrations DROP CONSTRAINT integrations_transport_check,
    ADD CONSTRAINT integrations_transport_check CHECK (transport IN ('log', 'twilio', 'mailgun'));
