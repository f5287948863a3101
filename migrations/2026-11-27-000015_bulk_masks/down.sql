DROP TRIGGER contact_dnd_reasons_removed ON contact_dnd_reasons;
CREATE TRIGGER contact_dnd_reasons_removed AFTER DELETE ON contact_dnd_reasons
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION contact_dnd_reasons_refresh_masks();
DROP FUNCTION contact_dnd_reasons_clear_masks();
DROP FUNCTION dnd_clear_contact_bits(BIGINT[], BIGINT[], TEXT[]);
DROP FUNCTION dnd_mask_on(contacts, SMALLINT);
DROP TRIGGER contact_dnd_reasons_added ON contact_dnd_reasons;
CREATE TRIGGER contact_dnd_reasons_added AFTER INSERT ON contact_dnd_reasons
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION contact_dnd_reasons_refresh_masks();
DROP FUNCTION contact_dnd_reasons_add_masks();
DROP FUNCTION dnd_add_contact_bits(BIGINT[], BIGINT[], TEXT[]);
