//! dnd: keeps every contact's Do Not Disturb wishes per channel, and makes
//! sure no outbound message reaches a contact on a channel where DND is on.
//!
//! Arrows point inward: `web` uses `db` and `domain`; `db` uses `domain`
//! types; `domain` uses nothing of ours.

pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod metrics;
pub mod outbound;
pub mod password;
pub mod secrets;
pub mod web;
pub mod webhooks;

use std::net::TcpListener;

use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_session::SessionMiddleware;
use actix_web::cookie::{time, Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, Logger};
use actix_web::{web as aweb, App, HttpServer};

use crate::config::{Config, ConfigError};
use crate::db::DbPool;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not start the webhook writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The web server, bound but not yet running. Tests bind port 0 and read
/// the port back.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(config: &Config, pool: DbPool) -> Result<Self, StartError> {
        let bind_error = |source| StartError::Bind {
            addr: config.bind.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.bind).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let key = Key::derive_from(&config.session_key_bytes()?);
        crate::secrets::install(config.secret_key()?);
        let secure = config.secure_cookies();
        // Webhook batches are written by at most half the connections (the
        // rest stay free for pages, the API and the dispatcher), and by no
        // more writers than there are cores: past that, batches only get
        // smaller and each event costs more (measured with bench-webhooks
        // on 2 cores: 5 writers about 3,000 events/s, 2 writers 5,000).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let writers = (config.pool_size as usize / 2).clamp(1, cores.max(1));
        let metrics = std::sync::Arc::new(metrics::Metrics::default());
        let webhooks = webhooks::pipeline::start_batcher(pool.clone(), writers, metrics.clone())
            .map_err(StartError::Thread)?;
        let state = aweb::Data::new(web::AppState {
            pool,
            webhooks,
            public_url: config.public_url.clone(),
            metrics,
            hosts: config.host_policy(),
            metrics_token: config.metrics_token.clone(),
            hashing: std::sync::Arc::new(tokio::sync::Semaphore::new(cores.max(1))),
            key_limits: std::sync::Arc::new(web::limits::KeyLimits::new(config.api_limits)),
        });
        // Browsers keep to HTTPS once they have seen it served so.
        let https = config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let server = HttpServer::new(move || {
            App::new()
                // Innermost, inside the session: every error of a browser
                // page becomes the app's page with its navigation.
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service;
                    let call = srv.call(req);
                    async move { Ok(web::error::with_navigation(call.await?).await) }
                })
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
                        .cookie_name("dnd_session".into())
                        .cookie_http_only(true)
                        .cookie_same_site(SameSite::Strict)
                        .cookie_secure(secure)
                        .cookie_content_security(CookieContentSecurity::Private)
                        .session_lifecycle(
                            PersistentSession::default().session_ttl(time::Duration::hours(12)),
                        )
                        .build(),
                )
                .wrap(if https {
                    DefaultHeaders::new().add((
                        "Strict-Transport-Security",
                        "max-age=31536000; includeSubDomains",
                    ))
                } else {
                    DefaultHeaders::new()
                })
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add((
                            "Content-Security-Policy",
                            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                        )),
                )
                .wrap(
                    Logger::new("%a \"%{request}xi\" %s %b %Dms id=%{request_id}xi")
                        .custom_request_replace("request", logged_request)
                        .custom_request_replace("request_id", |req| {
                            use actix_web::HttpMessage;
                            req.extensions()
                                .get::<RequestId>()
                                .map(|id| id.0.clone())
                                .unwrap_or_default()
                        }),
                )
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service;
                    let refused = web::nul_in_query(req.query_string());
                    // Browser pages refuse it with the app's page, the API
                    // and providers in plain words.
                    let page =
                        !req.path().starts_with("/api/") && !req.path().starts_with("/webhooks/");
                    let call = refused.is_none().then(|| srv.call(req));
                    async move {
                        match (call, refused) {
                            (Some(call), _) => call.await,
                            (None, why) if page => {
                                Err(web::error::PageError::BadRequest(why.unwrap_or_default())
                                    .into())
                            }
                            (None, why) => {
                                Err(actix_web::error::ErrorBadRequest(why.unwrap_or_default()))
                            }
                        }
                    }
                })
                // Outermost: every request gets an id, on every log line
                // written while it is answered (the access log's too, and
                // the database work's, see `db::run`), and in its answer.
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service;
                    use actix_web::HttpMessage;
                    use tracing::Instrument;
                    let id = RequestId::new();
                    let span = tracing::info_span!("request", id = %id.0);
                    req.extensions_mut().insert(id.clone());
                    let call = srv.call(req);
                    async move {
                        let mut response = call.await?;
                        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id.0) {
                            response.headers_mut().insert(
                                actix_web::http::header::HeaderName::from_static("x-request-id"),
                                value,
                            );
                        }
                        Ok(response)
                    }
                    .instrument(span)
                })
                .app_data(state.clone())
                .configure(web::configure)
        })
        .listen(listener)
        .map_err(bind_error)?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (gracefully: open requests finish).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM, then drains open requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The request as the access log shows it: method and path only. Query
/// strings carry tokens (Meta's verify token) and a password link's path is
/// its secret, so neither reaches a log line.
/// A request's id: random, short, the same on each of its log lines.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> Self {
        RequestId(format!("{:012x}", rand::random::<u64>() >> 16))
    }
}

fn logged_request(req: &actix_web::dev::ServiceRequest) -> String {
    let path = req.path();
    let path = if path.starts_with("/set-password/") {
        "/set-password/<redacted>"
    } else {
        path
    };
    format!("{} {}", req.method(), path)
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn password_links_and_query_strings_stay_out_of_the_log() {
        let req = actix_web::test::TestRequest::get()
            .uri("/set-password/abcdef0123?x=1")
            .to_srv_request();
        assert_eq!(super::logged_request(&req), "GET /set-password/<redacted>");
        let req = actix_web::test::TestRequest::get()
            .uri("/webhooks/meta/1?hub.verify_token=secret")
            .to_srv_request();
        assert_eq!(super::logged_request(&req), "GET /webhooks/meta/1");
    }
}
