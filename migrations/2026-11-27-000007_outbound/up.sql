-- Outbound messages: who sent them (manual or automated), what blocked
-- them, and what the dispatcher needs to hand them to a provider once.
ALTER TABLE messages
    ADD COLUMN origin TEXT CHECK (origin IN ('manual', 'automated')),
    ADD COLUMN subject TEXT,
    -- the all-channels switch and/or the reasons that blocked it
    ADD COLUMN blocked_reasons TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN error_message TEXT,
    ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at TIMESTAMPTZ,
    ADD CONSTRAINT messages_outbound_origin_check
        CHECK (direction = 'inbound' OR origin IS NOT NULL OR provider_sid IS NOT NULL),
    ADD CONSTRAINT messages_blocked_reasons_check
        CHECK (status <> 'blocked' OR cardinality(blocked_reasons) > 0);

-- The dispatcher's queue: only queued messages, oldest due first.
CREATE INDEX messages_queue_idx ON messages (next_attempt_at, location_id, id) WHERE status = 'queued';
