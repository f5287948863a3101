//! Opt-in evidence requests and support's decisions. Both tables are
//! append-only (the database refuses to rewrite them); a request is open
//! while it has no decision. Filing and deciding lock the contact the way
//! every DND change does (its addresses' locks, then its row), so a
//! decision, a consent event on the address and a second filing never
//! interleave.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamptz};

use super::contacts::Contact;
use super::dnd::{self as dnd_store, DndError, HistoryRow};
use super::schema::{
    agencies, contacts, dnd_history, locations, optin_decisions, optin_open_requests,
    optin_requests,
};
use super::users::User;
use super::DbError;
use crate::domain::dnd::{Action, Actor, ActorKind, DndState, Kind, Transition};
use crate::domain::optin::{
    evidence_is_stale, has_something_to_lift, stale_explanation, Decision, Evidence, RequestState,
};
use crate::domain::Channel;

#[derive(Debug, thiserror::Error)]
pub enum OptinError {
    #[error("no such request or contact")]
    NotFound,
    #[error(
        "nothing for support to lift: {channel} holds no permanent DND on this contact's address"
    )]
    NothingToLift { channel: Channel },
    #[error("an opt-in request for this contact and channel is already open (#{request_id})")]
    AlreadyOpen { request_id: i64 },
    #[error("This request was already {state}; a decision is final.")]
    NotOpen { state: RequestState },
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    AddressChanged(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for OptinError {
    fn from(e: diesel::result::Error) -> Self {
        OptinError::Db(e.into())
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = optin_requests)]
pub struct OptinRequest {
    pub location_id: i64,
    pub id: i64,
    pub contact_id: i64,
    pub channel: Channel,
    pub address: String,
    pub relationship_numbers: Vec<String>,
    pub recording_url: String,
    pub opted_in_on: NaiveDate,
    pub note: String,
    pub requested_by: i64,
    pub requested_by_label: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = optin_decisions)]
pub struct DecisionRow {
    pub decision: Decision,
    pub note: String,
    pub decided_by: i64,
    pub decided_by_label: String,
    pub decided_at: DateTime<Utc>,
}

/// A request and its decision, if it has one.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub request: OptinRequest,
    pub decision: Option<DecisionRow>,
}

impl RequestRecord {
    pub fn state(&self) -> RequestState {
        self.decision
            .as_ref()
            .map_or(RequestState::Open, |d| d.decision.state())
    }
}

/// The requests joined with their decisions (a decision's key is its
/// request, so there is at most one).
macro_rules! with_decisions {
    () => {
        optin_requests::table.left_join(
            optin_decisions::table.on(optin_decisions::location_id
                .eq(optin_requests::location_id)
                .and(optin_decisions::request_id.eq(optin_requests::id))),
        )
    };
}

pub(crate) fn record((request, decision): (OptinRequest, Option<DecisionRow>)) -> RequestRecord {
    RequestRecord { request, decision }
}

/// Files a request for a contact's channel, for the address the contact
/// has on it now. Refused when the channel holds nothing support could
/// lift, or when a request for it is already open.
pub fn file(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
    evidence: &Evidence,
    by: &User,
) -> Result<OptinRequest, OptinError> {
    conn.transaction(|conn| {
        let contact =
            dnd_store::lock_contact(conn, location_id, contact_id)?.ok_or(OptinError::NotFound)?;
        let state = dnd_store::state_of(conn, &contact)?;
        let address = contact.addresses().on(channel).map(str::to_string);
        let (true, Some(address)) = (has_something_to_lift(state.reasons(channel)), address) else {
            return Err(OptinError::NothingToLift { channel });
        };
        if let Some(open) = open_request(conn, location_id, contact_id, channel)? {
            return Err(OptinError::AlreadyOpen { request_id: open });
        }
        // In a savepoint, so a refused insert leaves the transaction usable.
        let inserted = conn.transaction(|conn| {
            diesel::insert_into(optin_requests::table)
                .values((
                    optin_requests::location_id.eq(location_id),
                    optin_requests::contact_id.eq(contact_id),
                    optin_requests::channel.eq(channel),
                    optin_requests::address.eq(&address),
                    optin_requests::relationship_numbers.eq(&evidence.relationship_numbers),
                    optin_requests::recording_url.eq(&evidence.recording_url),
                    optin_requests::opted_in_on.eq(evidence.opted_in_on),
                    optin_requests::note.eq(&evidence.note),
                    optin_requests::requested_by.eq(by.id),
                    optin_requests::requested_by_label.eq(&by.email),
                ))
                .returning(OptinRequest::as_returning())
                .get_result(conn)
        });
        match inserted {
            // The contact's lock makes this unreachable from the pages; the
            // database keeps the rule for any other path.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                info,
            )) if info.constraint_name() == Some("optin_open_one_per_contact_channel") => {
                let open = open_request(conn, location_id, contact_id, channel)?.unwrap_or(0);
                Err(OptinError::AlreadyOpen { request_id: open })
            }
            other => Ok(other?),
        }
    })
}

