//! The contact list's usual page, the whole location in name order, read
//! in one statement: who asks and where ([`crate::db::who`]) and the
//! page's rows from one walk of the name index. The rows come back as
//! rows, read by position (as an array of records, building and sending
//! them cost PostgreSQL more than reading them). The total is counted, or
//! for a large location estimated ([`Estimates`], kept a minute), only
//! when the list has more than one page. Searches and filters go through
//! [`contacts::list`], which plans each one for its values.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Record, Text};

use super::contact_page::CONTACT_COLUMNS;
use super::contacts::{self, Contact, ContactPage, Cursor, Estimates, ListFilter, Total};
use super::locations::Location;
use super::prepared::{numbered, Kept};
use super::users::User;
use super::who::{prefixed, with_who, RowOf, SqlOf, Who, WhoRow};
use super::DbError;

/// Who (`w`) on the first row only, then each of the page's contacts
/// (`p`, numbered `_n` from 1 in the page's order; none: an empty page;
/// `_key` and `_n` so no column `contacts` may gain is taken). Binds,
/// in the order of their `?`: the switcher's size; the location and the
/// anchor (`@ANCHORED`, not on the first page); the session's generation,
/// the location and the user (`w`); the location (the rows); the location
/// and the anchor twice (`@RANGE`). The location's contacts are read by
/// the bound location id itself, and only when `w.visible`. The page's
/// size is written in (`@LIMIT`): with it as a bind, PostgreSQL's generic
/// plan guesses a larger LIMIT, costs more than a plan for the value, and
/// it planned the whole statement again on every request (about a
/// millisecond).
const LIST_SQL: &str = "SELECT CASE WHEN p._n IS NULL OR p._n = 1 THEN w.user_row END,
        CASE WHEN p._n IS NULL OR p._n = 1 THEN w.location_row END,
        w.member, w.visible,
        CASE WHEN p._n IS NULL OR p._n = 1 THEN @SWITCHER END,
        CASE WHEN p._n IS NULL OR p._n = 1 THEN @ANCHORED END,
        p._n, @CONTACT_P
    FROM @WHO_FROM
    LEFT JOIN LATERAL (
        SELECT row_number() OVER (ORDER BY k._key @DIR, k.id @DIR) AS _n, k.*
        FROM (SELECT c.*, lower(c.name) AS _key FROM contacts c
              WHERE c.location_id = ? AND w.visible @RANGE
              ORDER BY lower(c.name) @DIR, c.id @DIR LIMIT @LIMIT) k) p ON true";

/// The statement for a cursor: the first page, the page after a contact,
/// or the one before it (read backwards).
fn list_sql(cursor: &Cursor) -> &'static str {
    use std::sync::OnceLock;
    static FIRST: OnceLock<String> = OnceLock::new();
    static AFTER: OnceLock<String> = OnceLock::new();
    static BEFORE: OnceLock<String> = OnceLock::new();
    let (cell, anchored, op, dir) = match cursor {
        Cursor::First => (&FIRST, false, "", "ASC"),
        Cursor::After(_) => (&AFTER, true, ">", "ASC"),
        Cursor::Before(_) => (&BEFORE, true, "<", "DESC"),
    };
    cell.get_or_init(|| {
        let (found, range) = if anchored {
            (
                "EXISTS (SELECT 1 FROM contacts a
                         WHERE a.location_id = ? AND a.id = ? AND w.visible)",
                // The anchor's key as PostgreSQL sorts it; the row
                // comparison with its two values is an index range.
                format!(
                    "AND (lower(c.name), c.id) {op} \
                     ((SELECT lower(a.name) FROM contacts a WHERE a.location_id = ? AND a.id = ?), ?)"
                ),
            )
        } else {
            ("true", String::new())
        };
        numbered(
            &with_who(LIST_SQL)
                .replace("@ANCHORED", found)
                .replace("@RANGE", &range)
                .replace("@DIR", dir)
                .replace("@CONTACT_P", &prefixed(CONTACT_COLUMNS, "p")),
        )
    })
}

/// A row of the statement, by position.
type ListSql = (
    Nullable<Record<SqlOf<User>>>,
    Nullable<Record<SqlOf<Location>>>,
    Bool,
    Nullable<Bool>,
    Nullable<Array<Record<(BigInt, Text)>>>,
    Nullable<Bool>,
    Nullable<BigInt>,
    Nullable<SqlOf<Contact>>,
);
type ListRow = (
    Option<RowOf<User>>,
    Option<RowOf<Location>>,
    bool,
    Option<bool>,
    Option<Vec<(i64, String)>>,
    Option<bool>,
    Option<i64>,
    Option<Contact>,
);

