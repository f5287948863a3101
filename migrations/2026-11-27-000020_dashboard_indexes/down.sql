DROP INDEX messages_blocked_idx;
DROP INDEX dnd_history_at_idx;
