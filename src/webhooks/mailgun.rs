//! Mailgun events: permanent failures, unsubscribes and spam complaints set
//! email DND on the recipient's address; everything else is recorded only.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::signatures::mailgun_is_valid;
use super::{Provider, WebhookError};
use crate::db::events::{Delivery, ProviderEvent};
use crate::db::webhooks::WebhookContext;
use crate::domain::dnd::{
    mailgun_event_reason, Actor, ActorKind, ConsentEvent, Effect, MailgunEvent, Reason,
};
use crate::domain::{Channel, EmailAddress};

/// How far a signature's timestamp may be from our clock.
const WINDOW_SECONDS: i64 = 5 * 60;

#[derive(Debug, Deserialize)]
struct Payload {
    signature: Signature,
    #[serde(rename = "event-data")]
    event_data: serde_json::Value,
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
    /// When it happened (seconds, with a fraction).
    timestamp: Option<f64>,
}

/// Verifies a Mailgun event (its signature, a timestamp within 5 minutes
/// of ours; the token is remembered by the common path, so a replay is
/// refused) and reads it. The signature is inside the body, so only the
/// envelope is read before it is checked.
pub fn delivery(
    context: &WebhookContext,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Delivery, WebhookError> {
    let refused = |why: &str| WebhookError::Refused {
        provider: Provider::Mailgun,
        why: why.to_string(),
    };
    // The signature is inside the body: one that cannot be read cannot be
    // verified, and is refused like a bad signature (a 400 before the
    // check would tell an unsigned caller the location uses Mailgun).
    let parsed: Payload = serde_json::from_slice(body)
        .map_err(|e| refused(&format!("the body could not be verified: {e}")))?;
    let key = context
        .integration(Channel::Email, "mailgun")
        .ok_or(WebhookError::NoIntegration(
            Provider::Mailgun,
            "Mailgun email",
        ))?
        .secret
        .as_deref()
        .ok_or_else(|| refused("no signing key is set for this integration"))?;
    let sig = &parsed.signature;
    let timestamp = match &sig.timestamp {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(refused("signature.timestamp is not a number")),
    };
    if !mailgun_is_valid(key, &timestamp, &sig.token, &sig.signature) {
        return Err(refused("the signature does not match"));
    }
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| WebhookError::Malformed("signature.timestamp is not a number".into()))?;
    // abs_diff: a timestamp near i64::MIN must not overflow the check.
    if received_at.timestamp().abs_diff(seconds) > WINDOW_SECONDS.unsigned_abs() {
        return Err(refused(
            "the signature's timestamp is more than 5 minutes off",
        ));
    }
    let mut event: EventData = serde_json::from_value(parsed.event_data)
        .map_err(|e| WebhookError::Malformed(format!("event-data: {e}")))?;
    // Verified as sent; a NUL (`\u0000`, which no text column stores) is
    // dropped from what is stored, as Twilio's are, so a signed event that
    // carries one still counts instead of failing the batch with a 500.
    event.event.retain(|c| c != '\0');
    event.id.retain(|c| c != '\0');
    let reason = mailgun_event_reason(MailgunEvent {
        event: &event.event,
        severity: event.severity.as_deref(),
        reason: event.reason.as_deref(),
    });
    let recipient = match (&event.recipient, reason) {
        (Some(r), _) => Some(
            EmailAddress::parse(r)
                .map_err(|e| WebhookError::Malformed(format!("recipient: {}", e.message)))?,
        ),
        (None, Some(_)) => {
            return Err(WebhookError::Malformed(
                "event-data.recipient is missing".into(),
            ))
        }
        (None, None) => None,
    };
    let occurred_at = event
        .timestamp
        .filter(|t| t.is_finite())
        .and_then(|t| Utc.timestamp_micros((t * 1_000_000.0) as i64).single());
    let consent = match (&recipient, reason) {
        (Some(r), Some(reason)) => Some(ConsentEvent::new(
            Channel::Email,
            r.as_str().to_string(),
            Effect::Set(reason),
            Actor::new(ActorKind::Provider, None, "Mailgun"),
            occurred_at,
            received_at,
            format!("{} {}", event.event, event.id),
        )),
        _ => None,
    };
    Ok(Delivery {
        location_id: context.location.id,
        nonce: Some(sig.token.replace('\0', "")),
        events: vec![ProviderEvent {
            provider: Provider::Mailgun.as_str(),
            kind: event.event.clone(),
            key: event.id.clone(),
            payload: String::from_utf8_lossy(body).to_string(),
            channel: Channel::Email,
            address: recipient.map(EmailAddress::into_inner),
            consent,
            outcome: reason.map(Reason::as_str).unwrap_or("recorded"),
            inbound: None,
            status: None,
        }],
    })
}
