//! Filing opt-in evidence requests (location and agency users) and the
//! location's list of them. Support reviews them in [`super::support`];
//! support never files.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use serde::Deserialize;

use super::dnd::{set_flash, ReasonView};
use super::form::FieldErrors;
use super::session::redirect;
use super::Nav;
use crate::db::contacts::{self, Contact};
use crate::db::dnd as dnd_store;
use crate::db::locations::Location;
use crate::db::optin::{self as store, Listed, OptinError};
use crate::db::users::User;
use crate::db::{self, DbError};
use crate::domain::dnd::ActiveReason;
use crate::domain::optin::{approval_lifts, latest_opt_in_date, EvidenceDraft};
use crate::domain::{Channel, InvalidField};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

const LIST_PAGE: i64 = 50;

/// What support does not do: file requests (they decide them).
fn refuse_support(user: &User) -> Result<(), PageError> {
    if user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support reviews opt-in requests and does not file them: a location or agency user \
             files the request with the contact's evidence. Nothing was changed."
                .into(),
        ));
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "optin/new.html")]
pub struct NewRequestPage {
    nav: Nav,
    location: Location,
    contact: Contact,
    channel: Channel,
    address: Option<String>,
    /// What approval would lift (and what stays).
    lifts: Vec<ReasonView>,
    stays: Vec<ReasonView>,
    draft: EvidenceDraft,
    errors: FieldErrors,
    /// A refusal of the whole request (nothing to lift, one already open).
    problem: Option<String>,
    /// The open request a duplicate points at.
    open_request: Option<i64>,
    max_date: String,
}

#[derive(Debug, Deserialize)]
pub struct NewQuery {
    channel: String,
}

#[derive(Debug, Deserialize)]
pub struct RequestForm {
    channel: String,
    #[serde(default)]
    relationship_numbers: String,
    #[serde(default)]
    recording_url: String,
    #[serde(default)]
    opted_in_on: String,
    #[serde(default)]
    note: String,
}

struct Subject {
    location: Location,
    contact: Contact,
    lifts: Vec<ReasonView>,
    stays: Vec<ReasonView>,
}

/// The contact and what its channel holds, read for the form.
async fn subject(
    state: &AppState,
    location: Location,
    contact_id: i64,
    channel: Channel,
) -> Result<Subject, PageError> {
    let zone = location.zone();
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let contact = contacts::find(conn, location.id, contact_id)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)?;
        let dnd = dnd_store::state_of(conn, &contact).map_err(DbError::from)?;
        let (lifts, stays): (Vec<&ActiveReason>, Vec<&ActiveReason>) = dnd
            .reasons(channel)
            .iter()
            .partition(|a| approval_lifts(a.reason));
        Ok(Subject {
            location,
            contact,
            lifts: lifts
                .into_iter()
                .map(|a| ReasonView::new(a, zone))
                .collect(),
            stays: stays
                .into_iter()
                .map(|a| ReasonView::new(a, zone))
                .collect(),
        })
    })
    .await
}

fn render(page: NewRequestPage, status: StatusCode) -> Result<HttpResponse, PageError> {
    super::html(status, &page)
}

/// The form, for a contact's channel.
pub async fn new_request(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    query: web::Query<NewQuery>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    let (_, contact_id) = path.into_inner();
    let channel: Channel = query.channel.parse().map_err(PageError::BadRequest)?;
    refuse_support(&at.user)?;
    let nav = Nav::at(&at, &session)?;
    let s = subject(&state, at.location, contact_id, channel).await?;
    let problem = s.lifts.is_empty().then(|| nothing_to_lift(channel));
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        NewRequestPage {
            nav,
            address: s.contact.addresses().on(channel).map(str::to_string),
            max_date: latest_opt_in_date(&s.location.time_zone, Utc::now()).to_string(),
            location: s.location,
            contact: s.contact,
            channel,
            lifts: s.lifts,
            stays: s.stays,
            draft: EvidenceDraft::default(),
            errors: FieldErrors::default(),
            problem,
            open_request: None,
        },
        status,
    )
}

fn nothing_to_lift(channel: Channel) -> String {
    format!(
        "There is nothing for support to lift: {} holds no permanent DND on this contact's \
         address. Temporary DND is turned off from the contact page.",
        channel.label()
    )
}

