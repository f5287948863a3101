-- Back to one clock per address and channel: the latest of its reasons'.
CREATE TEMPORARY TABLE latest_consent AS
SELECT location_id, address, channel, max(last_change_at) AS last_change_at
FROM address_consent GROUP BY location_id, address, channel;
DELETE FROM address_consent;
ALTER TABLE address_consent DROP CONSTRAINT address_consent_pkey;
ALTER TABLE address_consent DROP COLUMN reason;
INSERT INTO address_consent (location_id, address, channel, last_change_at)
SELECT location_id, address, channel, last_change_at FROM latest_consent;
DROP TABLE latest_consent;
ALTER TABLE address_consent ADD PRIMARY KEY (location_id, address, channel);
