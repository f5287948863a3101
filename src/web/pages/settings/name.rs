//! Renaming the location.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, Drafts, FLASH};
use crate::db::locations;
use crate::db::{self, DbError};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::pages::session::redirect;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// Renames the location (agency users).
/// A name that cannot be used comes back to the form as typed, with why
/// (422).
pub async fn rename_location(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let location_id = path.into_inner();
    let location = require_edit(&at)?.clone();
    let name = form.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        let drafts = Drafts {
            name: Some((
                form.name.clone(),
                "Give the location a name of 1 to 100 characters. Nothing was changed.".into(),
            )),
            ..Drafts::default()
        };
        return render(&state, &req, &session, at, drafts).await;
    }
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        locations::rename(conn, location.id, &name).map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    session.insert(FLASH, "The location was renamed.".to_string())?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}
