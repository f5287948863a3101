//! Sending from the contact page: a composer per channel the location can
//! send on, each asking the gate first; the server asks it again.

use actix_session::Session;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::session::redirect;
use crate::db::integrations::Integration;
use crate::db::outbound::{self, NewMessage, SendError};
use crate::db::{self, DbError};
use crate::domain::dnd::{Block, Decision, DndState, Origin};
use crate::domain::{Channel, IntegrationStatus};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

const FLASH: &str = "flash";

/// The blocks of a decision in words.
pub fn describe(blocks: &[Block], state: &DndState, channel: Channel) -> Vec<String> {
    blocks
        .iter()
        .map(|b| match b {
            Block::AllChannels => {
                "DND is on for all channels: no message of any kind goes out.".to_string()
            }
            Block::Reason(r) => state
                .reasons(channel)
                .iter()
                .find(|a| a.reason == *r)
                .map(|a| {
                    let text = a.explain();
                    let mut c = text.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| r.label().to_string()),
        })
        .collect()
}

/// One channel of the "Send a message" card.
pub struct Composer {
    pub channel: &'static str,
    pub label: &'static str,
    /// Email asks for a subject.
    pub subject: bool,
    /// Calls show their state only: no dialer here.
    pub call: bool,
    pub blocked: Vec<String>,
}

/// SMS and email get a composer, calls a state line, when their integration
/// is connected.
pub fn composers(state: &DndState, integrations: &[Integration], read_only: bool) -> Vec<Composer> {
    [Channel::Sms, Channel::Email, Channel::Call]
        .into_iter()
        .filter(|c| {
            integrations
                .iter()
                .any(|i| i.channel == *c && i.status == IntegrationStatus::Connected)
        })
        .filter(|_| !read_only)
        .map(|channel| Composer {
            channel: channel.as_str(),
            label: channel.label(),
            subject: channel == Channel::Email,
            call: channel == Channel::Call,
            blocked: match state.decide(channel, Origin::Manual) {
                Decision::Allowed => Vec::new(),
                Decision::Blocked(blocks) => describe(&blocks, state, channel),
                Decision::Unreadable(why) => vec![why],
            },
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct ComposeForm {
    channel: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    subject: String,
}

/// Sends a manual message. A blocked one is recorded as blocked and
/// answered 409 with the reason in words; nothing reaches a provider.
pub async fn send_message(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    CsrfForm(form): CsrfForm<ComposeForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    let (location_id, contact_id) = path.into_inner();
    let VisibleLocation { user, location, .. } = at;
    let channel: Channel = form.channel.parse().map_err(PageError::BadRequest)?;
    if matches!(channel, Channel::Call) {
        return Err(PageError::BadRequest(
            "Calls are placed from your phone system, not from here.".into(),
        ));
    }
    let body = form.body.trim().to_string();
    if body.is_empty() {
        return Err(PageError::BadRequest(
            "The message is empty; write something to send.".into(),
        ));
    }
    crate::domain::message::check_body(&body).map_err(|e| {
        PageError::Unprocessable(format!("Message: {}. Nothing was sent.", e.message))
    })?;
    if user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support does not send messages to contacts. Nothing was sent.".into(),
        ));
    }
    let subject = crate::domain::message::check_subject(Some(&form.subject)).map_err(|e| {
        PageError::Unprocessable(format!("Subject: {}. Nothing was sent.", e.message))
    })?;
    let (message, decision, dnd_state) =
        db::run(&state.pool, move |conn| -> Result<_, PageError> {
            let sent = outbound::send_one(
                conn,
                location.id,
                &NewMessage {
                    contact_id,
                    channel,
                    origin: Origin::Manual,
                    body: &body,
                    subject: subject.as_deref(),
                },
            );
            let (message, decision) = match sent {
                Ok(r) => r,
                Err(SendError::NotFound(_)) => return Err(PageError::NotFound),
                Err(SendError::NoAddress(_)) => {
                    return Err(PageError::BadRequest(format!(
                        "This contact has no {} address to send to.",
                        channel.label()
                    )))
                }
                Err(SendError::Db(e)) => return Err(e.into()),
            };
            // The reasons in words, for a blocked message.
            let dnd_state = match decision {
                Decision::Blocked(_) => crate::db::dnd::load_state(conn, location.id, contact_id)
                    .map_err(DbError::from)?
                    .unwrap_or_default(),
                _ => DndState::default(),
            };
            Ok((message, decision, dnd_state))
        })
        .await?;
    match decision {
        Decision::Allowed => {
            session.insert(
                FLASH,
                format!("{} message queued for sending.", channel.label()),
            )?;
            Ok(redirect(&format!(
                "/locations/{location_id}/contacts/{contact_id}#messages"
            )))
        }
        Decision::Blocked(blocks) => Err(PageError::Conflict(format!(
            "{} The attempt was recorded as blocked (message {}) and nothing was sent.",
            describe(&blocks, &dnd_state, channel).join(" "),
            message.id
        ))),
        Decision::Unreadable(why) => Err(PageError::Conflict(format!(
            "{why}. The attempt was recorded as failed (message {}) and nothing was sent.",
            message.id
        ))),
    }
}