/// The open request for a contact's channel, if there is one.
pub fn open_request(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
) -> QueryResult<Option<i64>> {
    optin_open_requests::table
        .filter(optin_open_requests::location_id.eq(location_id))
        .filter(optin_open_requests::contact_id.eq(contact_id))
        .filter(optin_open_requests::channel.eq(channel))
        .select(optin_open_requests::request_id)
        .first(conn)
        .optional()
}

/// A contact's requests, newest first.
pub fn for_contact(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
) -> QueryResult<Vec<RequestRecord>> {
    Ok(with_decisions!()
        .filter(optin_requests::location_id.eq(location_id))
        .filter(optin_requests::contact_id.eq(contact_id))
        .order_by(optin_requests::id.desc())
        .limit(200)
        .select((
            OptinRequest::as_select(),
            Option::<DecisionRow>::as_select(),
        ))
        .load(conn)?
        .into_iter()
        .map(record)
        .collect())
}

/// A request with where it belongs, for lists and the review page.
#[derive(Debug, Clone)]
pub struct Listed {
    pub record: RequestRecord,
    pub contact_name: String,
    pub location_name: String,
    /// The location's, in which its pages show the request's times.
    pub time_zone: String,
    pub agency_id: i64,
    pub agency_name: String,
}

type ListedRow = (
    OptinRequest,
    Option<DecisionRow>,
    String,
    String,
    String,
    i64,
    String,
);

fn listed(
    (request, decision, contact_name, location_name, time_zone, agency_id, agency_name): ListedRow,
) -> Listed {
    Listed {
        record: RequestRecord { request, decision },
        contact_name,
        location_name,
        time_zone,
        agency_id,
        agency_name,
    }
}

macro_rules! listed_query {
    () => {
        with_decisions!()
            .inner_join(
                contacts::table.on(contacts::location_id
                    .eq(optin_requests::location_id)
                    .and(contacts::id.eq(optin_requests::contact_id))),
            )
            .inner_join(locations::table.on(locations::id.eq(optin_requests::location_id)))
            .inner_join(agencies::table.on(agencies::id.eq(locations::agency_id)))
            .select((
                OptinRequest::as_select(),
                Option::<DecisionRow>::as_select(),
                contacts::name,
                locations::name,
                locations::time_zone,
                agencies::id,
                agencies::name,
            ))
            .into_boxed()
    };
}

/// A location's requests, newest first, a page at a time (`before`: the
/// id of the last request of the previous page).
pub fn for_location(
    conn: &mut PgConnection,
    location_id: i64,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<Listed>, bool)> {
    let mut query = listed_query!()
        .filter(optin_requests::location_id.eq(location_id))
        .order_by(optin_requests::id.desc())
        .limit(limit + 1);
    if let Some(before) = before {
        query = query.filter(optin_requests::id.lt(before));
    }
    let mut rows: Vec<Listed> = query
        .load::<ListedRow>(conn)?
        .into_iter()
        .map(listed)
        .collect();
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// Support's queue filters, combined.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub state: Option<RequestState>,
    pub agency: Option<i64>,
    pub location: Option<i64>,
    pub channel: Option<Channel>,
}

