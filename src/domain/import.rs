//! Reading the CSV files users import: contacts (with optional DND flags)
//! and suppression lists. Only the file's shape is decided here (encoding,
//! header, one record per row with its line number); each value is checked
//! by the same rules as a contact typed in a form.
//!
//! A file the reader cannot take as a whole (too large, not UTF-8, a
//! missing or unknown column) is refused before anything is imported; a
//! bad row is reported with its line and skipped.

use std::collections::HashSet;

use super::dnd::Switches;
use super::Channel;

/// The largest file taken, in bytes.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

/// Why a whole file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileRefused(pub String);

/// A problem with one row: its line in the file (the header is line 1),
/// the column, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub field: String,
    pub message: String,
}

/// One row of a contacts file, as typed (blank cells are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactRow {
    pub line: u64,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub whatsapp_id: Option<String>,
    pub facebook_id: Option<String>,
    /// The `dnd_*` cells that said yes: DND turned on (`manual`). An
    /// import never turns DND off.
    pub dnd: Switches,
}

/// One row of a suppression list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionRow {
    pub line: u64,
    pub address: String,
    pub note: Option<String>,
}

/// A file read: its rows, and the rows that could not be read at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed<T> {
    pub rows: Vec<T>,
    pub errors: Vec<RowError>,
}

const CONTACT_REQUIRED: [&str; 3] = ["name", "phone", "email"];
const CONTACT_OPTIONAL: [&str; 2] = ["whatsapp_id", "facebook_id"];
const DND_COLUMNS: [(&str, Option<Channel>); 6] = [
    ("dnd_all", None),
    ("dnd_sms", Some(Channel::Sms)),
    ("dnd_call", Some(Channel::Call)),
    ("dnd_email", Some(Channel::Email)),
    ("dnd_facebook", Some(Channel::Facebook)),
    ("dnd_whatsapp", Some(Channel::Whatsapp)),
];

/// `true`, `yes` or `1` (any case): DND on. Anything else leaves DND as
/// it is.
pub fn says_yes(cell: &str) -> bool {
    matches!(
        cell.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "1"
    )
}

/// The file as text: at most [`MAX_BYTES`], UTF-8 (a byte order mark is
/// dropped), with a header line.
pub fn text(bytes: &[u8]) -> Result<&str, FileRefused> {
    if bytes.len() > MAX_BYTES {
        return Err(FileRefused(format!(
            "The file is larger than {} MiB; split it and import each part.",
            MAX_BYTES / 1024 / 1024
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        FileRefused(format!(
            "The file is not UTF-8 text (line {line} has a byte that is not): save it as \
             \"CSV UTF-8\" and import it again."
        ))
    })?;
    if text.trim().is_empty() {
        return Err(FileRefused(
            "The file is empty: the first line must name the columns.".into(),
        ));
    }
    Ok(text)
}

/// The header's column names, trimmed and in lower case, each once.
fn header(reader: &mut csv::Reader<&[u8]>) -> Result<Vec<String>, FileRefused> {
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| FileRefused(format!("The first line could not be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut seen = HashSet::new();
    for name in &names {
        if !seen.insert(name.as_str()) {
            return Err(FileRefused(format!(
                "The column \"{name}\" appears twice in the first line."
            )));
        }
    }
    Ok(names)
}

/// Line numbers of records, from their byte offsets (the reader's own line
/// count is off after CRLF line ends). Records come in file order, so it
/// counts forward from the last one.
struct Lines<'a> {
    text: &'a [u8],
    byte: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            text: text.as_bytes(),
            byte: 0,
            line: 1,
        }
    }

    /// The line a record starting at `byte` begins on: the reader's offset
    /// may point at the end of the line before, or at blank lines it
    /// skipped.
    fn of(&mut self, position: Option<&csv::Position>) -> u64 {
        let Some(mut at) = position.map(|p| p.byte() as usize) else {
            return 0;
        };
        while at < self.text.len() && matches!(self.text[at], b'\r' | b'\n') {
            at += 1;
        }
        let at = at.min(self.text.len());
        if at >= self.byte {
            // A line ends at LF, CRLF, or a lone CR (as the reader reads
            // them: old Mac spreadsheets end lines with CR alone).
            let text = self.text;
            self.line += (self.byte..at)
                .filter(|&i| {
                    text[i] == b'\n' || (text[i] == b'\r' && text.get(i + 1) != Some(&b'\n'))
                })
                .count() as u64;
            self.byte = at;
        }
        self.line
    }
}

fn reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes())
}