/// Files the request: every field checked (a bad one re-renders the form
/// with the message next to it, 422, nothing stored).
pub async fn create_request(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    CsrfForm(form): CsrfForm<RequestForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    let (location_id, contact_id) = path.into_inner();
    refuse_support(&at.user)?;
    let channel: Channel = form.channel.parse().map_err(PageError::BadRequest)?;
    let nav = Nav::at(&at, &session)?;
    let draft = EvidenceDraft {
        relationship_numbers: form.relationship_numbers,
        recording_url: form.recording_url,
        opted_in_on: form.opted_in_on,
        note: form.note,
    };
    let filer = at.user.clone();
    let checked = draft.clone();
    let location = at.location.clone();
    let outcome = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let today = latest_opt_in_date(&location.time_zone, Utc::now());
        let evidence = match checked.validate(&location.default_region, today) {
            Ok(e) => e,
            Err(errors) => return Ok(Err(Refused::Fields(errors))),
        };
        match store::file(conn, location.id, contact_id, channel, &evidence, &filer) {
            Ok(request) => Ok(Ok(request)),
            Err(OptinError::NotFound) => Err(PageError::NotFound),
            Err(OptinError::NothingToLift { .. }) => Ok(Err(Refused::NothingToLift)),
            Err(OptinError::AlreadyOpen { request_id }) => Ok(Err(Refused::Open(request_id))),
            Err(OptinError::Db(e)) => Err(e.into()),
            Err(other) => Err(PageError::Internal(other.to_string())),
        }
    })
    .await?;
    let refused = match outcome {
        Ok(request) => {
            set_flash(
                &session,
                format!(
                    "Opt-in request #{} sent to support for {}. The DND stays on until support \
                     approves it.",
                    request.id,
                    channel.label()
                ),
            )?;
            return Ok(redirect(&format!(
                "/locations/{location_id}/contacts/{contact_id}#optin-requests"
            )));
        }
        Err(refused) => refused,
    };
    let s = subject(&state, at.location, contact_id, channel).await?;
    let (status, errors, problem, open_request) = match refused {
        Refused::Fields(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors(errors),
            None,
            None,
        ),
        Refused::NothingToLift => (
            StatusCode::UNPROCESSABLE_ENTITY,
            FieldErrors::default(),
            Some(nothing_to_lift(channel)),
            None,
        ),
        Refused::Open(id) => (
            StatusCode::CONFLICT,
            FieldErrors::default(),
            Some(format!(
                "An opt-in request for {} on this contact is already open (#{id}); support will \
                 decide it. Nothing new was filed.",
                channel.label()
            )),
            Some(id),
        ),
    };
    render(
        NewRequestPage {
            nav,
            address: s.contact.addresses().on(channel).map(str::to_string),
            max_date: latest_opt_in_date(&s.location.time_zone, Utc::now()).to_string(),
            location: s.location,
            contact: s.contact,
            channel,
            lifts: s.lifts,
            stays: s.stays,
            draft,
            errors,
            problem,
            open_request,
        },
        status,
    )
}

enum Refused {
    Fields(Vec<InvalidField>),
    NothingToLift,
    Open(i64),
}

#[derive(Template, WebTemplate)]
#[template(path = "optin/list.html")]
pub struct LocationRequestsPage {
    nav: Nav,
    location: Location,
    rows: Vec<Listed>,
    next_before: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    before: Option<i64>,
}

/// A location's requests, newest first.
pub async fn list_requests(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<ListQuery>,
    at: VisibleLocation,
) -> Result<LocationRequestsPage, PageError> {
    let nav = Nav::at(&at, &session)?;
    let before = query.before;
    let location = at.location;
    let location_id = location.id;
    let (rows, more) = db::run(&state.pool, move |conn| {
        store::for_location(conn, location_id, before, LIST_PAGE).map_err(DbError::from)
    })
    .await?;
    Ok(LocationRequestsPage {
        nav,
        location,
        next_before: more
            .then(|| rows.last().map(|r| r.record.request.id))
            .flatten(),
        rows,
    })
}
