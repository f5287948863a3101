//! Support's review of opt-in evidence: the queue, one request with
//! everything needed to judge it, and the decision. Only support reaches
//! these pages (others get a 404, as for anything not theirs; a crafted
//! decision is a 403). Approving is the one change support makes.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::dnd::{set_flash, take_flash, ReasonView};
use super::session::redirect;
use super::Nav;
use crate::db::contacts::{self, Contact};
use crate::db::dnd::{self as dnd_store, HistoryRow};
use crate::db::locations::{self, LocationSummary};
use crate::db::optin::{self as store, Listed, OptinError, QueueFilter, RequestRecord};
use crate::db::users::User;
use crate::db::{self, DbError};
use crate::domain::optin::{
    approval_lifts, evidence_is_stale, stale_explanation, Decision, RequestState, MAX_NOTE_CHARS,
};
use crate::domain::{Channel, Role};
use crate::web::auth::{CsrfForm, CurrentUser};
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

const QUEUE_PAGE: i64 = 50;
const EVENTS_SHOWN: i64 = 50;

/// Support pages do not exist for anyone else.
fn support_only(user: &User) -> Result<(), PageError> {
    if user.role() == Role::Support {
        Ok(())
    } else {
        Err(PageError::NotFound)
    }
}

/// A decision by anyone but support is refused outright.
fn support_decides(user: &User) -> Result<(), PageError> {
    if user.role() == Role::Support {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "Only support decides opt-in requests. Nothing was changed.".into(),
        ))
    }
}

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    /// Absent: open requests; empty: every state.
    state: Option<String>,
    #[serde(default)]
    agency: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    channel: String,
    /// Read as text and parsed after the role check, so a malformed value
    /// tells someone who is not support nothing (404 either way).
    #[serde(default)]
    after: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "support/queue.html")]
pub struct QueuePage {
    nav: Nav,
    rows: Vec<Listed>,
    state: String,
    agency: String,
    location: String,
    channel: String,
    locations: Vec<LocationSummary>,
    next_after: Option<i64>,
    now: DateTime<Utc>,
}

impl QueuePage {
    /// Each agency once, by name.
    fn agencies(&self) -> Vec<(i64, &str)> {
        let by_id: std::collections::BTreeMap<i64, &str> = self
            .locations
            .iter()
            .map(|l| (l.location.agency_id, l.agency_name.as_str()))
            .collect();
        let mut out: Vec<(i64, &str)> = by_id.into_iter().collect();
        out.sort_by_key(|(id, name)| (*name, *id));
        out
    }

    fn states(&self) -> [RequestState; 3] {
        RequestState::ALL
    }

    fn channels(&self) -> [Channel; 6] {
        Channel::ALL
    }

    /// The query string that keeps the filters when paging.
    fn keep(&self) -> String {
        format!(
            "state={}&agency={}&location={}&channel={}",
            urlencoding::encode(&self.state),
            urlencoding::encode(&self.agency),
            urlencoding::encode(&self.location),
            urlencoding::encode(&self.channel)
        )
    }

    /// How long a request has waited, in words.
    fn waiting(&self, record: &RequestRecord) -> String {
        let hours = (self.now - record.request.created_at).num_hours();
        match hours {
            h if h < 1 => "less than an hour".into(),
            1 => "1 hour".into(),
            h if h < 48 => format!("{h} hours"),
            h => format!("{} days", h / 24),
        }
    }
}

fn id_filter(value: &str, what: &str) -> Result<Option<i64>, PageError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| PageError::BadRequest(format!("\"{value}\" is not a {what} id")))
}

