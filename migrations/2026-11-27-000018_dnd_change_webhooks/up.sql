-- DND-change webhooks: a location's subscribers get `contact.dnd_updated`
-- for every change of DND (set, lifted, inbound on/off).
CREATE TABLE webhook_subscriptions (
    location_id BIGINT NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    id BIGSERIAL NOT NULL,
    url TEXT NOT NULL CHECK (length(url) <= 2000),
    -- The signing secret, sealed like the integrations' secrets.
    secret TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at TIMESTAMPTZ,
    PRIMARY KEY (location_id, id)
);

-- The outbox: one delivery per change and subscriber, written by the
-- history's own insert (so in the same transaction as the change: none
-- lost, none invented), and sent later with retries.
CREATE TABLE webhook_deliveries (
    location_id BIGINT NOT NULL,
    id BIGSERIAL NOT NULL,
    subscription_id BIGINT NOT NULL,
    history_id BIGINT NOT NULL,
    -- Deliveries with one key (the contact, or the address when no contact
    -- holds it) go out in history order.
    order_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_status INT,
    last_error TEXT,
    delivered_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, id),
    UNIQUE (location_id, subscription_id, history_id),
    FOREIGN KEY (location_id, subscription_id)
        REFERENCES webhook_subscriptions (location_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, history_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order_idx
    ON webhook_deliveries (location_id, subscription_id, order_key, history_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (location_id, subscription_id, id DESC);

CREATE FUNCTION dnd_history_outbox() RETURNS trigger
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
CREATE TRIGGER dnd_history_outbox AFTER INSERT ON dnd_history
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION dnd_history_outbox();
