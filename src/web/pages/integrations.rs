//! A location's integrations (agency users; support reads): the channels
//! set up here with their provider and state (disconnect, test, change),
//! then the other channels with their connect forms.
//! A channel is offered on contacts only while connected; its DND state
//! never depends on it.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::dnd::{set_flash, take_flash};
use super::form::FieldErrors;
use super::session::redirect;
use super::settings::{can_edit, require_edit};
use super::Nav;
use crate::db::integrations::{self, Integration};
use crate::db::locations::Location;
use crate::db::{self, DbError};
use crate::domain::integration::{provider_of, ConnectForm, Stored, GMB_LEGACY};
use crate::domain::{Channel, IntegrationStatus};
use crate::outbound::probe::probe;
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

/// One channel's row.
pub struct Row {
    pub channel: Channel,
    pub provider: Option<&'static str>,
    pub integration: Option<Integration>,
    /// The connect form just refused for this channel.
    pub errors: FieldErrors,
}

impl Row {
    pub fn state(&self) -> &'static str {
        self.integration
            .as_ref()
            .map_or("not connected", |i| i.status.as_str())
    }

    pub fn is_connected(&self) -> bool {
        self.integration
            .as_ref()
            .is_some_and(|i| i.status == IntegrationStatus::Connected)
    }

    fn has(&self, f: impl Fn(&Integration) -> &Option<String>) -> bool {
        self.integration
            .as_ref()
            .is_some_and(|i| f(i).as_deref().is_some_and(|s| !s.is_empty()))
    }

    pub fn has_secret(&self) -> bool {
        self.has(|i| &i.secret)
    }

    pub fn has_api_key(&self) -> bool {
        self.has(|i| &i.api_key)
    }

    pub fn has_verify_token(&self) -> bool {
        self.has(|i| &i.verify_token)
    }

    pub fn account(&self) -> &str {
        self.integration
            .as_ref()
            .and_then(|i| i.account.as_deref())
            .unwrap_or("")
    }

    pub fn sender(&self) -> &str {
        self.integration
            .as_ref()
            .and_then(|i| i.sender.as_deref())
            .unwrap_or("")
    }

    pub fn is_eu(&self) -> bool {
        self.integration
            .as_ref()
            .and_then(|i| i.api_base_url.as_deref())
            .is_some_and(|u| u.contains(".eu."))
    }
}

#[derive(Template)]
#[template(path = "locations/integrations.html")]
struct IntegrationsPage {
    nav: Nav,
    location: Location,
    can_edit: bool,
    /// The channels set up here (connected, in error or disconnected)
    /// first, then the others with their connect forms.
    rows: Vec<Row>,
    /// How many of `rows` are set up here.
    set_up: usize,
    flash: Option<String>,
    gmb_legacy: &'static str,
}

async fn render(
    state: &AppState,
    session: &Session,
    at: VisibleLocation,
    refused: Option<(Channel, FieldErrors)>,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::at(&at, session)?;
    let flash = take_flash(session);
    let editable = can_edit(&at.user, &at.location)?;
    let location = at.location;
    let id = location.id;
    let list = db::run(&state.pool, move |conn| {
        integrations::list(conn, id).map_err(DbError::from)
    })
    .await?;
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut refused = refused;
    let mut rows: Vec<Row> = Channel::ALL
        .into_iter()
        .map(|channel| Row {
            channel,
            provider: provider_of(channel),
            integration: list.iter().find(|i| i.channel == channel).cloned(),
            errors: match refused.take_if(|(c, _)| *c == channel) {
                Some((_, errors)) => errors,
                None => FieldErrors::default(),
            },
        })
        .collect();
    // Stable: each group keeps the channels' order.
    rows.sort_by_key(|r| r.integration.is_none());
    let set_up = rows.iter().filter(|r| r.integration.is_some()).count();
    let page = IntegrationsPage {
        nav,
        location,
        can_edit: editable,
        rows,
        set_up,
        flash,
        gmb_legacy: GMB_LEGACY,
    };
    super::html(status, &page)
}

pub async fn list_integrations(
    state: web::Data<AppState>,
    session: Session,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    render(&state, &session, at, None).await
}

/// No `Debug`: it holds secrets.
#[derive(Deserialize, Default)]
pub struct ConnectFields {
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    auth_token: String,
    #[serde(default)]
    sending_number: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    signing_key: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    from_address: String,
    #[serde(default)]
    app_secret: String,
    #[serde(default)]
    verify_token: String,
    #[serde(default)]
    account_id: String,
    #[serde(default)]
    access_token: String,
}

