//! The agency's users: the list (every agency user), and for admins a new
//! user, a new password link and deactivation. No mail server is needed:
//! the admin is shown a one-time link to hand over, once.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;

use super::{admin_of, agency_of};
use crate::db::locations::{self, Location};
use crate::db::users::{self, AgencyUser, NewUser, User};
use crate::db::{self, DbError};
use crate::domain::{EmailAddress, Role};
use crate::web::auth::{CsrfForm, CurrentUser};
use crate::web::error::PageError;
use crate::web::pages::dnd::{set_flash, take_flash};
use crate::web::pages::form::FieldErrors;
use crate::web::pages::session::redirect;
use crate::web::pages::settings::base_url;
use crate::web::pages::Nav;
use crate::web::AppState;

#[derive(Template)]
#[template(path = "agency/users.html")]
struct UsersPage {
    nav: Nav,
    me: i64,
    is_admin: bool,
    people: Vec<AgencyUser>,
    locations: Vec<Location>,
    /// A one-time link just made: whose, and the URL (shown this once).
    new_link: Option<(String, String)>,
    flash: Option<String>,
    errors: FieldErrors,
    draft: Draft,
}

#[derive(Debug, Default, Clone)]
struct Draft {
    email: String,
    role: String,
    location_ids: Vec<i64>,
    admin: bool,
}

impl UsersPage {
    fn checked(&self, location_id: &i64) -> bool {
        self.draft.location_ids.contains(location_id)
    }
}

/// What a page render adds to the list.
#[derive(Default)]
struct Extra {
    new_link: Option<(String, String)>,
    errors: FieldErrors,
    draft: Draft,
}

async fn render(
    state: &AppState,
    session: &Session,
    user: User,
    extra: Extra,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let agency = agency_of(&user)?;
    let nav = Nav::new(&user, session)?;
    let flash = take_flash(session);
    let (people, locations) = db::run(&state.pool, move |conn| -> Result<_, DbError> {
        Ok((
            users::list_agency(conn, agency)?,
            locations::for_agency(conn, agency)?,
        ))
    })
    .await?;
    let page = UsersPage {
        nav,
        me: user.id,
        is_admin: user.is_admin,
        people,
        locations,
        new_link: extra.new_link,
        flash,
        errors: extra.errors,
        draft: Draft {
            role: if extra.draft.role.is_empty() {
                "location".into()
            } else {
                extra.draft.role
            },
            ..extra.draft
        },
    };
    crate::web::pages::html_no_store(status, &page)
}

pub async fn list_users(
    state: web::Data<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    render(&state, &session, user, Extra::default(), StatusCode::OK).await
}

/// The new-user form, read field by field (`location_ids` repeats).
struct NewUserForm {
    email: String,
    role: String,
    location_ids: Vec<String>,
    admin: bool,
}

impl NewUserForm {
    fn from_fields(fields: Vec<(String, String)>) -> Self {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        NewUserForm {
            email: get("email"),
            role: get("role"),
            location_ids: fields
                .iter()
                .filter(|(k, _)| k == "location_ids")
                .map(|(_, v)| v.clone())
                .collect(),
            admin: !get("admin").is_empty(),
        }
    }
}

/// The link a user sets their password at.
fn link_url(req: &HttpRequest, state: &AppState, token: &str) -> String {
    format!("{}/set-password/{token}", base_url(req, state))
}

