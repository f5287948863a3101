//! Hands queued messages to their transports, and turns the providers'
//! DND-meaning errors into DND on the spot.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use diesel::Connection;

use super::hosts::HostPolicy;
use super::transport::{self, Outcome, Outgoing, Transport, MAILGUN_API, META_API, TWILIO_API};
use crate::db::events::{self, Delivery, ProviderEvent};
use crate::db::integrations::Integration;
use crate::db::outbound::{self, HandOver, Outbound};
use crate::db::{self, DbError, DbPool};
use crate::domain::address::canonical_spelling;
use crate::domain::dnd::{
    twilio_error_reason, whatsapp_error_reason, Actor, ActorKind, ConsentEvent, Effect,
};
use crate::domain::{Channel, TransportKind};

/// Messages claimed per round: few, so the gate's last word (asked again
/// right before each provider call) is never far behind.
const BATCH: i64 = 10;
/// Transient failures are retried this many times in all.
pub const MAX_ATTEMPTS: i32 = 5;
/// A message left `sending` this long is settled by
/// [`outbound::reconcile_stuck`] (well past the HTTP client's timeout).
pub const STUCK_AFTER_SECS: i64 = 300;

/// The delivery loop's parts.
#[derive(Clone)]
pub struct Dispatcher {
    pub pool: DbPool,
    /// Where Twilio's status callbacks should come back to.
    pub public_url: Option<String>,
    pub client: reqwest::Client,
    /// Where provider credentials may be sent.
    pub hosts: HostPolicy,
}

impl Dispatcher {
    pub fn new(
        pool: DbPool,
        public_url: Option<String>,
        hosts: HostPolicy,
    ) -> Result<Self, reqwest::Error> {
        Ok(Dispatcher {
            pool,
            public_url,
            client: hosts.client()?,
            hosts,
        })
    }

