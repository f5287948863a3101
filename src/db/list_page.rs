//! The contact list's usual page, the whole location in name order, read
//! in one statement: the user, the location and the switcher
//! ([`crate::db::who`]), the page's rows from one walk of the name index,
//! and the planner's estimate of the total (`dnd_contacts_estimate`, only when
//! the list has more than one page). It used to take five round trips.
//! Searches and filters go through [`contacts::list`], which plans each
//! one for its values.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Record, Text};

use super::contact_page::CONTACT_COLUMNS;
use super::contacts::{self, Contact, ContactPage, Cursor, ListFilter, Total};
use super::prepared::Kept;
use super::who::{
    build, with_columns, RowOf, SqlOf, Who, WhoRow, SWITCHER_CTE, VISIBLE_CTE, WHO_COLUMNS,
};
use super::DbError;

/// Binds: the user, the location, the session's generation, the location
/// and the anchor (not on the first page), the location (the rows), the
/// location twice and the switcher's size (`@WHO`), the location (the
/// estimate). Tenant tables are read by the bound location id itself, and
/// only when `v` says the user may see it. The page's size is written in (`@LIMIT`, `@PAGE`): with it as
/// a bind, PostgreSQL's generic plan guesses a larger LIMIT, costs more
/// than a plan for the value, and it planned the whole statement again on
/// every request (about a millisecond).
const LIST_SQL: &str = "WITH u AS (SELECT * FROM users WHERE id = ?),
    @VISIBLE,
    @SWITCHER,
    @ANCHOR
    page AS (
        SELECT contacts.*, lower(contacts.name) AS key FROM contacts
        WHERE contacts.location_id = ? AND EXISTS (SELECT 1 FROM v) @RANGE
        ORDER BY lower(contacts.name) @DIR, contacts.id @DIR LIMIT @LIMIT)
    SELECT @WHO,
        @ANCHORED AS anchored,
        ARRAY(SELECT ROW(ROW(@CONTACT), key) FROM page ORDER BY key @DIR, id @DIR) AS rows,
        CASE WHEN EXISTS (SELECT 1 FROM v)
                  AND (@NOT_FIRST OR (SELECT count(*) FROM page) > @PAGE)
             THEN dnd_contacts_estimate(?)
        END AS estimate";

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
        // `?` in order becomes `$1`, `$2`, ... (a `sql_query`'s binds).
        let numbered = |sql: String| {
            let mut out = String::with_capacity(sql.len() + 16);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        };
        let (anchor, range, found) = if anchored {
            (
                // The anchor's key as PostgreSQL sorts it; the row
                // comparison with its two values is an index range.
                "anchor AS (SELECT lower(name) AS key, id FROM contacts
                     WHERE location_id = ? AND id = ? AND EXISTS (SELECT 1 FROM v)),",
                format!(
                    "AND (lower(contacts.name), contacts.id) {op} \
                     ((SELECT key FROM anchor), (SELECT id FROM anchor))"
                ),
                "EXISTS (SELECT 1 FROM anchor)",
            )
        } else {
            ("", String::new(), "true")
        };
        numbered(with_columns(
            &LIST_SQL
                .replace("@VISIBLE", VISIBLE_CTE)
                .replace("@SWITCHER", SWITCHER_CTE)
                .replace("@WHO", WHO_COLUMNS)
                .replace("@ANCHORED", found)
                .replace("@ANCHOR", anchor)
                .replace("@RANGE", &range)
                .replace("@DIR", dir)
                .replace("@NOT_FIRST", if anchored { "true" } else { "false" })
                .replace("@CONTACT", CONTACT_COLUMNS),
        ))
    })
}

#[derive(QueryableByName)]
struct ListRow {
    #[diesel(embed)]
    who: WhoRow,
    #[diesel(sql_type = Bool)]
    anchored: bool,
    #[diesel(sql_type = Array<Record<(Record<SqlOf<Contact>>, Nullable<Text>)>>)]
    rows: Vec<(RowOf<Contact>, Option<String>)>,
    #[diesel(sql_type = Nullable<BigInt>)]
    estimate: Option<i64>,
}

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

pub fn read(conn: &mut PgConnection, asked: &ListAsked) -> Result<ListPageReads, DbError> {
    let sql = list_sql(&asked.cursor)
        .replace("@LIMIT", &(asked.page_size + 1).to_string())
        .replace("@PAGE", &asked.page_size.to_string());
    let mut query = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<BigInt, _>(asked.user_id)
        .bind::<BigInt, _>(asked.location_id)
        .bind::<Nullable<Integer>, _>(asked.generation);
    if let Cursor::After(id) | Cursor::Before(id) = asked.cursor {
        query = query
            .bind::<BigInt, _>(asked.location_id)
            .bind::<BigInt, _>(id);
    }
    let row: ListRow = Kept(
        query
            .bind::<BigInt, _>(asked.location_id)
            .bind::<BigInt, _>(asked.location_id)
            .bind::<BigInt, _>(asked.location_id)
            .bind::<BigInt, _>(asked.switcher)
            .bind::<BigInt, _>(asked.location_id),
    )
    .get_result(conn)?;
    let who = row.who.decide(asked.generation)?;
    if who.location.is_none() || !row.anchored {
        return Ok(ListPageReads { who, page: None });
    }
    let forward = !matches!(asked.cursor, Cursor::Before(_));
    let mut contacts = row
        .rows
        .into_iter()
        .map(|(contact, _key)| build::<Contact>(contact))
        .collect::<QueryResult<Vec<_>>>()?;
    let more = contacts.len() as i64 > asked.page_size;
    contacts.truncate(asked.page_size as usize);
    if !forward {
        contacts.reverse();
    }
    let (has_next, has_prev) = asked.cursor.pager(more);
    let total = if !has_next && !has_prev {
        Total::Exact(contacts.len() as i64)
    } else {
        let whole = ListFilter::from_query("", "", "").map_err(DbError::Replicated)?;
        contacts::total_from_estimate(
            conn,
            asked.location_id,
            &whole,
            row.estimate.unwrap_or(i64::MAX),
        )?
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
            let sql = sql.replace("@LIMIT", "51").replace("@PAGE", "50");
            assert!(!sql.contains('@') && !sql.contains('?'), "{sql}");
            if std::env::var_os("SHOW_SQL").is_some() {
                println!("{sql}");
            }
        }
    }
}
