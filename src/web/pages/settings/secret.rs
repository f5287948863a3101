//! Replacing an integration's webhook secret after the provider rotated it.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, Drafts, FLASH};
use crate::db::integrations;
use crate::db::{self, DbError};
use crate::domain::integration::{provider_of, secret_name};
use crate::domain::Channel;
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::pages::session::redirect;
use crate::web::AppState;

/// No `Debug`: it holds a secret.
#[derive(Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    secret: String,
}

/// Replaces an integration's webhook secret (Twilio's Auth Token, Mailgun's
/// HTTP webhook signing key, Meta's App Secret) after it was rotated at the
/// provider.
/// A refused secret comes back to its row with why (422), never echoed.
pub async fn rotate_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(i64, String)>,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<SecretForm>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel: Channel = channel.parse().map_err(|_| PageError::NotFound)?;
    let location = require_edit(&at)?.clone();
    // Named as the channel's provider names it ("Auth Token", …).
    let name = provider_of(channel).map_or("webhook secret", secret_name);
    let secret = form.secret.trim().to_string();
    if secret.len() < 8 || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let drafts = Drafts {
            secret: Some((
                channel,
                format!(
                    "The new {name} must have at least 8 characters and no spaces; paste it \
                     exactly as the provider shows it. Nothing was changed."
                ),
            )),
            ..Drafts::default()
        };
        return render(&state, &req, &session, at, drafts).await;
    }
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        if integrations::rotate_secret(conn, location.id, channel, &secret)
            .map_err(DbError::from)?
            == 0
        {
            return Err(PageError::NotFound);
        }
        Ok(())
    })
    .await?;
    session.insert(
        FLASH,
        format!("The {} {name} was replaced.", channel.label()),
    )?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}
