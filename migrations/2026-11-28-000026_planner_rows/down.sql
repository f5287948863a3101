DROP FUNCTION dnd_contacts_estimate(bigint);
