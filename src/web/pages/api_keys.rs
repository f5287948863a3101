//! A location's API keys (agency users; support reads the list). A new key
//! is shown once; only its SHA-256 is stored.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::dnd::{set_flash, take_flash};
use super::form::FieldErrors;
use super::session::redirect;
use super::settings::{can_edit, require_edit};
use super::Nav;
use crate::db::api_keys::{self, ApiKeyRow};
use crate::db::locations::Location;
use crate::db::{self, DbError};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

const MAX_NAME: usize = 100;

#[derive(Template)]
#[template(path = "locations/api_keys.html")]
struct KeysPage {
    nav: Nav,
    location: Location,
    can_edit: bool,
    keys: Vec<ApiKeyRow>,
    /// A key just made: its name and the key, shown this once.
    new_key: Option<(String, String)>,
    flash: Option<String>,
    errors: FieldErrors,
    name: String,
}

#[derive(Default)]
struct Extra {
    new_key: Option<(String, String)>,
    errors: FieldErrors,
    name: String,
}

async fn render(
    state: &AppState,
    session: &Session,
    at: VisibleLocation,
    extra: Extra,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::at(&at, session)?;
    let flash = take_flash(session);
    let editable = can_edit(&at.user, &at.location)?;
    let location = at.location;
    let id = location.id;
    let keys = db::run(&state.pool, move |conn| {
        api_keys::list(conn, id).map_err(DbError::from)
    })
    .await?;
    let page = KeysPage {
        nav,
        location,
        can_edit: editable,
        keys,
        new_key: extra.new_key,
        flash,
        errors: extra.errors,
        name: extra.name,
    };
    super::html_no_store(status, &page)
}

pub async fn list_keys(
    state: web::Data<AppState>,
    session: Session,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    render(&state, &session, at, Extra::default(), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    name: String,
}

pub async fn create_key(
    state: web::Data<AppState>,
    session: Session,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<NewKeyForm>,
) -> Result<HttpResponse, PageError> {
    // Access first: a refused user learns nothing from a validation answer.
    let location_id = require_edit(&at)?.id;
    let name = form.name.trim().to_string();
    let problem = if name.is_empty() {
        Some("give the key a name that says who uses it (e.g. \"Zapier\")".to_string())
    } else if name.chars().count() > MAX_NAME {
        Some(format!("keep the name to {MAX_NAME} characters or fewer"))
    } else if name.chars().any(char::is_control) {
        Some("the name cannot hold control characters".to_string())
    } else {
        None
    };
    if let Some(why) = problem {
        let mut errors = FieldErrors::default();
        errors.push("name", why);
        let extra = Extra {
            errors,
            name,
            ..Extra::default()
        };
        return render(
            &state,
            &session,
            at,
            extra,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let key = api_keys::generate();
    let (stored_name, stored_key) = (name.clone(), key.clone());
    db::run(&state.pool, move |conn| {
        api_keys::create(conn, location_id, &stored_name, &stored_key).map_err(DbError::from)
    })
    .await?;
    let extra = Extra {
        new_key: Some((name, key)),
        ..Extra::default()
    };
    render(&state, &session, at, extra, StatusCode::CREATED).await
}

pub async fn revoke_key(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    at: VisibleLocation,
    _form: CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (location_id, key_id) = path.into_inner();
    require_edit(&at)?;
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        match api_keys::revoke_by_id(conn, location_id, key_id).map_err(DbError::from)? {
            0 => Err(PageError::NotFound),
            _ => Ok(()),
        }
    })
    .await?;
    set_flash(
        &session,
        "The key is revoked: requests with it now get 401.".to_string(),
    )?;
    Ok(redirect(&format!("/locations/{location_id}/api-keys")))
}
