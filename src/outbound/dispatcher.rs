//! Hands queued messages to their transports, and turns the providers'
//! DND-meaning errors into DND on the spot.

use std::time::Duration;

use chrono::Utc;

use super::transport::{self, Outcome, Outgoing, Transport, MAILGUN_API, TWILIO_API};
use crate::db::integrations::Integration;
use crate::db::outbound::{self, Claimed};
use crate::db::{self, dnd as dnd_store, DbError, DbPool};
use crate::domain::dnd::{twilio_error_reason, whatsapp_error_reason, Actor, ActorKind};
use crate::domain::Channel;

/// Messages claimed per round.
const BATCH: i64 = 50;
/// Transient failures are retried this many times in all.
pub const MAX_ATTEMPTS: i32 = 5;

/// The delivery loop's parts.
#[derive(Clone)]
pub struct Dispatcher {
    pub pool: DbPool,
    /// Where Twilio's status callbacks should come back to.
    pub public_url: Option<String>,
    pub client: reqwest::Client,
}

impl Dispatcher {
    pub fn new(pool: DbPool, public_url: Option<String>) -> Self {
        Dispatcher {
            pool,
            public_url,
            client: transport::client(),
        }
    }

    /// Runs forever on the current actix system: a round whenever the last
    /// one found work, else every half second.
    pub fn spawn(self) {
        actix_web::rt::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "dispatcher round failed"),
                }
                actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// One round: claim, send, record. Returns how many were handed over.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let claimed = db::run(&self.pool, |conn| outbound::claim(conn, BATCH)).await?;
        let n = claimed.len();
        for c in claimed {
            let outcome = match self.transport_for(&c) {
                Ok(t) => {
                    let m = &c.message;
                    let outgoing = Outgoing {
                        idempotency_key: format!("dnd-{}-{}", m.location_id, m.id),
                        to: m.to_address.clone().unwrap_or_default(),
                        body: m.body.clone(),
                        subject: m.subject.clone(),
                    };
                    transport::send(&self.client, &t, &outgoing).await
                }
                Err(why) => Outcome::Rejected {
                    code: None,
                    message: why,
                },
            };
            self.record(c, outcome).await?;
        }
        Ok(n)
    }

    fn transport_for(&self, c: &Claimed) -> Result<Transport, String> {
        let Some(i) = &c.integration else {
            return Err(format!(
                "this location has no {} integration",
                c.message.channel
            ));
        };
        let need = |v: &Option<String>, what: &str| {
            v.clone()
                .ok_or_else(|| format!("the integration has no {what}"))
        };
        Ok(match i.transport.as_str() {
            "twilio" => Transport::Twilio {
                base_url: i.api_base_url.clone().unwrap_or_else(|| TWILIO_API.into()),
                account_sid: need(&i.account, "Twilio account SID")?,
                auth_token: need(&i.secret, "Twilio auth token")?,
                from: need(&i.sender, "sending number")?,
                status_callback: self.status_callback(i),
            },
            "mailgun" => Transport::Mailgun {
                base_url: i.api_base_url.clone().unwrap_or_else(|| MAILGUN_API.into()),
                domain: need(&i.account, "Mailgun domain")?,
                api_key: need(&i.api_key, "Mailgun API key")?,
                from: need(&i.sender, "sending address")?,
            },
            _ => Transport::Log,
        })
    }

    fn status_callback(&self, i: &Integration) -> Option<String> {
        self.public_url.as_ref().map(|base| {
            format!(
                "{}/webhooks/twilio/{}/status",
                base.trim_end_matches('/'),
                i.location_id
            )
        })
    }

    async fn record(&self, c: Claimed, outcome: Outcome) -> Result<(), DbError> {
        let m = c.message;
        db::run(&self.pool, move |conn| -> Result<(), DbError> {
            match outcome {
                Outcome::Sent { provider_sid } => {
                    outbound::mark_sent(conn, m.location_id, m.id, &provider_sid)?
                }
                Outcome::Transient(why) if m.attempts < MAX_ATTEMPTS => {
                    // 2, 4, 8, 16 s: enough for a provider's hiccup.
                    let delay = chrono::Duration::seconds(1 << m.attempts.clamp(1, 10));
                    outbound::requeue(conn, m.location_id, m.id, delay, &why)?
                }
                Outcome::Transient(why) => {
                    outbound::mark_failed(conn, m.location_id, m.id, None, &why)?
                }
                Outcome::Rejected { code, message } => {
                    let channel: Option<Channel> = m.channel.parse().ok();
                    let reason = match (channel, code) {
                        (Some(Channel::Sms), Some(code)) => twilio_error_reason(code),
                        (Some(Channel::Whatsapp), Some(code)) => whatsapp_error_reason(code),
                        _ => None,
                    };
                    use diesel::Connection;
                    conn.transaction(|conn| -> Result<(), DbError> {
                        outbound::mark_failed(conn, m.location_id, m.id, code, &message)?;
                        if let (Some(channel), Some(reason)) = (channel, reason) {
                            let actor = Actor::new(ActorKind::Provider, None, "send API error");
                            let address = m.to_address.clone();
                            let source =
                                format!("message {} error {}", m.id, code.unwrap_or_default());
                            let now = Utc::now();
                            match dnd_store::apply_within(conn, m.location_id, m.contact_id, |s| {
                                s.set(channel, reason, &actor, now, address, Some(source))
                            }) {
                                Ok(_) | Err(dnd_store::DndError::Refused(_)) => {}
                                Err(dnd_store::DndError::NotFound) => {}
                                Err(dnd_store::DndError::Db(e)) => return Err(e),
                            }
                        }
                        Ok(())
                    })?
                }
            }
            Ok(())
        })
        .await
    }
}
