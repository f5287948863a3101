DROP TRIGGER dnd_history_outbox ON dnd_history;
DROP FUNCTION dnd_history_outbox();
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