/// Reads a contacts file: columns `name, phone, email` (required, in any
/// order), `whatsapp_id, facebook_id` and the `dnd_*` flags (optional).
/// An unknown column refuses the file (a misspelt `dnd_sms` would
/// otherwise import contacts who opted out as reachable).
pub fn contacts(bytes: &[u8]) -> Result<Parsed<ContactRow>, FileRefused> {
    let text = text(bytes)?;
    let mut reader = reader(text);
    let names = header(&mut reader)?;
    let missing: Vec<&str> = CONTACT_REQUIRED
        .iter()
        .copied()
        .filter(|r| !names.iter().any(|n| n == r))
        .collect();
    if !missing.is_empty() {
        return Err(FileRefused(format!(
            "The first line must name the columns; missing: {}. Expected: name, phone, email, \
             and optionally whatsapp_id, facebook_id, dnd_all, dnd_sms, dnd_call, dnd_email, \
             dnd_facebook, dnd_whatsapp.",
            missing.join(", ")
        )));
    }
    let known = |n: &str| {
        CONTACT_REQUIRED.contains(&n)
            || CONTACT_OPTIONAL.contains(&n)
            || DND_COLUMNS.iter().any(|(d, _)| *d == n)
    };
    if let Some(unknown) = names.iter().find(|n| !known(n)) {
        return Err(FileRefused(format!(
            "Unknown column \"{unknown}\" in the first line. Columns: name, phone, email, \
             whatsapp_id, facebook_id, dnd_all, dnd_sms, dnd_call, dnd_email, dnd_facebook, \
             dnd_whatsapp."
        )));
    }
    let column = |name: &str| names.iter().position(|n| n == name);
    let at = |record: &csv::StringRecord, name: &str| -> Option<String> {
        column(name)
            .and_then(|i| record.get(i))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Ok(each_row(text, &mut reader, &names, |record, line| {
        let mut dnd = Switches::default();
        for (name, channel) in DND_COLUMNS {
            if at(record, name).is_some_and(|v| says_yes(&v)) {
                match channel {
                    None => dnd.all = Some(true),
                    Some(c) => dnd.channels.push((c, true)),
                }
            }
        }
        Ok(ContactRow {
            line,
            name: at(record, "name"),
            phone: at(record, "phone"),
            email: at(record, "email"),
            whatsapp_id: at(record, "whatsapp_id"),
            facebook_id: at(record, "facebook_id"),
            dnd,
        })
    }))
}

/// Every data row of a file, through `row`: records the reader cannot
/// take, and cells holding a NUL, are row errors; blank lines are
/// skipped; `row` reads the rest (or says what is wrong with it).
fn each_row<T>(
    text: &str,
    reader: &mut csv::Reader<&[u8]>,
    names: &[String],
    mut row: impl FnMut(&csv::StringRecord, u64) -> Result<T, RowError>,
) -> Parsed<T> {
    let mut parsed = Parsed {
        rows: Vec::new(),
        errors: Vec::new(),
    };
    let mut lines = Lines::new(text);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = lines.of(e.position());
                parsed.errors.push(unreadable(&e, line, names.len()));
                continue;
            }
        };
        let line = lines.of(record.position());
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if let Some(e) = nul_cell(&record, names, line) {
            parsed.errors.push(e);
            continue;
        }
        match row(&record, line) {
            Ok(r) => parsed.rows.push(r),
            Err(e) => parsed.errors.push(e),
        }
    }
    parsed
}

/// Reads a suppression list: an `address` column (required) and an
/// optional `note`.
pub fn suppressions(bytes: &[u8]) -> Result<Parsed<SuppressionRow>, FileRefused> {
    let text = text(bytes)?;
    let mut reader = reader(text);
    let names = header(&mut reader)?;
    let Some(address) = names.iter().position(|n| n == "address") else {
        return Err(FileRefused(
            "The first line must name the columns: address (required) and note (optional).".into(),
        ));
    };
    if let Some(unknown) = names.iter().find(|n| *n != "address" && *n != "note") {
        return Err(FileRefused(format!(
            "Unknown column \"{unknown}\" in the first line. Columns: address, note."
        )));
    }
    let note = names.iter().position(|n| n == "note");
    Ok(each_row(text, &mut reader, &names, |record, line| {
        let value = record.get(address).unwrap_or("").trim().to_string();
        if value.is_empty() {
            return Err(RowError {
                line,
                field: "address".into(),
                message: "is empty".into(),
            });
        }
        let note = note
            .and_then(|i| record.get(i))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
            return Err(RowError {
                line,
                field: "note".into(),
                message: "is longer than 500 characters".into(),
            });
        }
        Ok(SuppressionRow {
            line,
            address: value,
            note,
        })
    }))
}

