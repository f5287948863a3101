//! Provider webhooks: DND that switches itself on. Every webhook takes one
//! path ([`pipeline`]): its signature is verified, it is parsed into
//! provider events, and the events are stored and applied in one
//! transaction before it is answered 2xx; a retry of a stored event is a
//! no-op. Routes (per location):
//!
//! - `POST /webhooks/twilio/{location_id}/sms`     inbound SMS
//! - `POST /webhooks/twilio/{location_id}/status`  message status callback
//! - `POST /webhooks/mailgun/{location_id}`        Mailgun events
//! - `GET|POST /webhooks/meta/{location_id}`       WhatsApp / Messenger

mod batch;
mod mailgun;
mod meta;
pub mod pipeline;
pub mod signatures;
mod twilio;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use futures_util::StreamExt;

use crate::db::DbError;
use crate::metrics::Metrics;
use crate::web::routes::Routes;
use crate::web::AppState;
use pipeline::{Reply, Route, WebhookJob};

pub use twilio::twiml;

/// Providers send small events; anything larger is refused unread.
pub const MAX_BODY: usize = 64 * 1024;

/// The webhook routes, in the `/webhooks` scope.
pub fn configure(routes: &mut Routes<'_>) {
    let receive = |route: Route| {
        move |state: web::Data<AppState>,
              req: HttpRequest,
              path: web::Path<i64>,
              payload: web::Payload| receive(route, state, req, path, payload)
    };
    routes
        .post("/twilio/{location_id}/sms", receive(Route::TwilioSms))
        .post("/twilio/{location_id}/status", receive(Route::TwilioStatus))
        .post("/twilio/{location_id}/voice", receive_call)
        .post("/mailgun/{location_id}", receive(Route::Mailgun))
        .get("/meta/{location_id}", meta::verify_subscription)
        .post("/meta/{location_id}", receive(Route::Meta))
        .config()
        .app_data(web::PathConfig::default().error_handler(|err, _| {
            WebhookError::Malformed(format!("the location id in the URL is not a number: {err}"))
                .into()
        }));
}

pub use crate::domain::Provider;

/// The error type of the webhooks, answered in the status codes each
/// provider understands.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no location {1}")]
    UnknownLocation(Provider, i64),
    #[error("this location has no {1} integration to verify the webhook with")]
    NoIntegration(Provider, &'static str),
    /// Missing or bad signature, stale timestamp, replayed token.
    #[error("{why}")]
    Refused { provider: Provider, why: String },
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for WebhookError {
    fn from(e: diesel::result::Error) -> Self {
        WebhookError::Db(e.into())
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            // Mailgun stops retrying on 406; Twilio and Meta expect 403. A
            // location or integration that does not exist is refused the
            // same way, so the answer tells nobody which exist.
            WebhookError::Refused {
                provider: Provider::Mailgun,
                ..
            }
            | WebhookError::UnknownLocation(Provider::Mailgun, _)
            | WebhookError::NoIntegration(Provider::Mailgun, _) => StatusCode::NOT_ACCEPTABLE,
            WebhookError::Refused { .. }
            | WebhookError::UnknownLocation(..)
            | WebhookError::NoIntegration(..) => StatusCode::FORBIDDEN,
            WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
            // 503 makes every provider retry later: never a 2xx for an
            // event that was not stored.
            WebhookError::Db(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            WebhookError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            WebhookError::Db(e) => {
                tracing::error!(error = %e, "webhook not stored");
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the database is unavailable; nothing was stored, retry later".to_string()
                } else {
                    "internal error; nothing was stored, retry later".to_string()
                }
            }
            // Why it was refused is logged (see `note_refusal`), not said.
            WebhookError::Refused { .. }
            | WebhookError::UnknownLocation(..)
            | WebhookError::NoIntegration(..) => {
                "refused: this request could not be verified for this URL".to_string()
            }
            other => other.to_string(),
        };
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(message)
    }
}

/// Counts the outcome of a webhook: stored (or a retry of a stored one),
/// or refused, which is also logged.
fn counted<T>(
    metrics: &Metrics,
    location_id: i64,
    result: Result<(T, bool), WebhookError>,
) -> Result<T, WebhookError> {
    match result {
        Ok((value, duplicate)) => {
            Metrics::bump(if duplicate {
                &metrics.webhooks_duplicate
            } else {
                &metrics.webhooks_accepted
            });
            Ok(value)
        }
        Err(e) => {
            note_refusal(metrics, location_id, &e);
            Err(e)
        }
    }
}

