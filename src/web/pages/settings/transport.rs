//! How SMS and email send: `log`, or the provider's API at an allowed base URL.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, TransportDraft, FLASH};
use crate::db::integrations;
use crate::db::{self, DbError};
use crate::domain::{Channel, PhoneNumber, TransportKind};
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
/// or the provider's API at its base URL (blank: the provider's own).
pub async fn save_transport(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(i64, String)>,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<TransportForm>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel: Channel = channel.parse().map_err(PageError::BadRequest)?;
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
    let transport: TransportKind = match form.transport.trim().parse() {
        Ok(t) if t == TransportKind::Log || t == expected => t,
        _ => {
            return Err(PageError::BadRequest(format!(
                "{} sends through \"log\" or \"{}\". Nothing was changed.",
                channel.label(),
                expected.as_str()
            )))
        }
    };
    let base = form.api_base_url.trim().trim_end_matches('/').to_string();
    let sender = form.sender.trim().to_string();
    // The provider's credentials go with every call to this URL: only an
    // allowed host may be stored.
    if !base.is_empty() {
        if let Err(refused) = state.hosts.check(&base) {
            let draft = TransportDraft {
                channel,
                api_base_url: form.api_base_url.clone(),
                sender: sender.clone(),
                error: format!("This API base URL is refused: {refused}. Nothing was changed."),
            };
            return render(&state, &req, &session, at, None, Some(draft)).await;
        }
    }
    if transport != TransportKind::Log && sender.is_empty() {
        return Err(PageError::BadRequest(format!(
            "Give the sending {} for {}. Nothing was changed.",
            if channel == Channel::Sms {
                "number"
            } else {
                "address"
            },
            expected.as_str()
        )));
    }
    let api_key = form.api_key.trim().to_string();
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        // A sending number is stored in E.164 like every number (an
        // alphanumeric sender id stays as written).
        let sender = match PhoneNumber::parse(&sender, &location.default_region) {
            Ok(number) if channel == Channel::Sms => number.into_inner(),
            _ => sender,
        };
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
