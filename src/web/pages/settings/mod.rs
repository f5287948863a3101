//! A location's settings (agency users): the webhook URLs to paste into the
//! providers' consoles, the integrations' secrets (masked, with a rotate
//! action), and the SMS keyword lists and confirmation replies.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::Nav;
use crate::db::integrations::{self, Integration};
use crate::db::locations::Location;
use crate::db::users::User;
use crate::db::webhooks::{self as store, SmsSettings};
use crate::db::{self, DbError};
use crate::domain::integration::{provider_of, secret_name, secret_source};
use crate::domain::public_url::unreachable;
use crate::domain::Provider;
use crate::domain::{Channel, IntegrationStatus, Role};
use crate::web::auth::VisibleLocation;
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

mod name;
mod region;
mod secret;
mod sms;
mod transport;
mod voice;

pub use name::rename_location;
pub use region::save_region;
pub use secret::rotate_secret;
pub use sms::save_sms_settings;
pub use transport::save_transport;
pub use voice::save_voice_settings;

const FLASH: &str = "settings_flash";

/// One value to paste into a provider's console (a webhook URL, Meta's
/// verify token), shown as a block with a copy button.
pub struct Paste {
    /// The block's HTML id (its label is `{id}-label`).
    pub id: String,
    pub label: String,
    pub value: String,
}

/// What one provider's console asks for, for the channels this location
/// has connected through it.
pub struct ProviderSetup {
    pub provider: &'static str,
    pub name: &'static str,
    /// The location's channels it serves, e.g. "SMS, Calls".
    pub channels: String,
    pub items: Vec<Paste>,
}

/// Why providers cannot reach the URLs shown, for the banner.
pub struct ReachWarning {
    /// What the URLs start with, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    pub why: &'static str,
    /// `DND_PUBLIC_URL` is set, but to this address.
    pub configured: bool,
}

pub struct IntegrationRow {
    pub channel: &'static str,
    pub label: &'static str,
    pub provider: String,
    /// The webhook secret as the provider names it ("Auth Token", …), and
    /// where its console shows it.
    pub secret_name: &'static str,
    pub secret_source: &'static str,
    pub status: String,
    /// The secret's last four characters, the rest masked.
    pub masked: Option<String>,
    /// How it sends: log, twilio or mailgun (SMS and email only).
    pub transport: Option<String>,
    pub api_base_url: String,
    pub sender: String,
    pub api_key_masked: Option<String>,
    /// Why the transport form just sent was refused (shown next to it).
    pub transport_error: Option<String>,
    /// Why the new secret just sent was refused (shown next to it).
    pub secret_error: Option<String>,
}

/// A transport form refused, shown again as typed with its reason.
pub struct TransportDraft {
    channel: Channel,
    api_base_url: String,
    sender: String,
    error: String,
}

#[derive(Template)]
#[template(path = "locations/settings.html")]
struct SettingsPage {
    nav: Nav,
    location: Location,
    can_edit: bool,
    /// Per provider, what to paste into its console: only for the
    /// channels connected here.
    setups: Vec<ProviderSetup>,
    /// The channels that could be connected and are not (a link to the
    /// integrations page connects them).
    not_connected: String,
    reach: Option<ReachWarning>,
    integrations: Vec<IntegrationRow>,
    opt_out: String,
    opt_in: String,
    help: String,
    opt_out_reply: String,
    opt_in_reply: String,
    help_reply: String,
    error: Option<String>,
    /// Calls: forward to this number, else say the message.
    voice_forward_to: String,
    voice_message: String,
    voice_default: String,
    voice_error: Option<String>,
    /// The location's name as typed when a rename was refused, and why.
    name: String,
    name_error: Option<String>,
    /// Where numbers without a country code are read: the region chosen
    /// (or typed and refused, with why), and every region to choose from.
    region: String,
    region_error: Option<String>,
    regions: Vec<(String, u16)>,
    /// DND-change webhooks and their latest deliveries.
    subscriptions: Vec<crate::db::subscriptions::Subscription>,
    deliveries: Vec<crate::db::subscriptions::DeliveryRow>,
    flash: Option<String>,
}

fn mask(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("••••••••{tail}")
}

