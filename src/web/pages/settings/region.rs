//! The region numbers without a country code are read in (searches,
//! forms, imports, provider numbers): the country of the location's time
//! zone until an agency user sets another.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, Drafts, FLASH};
use crate::db::locations;
use crate::db::{self, DbError};
use crate::domain::region::parse_region;
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::pages::session::redirect;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct RegionForm {
    #[serde(default)]
    region: String,
}

/// Sets the location's region (agency users); one numbers cannot be read
/// in comes back to the form with why (422).
pub async fn save_region(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<RegionForm>,
) -> Result<HttpResponse, PageError> {
    let location = require_edit(&at)?.clone();
    let Some(region) = parse_region(&form.region) else {
        let drafts = Drafts {
            region: Some((
                form.region.clone(),
                format!(
                    "\"{}\" is not a country numbers can be read in; choose one from the list. Nothing was changed.",
                    form.region.trim()
                ),
            )),
            ..Drafts::default()
        };
        return render(&state, &req, &session, at, drafts).await;
    };
    let id = location.id;
    let saved = region.clone();
    db::run(&state.pool, move |conn| -> Result<_, DbError> {
        Ok(locations::set_region(conn, id, &saved)?)
    })
    .await?;
    session.insert(
        FLASH,
        format!("Numbers without a country code are now read as {region} numbers."),
    )?;
    Ok(redirect(&format!("/locations/{id}/settings")))
}