/// Counts and logs a refusal (never the secret or the signature itself).
fn note_refusal(metrics: &Metrics, location_id: i64, e: &WebhookError) {
    match e {
        WebhookError::Refused { provider, why } => {
            Metrics::bump(&metrics.webhooks_refused_signature);
            tracing::warn!(provider = provider.as_str(), location_id, why = %why, "webhook refused");
        }
        WebhookError::UnknownLocation(provider, _) | WebhookError::NoIntegration(provider, _) => {
            Metrics::bump(&metrics.webhooks_refused_signature);
            tracing::warn!(provider = provider.as_str(), location_id, why = %e, "webhook refused");
        }
        WebhookError::Malformed(why) => {
            Metrics::bump(&metrics.webhooks_refused_malformed);
            tracing::warn!(location_id, why = %why, "malformed webhook");
        }
        WebhookError::Db(e) if e.is_unavailable() => Metrics::bump(&metrics.webhooks_unavailable),
        _ => {}
    }
}

/// Reads the raw body (signatures are over the exact bytes), refusing
/// anything over [`MAX_BODY`].
async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, WebhookError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| WebhookError::Malformed(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(WebhookError::Malformed(format!(
                "the body is larger than {} KiB",
                MAX_BODY / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The URL the provider called and signed: `DND_PUBLIC_URL` when set, else
/// the scheme and host as received, plus the path and query as sent.
fn called_url(req: &HttpRequest, state: &AppState) -> String {
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    match &state.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let info = req.connection_info();
            format!("{}://{}{path}", info.scheme(), info.host())
        }
    }
}

/// `POST /webhooks/twilio/{location_id}/voice`: a call to the location's
/// number. Rejected (`<Reject/>`) when the caller's contact has inbound
/// call DND; otherwise forwarded to the location's number, or answered
/// with its message. Nothing is stored: a call changes no consent.
async fn receive_call(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let url = called_url(&req, &state);
    let signature = req
        .headers()
        .get("X-Twilio-Signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let result = async {
        let body = read_body(payload).await?;
        crate::db::run(&state.pool, move |conn| -> Result<String, WebhookError> {
            let context = crate::db::webhooks::context(conn, location_id)?
                .ok_or(WebhookError::UnknownLocation(Provider::Twilio, location_id))?;
            let caller = twilio::incoming_call(&context, &url, &body, signature.as_deref())?;
            let reject = match caller {
                Some(number) => crate::db::contacts::find_by_phone(conn, location_id, &number)?
                    .is_some_and(|c| c.inbound_calls_dnd),
                None => false,
            };
            let settings = crate::db::inbound::voice_settings(conn, location_id)?;
            Ok(crate::domain::dnd::voice_twiml(
                reject,
                settings.forward_to.as_deref(),
                &settings.spoken(&context.location.name),
            ))
        })
        .await
    }
    .await;
    let twiml = counted(&state.metrics, location_id, result.map(|t| (t, false)))?;
    Ok(HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(twiml))
}

/// One webhook, whatever the provider: read, handed to the pipeline (which
/// verifies, parses, stores and applies it, batched with others), answered
/// the way its provider expects once it is committed.
async fn receive(
    route: Route,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let url = called_url(&req, &state);
    let header = match route.provider() {
        Provider::Twilio => "X-Twilio-Signature",
        Provider::Meta => "X-Hub-Signature-256",
        // Mailgun signs inside the body.
        Provider::Mailgun => "",
    };
    let signature = (!header.is_empty())
        .then(|| req.headers().get(header))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let result = async {
        let body = read_body(payload).await?;
        let job = WebhookJob {
            route,
            location_id,
            url,
            signature,
            body,
            received_at: Utc::now(),
        };
        // The writer answers every job it takes; no answer means it died,
        // and nothing is acknowledged that was not stored.
        state
            .webhooks
            .submit(job)
            .await
            .map_err(|()| WebhookError::Db(DbError::Cancelled))?
    }
    .await;
    let reply = counted(
        &state.metrics,
        location_id,
        result.map(|a| (a.reply, a.retry)),
    )?;
    Ok(match reply {
        Reply::Twiml(text) => twiml(text.as_deref()),
        Reply::Mailgun => HttpResponse::Ok().json(serde_json::json!({"message": "stored"})),
        Reply::Meta => HttpResponse::Ok()
            .content_type("text/plain")
            .body("EVENT_RECEIVED"),
    })
}