/// What the statement found: who (see [`Who`]), and the page when the
/// location is visible. `page` is `None` also when the cursor's contact is
/// gone (the caller lists from the start, as [`contacts::list`] does).
pub struct ListPageReads {
    pub who: Who,
    pub page: Option<ContactPage>,
}

/// How the page is asked for.
pub struct ListAsked {
    pub user_id: i64,
    /// The session's generation (`None`: an old cookie; nothing is read).
    pub generation: Option<i32>,
    pub location_id: i64,
    pub cursor: Cursor,
    pub page_size: i64,
    pub switcher: i64,
}

pub fn read(
    conn: &mut PgConnection,
    asked: &ListAsked,
    estimates: &Estimates,
) -> Result<ListPageReads, DbError> {
    let sql = list_sql(&asked.cursor).replace("@LIMIT", &(asked.page_size + 1).to_string());
    let anchor = match asked.cursor {
        Cursor::After(id) | Cursor::Before(id) => Some(id),
        Cursor::First => None,
    };
    let mut query = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<BigInt, _>(asked.switcher);
    if let Some(id) = anchor {
        query = query
            .bind::<BigInt, _>(asked.location_id)
            .bind::<BigInt, _>(id);
    }
    query = query
        .bind::<Nullable<Integer>, _>(asked.generation)
        .bind::<BigInt, _>(asked.location_id)
        .bind::<BigInt, _>(asked.user_id)
        .bind::<BigInt, _>(asked.location_id);
    if let Some(id) = anchor {
        query = query
            .bind::<BigInt, _>(asked.location_id)
            .bind::<BigInt, _>(id)
            .bind::<BigInt, _>(id);
    }
    let mut rows: Vec<ListRow> = Kept::<_, ListSql>::as_rows_of(query).load(conn)?;
    // In the page's order (PostgreSQL numbered them; a join's rows come in
    // no promised order).
    rows.sort_by_key(|row| row.6);
    let mut rows = rows.into_iter();
    // No row: no such user.
    let Some((user_row, location_row, member, visible, switcher, anchored, _, first)) = rows.next()
    else {
        return Ok(ListPageReads {
            who: WhoRow::decide(None, asked.generation)?,
            page: None,
        });
    };
    let who = WhoRow::decide(
        Some(WhoRow {
            user_row,
            location_row,
            member,
            visible,
            switcher: switcher.unwrap_or_default(),
        }),
        asked.generation,
    )?;
    debug_assert!(
        who.location.is_some() || (first.is_none() && rows.len() == 0),
        "the statement read a location's contacts it may not show"
    );
    if who.location.is_none() || anchored != Some(true) {
        return Ok(ListPageReads { who, page: None });
    }
    let mut contacts: Vec<Contact> = first
        .into_iter()
        .chain(rows.filter_map(|row| row.7))
        .collect();
    let more = contacts.len() as i64 > asked.page_size;
    contacts.truncate(asked.page_size as usize);
    if matches!(asked.cursor, Cursor::Before(_)) {
        contacts.reverse();
    }
    let (has_next, has_prev) = asked.cursor.pager(more);
    let total = if !has_next && !has_prev {
        Total::Exact(contacts.len() as i64)
    } else {
        contacts::total(conn, asked.location_id, &ListFilter::default(), estimates)?
    };
    Ok(ListPageReads {
        who,
        page: Some(ContactPage {
            contacts,
            has_next,
            has_prev,
            total,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::contacts;
    use crate::db::who::tests::{diesel_columns, ours};

    #[test]
    fn the_contact_record_lists_its_columns_in_order_and_every_part_is_filled() {
        assert_eq!(
            ours(CONTACT_COLUMNS),
            diesel_columns(contacts::table.select(Contact::as_select()))
        );
        for cursor in [Cursor::First, Cursor::After(1), Cursor::Before(1)] {
            let sql = list_sql(&cursor);
            let sql = sql.replace("@LIMIT", "51");
            assert!(!sql.contains('@') && !sql.contains('?'), "{sql}");
            if std::env::var_os("SHOW_SQL").is_some() {
                println!("{sql}");
            }
        }
    }
}