/// Where the providers reach us: `DND_PUBLIC_URL`, else this request's origin.
pub(super) fn base_url(req: &HttpRequest, state: &AppState) -> String {
    match &state.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// The banner's facts when providers cannot reach `base` (`None`: they
/// can, as far as the address says).
pub fn reach_warning(base: &str, configured: bool) -> Option<ReachWarning> {
    let why = unreachable(base)?.words();
    Some(ReachWarning {
        base: base.to_string(),
        why,
        configured,
    })
}

/// The webhook URLs of the providers serving `channels` (the channels
/// connected here), grouped by provider, in the providers' order.
pub fn webhook_urls(base: &str, location_id: i64, channels: &[Channel]) -> Vec<ProviderSetup> {
    let has = |c: Channel| channels.contains(&c);
    let paste = |id: &str, label: &str, path: &str| Paste {
        id: format!("url-{id}"),
        label: label.to_string(),
        value: format!("{base}/webhooks/{path}"),
    };
    let mut twilio = Vec::new();
    if has(Channel::Sms) {
        twilio.push(paste(
            "twilio-sms",
            "Incoming messages (\"A message comes in\")",
            &format!("twilio/{location_id}/sms"),
        ));
        twilio.push(paste(
            "twilio-status",
            "Status callback URL",
            &format!("twilio/{location_id}/status"),
        ));
    }
    if has(Channel::Call) {
        twilio.push(paste(
            "twilio-voice",
            "Incoming calls (\"A call comes in\")",
            &format!("twilio/{location_id}/voice"),
        ));
    }
    let mut mailgun = Vec::new();
    if has(Channel::Email) {
        mailgun.push(paste(
            "mailgun",
            "Webhooks (permanent failure, unsubscribe, spam complaint)",
            &format!("mailgun/{location_id}"),
        ));
    }
    let mut meta = Vec::new();
    if has(Channel::Facebook) || has(Channel::Whatsapp) {
        meta.push(paste(
            "meta",
            "Callback URL (WhatsApp user_preferences, Messenger messaging_optins)",
            &format!("meta/{location_id}"),
        ));
    }
    [
        (Provider::Twilio.as_str(), Provider::Twilio.label(), twilio),
        (
            Provider::Mailgun.as_str(),
            Provider::Mailgun.label(),
            mailgun,
        ),
        (Provider::Meta.as_str(), Provider::Meta.label(), meta),
    ]
    .into_iter()
    .filter(|(_, _, items)| !items.is_empty())
    .map(|(provider, name, items)| ProviderSetup {
        provider,
        name,
        channels: channels
            .iter()
            .filter(|c| provider_of(**c) == Some(provider))
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(", "),
        items,
    })
    .collect()
}

/// Meta's verify tokens of the location's connected Messenger and
/// WhatsApp (one block when both use the same token), for the users who
/// manage its integrations only.
fn verify_tokens(active: &[&Integration]) -> Vec<Paste> {
    let tokens: Vec<(Channel, &str)> = [Channel::Whatsapp, Channel::Facebook]
        .into_iter()
        .filter_map(|c| {
            let i = active.iter().find(|i| i.channel == c)?;
            Some((c, i.verify_token.as_deref()?))
        })
        .collect();
    let same = tokens.windows(2).all(|w| w[0].1 == w[1].1);
    tokens
        .iter()
        .enumerate()
        .filter(|(n, _)| !same || *n == 0)
        .map(|(_, (c, token))| Paste {
            id: format!("verify-token-{}", if same { "meta" } else { c.as_str() }),
            label: if same {
                "Verify token".to_string()
            } else {
                format!("Verify token ({})", c.label())
            },
            value: (*token).to_string(),
        })
        .collect()
}

/// Agency users of the location's agency edit; support reads; location
/// users have no settings page.
pub(super) fn can_edit(user: &User, location: &Location) -> Result<bool, PageError> {
    match user.role() {
        Role::Agency if user.agency_id == Some(location.agency_id) => Ok(true),
        Role::Support => Ok(false),
        _ => Err(PageError::Forbidden(
            "Only agency users manage a location's settings. Nothing was changed.".into(),
        )),
    }
}

/// The location's integrations that are connected (or in error after a
/// test): a disconnected one is only on the integrations page.
fn active(integrations: &[Integration]) -> Vec<&Integration> {
    Channel::ALL
        .into_iter()
        .filter_map(|c| {
            integrations
                .iter()
                .find(|i| i.channel == c && i.status != IntegrationStatus::Disconnected)
        })
        .collect()
}

fn rows(active: &[&Integration]) -> Vec<IntegrationRow> {
    active
        .iter()
        .map(|i| {
            let c = i.channel;
            IntegrationRow {
                channel: c.as_str(),
                label: c.label(),
                provider: i.provider.clone(),
                secret_name: secret_name(&i.provider),
                secret_source: secret_source(&i.provider),
                status: i.status.as_str().to_string(),
                masked: i.secret.as_deref().map(mask),
                transport: matches!(c, Channel::Sms | Channel::Email)
                    .then(|| i.transport.as_str().to_string()),
                api_base_url: i.api_base_url.clone().unwrap_or_default(),
                sender: i.sender.clone().unwrap_or_default(),
                api_key_masked: i.api_key.as_deref().map(mask),
                transport_error: None,
                secret_error: None,
            }
        })
        .collect()
}

/// The location of `at`, if its user may change its settings (support
/// reads them: 403; location users have no settings: 403).
pub(super) fn require_edit(at: &VisibleLocation) -> Result<&Location, PageError> {
    if !can_edit(&at.user, &at.location)? {
        return Err(PageError::Forbidden(
            "Support reads settings; it does not change them. Nothing was changed.".into(),
        ));
    }
    Ok(&at.location)
}

/// The voice form refused, as typed, with why.
pub struct VoiceDraft {
    forward_to: String,
    message: String,
    error: String,
}

/// The form of the settings page just refused, shown again as typed (a
/// secret is never shown again) with why next to its field: the page
/// answers 422.
#[derive(Default)]
pub struct Drafts {
    sms: Option<(SmsSettings, String)>,
    transport: Option<TransportDraft>,
    voice: Option<VoiceDraft>,
    /// The name typed, and why it was refused.
    name: Option<(String, String)>,
    /// The channel whose new secret was refused, and why.
    secret: Option<(Channel, String)>,
    /// The region chosen, and why it was refused.
    region: Option<(String, String)>,
}

impl Drafts {
    fn any(&self) -> bool {
        self.sms.is_some()
            || self.transport.is_some()
            || self.voice.is_some()
            || self.name.is_some()
            || self.secret.is_some()
            || self.region.is_some()
    }
}

async fn render(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    at: VisibleLocation,
    drafts: Drafts,
) -> Result<HttpResponse, PageError> {
    let refused = drafts.any();
    let Drafts {
        sms: draft,
        transport,
        voice,
        name: name_draft,
        secret: secret_draft,
        region: region_draft,
    } = drafts;
    let nav = Nav::at(&at, session)?;
    let editable = can_edit(&at.user, &at.location)?;
    let location = at.location;
    let flash = session.get::<String>(FLASH).ok().flatten();
    if flash.is_some() {
        session.remove(FLASH);
    }
    let base = base_url(req, state);
    let (id, name) = (location.id, location.name.clone());
    let (integrations, saved, calls, subscriptions, deliveries) =
        db::run(&state.pool, move |conn| -> Result<_, DbError> {
            Ok((
                integrations::list(conn, id)?,
                store::sms_settings(conn, id, &name)?,
                crate::db::inbound::voice_settings(conn, id)?,
                crate::db::subscriptions::list(conn, id)?,
                crate::db::subscriptions::log(conn, id, 50)?,
            ))
        })
        .await?;
    let (shown, error) = match draft {
        Some((draft, error)) => (draft, Some(error)),
        None => (saved, None),
    };
    let active = active(&integrations);
    let channels: Vec<Channel> = active.iter().map(|i| i.channel).collect();
    let mut setups = webhook_urls(&base, location.id, &channels);
    if editable {
        if let Some(meta) = setups.iter_mut().find(|s| s.provider == "meta") {
            meta.items.extend(verify_tokens(&active));
        }
    }
    let not_connected = Channel::ALL
        .into_iter()
        .filter(|c| provider_of(*c).is_some() && !channels.contains(c))
        .map(Channel::label)
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows = rows(&active);
    if let Some(t) = &transport {
        if let Some(row) = rows.iter_mut().find(|r| r.channel == t.channel.as_str()) {
            row.api_base_url = t.api_base_url.clone();
            row.sender = t.sender.clone();
            row.transport_error = Some(t.error.clone());
        }
    }
    if let Some((channel, error)) = secret_draft {
        if let Some(row) = rows.iter_mut().find(|r| r.channel == channel.as_str()) {
            row.secret_error = Some(error);
        }
    }
    let (voice_forward_to, voice_message, voice_error) = match voice {
        Some(d) => (d.forward_to, d.message, Some(d.error)),
        None => (
            calls.forward_to.clone().unwrap_or_default(),
            calls.message.clone(),
            None,
        ),
    };
    let status = if refused {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        actix_web::http::StatusCode::OK
    };
    let (name, name_error) = match name_draft {
        Some((typed, why)) => (typed, Some(why)),
        None => (location.name.clone(), None),
    };
    let (region, region_error) = match region_draft {
        Some((typed, why)) => (typed, Some(why)),
        None => (location.default_region.clone(), None),
    };
    let voice_default = crate::db::inbound::VoiceSettings::default().spoken(&location.name);
    let page = SettingsPage {
        nav,
        voice_default,
        setups,
        not_connected,
        reach: reach_warning(&base, state.public_url.is_some()),
        location,
        can_edit: editable,
        integrations: rows,
        opt_out: shown.keywords.opt_out.join(", "),
        opt_in: shown.keywords.opt_in.join(", "),
        help: shown.keywords.help.join(", "),
        opt_out_reply: shown.opt_out_reply,
        opt_in_reply: shown.opt_in_reply,
        help_reply: shown.help_reply,
        error,
        voice_forward_to,
        voice_message,
        voice_error,
        name,
        name_error,
        region,
        region_error,
        regions: crate::domain::region::regions(),
        subscriptions,
        deliveries,
        flash,
    };
    // Meta's verify token may be on it: never kept by a cache.
    super::html_no_store(status, &page)
}

pub async fn show_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    render(&state, &req, &session, at, Drafts::default()).await
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask("demo-twilio-auth-token"), "••••••••oken");
    }
}
