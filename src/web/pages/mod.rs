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
use super::routes::Routes;
use crate::db::users::User;

/// The browser pages' routes.
pub fn configure(routes: &mut Routes<'_>) {
    // What a page cannot read answers the app's own error page (the API's
    // scope and the webhooks' set their own).
    routes
        .config()
        .app_data(web::QueryConfig::default().error_handler(super::error::query_error))
        .app_data(web::PathConfig::default().error_handler(super::error::path_error))
        .app_data(web::FormConfig::default().error_handler(super::error::form_error))
        .default_service(web::to(super::error::no_such_route));
    routes
        .get("/", locations::go_home)
        .get("/login", session::show_sign_in)
        .post("/login", session::sign_in)
        .post("/logout", session::sign_out)
        .get("/set-password/{token}", session::show_set_password)
        .post("/set-password/{token}", session::set_password)
        .get("/agency", agency::overview::show_overview)
        .get("/agency/contacts", agency::overview::search_contacts)
        .post("/agency/locations", agency::overview::create_location)
        .get("/agency/users", agency::users::list_users)
        .post("/agency/users", agency::users::create_user)
        .post(
            "/agency/users/{user_id}/reset",
            agency::users::reset_password,
        )
        .post(
            "/agency/users/{user_id}/deactivate",
            agency::users::deactivate_user,
        )
        .get("/locations", locations::list_locations)
        .get("/locations/switch", locations::switch_location)
        .get("/locations/{location_id}", locations::show_location)
        .get("/locations/{location_id}/contacts", contacts::list_contacts)
        .post(
            "/locations/{location_id}/contacts",
            contact_form::create_contact,
        )
        .post("/locations/{location_id}/contacts/bulk-dnd", bulk::bulk_dnd)
        .get("/locations/{location_id}/imports", imports::list_imports)
        .post("/locations/{location_id}/imports", imports::upload)
        .get(
            "/locations/{location_id}/imports/{import_id}",
            imports::show_import,
        )
        .post(
            "/locations/{location_id}/imports/{import_id}/confirm",
            imports::confirm,
        )
        .get(
            "/locations/{location_id}/dnd/export.csv",
            contacts::export_csv,
        )
        .get(
            "/locations/{location_id}/contacts/new",
            contact_form::new_contact,
        )
        .get(
            "/locations/{location_id}/contacts/{contact_id}",
            contacts::show_contact,
        )
        .get(
            "/locations/{location_id}/contacts/{contact_id}/edit",
            contact_form::edit_contact,
        )
        .post(
            "/locations/{location_id}/contacts/{contact_id}/edit",
            contact_form::update_contact,
        )
        .post(
            "/locations/{location_id}/contacts/{contact_id}/dnd",
            dnd::change_dnd,
        )
        .get(
            "/locations/{location_id}/contacts/{contact_id}/optin-requests/new",
            optin::new_request,
        )
        .post(
            "/locations/{location_id}/contacts/{contact_id}/optin-requests",
            optin::create_request,
        )
        .get(
            "/locations/{location_id}/optin-requests",
            optin::list_requests,
        )
        .get(
            "/locations/{location_id}/integrations",
            integrations::list_integrations,
        )
        .post(
            "/locations/{location_id}/integrations/{channel}/connect",
            integrations::connect,
        )
        .post(
            "/locations/{location_id}/integrations/{channel}/disconnect",
            integrations::disconnect,
        )
        .post(
            "/locations/{location_id}/integrations/{channel}/test",
            integrations::test,
        )
        .get("/locations/{location_id}/api-keys", api_keys::list_keys)
        .post("/locations/{location_id}/api-keys", api_keys::create_key)
        .post(
            "/locations/{location_id}/api-keys/{key_id}/revoke",
            api_keys::revoke_key,
        )
        .get("/support/requests", support::queue)
        .get("/support/requests/{request_id}", support::show_request)
        .post("/support/requests/{request_id}/approve", support::approve)
        .post("/support/requests/{request_id}/reject", support::reject)
        .post(
            "/locations/{location_id}/contacts/{contact_id}/messages",
            compose::send_message,
        )
        .get("/locations/{location_id}/settings", settings::show_settings)
        .post(
            "/locations/{location_id}/settings/name",
            settings::rename_location,
        )
        .post(
            "/locations/{location_id}/settings/sms",
            settings::save_sms_settings,
        )
        .post(
            "/locations/{location_id}/settings/voice",
            settings::save_voice_settings,
        )
        .post(
            "/locations/{location_id}/settings/region",
            settings::save_region,
        )
        .post(
            "/locations/{location_id}/settings/integrations/{channel}/secret",
            settings::rotate_secret,
        )
        .post(
            "/locations/{location_id}/settings/integrations/{channel}/transport",
            settings::save_transport,
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
