-- The location dashboard reads the last 30 days of DND changes and of
-- blocked messages: by time, within a location.
CREATE INDEX dnd_history_at_idx ON dnd_history (location_id, at);
CREATE INDEX messages_blocked_idx ON messages (location_id, created_at) WHERE status = 'blocked';
