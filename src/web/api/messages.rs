//! Outbound messages from the automation API: every one passes the gate,
//! and a blocked one is recorded as blocked, never handed to a provider.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, ApiLocation};
use crate::db::outbound::{self, NewMessage, Outbound, SendError};
use crate::db::{self, DbError};
use crate::domain::dnd::{Decision, Origin};
use crate::domain::message::{check_body, check_subject};
use crate::domain::{Channel, InvalidField};
use crate::web::AppState;

/// The most recipients one bulk request may name.
pub const MAX_BULK: usize = 100_000;

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NotFound(_) => ApiError::NotFound(e.to_string()),
            SendError::NoAddress(_) => {
                ApiError::Invalid(InvalidField::new("contact_id", e.to_string()))
            }
            SendError::Db(e) => ApiError::Db(e),
        }
    }
}

fn channel(name: &str) -> Result<Channel, ApiError> {
    name.parse()
        .map_err(|why: String| ApiError::Invalid(InvalidField::new("channel", why)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    contact_id: i64,
    channel: String,
    body: String,
    subject: Option<String>,
}

/// `POST /api/v1/messages`: 202 queued, or 409 `dnd_active` with the
/// reasons (the blocked message is recorded and its id returned).
pub async fn send_message(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    request: ApiJson<SendRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = request.into_inner();
    let channel = channel(&request.channel)?;
    check_body(&request.body)?;
    let subject = check_subject(request.subject.as_deref())?;
    let (message, decision) = db::run(&state.pool, move |conn| {
        outbound::send_one(
            conn,
            location.id,
            &NewMessage {
                contact_id: request.contact_id,
                channel,
                origin: Origin::Automated,
                body: &request.body,
                subject: subject.as_deref(),
            },
        )
        .map_err(ApiError::from)
    })
    .await?;
    Ok(match decision {
        Decision::Allowed => HttpResponse::Accepted().json(serde_json::json!({
            "id": message.id,
            "status": message.status,
        })),
        Decision::Blocked(_) => HttpResponse::Conflict().json(serde_json::json!({
            "error": "dnd_active",
            "message": format!(
                "DND is on for {} on this contact (at {}); the message was recorded as blocked and not sent.",
                channel.label(),
                message.to_address.as_deref().unwrap_or("its address")
            ),
            "channel": channel.as_str(),
            "address": message.to_address,
            "reasons": message.blocked_reasons,
            "id": message.id,
        })),
        // Failing closed: the message is recorded failed, never sent.
        Decision::Unreadable(why) => HttpResponse::Conflict().json(serde_json::json!({
            "error": "dnd_unreadable",
            "message": format!("{why}. The message was recorded as failed and not sent."),
            "channel": channel.as_str(),
            "id": message.id,
        })),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    channel: String,
    body: String,
    subject: Option<String>,
    contact_ids: Vec<i64>,
}

#[derive(Debug, Serialize)]
struct BulkItem {
    contact_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `POST /api/v1/messages/bulk`: the whole list decided in one set-based
/// statement. Per recipient: `queued`, `blocked` (with reasons),
/// `no_address` (nothing to send to on that channel) or `not_found`.
pub async fn send_bulk(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    request: ApiJson<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = request.into_inner();
    let channel = channel(&request.channel)?;
    check_body(&request.body)?;
    let subject = check_subject(request.subject.as_deref())?;
    if request.contact_ids.is_empty() || request.contact_ids.len() > MAX_BULK {
        return Err(ApiError::Invalid(InvalidField::new(
            "contact_ids",
            format!(
                "give 1 to {MAX_BULK} contact ids (got {})",
                request.contact_ids.len()
            ),
        )));
    }
    let results = db::run(&state.pool, move |conn| {
        outbound::send_bulk(
            conn,
            location.id,
            channel,
            &request.body,
            subject.as_deref(),
            &request.contact_ids,
        )
        .map_err(ApiError::from)
    })
    .await?;
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    let (queued, blocked) = (count("queued"), count("blocked"));
    let items: Vec<BulkItem> = results
        .into_iter()
        .map(|r| BulkItem {
            contact_id: r.contact_id,
            id: r.id,
            status: r.status,
            reasons: r.reasons,
            error: r.error,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "queued": queued,
        "blocked": blocked,
        "results": items,
    })))
}

#[derive(Debug, Serialize)]
struct MessageView {
    id: i64,
    contact_id: i64,
    channel: String,
    origin: Option<String>,
    status: String,
    body: String,
    subject: Option<String>,
    to: Option<String>,
    reasons: Vec<String>,
    provider_sid: Option<String>,
    error_code: Option<i32>,
    error_message: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Outbound> for MessageView {
    fn from(m: Outbound) -> Self {
        MessageView {
            id: m.id,
            contact_id: m.contact_id,
            channel: m.channel,
            origin: m.origin,
            status: m.status,
            body: m.body,
            subject: m.subject,
            to: m.to_address,
            reasons: m.blocked_reasons,
            provider_sid: m.provider_sid,
            error_code: m.error_code,
            error_message: m.error_message,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

pub async fn show_message(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let message = db::run(&state.pool, move |conn| {
        outbound::find(conn, location.id, id).map_err(DbError::from)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no outbound message {id} in this location")))?;
    Ok(HttpResponse::Ok().json(MessageView::from(message)))
}
