//! Everything a contact's page shows, read in one statement.
//!
//! The page used to make eight round trips to PostgreSQL (the user and
//! location, the switcher, the contact, the integrations, the reasons, the
//! history, the opt-in requests, the messages). Each round trip costs two
//! context switches on either side and a blocking-pool hand-off, which
//! together cost more CPU than the reads themselves. Here every list comes
//! back as one array of records in a single row, decoded by diesel through
//! each struct's own `Queryable` (so the enums, the sealed secrets and the
//! dates are read exactly as the per-read functions read them).
//!
//! The statement reads the location's data only when the user may see it
//! (the same rule as [`crate::db::locations::may_see`] and the switcher of
//! [`crate::db::who`]); the
//! caller still checks the user and the location it returns with those
//! functions, which stay the authority.

use diesel::deserialize::Queryable;
use diesel::dsl::SqlTypeOf;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Record, Text, Timestamptz};

use super::contacts::Contact;
use super::dnd::{history_from_rows, states_from_rows, HistoryRow, ReasonRow};
use super::integrations::Integration;
use super::locations::Location;
use super::optin::{record, DecisionRow, OptinRequest, RequestRecord};
use super::prepared::prepared_statement;
use super::schema::contact_dnd_reasons;
use super::users::User;
use super::webhooks::Message;
use super::who::{build, prefixed, with_who, RowOf, SqlOf, Who, WhoRow};
use crate::domain::dnd::DndState;

type ReasonSql = (
    Nullable<BigInt>,
    Nullable<Text>,
    SqlTypeOf<contact_dnd_reasons::channel>,
    SqlTypeOf<contact_dnd_reasons::reason>,
    Timestamptz,
    SqlTypeOf<contact_dnd_reasons::actor_kind>,
    Nullable<BigInt>,
    Text,
    Nullable<Text>,
);
type ReasonTuple = <ReasonRow as Queryable<ReasonSql, Pg>>::Row;

/// Each record's columns, in the field order of the struct it becomes
/// (checked against diesel's own select lists by the tests below).
pub(super) const CONTACT_COLUMNS: &str =
    "location_id, id, name, phone, email, facebook_id, whatsapp_id, \
     gmb_id, created_at, updated_at, dnd_all, dnd_mask, dnd_status, inbound_sms_dnd, \
     inbound_calls_dnd";
const INTEGRATION_COLUMNS: &str = "location_id, id, channel, provider, status, account, secret, \
     connected_at, disconnected_at, created_at, verify_token, transport, api_base_url, api_key, \
     sender, last_error, last_error_at";
const HISTORY_COLUMNS: &str = "id, contact_id, channel, reason, kind, action, actor_kind, \
     actor_id, actor_label, address, source, at, event_at, detail";
const REQUEST_COLUMNS: &str = "r.location_id, r.id, r.contact_id, r.channel, r.address, \
     r.relationship_numbers, r.recording_url, r.opted_in_on, r.note, r.requested_by, \
     r.requested_by_label, r.created_at";
const DECISION_COLUMNS: &str = "d.decision, d.note, d.decided_by, d.decided_by_label, d.decided_at";
const MESSAGE_COLUMNS: &str = "id, channel, direction, body, from_address, to_address, \
     provider_sid, status, error_code, created_at, origin, subject, blocked_reasons, \
     error_message, muted";

/// How many opt-in requests the page lists (as `optin::for_contact`).
const REQUESTS_SHOWN: i64 = 200;

struct PageStatement {
    user_id: i64,
    generation: Option<i32>,
    location_id: i64,
    contact_id: i64,
    switcher: i64,
    history: i64,
    messages: i64,
    requests: i64,
}