/// The queue: oldest first, filters combined, a page at a time.
pub async fn queue(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<QueueQuery>,
    CurrentUser(user): CurrentUser,
) -> Result<QueuePage, PageError> {
    support_only(&user)?;
    let nav = Nav::new(&user, &session)?;
    let query = query.into_inner();
    let state_text = query.state.unwrap_or_else(|| "open".into());
    let filter = QueueFilter {
        state: (!state_text.is_empty())
            .then(|| state_text.parse::<RequestState>())
            .transpose()
            .map_err(PageError::BadRequest)?,
        agency: id_filter(&query.agency, "agency")?,
        location: id_filter(&query.location, "location")?,
        channel: (!query.channel.is_empty())
            .then(|| query.channel.parse::<Channel>())
            .transpose()
            .map_err(PageError::BadRequest)?,
    };
    let after = id_filter(&query.after, "request")?;
    let (rows, more, all_locations) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let (rows, more) = store::queue(conn, &filter, after, QUEUE_PAGE).map_err(DbError::from)?;
        let all = locations::list_visible(conn, &user).map_err(DbError::from)?;
        Ok((rows, more, all))
    })
    .await?;
    Ok(QueuePage {
        nav,
        next_after: more
            .then(|| rows.last().map(|r| r.record.request.id))
            .flatten(),
        rows,
        state: state_text,
        agency: query.agency,
        location: query.location,
        channel: query.channel,
        locations: all_locations,
        now: Utc::now(),
    })
}

#[derive(Template)]
#[template(path = "support/show.html")]
pub struct RequestPage {
    nav: Nav,
    listed: Listed,
    contact: Contact,
    /// The contact's address on the channel now (it may have changed).
    current_address: Option<String>,
    lifts: Vec<ReasonView>,
    stays: Vec<ReasonView>,
    events: Vec<HistoryRow>,
    earlier: Vec<RequestRecord>,
    /// Why the evidence cannot be approved, when it is stale.
    stale: Option<String>,
    flash: Option<String>,
    /// The refusal of the last decision tried.
    problem: Option<String>,
    note_error: Option<String>,
    reason_error: Option<String>,
    note: String,
    reason: String,
}

impl RequestPage {
    fn request(&self) -> &store::OptinRequest {
        &self.listed.record.request
    }

    fn state(&self) -> RequestState {
        self.listed.record.state()
    }

    fn is_open(&self) -> bool {
        self.state() == RequestState::Open
    }

    fn address_changed(&self) -> bool {
        self.current_address.as_deref() != Some(self.request().address.as_str())
    }
}

/// What a refused decision re-renders with.
#[derive(Default)]
struct Attempt {
    problem: Option<String>,
    note_error: Option<String>,
    reason_error: Option<String>,
    note: String,
    reason: String,
}

async fn render_request(
    state: &AppState,
    session: &Session,
    user: User,
    request_id: i64,
    attempt: Attempt,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::new(&user, session)?;
    let flash = take_flash(session);
    let page = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let listed = store::find(conn, request_id)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)?;
        let request = &listed.record.request;
        let zone = crate::domain::local_time::Zone::named(&listed.time_zone);
        let contact = contacts::find(conn, request.location_id, request.contact_id)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)?;
        let dnd = dnd_store::state_of(conn, &contact).map_err(DbError::from)?;
        let (lifts, stays): (Vec<_>, Vec<_>) = dnd
            .reasons(request.channel)
            .iter()
            .partition(|a| approval_lifts(a.reason));
        let events = store::source_events(conn, request, EVENTS_SHOWN).map_err(DbError::from)?;
        let earlier = store::for_contact(conn, request.location_id, request.contact_id)
            .map_err(DbError::from)?
            .into_iter()
            .filter(|r| r.request.id < request.id)
            .collect();
        let newest = store::newest_opt_out(conn, &contact, &dnd, request.channel, &request.address)
            .map_err(DbError::from)?;
        let stale = newest
            .filter(|n| evidence_is_stale(request.opted_in_on, request.created_at, Some(*n)))
            .map(|n| stale_explanation(request.opted_in_on, request.created_at, n, zone));
        Ok(RequestPage {
            nav,
            current_address: contact.addresses().on(request.channel).map(str::to_string),
            contact,
            lifts: lifts
                .into_iter()
                .map(|a| ReasonView::new(a, zone))
                .collect(),
            stays: stays
                .into_iter()
                .map(|a| ReasonView::new(a, zone))
                .collect(),
            events,
            earlier,
            stale,
            flash,
            problem: attempt.problem,
            note_error: attempt.note_error,
            reason_error: attempt.reason_error,
            note: attempt.note,
            reason: attempt.reason,
            listed,
        })
    })
    .await?;
    super::html(status, &page)
}