    /// Runs on the current actix system until `stop` turns true: a round
    /// whenever the last one found work, else every half second; stuck
    /// messages are looked for every minute. On stop it finishes the
    /// message in hand (a provider call is never cut off halfway) and
    /// hands the rest of its claim back.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        actix_web::rt::spawn(async move {
            let mut stop = stop;
            let mut last_sweep = std::time::Instant::now();
            while !*stop.borrow() {
                if last_sweep.elapsed() > Duration::from_secs(60) {
                    last_sweep = std::time::Instant::now();
                    if let Err(e) = self
                        .reconcile(chrono::Duration::seconds(STUCK_AFTER_SECS))
                        .await
                    {
                        tracing::warn!(error = %e, "looking for stuck messages failed");
                    }
                }
                match self.run_until(&stop).await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "dispatcher round failed"),
                }
                tokio::select! {
                    _ = actix_web::rt::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
            }
            tracing::info!("the dispatcher stopped");
        })
    }

    /// Settles messages left `sending` longer than `after`.
    pub async fn reconcile(
        &self,
        after: chrono::Duration,
    ) -> Result<outbound::Reconciled, DbError> {
        let found = db::run(&self.pool, move |conn| {
            outbound::reconcile_stuck(conn, after).map_err(DbError::from)
        })
        .await?;
        if found != outbound::Reconciled::default() {
            tracing::warn!(
                requeued = found.requeued,
                unknown = found.unknown,
                "settled messages left sending"
            );
        }
        Ok(found)
    }

    /// One round: claim a few, and for each ask the gate again, send and
    /// record. Returns how many were claimed. A failure with one message is
    /// logged and never keeps the others from being sent or recorded.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let (_never, running) = watch::channel(false);
        self.run_until(&running).await
    }

    /// [`Dispatcher::run_once`], stopping between messages once `stop`
    /// turns true; the messages not reached are handed back.
    async fn run_until(&self, stop: &watch::Receiver<bool>) -> Result<usize, DbError> {
        let claimed = db::run(&self.pool, |conn| outbound::claim(conn, BATCH)).await?;
        let n = claimed.len();
        let mut claimed = claimed.into_iter();
        for m in claimed.by_ref() {
            let (location_id, id) = (m.location_id, m.id);
            if let Err(e) = self.deliver(m).await {
                tracing::error!(location_id, message_id = id, error = %e, "a message could not be delivered or recorded");
            }
            if *stop.borrow() {
                break;
            }
        }
        let rest: Vec<(i64, i64)> = claimed.map(|m| (m.location_id, m.id)).collect();
        if !rest.is_empty() {
            db::run(&self.pool, move |conn| -> Result<(), DbError> {
                for (location_id, id) in rest {
                    outbound::release_claim(conn, location_id, id)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(n)
    }

    /// Hands one claimed message over: the gate once more, then the
    /// provider, then the outcome recorded.
    pub async fn deliver(&self, m: Outbound) -> Result<(), DbError> {
        let checked = m.clone();
        let decided = db::run(&self.pool, move |conn| outbound::hand_over(conn, &checked)).await?;
        let integration = match decided {
            HandOver::Send(integration) => *integration,
            HandOver::Blocked(_) | HandOver::Failed(_) | HandOver::Gone => return Ok(()),
        };
        let outcome = match self.transport_for(&m, &integration) {
            Ok(t) => {
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
        self.record(m, integration.transport, outcome).await
    }

    fn transport_for(&self, m: &Outbound, i: &Integration) -> Result<Transport, String> {
        let need = |v: &Option<String>, what: &str| {
            v.clone()
                .ok_or_else(|| format!("the integration has no {what}"))
        };
        // A URL stored before hosts were checked, or an operator's list
        // that shrank: the credentials do not leave for a host not allowed.
        let allowed = |default: &str| -> Result<String, String> {
            let base = i.api_base_url.clone().unwrap_or_else(|| default.into());
            self.hosts
                .check(&base)
                .map(|_| base)
                .map_err(|why| format!("not sent: the integration's API URL is refused: {why}"))
        };
        Ok(match i.transport {
            TransportKind::Twilio => Transport::Twilio {
                base_url: allowed(TWILIO_API)?,
                account_sid: need(&i.account, "Twilio account SID")?,
                auth_token: need(&i.secret, "Twilio auth token")?,
                from: need(&i.sender, "sending number")?,
                status_callback: self.status_callback(i, m.id),
            },
            TransportKind::Mailgun => Transport::Mailgun {
                base_url: allowed(MAILGUN_API)?,
                domain: need(&i.account, "Mailgun domain")?,
                api_key: need(&i.api_key, "Mailgun API key")?,
                from: need(&i.sender, "sending address")?,
            },
            TransportKind::Meta if i.channel == Channel::Whatsapp => Transport::WhatsApp {
                base_url: allowed(META_API)?,
                phone_number_id: need(&i.account, "WhatsApp phone number id")?,
                access_token: need(&i.api_key, "Meta access token")?,
            },
            TransportKind::Meta if i.channel == Channel::Facebook => Transport::Messenger {
                base_url: allowed(META_API)?,
                page_id: need(&i.account, "Facebook page id")?,
                access_token: need(&i.api_key, "Meta access token")?,
            },
            TransportKind::Meta => {
                return Err(format!(
                    "not sent: Meta does not send on {}",
                    i.channel.label()
                ))
            }
            TransportKind::Log => Transport::Log,
        })
    }

    /// Where Twilio reports on this message: our id rides along, so the
    /// report finds the message even before its SID is recorded.
    fn status_callback(&self, i: &Integration, message_id: i64) -> Option<String> {
        self.public_url.as_ref().map(|base| {
            format!(
                "{}/webhooks/twilio/{}/status?m={message_id}",
                base.trim_end_matches('/'),
                i.location_id
            )
        })
    }

    async fn record(
        &self,
        m: Outbound,
        transport: TransportKind,
        outcome: Outcome,
    ) -> Result<(), DbError> {
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
                Outcome::Unknown(why) => outbound::mark_unknown(conn, m.location_id, m.id, &why)?,
                Outcome::Rejected { code, message } => {
                    let channel: Option<Channel> = m.channel.parse().ok();
                    let reason = match (channel, code) {
                        (Some(Channel::Sms), Some(code)) => twilio_error_reason(code),
                        (Some(Channel::Whatsapp), Some(code)) => whatsapp_error_reason(code),
                        _ => None,
                    };
                    conn.transaction(|conn| -> Result<(), DbError> {
                        outbound::mark_failed(conn, m.location_id, m.id, code, &message)?;
                        // The error is about the address the message went
                        // to: the reason is kept there (as providers spell
                        // it), through the path every provider event takes.
                        if let (Some(channel), Some(reason), Some(to)) =
                            (channel, reason, m.to_address.as_deref())
                        {
                            let to = canonical_spelling(channel, to);
                            let to = to.as_str();
                            let key = format!("send:{}:{}", m.id, m.attempts);
                            let consent = ConsentEvent::new(
                                channel,
                                to.to_string(),
                                Effect::Set(reason),
                                Actor::new(ActorKind::Provider, None, "send API error"),
                                None,
                                Utc::now(),
                                format!("message {} error {}", m.id, code.unwrap_or_default()),
                            );
                            events::apply(
                                conn,
                                &[Delivery {
                                    location_id: m.location_id,
                                    nonce: None,
                                    events: vec![ProviderEvent {
                                        provider: transport.as_str(),
                                        kind: "send_error".into(),
                                        key,
                                        payload: message.clone(),
                                        channel,
                                        address: Some(to.to_string()),
                                        consent: Some(consent),
                                        outcome: reason.as_str(),
                                        inbound: None,
                                        status: None,
                                    }],
                                }],
                            )?;
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
