//! The CSV importer: contacts files and suppression lists. Input: a flags
//! byte (which kind of file), then the file.

#![no_main]

use dnd::domain::import::{contacts, suppressions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    // Lines end at LF, CRLF or a lone CR, as the CSV reader reads them.
    let ends = (0..file.len())
        .filter(|&i| file[i] == b'\n' || (file[i] == b'\r' && file.get(i + 1) != Some(&b'\n')))
        .count() as u64;
    let lines = 2 + ends;
    let in_file = |line: u64, what: &str| {
        assert!(
            (2..=lines).contains(&line),
            "{what} on line {line} of {lines}: {file:?}"
        );
    };
    if flags & 1 == 0 {
        if let Ok(parsed) = contacts(file) {
            for row in &parsed.rows {
                in_file(row.line, "a row");
                for cell in [
                    &row.name,
                    &row.phone,
                    &row.email,
                    &row.whatsapp_id,
                    &row.facebook_id,
                ]
                .into_iter()
                .flatten()
                {
                    assert!(!cell.contains('\0') && !cell.is_empty(), "{cell:?}");
                }
            }
            for e in &parsed.errors {
                let _ = (&e.field, &e.message);
            }
        }
    } else if let Ok(parsed) = suppressions(file) {
        for row in &parsed.rows {
            in_file(row.line, "a row");
            assert!(!row.address.is_empty() && !row.address.contains('\0'));
            assert!(!row.note.as_deref().unwrap_or("").contains('\0'));
        }
    }
});
