//! The server-rendered pages, one module per resource.

pub mod contacts;
pub mod dnd;
mod locations;
mod session;

use actix_session::Session;
use actix_web::web;

use super::auth::csrf_token;
use super::error::PageError;
use crate::db::users::User;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(locations::go_home))
        .route("/login", web::get().to(session::show_sign_in))
        .route("/login", web::post().to(session::sign_in))
        .route("/logout", web::post().to(session::sign_out))
        .route("/locations", web::get().to(locations::list_locations))
        .route(
            "/locations/{location_id}",
            web::get().to(locations::show_location),
        )
        .route(
            "/locations/{location_id}/contacts",
            web::get().to(contacts::list_contacts),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}",
            web::get().to(contacts::show_contact),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/dnd",
            web::post().to(dnd::change_dnd),
        );
}

/// What the shared layout shows of the signed-in user (and the token its
/// sign-out form carries).
pub struct Nav {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
}

impl Nav {
    pub fn new(user: &User, session: &Session) -> Result<Self, PageError> {
        Ok(Nav {
            email: user.email.clone(),
            role: user.role().label(),
            csrf: csrf_token(session)?,
        })
    }
}
