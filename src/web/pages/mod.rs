//! The server-rendered pages, one module per resource.

mod agency;
mod api_keys;
pub mod bulk;
mod compose;
mod contact_form;
pub mod contacts;
pub mod dnd;
mod form;
pub mod imports;
mod integrations;
mod locations;
mod optin;
pub(crate) mod session;
pub mod settings;
mod support;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::csrf_token;
use super::error::PageError;
use crate::db::users::User;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(locations::go_home))
        .route("/login", web::get().to(session::show_sign_in))
        .route("/login", web::post().to(session::sign_in))
        .route("/logout", web::post().to(session::sign_out))
        .route(
            "/set-password/{token}",
            web::get().to(session::show_set_password),
        )
        .route(
            "/set-password/{token}",
            web::post().to(session::set_password),
        )
        .route("/agency", web::get().to(agency::overview::show_overview))
        .route(
            "/agency/contacts",
            web::get().to(agency::overview::search_contacts),
        )
        .route(
            "/agency/locations",
            web::post().to(agency::overview::create_location),
        )
        .route("/agency/users", web::get().to(agency::users::list_users))
        .route("/agency/users", web::post().to(agency::users::create_user))
        .route(
            "/agency/users/{user_id}/reset",
            web::post().to(agency::users::reset_password),
        )
        .route(
            "/agency/users/{user_id}/deactivate",
            web::post().to(agency::users::deactivate_user),
        )
        .route("/locations", web::get().to(locations::list_locations))
        .route(
            "/locations/switch",
            web::get().to(locations::switch_location),
        )
        .route(
            "/locations/{location_id}",
            web::get().to(locations::show_location),
        )
        .route(
            "/locations/{location_id}/contacts",
            web::get().to(contacts::list_contacts),
        )
        .route(
            "/locations/{location_id}/contacts",
            web::post().to(contact_form::create_contact),
        )
        .route(
            "/locations/{location_id}/contacts/bulk-dnd",
            web::post().to(bulk::bulk_dnd),
        )
        .route(
            "/locations/{location_id}/imports",
            web::get().to(imports::list_imports),
        )
        .route(
            "/locations/{location_id}/imports",
            web::post().to(imports::upload),
        )
        .route(
            "/locations/{location_id}/imports/{import_id}",
            web::get().to(imports::show_import),
        )
        .route(
            "/locations/{location_id}/imports/{import_id}/confirm",
            web::post().to(imports::confirm),
        )
        .route(
            "/locations/{location_id}/dnd/export.csv",
            web::get().to(contacts::export_csv),
        )
        .route(
            "/locations/{location_id}/contacts/new",
            web::get().to(contact_form::new_contact),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}",
            web::get().to(contacts::show_contact),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/edit",
            web::get().to(contact_form::edit_contact),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/edit",
            web::post().to(contact_form::update_contact),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/dnd",
            web::post().to(dnd::change_dnd),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/optin-requests/new",
            web::get().to(optin::new_request),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/optin-requests",
            web::post().to(optin::create_request),
        )
        .route(
            "/locations/{location_id}/optin-requests",
            web::get().to(optin::list_requests),
        )
        .route(
            "/locations/{location_id}/integrations",
            web::get().to(integrations::list_integrations),
        )
        .route(
            "/locations/{location_id}/integrations/{channel}/connect",
            web::post().to(integrations::connect),
        )
        .route(
            "/locations/{location_id}/integrations/{channel}/disconnect",
            web::post().to(integrations::disconnect),
        )
        .route(
            "/locations/{location_id}/integrations/{channel}/test",
            web::post().to(integrations::test),
        )
        .route(
            "/locations/{location_id}/api-keys",
            web::get().to(api_keys::list_keys),
        )
        .route(
            "/locations/{location_id}/api-keys",
            web::post().to(api_keys::create_key),
        )
        .route(
            "/locations/{location_id}/api-keys/{key_id}/revoke",
            web::post().to(api_keys::revoke_key),
        )
        .route("/support/requests", web::get().to(support::queue))
        .route(
            "/support/requests/{request_id}",
            web::get().to(support::show_request),
        )
        .route(
            "/support/requests/{request_id}/approve",
            web::post().to(support::approve),
        )
        .route(
            "/support/requests/{request_id}/reject",
            web::post().to(support::reject),
        )
        .route(
            "/locations/{location_id}/contacts/{contact_id}/messages",
            web::post().to(compose::send_message),
        )
        .route(
            "/locations/{location_id}/settings",
            web::get().to(settings::show_settings),
        )
        .route(
            "/locations/{location_id}/settings/name",
            web::post().to(settings::rename_location),
        )
        .route(
            "/locations/{location_id}/settings/sms",
            web::post().to(settings::save_sms_settings),
        )
        .route(
            "/locations/{location_id}/settings/voice",
            web::post().to(settings::save_voice_settings),
        )
        .route(
            "/locations/{location_id}/settings/integrations/{channel}/secret",
            web::post().to(settings::rotate_secret),
        )
        .route(
            "/locations/{location_id}/settings/integrations/{channel}/transport",
            web::post().to(settings::save_transport),
        );
}

/// A rendered page with its status.
pub fn html(status: StatusCode, page: &impl Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// [`html`] for a page that may show a one-time secret (a password link,
/// a new API key): never kept by a cache.
pub fn html_no_store(status: StatusCode, page: &impl Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(page.render()?))
}

/// What the shared layout shows of the signed-in user (and the token its
/// sign-out form carries).
pub struct Nav {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    /// Agency users and support see a location's settings page.
    pub settings: bool,
    /// Support reviews opt-in evidence: the queue is in the navigation.
    pub support: bool,
    /// Agency users see the agency's pages (its users).
    pub agency: bool,
    /// On a location's pages: the locations to switch to, and this one.
    pub switcher: Vec<(i64, String)>,
    pub current: Option<i64>,
}

impl Nav {
    pub fn new(user: &User, session: &Session) -> Result<Self, PageError> {
        Ok(Nav {
            email: user.email.clone(),
            role: user.role().label(),
            csrf: csrf_token(session)?,
            settings: user.role() != crate::domain::Role::Location,
            support: user.role() == crate::domain::Role::Support,
            agency: user.role() == crate::domain::Role::Agency,
            switcher: Vec::new(),
            current: None,
        })
    }

    /// The navigation of a location's page, with its location switcher.
    pub fn at(
        at: &crate::web::auth::VisibleLocation,
        session: &Session,
    ) -> Result<Self, PageError> {
        let mut nav = Nav::new(&at.user, session)?;
        if at.switcher.len() > 1 {
            nav.switcher = at.switcher.clone();
        }
        nav.current = Some(at.location.id);
        Ok(nav)
    }
}
