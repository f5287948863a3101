//! HTTP: the route table, the browser pages and the automation API.

pub mod api;
mod assets;
pub mod auth;
pub mod error;
pub mod export;
mod health;
pub mod pages;

use actix_web::web;

use crate::db::DbPool;

/// What every handler may reach. Application servers keep no other state:
/// sessions live in the signed, encrypted cookie, everything else in
/// PostgreSQL, so any number of servers can run side by side.
pub struct AppState {
    pub pool: DbPool,
    /// `DND_PUBLIC_URL`, when set: the origin forms must come from, and the
    /// URL providers sign their webhooks with.
    pub public_url: Option<String>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Writes webhooks in batches (group commit).
    pub webhooks: crate::webhooks::pipeline::WebhookBatcher,
    /// Where provider credentials may be sent (checked when a URL is saved).
    pub hosts: crate::outbound::hosts::HostPolicy,
}

/// The one route table, used by `main` and by the tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::check_health))
        .route("/static/{file}", web::get().to(assets::serve_asset))
        .route("/metrics", web::get().to(show_metrics))
        .service(web::scope("/webhooks").configure(crate::webhooks::configure))
        .configure(pages::configure)
        .service(web::scope("/api/v1").configure(api::configure));
}

async fn show_metrics(state: web::Data<AppState>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