/// Support's queue: oldest first (the longest wait first), a page at a
/// time (`after`: the id of the last request of the previous page). Ids
/// come from one sequence, so their order is the order of filing.
pub fn queue(
    conn: &mut PgConnection,
    filter: &QueueFilter,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<Listed>, bool)> {
    let mut query = listed_query!()
        .order_by(optin_requests::id.asc())
        .limit(limit + 1);
    if let Some(after) = after {
        query = query.filter(optin_requests::id.gt(after));
    }
    query = match filter.state {
        None => query,
        // Read from the work list of open requests, so the open queue does
        // not walk every request decided before.
        Some(RequestState::Open) => query.filter(
            optin_requests::id
                .eq_any(optin_open_requests::table.select(optin_open_requests::request_id)),
        ),
        Some(RequestState::Approved) => {
            query.filter(optin_decisions::decision.nullable().eq(Decision::Approved))
        }
        Some(RequestState::Rejected) => {
            query.filter(optin_decisions::decision.nullable().eq(Decision::Rejected))
        }
    };
    if let Some(agency) = filter.agency {
        query = query.filter(locations::agency_id.eq(agency));
    }
    if let Some(location) = filter.location {
        query = query.filter(optin_requests::location_id.eq(location));
    }
    if let Some(channel) = filter.channel {
        query = query.filter(optin_requests::channel.eq(channel));
    }
    let mut rows: Vec<Listed> = query
        .load::<ListedRow>(conn)?
        .into_iter()
        .map(listed)
        .collect();
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// One request by its id (support reaches any).
pub fn find(conn: &mut PgConnection, request_id: i64) -> QueryResult<Option<Listed>> {
    Ok(listed_query!()
        .filter(optin_requests::id.eq(request_id))
        .first::<ListedRow>(conn)
        .optional()?
        .map(listed))
}

/// When the newest opt-out on an address and channel happened: the
/// provider's time of the newest permanent reason set or received again
/// there, or the time an active one of `state` (the contact's, as the
/// caller read it) was set, whichever is later.
pub fn newest_opt_out(
    conn: &mut PgConnection,
    contact: &Contact,
    state: &DndState,
    channel: Channel,
    address: &str,
) -> QueryResult<Option<DateTime<Utc>>> {
    let in_history: Option<DateTime<Utc>> = dnd_history::table
        .filter(dnd_history::location_id.eq(contact.location_id))
        .filter(dnd_history::address.eq(address))
        .filter(dnd_history::channel.eq(channel))
        .filter(dnd_history::kind.eq(Kind::Permanent))
        .filter(dnd_history::action.eq_any([Action::Set, Action::Repeated]))
        .select(diesel::dsl::sql::<Nullable<Timestamptz>>(
            "max(coalesce(event_at, at))",
        ))
        .first(conn)?;
    let active = state
        .reasons(channel)
        .iter()
        .filter(|a| a.reason.kind() == Kind::Permanent && a.address.as_deref() == Some(address))
        .map(|a| a.since)
        .max();
    Ok(in_history.max(active))
}

/// The consent events kept on the request's address and channel, newest
/// first: what set each reason and when.
pub fn source_events(
    conn: &mut PgConnection,
    request: &OptinRequest,
    limit: i64,
) -> QueryResult<Vec<HistoryRow>> {
    dnd_history::table
        .filter(dnd_history::location_id.eq(request.location_id))
        .filter(dnd_history::address.eq(&request.address))
        .filter(dnd_history::channel.eq(request.channel))
        .order_by(dnd_history::id.desc())
        .limit(limit)
        .select(HistoryRow::as_select())
        .load(conn)
}

/// What a decision did.
#[derive(Debug, Clone)]
pub struct Decided {
    pub request: OptinRequest,
    pub decision: Decision,
    /// The lift an approval made (`None` when the contact's own opt-in
    /// had lifted everything already, or for a rejection).
    pub lifted: Option<Transition>,
}

/// Records support's decision on an open request. An approval lifts the
/// permanent reasons of the request's channel on its address, in the same
/// transaction; it is refused when the evidence is stale or the contact no
/// longer has that address. A decided request cannot be decided again.
pub fn decide(
    conn: &mut PgConnection,
    request_id: i64,
    decision: Decision,
    note: &str,
    by: &User,
    now: DateTime<Utc>,
) -> Result<Decided, OptinError> {
    conn.transaction(|conn| {
        let request: OptinRequest = optin_requests::table
            .filter(optin_requests::id.eq(request_id))
            .select(OptinRequest::as_select())
            .first(conn)
            .optional()?
            .ok_or(OptinError::NotFound)?;
        // Two reviewers deciding at once, or a STOP arriving meanwhile,
        // wait here for each other.
        let contact = dnd_store::lock_contact(conn, request.location_id, request.contact_id)?
            .ok_or(OptinError::NotFound)?;
        let decided: Option<Decision> = optin_decisions::table
            .find((request.location_id, request.id))
            .select(optin_decisions::decision)
            .first(conn)
            .optional()?;
        if let Some(d) = decided {
            return Err(OptinError::NotOpen { state: d.state() });
        }
        let lifted = match decision {
            Decision::Rejected => None,
            Decision::Approved => approve(conn, &request, &contact, by, now)?,
        };
        diesel::insert_into(optin_decisions::table)
            .values((
                optin_decisions::location_id.eq(request.location_id),
                optin_decisions::request_id.eq(request.id),
                optin_decisions::decision.eq(decision),
                optin_decisions::note.eq(note),
                optin_decisions::decided_by.eq(by.id),
                optin_decisions::decided_by_label.eq(&by.email),
                optin_decisions::decided_at.eq(now),
            ))
            .execute(conn)?;
        Ok(Decided {
            request,
            decision,
            lifted,
        })
    })
}

fn approve(
    conn: &mut PgConnection,
    request: &OptinRequest,
    contact: &Contact,
    by: &User,
    now: DateTime<Utc>,
) -> Result<Option<Transition>, OptinError> {
    let channel = request.channel;
    let current = contact.addresses().on(channel).map(str::to_string);
    if current.as_deref() != Some(request.address.as_str()) {
        return Err(OptinError::AddressChanged(format!(
            "The contact's {} address changed since this request was filed (it was {}, it is now \
             {}): the evidence may be about someone else. Reject it and ask for a new request.",
            channel.label(),
            request.address,
            current.as_deref().unwrap_or("none")
        )));
    }
    let state = dnd_store::state_of(conn, contact)?;
    if let Some(newest) = newest_opt_out(conn, contact, &state, channel, &request.address)? {
        if evidence_is_stale(request.opted_in_on, request.created_at, Some(newest)) {
            return Err(OptinError::Stale(stale_explanation(
                request.opted_in_on,
                request.created_at,
                newest,
                super::locations::zone_of(conn, request.location_id)?,
            )));
        }
    }
    if !has_something_to_lift(state.reasons(channel)) {
        // The contact opted in again meanwhile: nothing left to lift.
        return Ok(None);
    }
    let actor = Actor::new(ActorKind::Support, Some(by.id), by.email.clone());
    // The source of a support lift is the request's id (pages name it
    // "opt-in request #id").
    let source = Some(request.id.to_string());
    let transition = dnd_store::apply_within(conn, request.location_id, contact.id, |state| {
        state.lift_only(channel, &actor, now, source, |r| r.lifted_by_approval())
    })
    .map_err(|e| match e {
        DndError::NotFound => OptinError::NotFound,
        DndError::Db(e) => OptinError::Db(e),
        DndError::Refused(r) => OptinError::Db(DbError::Invariant(format!(
            "support could not lift what it may lift: {r}"
        ))),
    })?;
    Ok(Some(transition))
}
