DROP INDEX contacts_phone_suffix_idx;