/// A cell holding a NUL character (no text column stores one).
fn nul_cell(record: &csv::StringRecord, names: &[String], line: u64) -> Option<RowError> {
    let i = record.iter().position(|c| c.contains('\0'))?;
    Some(RowError {
        line,
        field: names.get(i).cloned().unwrap_or_else(|| "row".into()),
        message: "contains a NUL character".into(),
    })
}

/// A record the reader could not take (a row with more or fewer cells than
/// the header).
fn unreadable(e: &csv::Error, line: u64, columns: usize) -> RowError {
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { len, .. } => format!(
            "has {len} cells where the first line names {columns} columns (a comma inside a \
             value needs quotes around the value)"
        ),
        _ => format!("could not be read: {e}"),
    };
    RowError {
        line,
        field: "row".into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_their_line_and_dnd_flags() {
        let file = "\u{feff}Name,Phone,email,dnd_sms,dnd_all\r\n\
                    \"Brown, Aaliyah\",+1 212 555 0100,a@example.com,Yes,no\r\n\
                    \r\n\
                    \"Multi\nline\",,b@example.com,,TRUE\r\n";
        let parsed = contacts(file.as_bytes()).unwrap();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.rows.len(), 2);
        let first = &parsed.rows[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.name.as_deref(), Some("Brown, Aaliyah"));
        assert_eq!(first.dnd.channels, vec![(Channel::Sms, true)]);
        assert_eq!(first.dnd.all, None);
        let second = &parsed.rows[1];
        assert_eq!(second.line, 4);
        assert_eq!(second.phone, None);
        assert_eq!(second.dnd.all, Some(true));
    }

    #[test]
    fn rows_ended_by_a_lone_cr_carry_their_line() {
        let parsed = suppressions(b"address,note\r+12125550100,a\r\r+12125550101,b\r").unwrap();
        let lines: Vec<u64> = parsed.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn whole_file_refusals_name_the_problem() {
        let refused = |bytes: &[u8]| contacts(bytes).unwrap_err().0;
        assert!(refused(b"name,email\nA,a@example.com\n").contains("missing: phone"));
        assert!(refused(b"name,phone,email,dnd_smss\n").contains("Unknown column \"dnd_smss\""));
        assert!(refused(b"name,phone,email,name\n").contains("twice"));
        assert!(refused(b"name,phone,email\nJos\xe9,,j@example.com\n").contains("line 2"));
        assert!(refused(b"  \n").contains("empty"));
        let big = vec![b'a'; MAX_BYTES + 1];
        assert!(refused(&big).contains("larger than 10 MiB"));
    }

    #[test]
    fn a_row_with_the_wrong_number_of_cells_is_reported_and_the_rest_read() {
        let parsed =
            contacts(b"name,phone,email\nA,+12125550100,a@example.com,extra\nB,,b@example.com\n")
                .unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].line, 3);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 2);
        assert!(parsed.errors[0].message.contains("4 cells"));
    }

    #[test]
    fn a_nul_in_a_cell_is_a_row_error() {
        let parsed = suppressions(b"address,note\n+12125550100,a\0b\n").unwrap();
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.errors[0].field, "note");
        let parsed = contacts(b"name,phone,email\nA\0,,a@example.com\n").unwrap();
        assert_eq!(parsed.errors[0].field, "name");
    }

    #[test]
    fn only_yes_words_turn_dnd_on() {
        for yes in ["true", "YES", " 1 ", "Yes"] {
            assert!(says_yes(yes), "{yes}");
        }
        for other in ["", "no", "false", "0", "off", "y", "2"] {
            assert!(!says_yes(other), "{other}");
        }
    }

    #[test]
    fn suppression_lists_need_an_address_column() {
        let parsed =
            suppressions(b"address,note\n+12125550100,from the old CRM\n,\n\"\",x\n").unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].note.as_deref(), Some("from the old CRM"));
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 4);
        assert!(suppressions(b"phone\n+12125550100\n").is_err());
        assert!(suppressions(b"address,reason\n").is_err());
    }
}
