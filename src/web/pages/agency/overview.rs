//! The agency overview: every location with its contacts, DND by status
//! and channel, open support requests and integrations; a search for one
//! person across the locations; and a new location. Agency users see their
//! agency; support sees every agency, read-only.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use diesel::Connection;

use crate::db::contacts::Contact;
use crate::db::locations::{self, LocationSummary};
use crate::db::overview::{self, LocationLine};
use crate::db::users::User;
use crate::db::webhooks::{self as sms, SmsSettings};
use crate::db::{self, DbError};
use crate::domain::{Channel, EmailAddress, PhoneNumber, Role};
use crate::web::auth::{CsrfForm, CurrentUser};
use crate::web::error::PageError;
use crate::web::pages::dnd::{set_flash, take_flash};
use crate::web::pages::form::FieldErrors;
use crate::web::pages::session::redirect;
use crate::web::pages::Nav;
use crate::web::AppState;

/// The locations the overview covers: an agency user's agency, or for
/// support every location (or one agency's). Location users: 404.
fn covered(
    conn: &mut diesel::PgConnection,
    user: &User,
    agency: Option<i64>,
) -> Result<Vec<LocationSummary>, PageError> {
    match user.role() {
        Role::Location => Err(PageError::NotFound),
        Role::Agency | Role::Support => {
            let all = locations::list_visible(conn, user).map_err(DbError::from)?;
            Ok(all
                .into_iter()
                .filter(|l| agency.is_none_or(|a| l.location.agency_id == a))
                .collect())
        }
    }
}

#[derive(Template)]
#[template(path = "agency/overview.html")]
struct OverviewPage {
    nav: Nav,
    lines: Vec<LocationLine>,
    can_create: bool,
    support: bool,
    agencies: Vec<(i64, String)>,
    agency: Option<i64>,
    flash: Option<String>,
    errors: FieldErrors,
    name: String,
    time_zone: String,
}

impl OverviewPage {
    fn channels(&self) -> [Channel; 6] {
        Channel::ALL
    }
}

#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    #[serde(default)]
    agency: String,
}

#[derive(Default)]
struct Draft {
    errors: FieldErrors,
    name: String,
    time_zone: String,
}

async fn render(
    state: &AppState,
    session: &Session,
    user: User,
    agency: Option<i64>,
    draft: Draft,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::new(&user, session)?;
    let flash = take_flash(session);
    let support = user.role() == Role::Support;
    let can_create = user.role() == Role::Agency;
    let (lines, agencies) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let all = covered(conn, &user, None)?;
        let agencies: BTreeMap<i64, String> = all
            .iter()
            .map(|l| (l.location.agency_id, l.agency_name.clone()))
            .collect();
        let chosen: Vec<_> = all
            .into_iter()
            .filter(|l| agency.is_none_or(|a| l.location.agency_id == a))
            .map(|l| (l.location, l.agency_name))
            .collect();
        let lines = overview::lines(conn, chosen).map_err(DbError::from)?;
        Ok((lines, agencies.into_iter().collect()))
    })
    .await?;
    let page = OverviewPage {
        nav,
        lines,
        can_create,
        support,
        agencies,
        agency,
        flash,
        errors: draft.errors,
        name: draft.name,
        time_zone: if draft.time_zone.is_empty() {
            "America/New_York".into()
        } else {
            draft.time_zone
        },
    };
    crate::web::pages::html(status, &page)
}

