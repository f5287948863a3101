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

use super::routes::Routes;

pub use error::ApiError;
pub use json::ApiJson;
pub use key::ApiLocation;

/// The API's routes, in the `/api/v1` scope.
pub fn configure(routes: &mut Routes<'_>) {
    // Room for a 100,000-recipient bulk send; anything larger is a 400.
    routes
        .config()
        .app_data(web::PayloadConfig::new(json::LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            ApiError::BadRequest(format!("The query string could not be read: {err}")).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, _req| {
            ApiError::NotFound(format!("No such resource: {err}")).into()
        }));
    routes
        .get("/me", show_me)
        .post("/contacts", contacts::upsert_contact)
        .get("/contacts", contacts::find_contacts)
        .get("/contacts/{contact_id}", contacts::show_contact)
        .put("/contacts/{contact_id}/dnd", dnd::change_dnd)
        .post("/dnd/bulk", dnd::bulk_dnd)
        .post("/webhook-subscriptions", subscriptions::create)
        .get("/webhook-subscriptions", subscriptions::list)
        .delete("/webhook-subscriptions/{id}", subscriptions::delete)
        .post("/imports/contacts", imports::import_contacts)
        .post("/imports/suppressions", imports::import_suppressions)
        .get("/dnd/export.csv", dnd::export_csv)
        .post("/messages", messages::send_message)
        .post("/messages/bulk", messages::send_bulk)
        .get("/messages/{message_id}", messages::show_message)
        .get("/contacts/{contact_id}/dnd/history", dnd::list_history)
        .get("/contacts/{contact_id}/dnd/check", dnd::check_dnd)
        .get(
            "/contacts/{contact_id}/optin-requests",
            dnd::list_optin_requests,
        );
    routes.config().default_service(web::to(|| async {
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
