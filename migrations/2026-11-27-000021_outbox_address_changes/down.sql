CREATE OR REPLACE FUNCTION dnd_history_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (location_id, subscription_id, history_id, order_key)
    SELECT h.location_id, s.id, h.id,
           coalesce('contact:' || h.contact_id::text, 'address:' || coalesce(h.address, ''))
    FROM added h
    JOIN webhook_subscriptions s ON s.location_id = h.location_id AND s.deleted_at IS NULL
    WHERE h.action IN ('set', 'lifted', 'inbound_on', 'inbound_off');
    RETURN NULL;
END
$$;
