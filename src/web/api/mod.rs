//! The automation API (`/api/v1`): JSON, authenticated by a location's API
//! key sent as `Authorization: Bearer <key>`.

mod contacts;
mod dnd;
mod error;
mod imports;
mod json;
mod key;
mod messages;
mod subscriptions;
mod views;

use actix_web::{web, HttpResponse};

pub use error::ApiError;
pub use json::ApiJson;
pub use key::ApiLocation;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Room for a 100,000-recipient bulk send; anything larger is a 400.
    cfg.app_data(web::PayloadConfig::new(json::LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            ApiError::BadRequest(format!("The query string could not be read: {err}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _req| {
            ApiError::NotFound(format!("No such resource: {err}")).into()
        }))
        .route("/me", web::get().to(show_me))
        .route("/contacts", web::post().to(contacts::upsert_contact))
        .route("/contacts", web::get().to(contacts::find_contacts))
        .route(
            "/contacts/{contact_id}",
            web::get().to(contacts::show_contact),
        )
        .route("/contacts/{contact_id}/dnd", web::put().to(dnd::change_dnd))
        .route("/dnd/bulk", web::post().to(dnd::bulk_dnd))
        .route(
            "/webhook-subscriptions",
            web::post().to(subscriptions::create),
        )
        .route("/webhook-subscriptions", web::get().to(subscriptions::list))
        .route(
            "/webhook-subscriptions/{id}",
            web::delete().to(subscriptions::delete),
        )
        .route(
            "/imports/contacts",
            web::post().to(imports::import_contacts),
        )
        .route(
            "/imports/suppressions",
            web::post().to(imports::import_suppressions),
        )
        .route("/dnd/export.csv", web::get().to(dnd::export_csv))
        .route("/messages", web::post().to(messages::send_message))
        .route("/messages/bulk", web::post().to(messages::send_bulk))
        .route(
            "/messages/{message_id}",
            web::get().to(messages::show_message),
        )
        .route(
            "/contacts/{contact_id}/dnd/history",
            web::get().to(dnd::list_history),
        )
        .route(
            "/contacts/{contact_id}/dnd/check",
            web::get().to(dnd::check_dnd),
        )
        .route(
            "/contacts/{contact_id}/optin-requests",
            web::get().to(dnd::list_optin_requests),
        )
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NotFound(
                "No such API route; see the README for the routes of /api/v1.".into(),
            ))
        }));
}

/// Which location the key belongs to, so a client can check its set-up.
async fn show_me(ApiLocation(location, _): ApiLocation) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "location_id": location.id,
        "location_name": location.name,
    }))
}
