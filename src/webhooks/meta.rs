//! Meta: WhatsApp `user_preferences` stop/resume and Messenger
//! `messaging_optins` STOP/RESUME NOTIFICATIONS set and lift
//! `channel_opt_out` on WhatsApp and Facebook.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::Connection;
use serde::Deserialize;

use super::signatures::meta_is_valid;
use super::twilio::header;
use super::{counted, lift_by_contact, read_body, set_reason, Provider, WebhookError};
use crate::db::webhooks::{self as store, NewEvent};
use crate::db::{self, integrations, locations};
use crate::domain::dnd::{Actor, ActorKind, Reason};
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
        locations::find(conn, location_id)?.ok_or(WebhookError::UnknownLocation(location_id))?;
        let mut ok = false;
        for channel in [Channel::Whatsapp, Channel::Facebook] {
            if let Some(i) = integrations::find(conn, location_id, channel)? {
                ok |= i.verify_token.as_deref() == Some(token.as_str());
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

/// One opt-out or resume found in a payload.
struct Signal {
    channel: Channel,
    /// WhatsApp id or page-scoped id.
    who: String,
    stop: bool,
    key: String,
}

fn signals(envelope: &Envelope) -> Result<Vec<Signal>, WebhookError> {
    let mut out = Vec::new();
    for entry in &envelope.entry {
        for change in entry
            .changes
            .iter()
            .filter(|c| c.field == "user_preferences")
        {
            let prefs: Vec<Preference> = serde_json::from_value(
                change
                    .value
                    .get("user_preferences")
                    .cloned()
                    .unwrap_or_default(),
            )
            .map_err(|e| WebhookError::Malformed(format!("user_preferences: {e}")))?;
            for p in prefs {
                let stop = match p.value.as_str() {
                    "stop" => true,
                    "resume" => false,
                    _ => continue,
                };
                out.push(Signal {
                    channel: Channel::Whatsapp,
                    key: format!("wa:{}:{}:{}", p.wa_id, p.timestamp, p.value),
                    who: p.wa_id,
                    stop,
                });
            }
        }
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
            out.push(Signal {
                channel: Channel::Facebook,
                key: format!(
                    "fb:{}:{}:{}",
                    sender.id,
                    m.timestamp,
                    if stop { "stop" } else { "resume" }
                ),
                who: sender.id.clone(),
                stop,
            });
        }
    }
    Ok(out)
}

pub async fn receive_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let signature = header(&req, "X-Hub-Signature-256");
    let result = async {
        let body = read_body(payload).await?;
        let envelope: Envelope = serde_json::from_slice(&body)
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
        db::run(&state.pool, move |conn| {
            let refused = |why: &str| WebhookError::Refused {
                provider: Provider::Meta,
                why: why.to_string(),
            };
            let location = locations::find(conn, location_id)?
                .ok_or(WebhookError::UnknownLocation(location_id))?;
            let integration = integrations::find(conn, location.id, channel)?
                .ok_or(WebhookError::NoIntegration(channel.label()))?;
            let secret = integration
                .secret
                .as_deref()
                .ok_or_else(|| refused("no app secret is set for this integration"))?;
            let signature =
                signature.ok_or_else(|| refused("the X-Hub-Signature-256 header is missing"))?;
            if !meta_is_valid(secret, &body, &signature) {
                return Err(refused("the X-Hub-Signature-256 does not match"));
            }
            let found = signals(&envelope)?;
            let payload = String::from_utf8_lossy(&body).to_string();
            conn.transaction(|conn| -> Result<usize, WebhookError> {
                let mut applied = 0;
                for s in &found {
                    let contact = match s.channel {
                        Channel::Whatsapp => {
                            store::contact_for_whatsapp(conn, location.id, &s.who)?
                        }
                        _ => store::contact_for_facebook(conn, location.id, &s.who)?,
                    };
                    let event = NewEvent {
                        provider: "meta",
                        kind: s.channel.as_str(),
                        key: &s.key,
                        payload: &payload,
                        contact_id: Some(contact.id),
                        outcome: if s.stop { "opt_out" } else { "opt_in" },
                    };
                    if store::record_event(conn, location.id, &event)?.is_none() {
                        continue;
                    }
                    let actor = Actor::new(
                        ActorKind::Contact,
                        Some(contact.id),
                        format!("{} user {}", s.channel.label(), s.who),
                    );
                    if s.stop {
                        set_reason(
                            conn,
                            &contact,
                            s.channel,
                            Reason::ChannelOptOut,
                            &actor,
                            &s.who,
                            &s.key,
                        )?;
                    } else {
                        lift_by_contact(conn, &contact, s.channel, &actor, &s.key, |r| {
                            r == Reason::ChannelOptOut
                        })?;
                    }
                    applied += 1;
                }
                Ok(applied)
            })
        })
        .await
    }
    .await;
    counted(
        &state.metrics,
        location_id,
        result.map(|applied| ((), applied == 0)),
    )?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("EVENT_RECEIVED"))
}
