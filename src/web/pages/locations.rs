use actix_session::Session;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;

use super::session::redirect;
use super::Nav;
use crate::db::{self, locations, DbError};
use crate::web::auth::{CurrentUser, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

pub async fn go_home(_user: CurrentUser) -> HttpResponse {
    redirect("/locations")
}

#[derive(Template, WebTemplate)]
#[template(path = "locations/list.html")]
pub struct LocationsPage {
    nav: Nav,
    locations: Vec<locations::LocationSummary>,
    read_only: bool,
}

pub async fn list_locations(
    state: web::Data<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<LocationsPage, PageError> {
    let nav = Nav::new(&user, &session)?;
    let read_only = user.role().is_read_only();
    let locations = db::run(&state.pool, move |conn| {
        locations::list_visible(conn, &user).map_err(DbError::from)
    })
    .await?;
    Ok(LocationsPage {
        nav,
        locations,
        read_only,
    })
}

pub async fn show_location(at: VisibleLocation) -> HttpResponse {
    redirect(&format!("/locations/{}/contacts", at.location.id))
}

#[derive(serde::Deserialize)]
pub struct SwitchQuery {
    #[serde(default)]
    to: String,
}

/// The navigation's location switcher: to the chosen location's contacts
/// (whose page checks that the user may see it).
pub async fn switch_location(
    _user: CurrentUser,
    query: web::Query<SwitchQuery>,
) -> Result<HttpResponse, PageError> {
    let id: i64 = query
        .to
        .trim()
        .parse()
        .map_err(|_| PageError::BadRequest("Choose a location from the list.".into()))?;
    Ok(redirect(&format!("/locations/{id}/contacts")))
}