fn channel_of(text: &str) -> Result<Channel, PageError> {
    text.parse().map_err(|_| PageError::NotFound)
}

pub async fn connect(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, String)>,
    at: VisibleLocation,
    CsrfForm(f): CsrfForm<ConnectFields>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel = channel_of(&channel)?;
    let location = require_edit(&at)?.clone();
    let form = ConnectForm {
        account_sid: f.account_sid,
        auth_token: f.auth_token,
        sending_number: f.sending_number,
        domain: f.domain,
        api_key: f.api_key,
        signing_key: f.signing_key,
        region: f.region,
        from_address: f.from_address,
        app_secret: f.app_secret,
        verify_token: f.verify_token,
        account_id: f.account_id,
        access_token: f.access_token,
    };
    let outcome = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        if provider_of(channel).is_none() {
            return Err(PageError::Forbidden(format!(
                "{GMB_LEGACY} Nothing was changed."
            )));
        }
        let current = integrations::find(conn, location.id, channel).map_err(DbError::from)?;
        // Secrets may be kept only for the same provider.
        let stored = match &current {
            Some(i) if Some(i.provider.as_str()) == provider_of(channel) => Stored {
                secret: i.secret.is_some(),
                api_key: i.api_key.is_some(),
                verify_token: i.verify_token.is_some(),
            },
            _ => Stored::default(),
        };
        let connection = match form.validate(channel, &location.default_region, stored) {
            Ok(c) => c,
            Err(errors) => return Ok(Err(FieldErrors(errors))),
        };
        integrations::connect(conn, location.id, channel, &connection, Utc::now())
            .map_err(DbError::from)?;
        Ok(Ok(()))
    })
    .await?;
    match outcome {
        Ok(()) => {
            set_flash(
                &session,
                format!(
                    "{} is connected: contacts offer its DND switch again, with the DND they \
                     had. Use Test to check the credentials with the provider.",
                    channel.label()
                ),
            )?;
            Ok(redirect(&format!("/locations/{location_id}/integrations")))
        }
        Err(errors) => render(&state, &session, at, Some((channel, errors))).await,
    }
}

pub async fn disconnect(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, String)>,
    at: VisibleLocation,
    _form: CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel = channel_of(&channel)?;
    let location = require_edit(&at)?.clone();
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        match integrations::disconnect(conn, location.id, channel, Utc::now())
            .map_err(DbError::from)?
        {
            0 => Err(PageError::NotFound),
            _ => Ok(()),
        }
    })
    .await?;
    set_flash(
        &session,
        format!(
            "{} is disconnected. Every contact's {} DND is kept, shown read-only, and applies \
             again when you reconnect.",
            channel.label(),
            channel.label()
        ),
    )?;
    Ok(redirect(&format!("/locations/{location_id}/integrations")))
}

pub async fn test(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, String)>,
    at: VisibleLocation,
    _form: CsrfForm<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel = channel_of(&channel)?;
    let location = require_edit(&at)?.clone();
    let integration = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        integrations::find(conn, location.id, channel)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)
    })
    .await?;
    let disconnected = integration.status == IntegrationStatus::Disconnected;
    let client = state
        .hosts
        .client()
        .map_err(|e| PageError::Internal(format!("building the provider client: {e}")))?;
    let result = probe(&client, &state.hosts, &integration).await;
    let recorded: Result<(), String> = result.as_ref().map(|_| ()).map_err(Clone::clone);
    db::run(&state.pool, move |conn| {
        integrations::record_test(
            conn,
            location_id,
            channel,
            recorded.as_ref().map(|_| ()).map_err(String::as_str),
            Utc::now(),
        )
        .map_err(DbError::from)
    })
    .await?;
    set_flash(
        &session,
        match result {
            Ok(words) if disconnected => format!(
                "Test passed: {words} {} stays disconnected until you connect it.",
                channel.label()
            ),
            Ok(words) => format!("Test passed: {words} {} is connected.", channel.label()),
            Err(why) if disconnected => format!(
                "Test failed: {why}. {} stays disconnected.",
                channel.label()
            ),
            Err(why) => format!(
                "Test failed: {why}. {} is marked as in error until a test passes.",
                channel.label()
            ),
        },
    )?;
    Ok(redirect(&format!("/locations/{location_id}/integrations")))
}
