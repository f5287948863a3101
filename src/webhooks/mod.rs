//! Provider webhooks: DND that switches itself on. Each handler verifies
//! the provider's signature, then stores the event and applies its effect
//! in one transaction before answering 2xx; a retry of a stored event is a
//! no-op. Routes (per location):
//!
//! - `POST /webhooks/twilio/{location_id}/sms`     inbound SMS
//! - `POST /webhooks/twilio/{location_id}/status`  message status callback
//! - `POST /webhooks/mailgun/{location_id}`        Mailgun events
//! - `GET|POST /webhooks/meta/{location_id}`       WhatsApp / Messenger

mod batch;
pub mod inbound_sms;
mod mailgun;
mod meta;
pub mod signatures;
mod twilio;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use futures_util::StreamExt;

use crate::db::contacts::Contact;
use crate::db::dnd::{self as dnd_store, DndError};
use crate::db::DbError;
use crate::domain::dnd::{Actor, Reason};
use crate::domain::Channel;
use crate::metrics::Metrics;
use crate::web::AppState;

pub use twilio::{status_rank, twiml};

/// Providers send small events; anything larger is refused unread.
pub const MAX_BODY: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/twilio/{location_id}/sms",
        web::post().to(inbound_sms::receive_sms),
    )
    .route(
        "/twilio/{location_id}/status",
        web::post().to(twilio::receive_status),
    )
    .route(
        "/mailgun/{location_id}",
        web::post().to(mailgun::receive_event),
    )
    .route(
        "/meta/{location_id}",
        web::get().to(meta::verify_subscription),
    )
    .route("/meta/{location_id}", web::post().to(meta::receive_event))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        WebhookError::Malformed(format!("the location id in the URL is not a number: {err}")).into()
    }));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Twilio,
    Mailgun,
    Meta,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Mailgun => "mailgun",
            Provider::Meta => "meta",
        }
    }
}

/// The error type of the webhooks, answered in the status codes each
/// provider understands.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no location {0}")]
    UnknownLocation(i64),
    #[error("this location has no {0} integration to verify the webhook with")]
    NoIntegration(&'static str),
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

impl From<DndError> for WebhookError {
    fn from(e: DndError) -> Self {
        match e {
            DndError::Db(e) => WebhookError::Db(e),
            // The contact was found or created in this transaction; a
            // refusal of a provider's own reason would be a bug.
            other => WebhookError::Db(DbError::Invariant(other.to_string())),
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::UnknownLocation(_) | WebhookError::NoIntegration(_) => {
                StatusCode::NOT_FOUND
            }
            // Mailgun stops retrying on 406; Twilio and Meta expect 403.
            WebhookError::Refused {
                provider: Provider::Mailgun,
                ..
            } => StatusCode::NOT_ACCEPTABLE,
            WebhookError::Refused { .. } => StatusCode::FORBIDDEN,
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

/// Sets a provider-derived reason (a repeat only adds to the history).
fn set_reason(
    conn: &mut diesel::PgConnection,
    contact: &Contact,
    channel: Channel,
    reason: Reason,
    actor: &Actor,
    address: &str,
    source: &str,
) -> Result<(), WebhookError> {
    let now = Utc::now();
    dnd_store::apply_locked(conn, contact, |s| {
        s.set(
            channel,
            reason,
            actor,
            now,
            Some(address.to_string()),
            Some(source.to_string()),
        )
    })?;
    Ok(())
}

/// Lifts what the contact's own opt-in may lift; nothing to lift is fine.
fn lift_by_contact(
    conn: &mut diesel::PgConnection,
    contact: &Contact,
    channel: Channel,
    actor: &Actor,
    source: &str,
    which: impl Fn(Reason) -> bool,
) -> Result<bool, WebhookError> {
    let now = Utc::now();
    match dnd_store::apply_locked(conn, contact, |s| {
        s.lift_only(channel, actor, now, Some(source.to_string()), which)
    }) {
        Ok(t) => Ok(!t.entries.is_empty()),
        Err(DndError::Refused(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