/// One request, with what it would lift and why it might not be approved.
pub async fn show_request(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    support_only(&user)?;
    render_request(
        &state,
        &session,
        user,
        path.into_inner(),
        Attempt::default(),
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    #[serde(default)]
    note: String,
}

#[derive(Debug, Deserialize)]
pub struct RejectForm {
    #[serde(default)]
    reason: String,
}

/// A decision form refused for its field: the page again, with the message
/// next to the field and what was typed (422).
async fn refuse(
    state: &AppState,
    session: &Session,
    user: User,
    request_id: i64,
    attempt: Attempt,
) -> Result<HttpResponse, PageError> {
    render_request(
        state,
        session,
        user,
        request_id,
        attempt,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

fn too_long(text: &str) -> bool {
    text.chars().count() > MAX_NOTE_CHARS
}

pub async fn approve(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<ApproveForm>,
) -> Result<HttpResponse, PageError> {
    support_decides(&user)?;
    let note = form.note.trim().to_string();
    if too_long(&note) {
        let attempt = Attempt {
            note_error: Some(format!(
                "Keep the note to {MAX_NOTE_CHARS} characters or fewer."
            )),
            note,
            ..Attempt::default()
        };
        return refuse(&state, &session, user, path.into_inner(), attempt).await;
    }
    decide(
        state,
        session,
        path.into_inner(),
        user,
        Decision::Approved,
        note,
    )
    .await
}

pub async fn reject(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<RejectForm>,
) -> Result<HttpResponse, PageError> {
    support_decides(&user)?;
    let reason = form.reason.trim().to_string();
    let error = if reason.is_empty() {
        Some("Say why the evidence is rejected: the requester reads this.".to_string())
    } else if too_long(&reason) {
        Some(format!(
            "Keep the reason to {MAX_NOTE_CHARS} characters or fewer."
        ))
    } else {
        None
    };
    if let Some(error) = error {
        let attempt = Attempt {
            reason_error: Some(error),
            reason,
            ..Attempt::default()
        };
        return refuse(&state, &session, user, path.into_inner(), attempt).await;
    }
    decide(
        state,
        session,
        path.into_inner(),
        user,
        Decision::Rejected,
        reason,
    )
    .await
}

async fn decide(
    state: web::Data<AppState>,
    session: Session,
    request_id: i64,
    user: User,
    decision: Decision,
    note: String,
) -> Result<HttpResponse, PageError> {
    let by = user.clone();
    let text = note.clone();
    let outcome = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        match store::decide(conn, request_id, decision, &text, &by, Utc::now()) {
            Ok(decided) => Ok(Ok(decided)),
            Err(OptinError::NotFound) => Err(PageError::NotFound),
            Err(OptinError::Db(e)) => Err(e.into()),
            Err(refused) => Ok(Err(refused.to_string())),
        }
    })
    .await?;
    match outcome {
        Ok(decided) => {
            let message = match (decided.decision, &decided.lifted) {
                (Decision::Rejected, _) => {
                    format!("Request #{request_id} rejected; the DND stays on.")
                }
                (Decision::Approved, Some(t)) => {
                    let lifted: Vec<&str> = t
                        .entries
                        .iter()
                        .filter_map(|e| e.reason.map(|r| r.label()))
                        .collect();
                    let mut message = format!(
                        "Request #{request_id} approved: lifted {} on {}.",
                        lifted.join(", "),
                        decided.request.address
                    );
                    if !t.remaining.is_empty() {
                        message.push_str(&format!(
                            " {} stays blocked by: {}.",
                            decided.request.channel.label(),
                            t.remaining
                                .iter()
                                .map(|a| a.reason.label())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    message
                }
                (Decision::Approved, None) => format!(
                    "Request #{request_id} approved. There was nothing left to lift: the \
                     contact's own opt-in had lifted it already."
                ),
            };
            set_flash(&session, message)?;
            Ok(redirect(&format!("/support/requests/{request_id}")))
        }
        Err(problem) => {
            let attempt = Attempt {
                problem: Some(format!("{problem} Nothing was changed.")),
                ..Attempt::default()
            };
            render_request(
                &state,
                &session,
                user,
                request_id,
                attempt,
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}