/// The statement, `@NAME` standing for a record's column list. `w` is who
/// asks and where ([`super::who::WHO_FROM`]); `c` the contact, read only
/// if `w.visible`, and every other read of the location's data requires
/// `w.visible` or goes through `c`. Each is a subquery of the one row
/// `w` and `c` make, run once. Each names the location by the bound id
/// itself, `location_id = ?`, so the planner sees the tenant key (and a
/// Citus coordinator can route the statement to the location's shard).
const PAGE_SQL: &str =
    "SELECT w.user_row, w.location_row, w.member, w.visible, @SWITCHER AS switcher,
        CASE WHEN c.id IS NOT NULL THEN ROW(@CONTACT_C) END AS contact_row,
        ARRAY(SELECT ROW(@INTEGRATION) FROM integrations
              WHERE location_id = ? AND w.visible ORDER BY id) AS integrations,
        ARRAY(SELECT ROW(r.contact_id, NULL::text, r.channel, r.reason, r.set_at,
                         r.actor_kind, r.actor_id, r.actor_label, r.source)
              FROM contact_dnd_reasons r
              WHERE r.location_id = ? AND r.contact_id = c.id
              UNION ALL
              SELECT ROW(NULL::int8, r.address, r.channel, r.reason, r.set_at,
                         r.actor_kind, r.actor_id, r.actor_label, r.source)
              FROM address_dnd_reasons r
              WHERE r.location_id = ? AND r.address = ANY(@HELD))
            AS reasons,
        ARRAY(SELECT ROW(h.*) FROM (
              (SELECT @HISTORY FROM dnd_history
               WHERE location_id = ? AND contact_id = c.id
               ORDER BY id DESC LIMIT ?)
              UNION ALL
              (SELECT @HISTORY FROM dnd_history
               WHERE location_id = ? AND address = ANY(@HELD) AND action <> 'address_changed'
                 AND contact_id IS DISTINCT FROM c.id
               ORDER BY id DESC LIMIT ?)) h) AS history,
        ARRAY(SELECT ROW(ROW(@REQUEST),
                         CASE WHEN d.request_id IS NULL THEN NULL
                              ELSE ROW(@DECISION) END)
              FROM optin_requests r
              LEFT JOIN optin_decisions d
                ON d.location_id = r.location_id AND d.request_id = r.id
              WHERE r.location_id = ? AND r.contact_id = c.id
              ORDER BY r.id DESC LIMIT ?) AS requests,
        ARRAY(SELECT ROW(@MESSAGE) FROM messages
              WHERE location_id = ? AND contact_id = c.id
              ORDER BY id DESC LIMIT ?) AS messages
    FROM @WHO_FROM
    LEFT JOIN LATERAL (SELECT * FROM contacts
                       WHERE location_id = ? AND id = ? AND w.visible) c ON true";

/// The addresses the contact holds (consent kept on them is its own).
const HELD: &str = "ARRAY[c.phone, c.email, c.facebook_id, c.gmb_id, c.whatsapp_id]";

/// The statement's text, with each record's column list filled in (built
/// once; diesel keeps it prepared per connection like any typed query).
fn page_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        with_who(PAGE_SQL)
            .replace("@CONTACT_C", &prefixed(CONTACT_COLUMNS, "c"))
            .replace("@HELD", HELD)
            .replace("@INTEGRATION", INTEGRATION_COLUMNS)
            .replace("@HISTORY", HISTORY_COLUMNS)
            .replace("@REQUEST", REQUEST_COLUMNS)
            .replace("@DECISION", DECISION_COLUMNS)
            .replace("@MESSAGE", MESSAGE_COLUMNS)
    })
}

prepared_statement!(
    PageStatement -> diesel::sql_types::Untyped,
    page_sql(),
    |s| [
        BigInt => &s.switcher,
        BigInt => &s.location_id,
        BigInt => &s.location_id,
        BigInt => &s.location_id,
        BigInt => &s.location_id,
        BigInt => &s.history,
        BigInt => &s.location_id,
        BigInt => &s.history,
        BigInt => &s.location_id,
        BigInt => &s.requests,
        BigInt => &s.location_id,
        BigInt => &s.messages,
        Nullable<Integer> => &s.generation,
        BigInt => &s.location_id,
        BigInt => &s.user_id,
        BigInt => &s.location_id,
        BigInt => &s.contact_id,
    ]
);

#[derive(QueryableByName)]
struct PageRow {
    #[diesel(embed)]
    who: WhoRow,
    #[diesel(sql_type = Nullable<Record<SqlOf<Contact>>>)]
    contact_row: Option<RowOf<Contact>>,
    #[diesel(sql_type = Array<Record<SqlOf<Integration>>>)]
    integrations: Vec<RowOf<Integration>>,
    #[diesel(sql_type = Array<Record<ReasonSql>>)]
    reasons: Vec<ReasonTuple>,
    #[diesel(sql_type = Array<Record<SqlOf<HistoryRow>>>)]
    history: Vec<RowOf<HistoryRow>>,
    #[diesel(sql_type = Array<Record<(
        Record<SqlOf<OptinRequest>>,
        Nullable<Record<SqlOf<DecisionRow>>>,
    )>>)]
    requests: Vec<(RowOf<OptinRequest>, Option<RowOf<DecisionRow>>)>,
    #[diesel(sql_type = Array<Record<SqlOf<Message>>>)]
    messages: Vec<RowOf<Message>>,
}

/// What the statement found. `user` is whoever `user_id` is (the caller
/// checks the session against it); `location` is there only if that user
/// may see it, and everything after it only then.
pub struct ContactPageReads {
    pub user: Option<User>,
    pub location: Option<Location>,
    /// The locations the user may switch to, (id, name), as
    /// `locations::first_visible` lists them.
    pub switcher: Vec<(i64, String)>,
    /// The contact and what its page shows of it.
    pub contact: Option<ContactReads>,
}

