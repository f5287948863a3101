//! Mailgun events: permanent failures, unsubscribes and spam complaints set
//! email DND on the recipient; everything else is recorded only.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use diesel::Connection;
use serde::Deserialize;

use super::signatures::mailgun_is_valid;
use super::{counted, read_body, set_reason, Provider, WebhookError};
use crate::db::webhooks::{self as store, NewEvent};
use crate::db::{self, integrations, locations};
use crate::domain::dnd::{mailgun_event_reason, Actor, ActorKind, MailgunEvent, Reason};
use crate::domain::{Channel, EmailAddress};
use crate::web::AppState;

/// How far a signature's timestamp may be from our clock.
const WINDOW_SECONDS: i64 = 5 * 60;

#[derive(Debug, Deserialize)]
struct Payload {
    signature: Signature,
    #[serde(rename = "event-data")]
    event_data: EventData,
}

#[derive(Debug, Deserialize)]
struct Signature {
    /// Seconds since the epoch; Mailgun sends it as a string.
    timestamp: serde_json::Value,
    token: String,
    signature: String,
}

#[derive(Debug, Deserialize)]
struct EventData {
    event: String,
    id: String,
    recipient: Option<String>,
    severity: Option<String>,
    reason: Option<String>,
}

pub async fn receive_event(
    state: web::Data<AppState>,
    path: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let result = async {
        let body = read_body(payload).await?;
        let parsed: Payload = serde_json::from_slice(&body).map_err(|e| {
            WebhookError::Malformed(format!("the body is not a Mailgun event: {e}"))
        })?;
        db::run(&state.pool, move |conn| {
            let refused = |why: &str| WebhookError::Refused {
                provider: Provider::Mailgun,
                why: why.to_string(),
            };
            let location = locations::find(conn, location_id)?
                .ok_or(WebhookError::UnknownLocation(location_id))?;
            let integration = integrations::find(conn, location.id, Channel::Email)?
                .filter(|i| i.provider == "mailgun")
                .ok_or(WebhookError::NoIntegration("Mailgun email"))?;
            let key = integration
                .secret
                .as_deref()
                .ok_or_else(|| refused("no signing key is set for this integration"))?;
            let sig = &parsed.signature;
            let timestamp = match &sig.timestamp {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(WebhookError::Malformed(
                        "signature.timestamp is not a number".into(),
                    ))
                }
            };
            if !mailgun_is_valid(key, &timestamp, &sig.token, &sig.signature) {
                return Err(refused("the signature does not match"));
            }
            let seconds: i64 = timestamp.parse().map_err(|_| {
                WebhookError::Malformed("signature.timestamp is not a number".into())
            })?;
            if (Utc::now().timestamp() - seconds).abs() > WINDOW_SECONDS {
                return Err(refused(
                    "the signature's timestamp is more than 5 minutes off",
                ));
            }
            let event = &parsed.event_data;
            let reason = mailgun_event_reason(MailgunEvent {
                event: &event.event,
                severity: event.severity.as_deref(),
                reason: event.reason.as_deref(),
            });
            let recipient =
                match (&event.recipient, reason) {
                    (Some(r), _) => Some(EmailAddress::parse(r).map_err(|e| {
                        WebhookError::Malformed(format!("recipient: {}", e.message))
                    })?),
                    (None, Some(_)) => {
                        return Err(WebhookError::Malformed(
                            "event-data.recipient is missing".into(),
                        ))
                    }
                    (None, None) => None,
                };
            let payload = String::from_utf8_lossy(&body).to_string();
            conn.transaction(|conn| -> Result<bool, WebhookError> {
                if !store::remember_mailgun_token(conn, location.id, &sig.token)? {
                    return Err(refused("this signature token was used before (a replay)"));
                }
                let contact = match &recipient {
                    Some(r) => Some(store::contact_for_email(conn, location.id, r)?),
                    None => None,
                };
                let stored = NewEvent {
                    provider: "mailgun",
                    kind: &event.event,
                    key: &event.id,
                    payload: &payload,
                    contact_id: contact.as_ref().map(|c| c.id),
                    outcome: reason.map(Reason::as_str).unwrap_or("recorded"),
                };
                if store::record_event(conn, location.id, &stored)?.is_none() {
                    return Ok(true);
                }
                if let (Some(contact), Some(recipient), Some(reason)) =
                    (&contact, &recipient, reason)
                {
                    let actor = Actor::new(ActorKind::Provider, None, "Mailgun");
                    let source = format!("{} {}", event.event, event.id);
                    set_reason(
                        conn,
                        contact,
                        Channel::Email,
                        reason,
                        &actor,
                        recipient.as_str(),
                        &source,
                    )?;
                }
                Ok(false)
            })
        })
        .await
    }
    .await;
    counted(
        &state.metrics,
        location_id,
        result.map(|duplicate| ((), duplicate)),
    )?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"message": "stored"})))
}
