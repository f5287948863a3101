use actix_session::Session;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;

use super::session::redirect;
use super::Nav;
use crate::db::{self, locations, DbError};
use crate::web::auth::CurrentUser;
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

pub async fn show_location(
    state: web::Data<AppState>,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    let location_id = path.into_inner();
    let location = db::run(&state.pool, move |conn| {
        locations::find_visible(conn, &user, location_id).map_err(DbError::from)
    })
    .await?
    .ok_or(PageError::NotFound)?;
    Ok(redirect(&format!("/locations/{}/contacts", location.id)))
}
