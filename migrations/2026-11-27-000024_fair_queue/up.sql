-- The dispatcher claims per location, round-robin (one location's bulk
-- send no longer holds every other location's messages behind it): it
-- walks the locations with queued messages, then each one's oldest.
CREATE INDEX messages_location_queue_idx ON messages (location_id, next_attempt_at, id)
    WHERE status = 'queued' AND direction = 'outbound';
