//! Renaming the location.

use actix_session::Session;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{require_edit, FLASH};
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
pub async fn rename_location(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let location_id = path.into_inner();
    let location = require_edit(&at)?.clone();
    let name = form.name.trim().to_string();
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(PageError::Unprocessable(
                "Give the location a name of 1 to 100 characters. Nothing was changed.".into(),
            ));
        }
        locations::rename(conn, location.id, &name).map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    session.insert(FLASH, "The location was renamed.".to_string())?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}
