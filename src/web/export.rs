//! The DND exports as CSV, streamed a page at a time (never the whole set
//! in memory, no connection held between pages). Shared by the API
//! (`/api/v1/dnd/export.csv`) and the pages (`/locations/{id}/dnd/export.csv`).

use std::borrow::Cow;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use chrono::{DateTime, NaiveDate, Utc};

use crate::db::export::{history_page, reasons_page};
use crate::db::{self, DbError, DbPool};

/// Contacts per page of the current-state export, rows per page of the
/// history export.
const CONTACTS_PER_PAGE: i64 = 200;
const HISTORY_PER_PAGE: i64 = 1000;

/// A cell a spreadsheet would run as a formula (`=`, `@`, `-`, a tab, a
/// carriage return, or `+` that is not an E.164 number) gets a leading
/// apostrophe, so it shows as text. OWASP's "CSV injection" advice.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    // Spreadsheets skip leading spaces before a formula: look past them.
    let first = cell.trim_start_matches(' ');
    let risky = match cell.chars().next() {
        Some('\t' | '\r' | '\n') => true,
        _ => match first.chars().next() {
            Some('=' | '@' | '-') => true,
            Some('+') => !is_e164(first),
            _ => false,
        },
    };
    if risky {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

fn is_e164(s: &str) -> bool {
    let digits = &s[1..];
    (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

/// What to export.
#[derive(Debug, Clone, Copy)]
pub enum Export {
    /// Every active reason (and all-channels switch) now.
    Current,
    /// The history between two instants (either end open).
    History {
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    },
}

impl Export {
    /// From the query's `from` and `to` (dates, `YYYY-MM-DD`, UTC; `to`
    /// inclusive): both absent is the current state.
    /// The field named in the error comes first.
    pub fn from_query(
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Export, (&'static str, String)> {
        let day = |v: &str, what: &'static str| {
            NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                .map_err(|_| (what, format!("\"{v}\" is not a date (YYYY-MM-DD)")))
        };
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        match (from.filter(|v| !v.is_empty()), to.filter(|v| !v.is_empty())) {
            (None, None) => Ok(Export::Current),
            (from, to) => {
                let start = from.map(|v| day(v, "from")).transpose()?.and_then(midnight);
                let end = to
                    .map(|v| day(v, "to"))
                    .transpose()?
                    .and_then(|d| d.succ_opt())
                    .and_then(midnight);
                if let (Some(s), Some(e)) = (start, end) {
                    if e <= s {
                        return Err(("to", "is before from".into()));
                    }
                }
                Ok(Export::History {
                    from: start,
                    to: end,
                })
            }
        }
    }

    fn header(self) -> &'static [&'static str] {
        match self {
            Export::Current => &[
                "contact_id",
                "name",
                "channel",
                "address",
                "reason",
                "kind",
                "since",
                "source",
            ],
            Export::History { .. } => &[
                "contact_id",
                "name",
                "channel",
                "address",
                "reason",
                "kind",
                "action",
                "at",
                "actor",
                "source",
            ],
        }
    }
}

fn csv_bytes(rows: &[Vec<String>]) -> Result<Bytes, DbError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        w.write_record(row.iter().map(|c| neutralise(c).into_owned()))
            .map_err(|e| DbError::Invariant(format!("writing CSV: {e}")))?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| DbError::Invariant(format!("writing CSV: {e}")))
}

enum Step {
    Header,
    Page(i64),
    Done,
}

/// The export as a streamed `text/csv` response.
pub fn respond(pool: DbPool, location_id: i64, export: Export, file: &str) -> HttpResponse {
    let stream = futures_util::stream::unfold(Step::Header, move |step| {
        let pool = pool.clone();
        async move {
            match step {
                Step::Done => None,
                Step::Header => {
                    let header: Vec<String> =
                        export.header().iter().map(|s| s.to_string()).collect();
                    Some((csv_bytes(&[header]), Step::Page(0)))
                }
                Step::Page(after) => {
                    let page = db::run(&pool, move |conn| -> Result<_, DbError> {
                        Ok(match export {
                            Export::Current => {
                                let (lines, next) =
                                    reasons_page(conn, location_id, after, CONTACTS_PER_PAGE)?;
                                let rows = lines
                                    .into_iter()
                                    .map(|l| {
                                        vec![
                                            l.contact_id.to_string(),
                                            l.name,
                                            l.channel,
                                            l.address.unwrap_or_default(),
                                            l.reason,
                                            l.kind,
                                            l.since.map(|t| t.to_rfc3339()).unwrap_or_default(),
                                            l.source.unwrap_or_default(),
                                        ]
                                    })
                                    .collect::<Vec<_>>();
                                (rows, next)
                            }
                            Export::History { from, to } => {
                                let (lines, next) = history_page(
                                    conn,
                                    location_id,
                                    from,
                                    to,
                                    after,
                                    HISTORY_PER_PAGE,
                                )?;
                                let rows = lines
                                    .into_iter()
                                    .map(|l| {
                                        let h = l.row;
                                        vec![
                                            h.contact_id.map(|c| c.to_string()).unwrap_or_default(),
                                            l.name,
                                            h.channel
                                                .map(|c| c.as_str().to_string())
                                                .unwrap_or_else(|| "all".into()),
                                            h.address.clone().unwrap_or_default(),
                                            h.reason
                                                .map(|r| r.as_str().to_string())
                                                .unwrap_or_else(|| "all_channels".into()),
                                            h.kind
                                                .map(|k| k.as_str().to_string())
                                                .unwrap_or_default(),
                                            h.action.as_str().to_string(),
                                            h.at.to_rfc3339(),
                                            format!("{}: {}", h.actor_kind.as_str(), h.actor_label),
                                            h.source.clone().unwrap_or_default(),
                                        ]
                                    })
                                    .collect::<Vec<_>>();
                                (rows, next)
                            }
                        })
                    })
                    .await;
                    match page {
                        Ok((rows, next)) => {
                            Some((csv_bytes(&rows), next.map_or(Step::Done, Step::Page)))
                        }
                        // The error ends the stream (the client sees a cut
                        // download, never a file that looks complete).
                        Err(e) => Some((Err(e), Step::Done)),
                    }
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .streaming(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_numbers_are_not() {
        for risky in [
            "=1+1",
            "@SUM(A1)",
            "-2+3",
            "\tx",
            "\rx",
            "\n=1",
            "  =1+1",
            "+1 (212)",
            "+CMD|'/C calc'!A0",
        ] {
            assert!(neutralise(risky).starts_with('\''), "{risky:?}");
        }
        for safe in ["+12125550100", "Ana", "", "1-2", "a=b", "ana@example.com"] {
            assert_eq!(neutralise(safe), safe);
        }
    }

    #[test]
    fn dates_pick_the_history_with_to_inclusive() {
        assert!(matches!(
            Export::from_query(None, None),
            Ok(Export::Current)
        ));
        let Ok(Export::History {
            from: Some(from),
            to: Some(to),
        }) = Export::from_query(Some("2026-11-01"), Some("2026-11-01"))
        else {
            panic!("a history export");
        };
        assert_eq!((to - from).num_hours(), 24);
        assert!(matches!(
            Export::from_query(None, Some("2026-11-01")),
            Ok(Export::History {
                from: None,
                to: Some(_)
            })
        ));
        assert!(Export::from_query(Some("2026-11-02"), Some("2026-11-01")).is_err());
        assert!(Export::from_query(Some("yesterday"), None).is_err());
    }
}
