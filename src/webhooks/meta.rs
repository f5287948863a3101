//! Meta: WhatsApp `user_preferences` stop/resume and Messenger
//! `messaging_optins` STOP/RESUME NOTIFICATIONS set and lift
//! `channel_opt_out` on the WhatsApp number or the page-scoped id.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::signatures::meta_is_valid;
use super::{Provider, WebhookError};
use crate::db::events::{Delivery, ProviderEvent};
use crate::db::webhooks::WebhookContext;
use crate::db::{self, integrations, locations};
use crate::domain::address;
use crate::domain::dnd::{Actor, ActorKind, ConsentEvent, Effect, Reason};
use crate::domain::Channel;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake: echo the challenge when the verify token
/// is the one set on the location's WhatsApp or Facebook integration.
pub async fn verify_subscription(
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<Handshake>,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let Handshake {
        mode,
        verify_token,
        challenge,
    } = query.into_inner();
    let (Some("subscribe"), Some(token), Some(challenge)) =
        (mode.as_deref(), verify_token, challenge)
    else {
        return Err(WebhookError::Malformed(
            "expected hub.mode=subscribe, hub.verify_token and hub.challenge".into(),
        ));
    };
    let matches = db::run(&state.pool, move |conn| -> Result<bool, WebhookError> {
        locations::find(conn, location_id)?
            .ok_or(WebhookError::UnknownLocation(Provider::Meta, location_id))?;
        let mut ok = false;
        for channel in [Channel::Whatsapp, Channel::Facebook] {
            if let Some(i) = integrations::find(conn, location_id, channel)? {
                // Compared in constant time: a timing difference would
                // let the token be guessed a character at a time.
                ok |= i.verify_token.as_deref().is_some_and(|stored| {
                    crate::web::auth::constant_time_eq(stored.as_bytes(), token.as_bytes())
                });
            }
        }
        Ok(ok)
    })
    .await?;
    if matches {
        Ok(HttpResponse::Ok()
            .content_type("text/plain")
            .body(challenge))
    } else {
        Err(WebhookError::Refused {
            provider: Provider::Meta,
            why: "the verify token does not match".into(),
        })
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
    #[serde(default)]
    messaging: Vec<Messaging>,
}

#[derive(Debug, Deserialize)]
struct Change {
    field: String,
    #[serde(default)]
    value: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Preference {
    wa_id: String,
    value: String,
    #[serde(default)]
    timestamp: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Messaging {
    sender: Option<Party>,
    #[serde(default)]
    timestamp: serde_json::Value,
    optin: Option<Optin>,
}

#[derive(Debug, Deserialize)]
struct Party {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Optin {
    #[serde(rename = "type")]
    kind: Option<String>,
    notification_messages_status: Option<String>,
}

/// A Meta time: WhatsApp sends seconds, Messenger milliseconds, as a
/// number or a string.
fn meta_time(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    let n: i64 = match value {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    if n > 100_000_000_000 {
        Utc.timestamp_millis_opt(n).single()
    } else {
        Utc.timestamp_opt(n, 0).single()
    }
}

/// Verifies a Meta webhook and reads its opt-outs and resumes. The body
/// must be signed with the app secret of the integration its `object` is
/// about, and only that object's signals are read: a request signed with
/// the Messenger app's secret cannot speak for WhatsApp users.
pub fn delivery(
    context: &WebhookContext,
    body: &[u8],
    signature: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<Delivery, WebhookError> {
    let refused = |why: &str| WebhookError::Refused {
        provider: Provider::Meta,
        why: why.to_string(),
    };
    let signature =
        signature.ok_or_else(|| refused("the X-Hub-Signature-256 header is missing"))?;
    let integrations: Vec<(Channel, Option<&str>)> = [Channel::Whatsapp, Channel::Facebook]
        .into_iter()
        .filter_map(|c| {
            context
                .integration(c, "meta")
                .map(|i| (c, i.secret.as_deref()))
        })
        .collect();
    if integrations.is_empty() {
        return Err(WebhookError::NoIntegration(
            Provider::Meta,
            "WhatsApp or Facebook",
        ));
    }
    // The channels whose app secret signed this very body.
    let signed_for: Vec<Channel> = integrations
        .iter()
        .filter(|(_, secret)| secret.is_some_and(|s| meta_is_valid(s, body, signature)))
        .map(|(c, _)| *c)
        .collect();
    if signed_for.is_empty() {
        return Err(refused("the X-Hub-Signature-256 does not match"));
    }
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("the body is not a Meta webhook: {e}")))?;
    let channel = match envelope.object.as_str() {
        "whatsapp_business_account" => Channel::Whatsapp,
        "page" => Channel::Facebook,
        other => {
            return Err(WebhookError::Malformed(format!(
                "unsupported object \"{other}\""
            )))
        }
    };
    if !signed_for.contains(&channel) {
        return Err(refused(&format!(
            "the body is about {} but is not signed with that integration's app secret",
            channel.label()
        )));
    }
    let payload = String::from_utf8_lossy(body).to_string();
    // Without Meta's time, a signal's key is the delivery it came in (a
    // retry repeats the body byte for byte) and its place in it, so a
    // second STOP after a RESUME is never taken for a retry of the first.
    let body_digest = &hex::encode(Sha256::digest(body))[..16];
    let region = &context.location.default_region;
    let mut events = Vec::new();
    // Signals that cannot be read: the others in the delivery still count.
    let mut unreadable: Vec<String> = Vec::new();
    // A resume without Meta's time cannot be ordered against the person's
    // other signals (a retry of it, batched differently, would look new and
    // could lift a later stop): it is not applied, and said in the log.
    let mut untimed_resumes = 0usize;
    let untimed_resume = |stop: bool, time: &serde_json::Value| !stop && meta_time(time).is_none();
    let mut signal =
        |channel: Channel, raw_id: &str, address: String, stop: bool, time: &serde_json::Value| {
            let value = if stop { "stop" } else { "resume" };
            let prefix = if channel == Channel::Whatsapp {
                "wa"
            } else {
                "fb"
            };
            let key = if time.is_null() {
                format!(
                    "{prefix}:{raw_id}:body-{body_digest}-{}:{value}",
                    events.len()
                )
            } else {
                format!("{prefix}:{raw_id}:{time}:{value}")
            };
            events.push(ProviderEvent {
                provider: Provider::Meta.as_str(),
                kind: channel.as_str().into(),
                consent: Some(ConsentEvent::new(
                    channel,
                    address.clone(),
                    if stop {
                        Effect::Set(Reason::ChannelOptOut)
                    } else {
                        Effect::OptIn
                    },
                    Actor::new(
                        ActorKind::Contact,
                        None,
                        format!("{} user {raw_id}", channel.label()),
                    ),
                    meta_time(time),
                    received_at,
                    key.clone(),
                )),
                key,
                payload: payload.clone(),
                channel,
                address: Some(address),
                outcome: if stop { "opt_out" } else { "opt_in" },
                inbound: None,
                status: None,
            });
        };
    for entry in &envelope.entry {
        if channel == Channel::Whatsapp {
            for change in entry
                .changes
                .iter()
                .filter(|c| c.field == "user_preferences")
            {
                let items = match change.value.get("user_preferences") {
                    Some(serde_json::Value::Array(items)) => items.as_slice(),
                    _ => {
                        unreadable.push("user_preferences is not a list".into());
                        continue;
                    }
                };
                for item in items {
                    let p: Preference = match serde_json::from_value(item.clone()) {
                        Ok(p) => p,
                        Err(e) => {
                            unreadable.push(format!("user_preferences: {e}"));
                            continue;
                        }
                    };
                    let stop = match p.value.as_str() {
                        "stop" => true,
                        "resume" => false,
                        _ => continue,
                    };
                    if untimed_resume(stop, &p.timestamp) {
                        untimed_resumes += 1;
                        continue;
                    }
                    match address::whatsapp_id(&p.wa_id, region) {
                        Ok(number) => {
                            signal(Channel::Whatsapp, &p.wa_id, number, stop, &p.timestamp)
                        }
                        Err(e) => unreadable.push(format!("wa_id: {}", e.message)),
                    }
                }
            }
        } else {
            for m in &entry.messaging {
                let (Some(sender), Some(optin)) = (&m.sender, &m.optin) else {
                    continue;
                };
                if optin.kind.as_deref() != Some("notification_messages") {
                    continue;
                }
                let stop = match optin.notification_messages_status.as_deref() {
                    Some("STOP NOTIFICATIONS") => true,
                    Some("RESUME NOTIFICATIONS") => false,
                    _ => continue,
                };
                if untimed_resume(stop, &m.timestamp) {
                    untimed_resumes += 1;
                    continue;
                }
                match address::platform_id("sender.id", &sender.id) {
                    Ok(psid) => signal(Channel::Facebook, &sender.id, psid, stop, &m.timestamp),
                    Err(e) => unreadable.push(e.to_string()),
                }
            }
        }
    }
    if untimed_resumes > 0 {
        tracing::warn!(
            location_id = context.location.id,
            untimed_resumes,
            "a Meta webhook carried resumes without a timestamp; they are not applied"
        );
    }
    if !unreadable.is_empty() {
        if events.is_empty() {
            return Err(WebhookError::Malformed(unreadable.join("; ")));
        }
        tracing::warn!(
            location_id = context.location.id,
            skipped = %unreadable.join("; "),
            "a Meta webhook carried signals that cannot be read; the others are stored"
        );
    }
    Ok(Delivery {
        location_id: context.location.id,
        events,
        nonce: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_times_are_seconds_or_milliseconds() {
        let s = meta_time(&serde_json::json!(1_700_000_000)).unwrap();
        let ms = meta_time(&serde_json::json!(1_700_000_000_123u64)).unwrap();
        assert_eq!(s.timestamp(), 1_700_000_000);
        assert_eq!(ms.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(meta_time(&serde_json::json!("1700000000")).unwrap(), s);
        assert!(meta_time(&serde_json::json!(null)).is_none());
    }
}
