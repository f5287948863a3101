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
use crate::domain::message::sms_size;
use crate::domain::{Channel, IntegrationStatus};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

/// The blocks of a decision in words.
/// Dates are the location's (`zone`).
pub fn describe(
    blocks: &[Block],
    state: &DndState,
    channel: Channel,
    zone: crate::domain::local_time::Zone,
) -> Vec<String> {
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
                    let text = a.explain(zone);
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
    /// What was typed, when a send was refused and the page shown again.
    pub subject_text: String,
    pub body_text: String,
    /// Why it was refused: the field (`body` or `subject`) and the words.
    pub error: Option<(&'static str, String)>,
    /// SMS: the body's characters and segments in words ("42 characters ·
    /// 1 SMS segment (GSM-7)"), which `compose.js` keeps up to date.
    pub sms_size: Option<String>,
}

impl Composer {
    /// Counts the body again (after a refused message is put back).
    pub fn count(&mut self) {
        if self.sms_size.is_some() {
            self.sms_size = Some(sms_size(&self.body_text).describe());
        }
    }

    /// The ids of the notes that say why the composer is closed, for the
    /// Send button's `aria-describedby`.
    pub fn blocked_ids(&self) -> String {
        (0..self.blocked.len())
            .map(|i| format!("blocked-{}-{i}", self.channel))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What the body field is described by: the SMS counter and hint, and
    /// the refusal when it is about the body.
    pub fn body_described_by(&self) -> String {
        let mut ids = Vec::new();
        if self.error_for("body").is_some() {
            ids.push(format!("body-error-{}", self.channel));
        }
        if self.sms_size.is_some() {
            ids.push(format!("count-{}", self.channel));
            ids.push(format!("count-hint-{}", self.channel));
        }
        ids.join(" ")
    }

    /// The refusal's words when they are about `field`.
    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, e)| e.as_str())
    }
}

/// SMS and email get a composer, calls a state line, when their integration
/// is connected.
pub fn composers(
    state: &DndState,
    integrations: &[Integration],
    read_only: bool,
    zone: crate::domain::local_time::Zone,
) -> Vec<Composer> {
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
                Decision::Blocked(blocks) => describe(&blocks, state, channel, zone),
                Decision::Unreadable(why) => vec![why],
            },
            subject_text: String::new(),
            body_text: String::new(),
            error: None,
            sms_size: (channel == Channel::Sms).then(|| sms_size("").describe()),
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

/// What the composer refuses before anything is recorded: the field and
/// why. A message of spaces only is empty; an email needs a subject.
fn check(
    form: &ComposeForm,
    channel: Channel,
) -> Result<(String, Option<String>), (&'static str, String)> {
    let body = form.body.trim().to_string();
    if body.is_empty() {
        return Err((
            "body",
            "The message is empty (spaces and line breaks do not count); write something to send. Nothing was sent.".into(),
        ));
    }
    crate::domain::message::check_body(&body)
        .map_err(|e| ("body", format!("Message: {}. Nothing was sent.", e.message)))?;
    let subject = crate::domain::message::check_subject(Some(&form.subject)).map_err(|e| {
        (
            "subject",
            format!("Subject: {}. Nothing was sent.", e.message),
        )
    })?;
    if channel == Channel::Email && subject.is_none() {
        return Err((
            "subject",
            "An email needs a subject (spaces do not count): write one. Nothing was sent.".into(),
        ));
    }
    Ok((body, subject))
}

/// Sends a manual message. A blocked one is recorded as blocked and
/// answered 409 with the reason in words; nothing reaches a provider. A
/// message that cannot be sent as typed (empty, too long) comes back in its
/// composer, as typed, with why next to the field (422).
pub async fn send_message(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    CsrfForm(form): CsrfForm<ComposeForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    let (location_id, contact_id) = path.into_inner();
    let channel: Channel = form.channel.parse().map_err(PageError::BadRequest)?;
    if matches!(channel, Channel::Call) {
        return Err(PageError::BadRequest(
            "Calls are placed from your phone system, not from here.".into(),
        ));
    }
    if at.user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support does not send messages to contacts. Nothing was sent.".into(),
        ));
    }
    let (body, subject) = match check(&form, channel) {
        Ok(checked) => checked,
        Err((field, error)) => {
            let draft = super::contacts::ComposeDraft {
                channel,
                subject: form.subject,
                body: form.body,
                field,
                error,
            };
            return again(&state, &session, contact_id, at, draft).await;
        }
    };
    let location = at.location.clone();
    let sent_body = body.clone();
    let sent_subject = subject.clone();
    let outcome = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let sent = outbound::send_one(
            conn,
            location.id,
            &NewMessage {
                contact_id,
                channel,
                origin: Origin::Manual,
                body: &sent_body,
                subject: sent_subject.as_deref(),
            },
        );
        let (message, decision) = match sent {
            Ok(r) => r,
            Err(SendError::NotFound(_)) => return Err(PageError::NotFound),
            Err(SendError::NoAddress(_)) => return Ok(None),
            Err(SendError::Db(e)) => return Err(e.into()),
        };
        // The reasons in words, for a blocked message.
        let dnd_state = match decision {
            Decision::Blocked(_) => crate::db::dnd::load_state(conn, location.id, contact_id)
                .map_err(DbError::from)?
                .unwrap_or_default(),
            _ => DndState::default(),
        };
        Ok(Some((message, decision, dnd_state)))
    })
    .await?;
    let Some((message, decision, dnd_state)) = outcome else {
        let draft = super::contacts::ComposeDraft {
            channel,
            error: format!(
                "This contact has no {} address to send to: add one on the contact first. Nothing was sent.",
                channel.label()
            ),
            subject: subject.unwrap_or_default(),
            body,
            field: "body",
        };
        return again(&state, &session, contact_id, at, draft).await;
    };
    match decision {
        Decision::Allowed => {
            super::dnd::set_flash_in(
                &session,
                super::dnd::Placed::Send,
                format!(
                    "{} message queued for sending. It is on the timeline below.",
                    channel.label()
                ),
            )?;
            Ok(redirect(&format!(
                "/locations/{location_id}/contacts/{contact_id}#{}",
                super::dnd::Placed::Send.fragment()
            )))
        }
        Decision::Blocked(blocks) => Err(PageError::Conflict(format!(
            "{} The attempt was recorded as blocked (message {}) and nothing was sent.",
            describe(&blocks, &dnd_state, channel, at.location.zone()).join(" "),
            message.id
        ))),
        Decision::Unreadable(why) => Err(PageError::Conflict(format!(
            "{why}. The attempt was recorded as failed (message {}) and nothing was sent.",
            message.id
        ))),
    }
}

/// The contact's page again, the refused message in its composer (422).
async fn again(
    state: &AppState,
    session: &Session,
    contact_id: i64,
    at: VisibleLocation,
    draft: super::contacts::ComposeDraft,
) -> Result<HttpResponse, PageError> {
    let page = super::contacts::contact_page(state, session, contact_id, at, Some(draft)).await?;
    super::html(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, &page)
}
