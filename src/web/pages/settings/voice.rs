//! What a call to the location gets when the caller has no inbound call
//! DND: forwarded to a number, or a spoken message.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, Drafts, VoiceDraft, FLASH};
use crate::db::inbound::{self, VoiceSettings};
use crate::db::{self, DbError};
use crate::domain::PhoneNumber;
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::pages::session::redirect;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct VoiceForm {
    #[serde(default)]
    forward_to: String,
    #[serde(default)]
    message: String,
}

/// Saves the calls settings (agency users); a bad number or message comes
/// back to the form, as typed, with why (422).
pub async fn save_voice_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<VoiceForm>,
) -> Result<HttpResponse, PageError> {
    let location = require_edit(&at)?.clone();
    let checked = (|| -> Result<VoiceSettings, String> {
        let forward_to = match form.forward_to.trim() {
            "" => None,
            typed => Some(
                PhoneNumber::parse(typed, &location.default_region)
                    .map_err(|e| format!("Forward calls to: {}", e.message))?
                    .into_inner(),
            ),
        };
        let message = form.message.trim().to_string();
        if message.chars().count() > 500 {
            return Err("The message is longer than 500 characters.".into());
        }
        if message
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
        {
            return Err("The message contains control characters.".into());
        }
        Ok(VoiceSettings {
            forward_to,
            message,
        })
    })();
    let settings = match checked {
        Ok(s) => s,
        Err(error) => {
            let draft = VoiceDraft {
                forward_to: form.forward_to,
                message: form.message,
                error,
            };
            let drafts = Drafts {
                voice: Some(draft),
                ..Drafts::default()
            };
            return render(&state, &req, &session, at, drafts).await;
        }
    };
    let id = location.id;
    db::run(&state.pool, move |conn| -> Result<_, DbError> {
        Ok(inbound::save_voice_settings(conn, id, &settings)?)
    })
    .await?;
    session.insert(FLASH, "Calls settings saved.".to_string())?;
    Ok(redirect(&format!("/locations/{id}/settings")))
}
