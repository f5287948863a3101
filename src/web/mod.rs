//! HTTP: the route table, the browser pages and the automation API.

pub mod api;
mod assets;
pub mod auth;
pub mod clock;
pub mod error;
pub mod export;
mod health;
pub mod limits;
pub mod pages;
pub mod routes;

use actix_web::web;

use self::routes::{RouteEntry, Routes};
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
    /// `DND_METRICS_TOKEN`, if set.
    pub metrics_token: Option<String>,
    /// Password checks running at once (argon2 is slow on purpose): one per
    /// core, outside the database pool.
    pub hashing: std::sync::Arc<tokio::sync::Semaphore>,
    /// Per API key rate and requests in flight.
    pub key_limits: std::sync::Arc<limits::KeyLimits>,
}

/// Why a query string is refused before any handler reads it: a parameter
/// holding a NUL character (`%00`), which no text column stores. Names the
/// parameter.
pub fn nul_in_query(query: &str) -> Option<String> {
    if !query.contains("%00") && !query.contains('\0') {
        return None;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let name = pairs
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.replace('\0', ""))?;
    Some(format!(
        "The parameter \"{name}\" contains a NUL character (%00); remove it and try again."
    ))
}

/// The one route table, used by `main` and by the tests alike.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register(&mut Routes::new(cfg, &mut Vec::new()));
}

/// Every route `configure` registers: its method and full path pattern,
/// in registration order. Taken from the same code, so it cannot miss one.
pub fn route_list() -> Vec<RouteEntry> {
    let mut list = Vec::new();
    // `App::configure` runs the closure at once; the app itself is dropped.
    actix_web::App::new().configure(|cfg| register(&mut Routes::new(cfg, &mut list)));
    list
}

fn register(routes: &mut Routes<'_>) {
    routes
        .get("/healthz", health::check_health)
        .get("/static/{file}", assets::serve_asset)
        .get("/metrics", show_metrics)
        .scope("/webhooks", crate::webhooks::configure);
    pages::configure(routes);
    routes.scope("/api/v1", api::configure);
}

/// `/metrics`: to a request bearing `DND_METRICS_TOKEN`, or, on a server
/// with no public URL set (a developer's machine), to a direct loopback
/// request. A server with `DND_PUBLIC_URL` sits behind a proxy, which may
/// not say it forwarded (nginx adds no header unless told to): there every
/// request could look local, so only the token opens it. Others get 404:
/// the counters say how much traffic each provider sends.
async fn show_metrics(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> actix_web::HttpResponse {
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    let local = state.public_url.is_none()
        && !proxied
        && req.peer_addr().is_some_and(|a| {
            let ip = a.ip();
            ip.is_loopback() || ip.to_canonical().is_loopback()
        });
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = match (&state.metrics_token, bearer) {
        (Some(expected), Some(sent)) => {
            auth::constant_time_eq(expected.as_bytes(), sent.as_bytes())
        }
        _ => false,
    };
    if !local && !token_ok {
        return actix_web::HttpResponse::NotFound().finish();
    }
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::nul_in_query;

    #[test]
    fn only_a_decoded_nul_is_refused_and_named() {
        assert!(nul_in_query("q=%00").unwrap().contains("\"q\""));
        assert!(nul_in_query("status=on&q=ab%00c")
            .unwrap()
            .contains("\"q\""));
        assert_eq!(nul_in_query("q=%2500"), None);
        assert_eq!(nul_in_query("q=Garcia"), None);
    }
}
