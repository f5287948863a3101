use actix_session::Session;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;

use super::session::redirect;
use super::Nav;
use crate::db::dashboard::{self, Dashboard};
use crate::db::{self, locations, DbError};
use crate::domain::chart;
use crate::web::auth::{CurrentUser, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

/// `/`: where signing in lands (a location user's only location's
/// contacts, else the locations).
pub async fn go_home(
    state: web::Data<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    Ok(redirect(&super::session::landing(&state, user, "").await?))
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

#[derive(Template, WebTemplate)]
#[template(path = "locations/dashboard.html")]
pub struct DashboardPage {
    nav: Nav,
    location: locations::Location,
    board: Dashboard,
    chart: String,
}

impl DashboardPage {
    /// The channels that appear in the chart, for its legend.
    fn legend(&self) -> Vec<(&'static str, &'static str)> {
        crate::domain::Channel::ALL
            .into_iter()
            .filter(|c| {
                self.board
                    .days
                    .iter()
                    .any(|d| d.counts.iter().any(|(x, _)| x == c))
            })
            .map(|c| (c.label(), chart::colour(c)))
            .collect()
    }

    fn day_text(&self, d: &chart::Day) -> String {
        d.counts
            .iter()
            .map(|(c, n)| format!("{} {n}", c.label()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `/locations/{id}`: the location's dashboard.
pub async fn show_location(
    state: web::Data<AppState>,
    session: Session,
    at: VisibleLocation,
) -> Result<DashboardPage, PageError> {
    let nav = Nav::at(&at, &session)?;
    let location = at.location;
    let (id, zone) = (location.id, location.time_zone.clone());
    let board = db::run(&state.pool, move |conn| {
        dashboard::load(conn, id, &zone, chrono::Utc::now()).map_err(DbError::from)
    })
    .await?;
    let chart = chart::stacked_bars(
        &board.days,
        &format!(
            "DND changes per day over the last {} days, by channel",
            dashboard::DAYS
        ),
    );
    Ok(DashboardPage {
        nav,
        location,
        board,
        chart,
    })
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
