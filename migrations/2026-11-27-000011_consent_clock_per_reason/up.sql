-- One consent clock per reason on an address and channel, not one per
-- channel: signals about different reasons are independent. With one clock,
-- a spam complaint from 10:00 that Mailgun delivered after a bounce from
-- 10:05 (or after a user lifted the bounce) was "stale" and lost.
ALTER TABLE address_consent DROP CONSTRAINT address_consent_pkey;
ALTER TABLE address_consent ADD COLUMN reason TEXT;

-- A clock kept before stood for every reason its channel can hold.
INSERT INTO address_consent (location_id, address, channel, reason, last_change_at)
SELECT c.location_id, c.address, c.channel, r.reason, c.last_change_at
FROM address_consent c
JOIN (VALUES
    ('sms', 'sms_opt_out'), ('sms', 'carrier_blocked'), ('sms', 'sms_unsubscribed'),
    ('sms', 'carrier_unreachable'), ('sms', 'number_unknown'), ('sms', 'not_mobile'),
    ('sms', 'imported_opt_out'),
    ('email', 'email_bounced'), ('email', 'email_unsubscribed'),
    ('email', 'email_spam_complaint'), ('email', 'imported_opt_out'),
    ('facebook', 'channel_opt_out'),
    ('whatsapp', 'channel_opt_out'), ('whatsapp', 'imported_opt_out')
) AS r (channel, reason) ON r.channel = c.channel
WHERE c.reason IS NULL;
DELETE FROM address_consent WHERE reason IS NULL;

ALTER TABLE address_consent ALTER COLUMN reason SET NOT NULL;
ALTER TABLE address_consent ADD CONSTRAINT address_consent_reason_check
    CHECK (reason IN ('sms_opt_out', 'carrier_blocked', 'sms_unsubscribed',
                      'carrier_unreachable', 'number_unknown', 'not_mobile', 'email_bounced',
                      'email_unsubscribed', 'email_spam_complaint', 'channel_opt_out',
                      'imported_opt_out'));
ALTER TABLE address_consent ADD PRIMARY KEY (location_id, address, channel, reason);
