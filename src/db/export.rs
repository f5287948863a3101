//! What the DND exports read, a page at a time (keyset on ids), so an
//! export of any size streams without holding a connection or the whole
//! set in memory.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use super::dnd::{self as dnd_store, HistoryRow};
use super::schema::dnd_history;
use crate::db::contacts::Contact;

/// One active reason of one contact, as the export writes it (the
/// all-channels switch is a row of its own: channel `all`).
#[derive(Debug, Clone)]
pub struct ReasonLine {
    pub contact_id: i64,
    pub name: String,
    pub channel: String,
    pub address: Option<String>,
    pub reason: String,
    pub kind: String,
    pub since: Option<DateTime<Utc>>,
    pub source: Option<String>,
}

/// The active reasons of the next contacts (in id order, after `after`)
/// that hold any; and the id to continue after, if there may be more.
pub fn reasons_page(
    conn: &mut PgConnection,
    location_id: i64,
    after: i64,
    contacts: i64,
) -> QueryResult<(Vec<ReasonLine>, Option<i64>)> {
    use super::schema::contacts as c;
    let page: Vec<Contact> = c::table
        .filter(c::location_id.eq(location_id))
        .filter(c::id.gt(after))
        .filter(c::dnd_all.or(c::dnd_mask.ne(0)))
        .order_by(c::id)
        .limit(contacts)
        .select(Contact::as_select())
        .load(conn)?;
    let next = (page.len() as i64 == contacts)
        .then(|| page.last().map(|c| c.id))
        .flatten();
    let mut lines = Vec::new();
    for contact in &page {
        lines.extend(lines_of(conn, contact)?);
    }
    Ok((lines, next))
}

fn lines_of(conn: &mut PgConnection, contact: &Contact) -> QueryResult<Vec<ReasonLine>> {
    let state = dnd_store::state_of(conn, contact)?;
    let mut out = Vec::new();
    if state.all {
        out.push(ReasonLine {
            contact_id: contact.id,
            name: contact.name.clone(),
            channel: "all".into(),
            address: None,
            reason: "all_channels".into(),
            kind: "temporary".into(),
            since: None,
            source: None,
        });
    }
    for (channel, a) in state.all_reasons() {
        out.push(ReasonLine {
            contact_id: contact.id,
            name: contact.name.clone(),
            channel: channel.as_str().into(),
            address: a.address.clone(),
            reason: a.reason.as_str().into(),
            kind: a.reason.kind().as_str().into(),
            since: Some(a.since),
            source: a.source.clone(),
        });
    }
    Ok(out)
}

/// One history row with its contact's name.
#[derive(Debug, Clone)]
pub struct HistoryLine {
    pub row: HistoryRow,
    pub name: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

/// The next history rows of the location between `from` (inclusive) and
/// `to` (exclusive), oldest first, after the row id `after`.
pub fn history_page(
    conn: &mut PgConnection,
    location_id: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    after: i64,
    limit: i64,
) -> QueryResult<(Vec<HistoryLine>, Option<i64>)> {
    let mut query = dnd_history::table
        .filter(dnd_history::location_id.eq(location_id))
        .filter(dnd_history::id.gt(after))
        .order_by(dnd_history::id)
        .limit(limit)
        .select(HistoryRow::as_select())
        .into_boxed();
    if let Some(from) = from {
        query = query.filter(dnd_history::at.ge(from));
    }
    if let Some(to) = to {
        query = query.filter(dnd_history::at.lt(to));
    }
    let rows: Vec<HistoryRow> = query.load(conn)?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.contact_id).collect();
    let names: Vec<Name> =
        diesel::sql_query("SELECT id, name FROM contacts WHERE location_id = $1 AND id = ANY($2)")
            .bind::<BigInt, _>(location_id)
            .bind::<Array<BigInt>, _>(&ids)
            .load(conn)?;
    Ok((
        rows.into_iter()
            .map(|row| HistoryLine {
                name: row
                    .contact_id
                    .and_then(|c| names.iter().find(|n| n.id == c))
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
                row,
            })
            .collect(),
        next,
    ))
}
