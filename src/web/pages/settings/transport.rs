//! How SMS and email send: `log`, or the provider's API at an allowed base URL.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, Drafts, TransportDraft, FLASH};
use crate::db::integrations;
use crate::db::{self, DbError};
use crate::domain::integration::{email_sender, sms_sender};
use crate::domain::{Channel, TransportKind};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::pages::session::redirect;
use crate::web::AppState;

/// No `Debug`: it may hold an API key.
#[derive(Deserialize)]
pub struct TransportForm {
    #[serde(default)]
    transport: String,
    #[serde(default)]
    api_base_url: String,
    #[serde(default)]
    sender: String,
    /// Blank keeps the stored key.
    #[serde(default)]
    api_key: String,
}

/// How an SMS or email integration sends: `log` (stays on the machine),
/// or the provider's API at its base URL (blank: the provider's own). A
/// refused form comes back as typed, with why next to it (422).
pub async fn save_transport(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(i64, String)>,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<TransportForm>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel: Channel = channel.parse().map_err(|_| PageError::NotFound)?;
    let location = require_edit(&at)?.clone();
    let expected = match channel {
        Channel::Sms => TransportKind::Twilio,
        Channel::Email => TransportKind::Mailgun,
        _ => {
            return Err(PageError::BadRequest(
                "Only SMS and email integrations send messages from here.".into(),
            ))
        }
    };
    let checked = check(&state, &form, channel, expected, &location.default_region);
    let (transport, base, sender) = match checked {
        Ok(fine) => fine,
        Err(error) => {
            let drafts = Drafts {
                transport: Some(TransportDraft {
                    channel,
                    api_base_url: form.api_base_url.clone(),
                    sender: form.sender.clone(),
                    error: format!("{error} Nothing was changed."),
                }),
                ..Drafts::default()
            };
            return render(&state, &req, &session, at, drafts).await;
        }
    };
    let api_key = form.api_key.trim().to_string();
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let current = integrations::find(conn, location.id, channel)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)?;
        let key = if api_key.is_empty() {
            current.api_key
        } else {
            Some(api_key)
        };
        integrations::set_transport(
            conn,
            location.id,
            channel,
            transport,
            (!base.is_empty()).then_some(base.as_str()),
            key.as_deref(),
            (!sender.is_empty()).then_some(sender.as_str()),
        )
        .map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    session.insert(
        FLASH,
        format!(
            "{} now sends through {}.",
            channel.label(),
            form.transport.trim()
        ),
    )?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}

/// The form as what is stored (transport, base URL, sender), or why not.
fn check(
    state: &AppState,
    form: &TransportForm,
    channel: Channel,
    expected: TransportKind,
    region: &str,
) -> Result<(TransportKind, String, String), String> {
    let transport: TransportKind = match form.transport.trim().parse() {
        Ok(t) if t == TransportKind::Log || t == expected => t,
        _ => {
            return Err(format!(
                "{} sends through \"log\" or \"{}\".",
                channel.label(),
                expected.as_str()
            ))
        }
    };
    let base = form.api_base_url.trim().trim_end_matches('/').to_string();
    // The provider's credentials go with every call to this URL: only an
    // allowed host may be stored.
    if !base.is_empty() {
        state
            .hosts
            .check(&base)
            .map_err(|refused| format!("This API base URL is refused: {refused}."))?;
    }
    let sender = form.sender.trim();
    if sender.is_empty() {
        if transport != TransportKind::Log {
            return Err(format!(
                "Give the sending {} for {}.",
                if channel == Channel::Sms {
                    "number"
                } else {
                    "address"
                },
                expected.as_str()
            ));
        }
        return Ok((transport, base, String::new()));
    }
    // A sending number is stored in E.164 like every number (an
    // alphanumeric sender id stays as written).
    let sender = match channel {
        Channel::Sms => sms_sender(sender, region),
        _ => email_sender(sender),
    }
    .map_err(|e| {
        format!(
            "Sending {}: {}.",
            if channel == Channel::Sms {
                "number"
            } else {
                "address"
            },
            e.message
        )
    })?;
    Ok((transport, base, sender))
}