/// Creates a user of the admin's agency, with no password yet: the admin
/// gets a one-time link to hand over.
pub async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    CurrentUser(user): CurrentUser,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let agency = admin_of(&user)?;
    let form = NewUserForm::from_fields(fields);
    let mut errors = FieldErrors::default();
    let email = match EmailAddress::parse(&form.email) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push("email", e.message);
            None
        }
    };
    let role = match form.role.as_str() {
        "location" => Some(Role::Location),
        "agency" => Some(Role::Agency),
        _ => {
            errors.push("role", "choose a location user or an agency user");
            None
        }
    };
    let mut location_ids = Vec::new();
    for raw in &form.location_ids {
        match raw.trim().parse::<i64>() {
            Ok(id) => location_ids.push(id),
            Err(_) => errors.push("location_ids", format!("\"{raw}\" is not a location")),
        }
    }
    location_ids.sort();
    location_ids.dedup();
    if role == Some(Role::Location)
        && location_ids.is_empty()
        && errors.get("location_ids").is_none()
    {
        errors.push(
            "location_ids",
            "a location user works in at least one location: tick it",
        );
    }
    let draft = Draft {
        email: form.email.trim().to_string(),
        role: form.role.clone(),
        location_ids: location_ids.clone(),
        admin: form.admin,
    };
    let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
        let extra = Extra {
            errors,
            draft,
            ..Extra::default()
        };
        return render(
            &state,
            &session,
            user,
            extra,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let by = user.id;
    let admin = form.admin;
    let made = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        // Only the agency's own locations can be given.
        let ours: Vec<i64> = locations::for_agency(conn, agency)
            .map_err(DbError::from)?
            .into_iter()
            .map(|l| l.id)
            .collect();
        if location_ids.iter().any(|id| !ours.contains(id)) {
            return Ok(Err((
                "location_ids",
                "only this agency's locations can be given".to_string(),
            )));
        }
        if users::find_by_email(conn, email.as_str())
            .map_err(DbError::from)?
            .is_some()
        {
            return Ok(Err((
                "email",
                "someone already has an account with this email".to_string(),
            )));
        }
        let created = users::create(
            conn,
            &NewUser {
                email: email.as_str(),
                // Matches no password until the user sets one by the link.
                password_hash: "",
                role: role.as_str(),
                agency_id: Some(agency),
                is_admin: admin && role == Role::Agency,
            },
            if role == Role::Location {
                &location_ids
            } else {
                &[]
            },
        )?;
        let token =
            users::new_password_link(conn, created.id, by, Utc::now()).map_err(DbError::from)?;
        Ok(Ok((created.email, token)))
    })
    .await?;
    match made {
        Ok((email, token)) => {
            let extra = Extra {
                new_link: Some((email, link_url(&req, &state, &token))),
                ..Extra::default()
            };
            render(&state, &session, user, extra, StatusCode::CREATED).await
        }
        Err((field, message)) => {
            let mut errors = FieldErrors::default();
            errors.push(field, message);
            let extra = Extra {
                errors,
                draft,
                ..Extra::default()
            };
            render(
                &state,
                &session,
                user,
                extra,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// A user of the admin's agency (404 for anyone else's).
fn member(conn: &mut diesel::PgConnection, agency: i64, user_id: i64) -> Result<User, PageError> {
    users::find(conn, user_id)
        .map_err(DbError::from)?
        .filter(|u| u.agency_id == Some(agency) && u.role() != Role::Support)
        .ok_or(PageError::NotFound)
}

/// A new one-time link (a forgotten password): earlier links stop working.
pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
    _form: CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let agency = admin_of(&user)?;
    let target = path.into_inner();
    let by = user.id;
    let (email, token) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let person = member(conn, agency, target)?;
        if !person.is_active() {
            return Err(PageError::Forbidden(format!(
                "{} is deactivated: no password link is made for them. Nothing was changed.",
                person.email
            )));
        }
        let token =
            users::new_password_link(conn, person.id, by, Utc::now()).map_err(DbError::from)?;
        Ok((person.email, token))
    })
    .await?;
    let extra = Extra {
        new_link: Some((email, link_url(&req, &state, &token))),
        ..Extra::default()
    };
    render(&state, &session, user, extra, StatusCode::OK).await
}

/// Deactivates a user of the agency: their next request ends their
/// session, and they cannot sign in.
pub async fn deactivate_user(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
    _form: CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let agency = admin_of(&user)?;
    let target = path.into_inner();
    if target == user.id {
        return Err(PageError::Forbidden(
            "You cannot deactivate yourself; ask another administrator. Nothing was changed."
                .into(),
        ));
    }
    let email = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let person = member(conn, agency, target)?;
        users::deactivate(conn, person.id, Utc::now()).map_err(DbError::from)?;
        Ok(person.email)
    })
    .await?;
    set_flash(
        &session,
        format!("{email} is deactivated: signed out everywhere, and cannot sign in."),
    )?;
    Ok(redirect("/agency/users"))
}