pub struct ContactReads {
    pub contact: Contact,
    pub integrations: Vec<Integration>,
    pub state: DndState,
    pub history: Vec<HistoryRow>,
    pub requests: Vec<RequestRecord>,
    pub messages: Vec<Message>,
}

/// How many of each list the page shows.
pub struct Shown {
    pub switcher: i64,
    pub history: i64,
    pub messages: i64,
}

/// Reads the page of `contact_id` in `location_id` for `user_id` (whose
/// cookie says `generation`), in one round trip.
pub fn read(
    conn: &mut PgConnection,
    user_id: i64,
    generation: Option<i32>,
    location_id: i64,
    contact_id: i64,
    shown: &Shown,
) -> QueryResult<ContactPageReads> {
    let found: Option<PageRow> = PageStatement {
        user_id,
        generation,
        location_id,
        contact_id,
        switcher: shown.switcher,
        history: shown.history,
        messages: shown.messages,
        requests: REQUESTS_SHOWN,
    }
    .get_result(conn)
    .optional()?;
    let Some(row) = found else {
        // No such user: no row at all.
        return Ok(ContactPageReads {
            user: None,
            location: None,
            switcher: Vec::new(),
            contact: None,
        });
    };
    // The app's own rule decides; the statement's `w.visible` only spared
    // reading data no one will see.
    let Who {
        user,
        location,
        switcher,
    } = WhoRow::decide(Some(row.who), generation)?;
    debug_assert!(
        location.is_some()
            || (row.contact_row.is_none()
                && row.integrations.is_empty()
                && row.reasons.is_empty()
                && row.history.is_empty()
                && row.requests.is_empty()
                && row.messages.is_empty()),
        "the statement read a location's data it may not show"
    );
    let contact = match (&location, row.contact_row) {
        (Some(_), Some(contact)) => {
            let contact = build::<Contact>(contact)?;
            let reasons = row
                .reasons
                .into_iter()
                .map(|r| {
                    <ReasonRow as Queryable<ReasonSql, Pg>>::build(r)
                        .map_err(diesel::result::Error::DeserializationError)
                })
                .collect::<QueryResult<Vec<_>>>()?;
            let state = states_from_rows(std::slice::from_ref(&contact), reasons)
                .pop()
                .unwrap_or_default();
            let history = row
                .history
                .into_iter()
                .map(build::<HistoryRow>)
                .collect::<QueryResult<Vec<_>>>()?;
            let requests = row
                .requests
                .into_iter()
                .map(|(request, decision)| {
                    Ok(record((
                        build::<OptinRequest>(request)?,
                        decision.map(build::<DecisionRow>).transpose()?,
                    )))
                })
                .collect::<QueryResult<Vec<_>>>()?;
            Some(ContactReads {
                history: history_from_rows(&contact, history, shown.history),
                integrations: row
                    .integrations
                    .into_iter()
                    .map(build::<Integration>)
                    .collect::<QueryResult<Vec<_>>>()?,
                messages: row
                    .messages
                    .into_iter()
                    .map(build::<Message>)
                    .collect::<QueryResult<Vec<_>>>()?,
                state,
                requests,
                contact,
            })
        }
        _ => None,
    };
    Ok(ContactPageReads {
        user,
        location,
        switcher,
        contact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::{
        contacts, dnd_history, integrations, messages, optin_decisions, optin_requests,
    };
    use crate::db::who::tests::{diesel_columns, ours};

    /// A record is read by position: its columns must be the struct's,
    /// in the struct's order (two text columns swapped would not fail to
    /// decode, they would show the wrong words).
    #[test]
    fn each_record_lists_its_structs_columns_in_order() {
        assert_eq!(
            ours(CONTACT_COLUMNS),
            diesel_columns(contacts::table.select(Contact::as_select()))
        );
        assert_eq!(
            ours(INTEGRATION_COLUMNS),
            diesel_columns(integrations::table.select(Integration::as_select()))
        );
        assert_eq!(
            ours(HISTORY_COLUMNS),
            diesel_columns(dnd_history::table.select(HistoryRow::as_select()))
        );
        assert_eq!(
            ours(REQUEST_COLUMNS),
            diesel_columns(optin_requests::table.select(OptinRequest::as_select()))
        );
        assert_eq!(
            ours(DECISION_COLUMNS),
            diesel_columns(optin_decisions::table.select(DecisionRow::as_select()))
        );
        assert_eq!(
            ours(MESSAGE_COLUMNS),
            diesel_columns(messages::table.select(Message::as_select()))
        );
    }

    #[test]
    fn every_placeholder_is_filled() {
        assert!(!page_sql().contains('@'), "{}", page_sql());
    }
}