pub async fn show_overview(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<OverviewQuery>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    if user.role() == Role::Location {
        return Err(PageError::NotFound);
    }
    let agency = query.agency.trim().parse::<i64>().ok();
    render(
        &state,
        &session,
        user,
        agency,
        Draft::default(),
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct NewLocationForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_zone: String,
}

/// A new location of the agency, with the default keyword lists and replies.
pub async fn create_location(
    state: web::Data<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<NewLocationForm>,
) -> Result<HttpResponse, PageError> {
    let (Role::Agency, Some(agency)) = (user.role(), user.agency_id) else {
        return Err(PageError::Forbidden(
            "Only agency users create locations. Nothing was changed.".into(),
        ));
    };
    let name = form.name.trim().to_string();
    let time_zone = form.time_zone.trim().to_string();
    let mut errors = FieldErrors::default();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.push("name", "give the location a name of 1 to 100 characters");
    }
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        errors.push(
            "time_zone",
            "use an IANA time zone name, e.g. America/New_York or Europe/Paris",
        );
    }
    let creating = (name.clone(), time_zone.clone());
    let made = if errors.is_empty() {
        db::run(&state.pool, move |conn| -> Result<_, PageError> {
            let (name, time_zone) = creating;
            let taken = locations::for_agency(conn, agency)
                .map_err(DbError::from)?
                .iter()
                .any(|l| l.name.eq_ignore_ascii_case(&name));
            if taken {
                return Ok(Err("the agency already has a location with this name"));
            }
            // The location and its keyword lists, together or not at all.
            let id = conn
                .transaction(|conn| {
                    let location = locations::create(conn, agency, &name, &time_zone)?;
                    sms::save_sms_settings(
                        conn,
                        location.id,
                        &SmsSettings::defaults(&location.name),
                    )?;
                    diesel::QueryResult::Ok(location.id)
                })
                .map_err(DbError::from)?;
            Ok(Ok(id))
        })
        .await?
    } else {
        Err("")
    };
    match made {
        Ok(id) => {
            set_flash(
                &session,
                format!("{name} is created with the default SMS keywords and replies. Connect its channels here."),
            )?;
            Ok(redirect(&format!("/locations/{id}/integrations")))
        }
        Err(why) => {
            if !why.is_empty() {
                errors.push("name", why);
            }
            let draft = Draft {
                errors,
                name,
                time_zone,
            };
            render(
                &state,
                &session,
                user,
                None,
                draft,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "agency/contacts.html")]
struct SearchPage {
    nav: Nav,
    q: String,
    searched: bool,
    problem: Option<String>,
    found: Vec<(Contact, String)>,
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// Which of the agency's locations know this person (by phone or email),
/// and their DND there.
pub async fn search_contacts(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<SearchQuery>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    if user.role() == Role::Location {
        return Err(PageError::NotFound);
    }
    let nav = Nav::new(&user, &session)?;
    let q = query.q.trim().to_string();
    let looked_for = q.clone();
    let (found, problem) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        if looked_for.is_empty() {
            return Ok((Vec::new(), None));
        }
        let places = covered(conn, &user, None)?;
        let ids: Vec<i64> = places.iter().map(|l| l.location.id).collect();
        let names: BTreeMap<i64, String> = places
            .iter()
            .map(|l| (l.location.id, l.location.name.clone()))
            .collect();
        let (phones, email) = if looked_for.contains('@') {
            match EmailAddress::parse(&looked_for) {
                Ok(e) => (Vec::new(), Some(e.as_str().to_string())),
                Err(e) => {
                    return Ok((
                        Vec::new(),
                        Some(format!("Not an email address: {}", e.message)),
                    ))
                }
            }
        } else {
            // Read the number as written in each location's region.
            let mut phones: Vec<String> = places
                .iter()
                .filter_map(|l| PhoneNumber::parse(&looked_for, &l.location.default_region).ok())
                .map(PhoneNumber::into_inner)
                .collect();
            phones.sort();
            phones.dedup();
            if phones.is_empty() {
                return Ok((
                    Vec::new(),
                    Some(
                        "Give a whole phone number (e.g. +1 212 555 0100) or an email address."
                            .into(),
                    ),
                ));
            }
            (phones, None)
        };
        let found = overview::find_person(conn, &ids, &phones, email.as_deref())
            .map_err(DbError::from)?
            .into_iter()
            .map(|c| {
                let name = names.get(&c.location_id).cloned().unwrap_or_default();
                (c, name)
            })
            .collect();
        Ok((found, None))
    })
    .await?;
    let page = SearchPage {
        nav,
        searched: !q.is_empty(),
        q,
        problem,
        found,
    };
    crate::web::pages::html(StatusCode::OK, &page)
}
