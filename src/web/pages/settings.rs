//! A location's settings (agency users): the webhook URLs to paste into the
//! providers' consoles, the integrations' secrets (masked, with a rotate
//! action), and the SMS keyword lists and confirmation replies.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::redirect;
use super::Nav;
use crate::db::integrations::{self, Integration};
use crate::db::locations::{self, Location};
use crate::db::users::User;
use crate::db::webhooks::{self as store, SmsSettings};
use crate::db::{self, DbError};
use crate::domain::dnd::{match_keyword, KeywordMatch, Keywords};
use crate::domain::{Channel, PhoneNumber, Role, TransportKind};
use crate::web::auth::{CsrfForm, CurrentUser};
use crate::web::error::PageError;
use crate::web::AppState;

const FLASH: &str = "settings_flash";

/// One webhook URL to paste into a provider's console.
pub struct WebhookUrl {
    pub label: &'static str,
    pub url: String,
}

pub struct IntegrationRow {
    pub channel: &'static str,
    pub label: &'static str,
    pub provider: String,
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
    urls: Vec<WebhookUrl>,
    integrations: Vec<IntegrationRow>,
    opt_out: String,
    opt_in: String,
    help: String,
    opt_out_reply: String,
    opt_in_reply: String,
    help_reply: String,
    error: Option<String>,
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

pub fn webhook_urls(base: &str, location_id: i64) -> Vec<WebhookUrl> {
    vec![
        WebhookUrl {
            label: "Twilio: incoming messages (\"A message comes in\")",
            url: format!("{base}/webhooks/twilio/{location_id}/sms"),
        },
        WebhookUrl {
            label: "Twilio: status callback URL",
            url: format!("{base}/webhooks/twilio/{location_id}/status"),
        },
        WebhookUrl {
            label: "Mailgun: webhooks (permanent failure, unsubscribe, spam complaint)",
            url: format!("{base}/webhooks/mailgun/{location_id}"),
        },
        WebhookUrl {
            label: "Meta: callback URL (WhatsApp user_preferences, Messenger messaging_optins)",
            url: format!("{base}/webhooks/meta/{location_id}"),
        },
    ]
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

/// The location, if this user may change its settings (404 if they cannot
/// see it, 403 if they may only read it).
pub(super) fn editable_location(
    conn: &mut diesel::PgConnection,
    user: &User,
    location_id: i64,
) -> Result<Location, PageError> {
    let location = locations::find_visible(conn, user, location_id)
        .map_err(DbError::from)?
        .ok_or(PageError::NotFound)?;
    if !can_edit(user, &location)? {
        return Err(PageError::Forbidden(
            "Support reads settings; it does not change them. Nothing was changed.".into(),
        ));
    }
    Ok(location)
}

fn rows(integrations: Vec<Integration>) -> Vec<IntegrationRow> {
    Channel::ALL
        .into_iter()
        .filter_map(|c| {
            let i = integrations.iter().find(|i| i.channel == c)?;
            Some(IntegrationRow {
                channel: c.as_str(),
                label: c.label(),
                provider: i.provider.clone(),
                status: i.status.as_str().to_string(),
                masked: i.secret.as_deref().map(mask),
                transport: matches!(c, Channel::Sms | Channel::Email)
                    .then(|| i.transport.as_str().to_string()),
                api_base_url: i.api_base_url.clone().unwrap_or_default(),
                sender: i.sender.clone().unwrap_or_default(),
                api_key_masked: i.api_key.as_deref().map(mask),
                transport_error: None,
            })
        })
        .collect()
}

async fn render(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    user: User,
    location_id: i64,
    draft: Option<(SmsSettings, String)>,
    transport: Option<TransportDraft>,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::new(&user, session)?;
    let flash = session.get::<String>(FLASH).ok().flatten();
    if flash.is_some() {
        session.remove(FLASH);
    }
    let base = base_url(req, state);
    let (location, editable, integrations, saved) =
        db::run(&state.pool, move |conn| -> Result<_, PageError> {
            let location = locations::find_visible(conn, &user, location_id)
                .map_err(DbError::from)?
                .ok_or(PageError::NotFound)?;
            let editable = can_edit(&user, &location)?;
            let integrations = integrations::list(conn, location.id).map_err(DbError::from)?;
            let saved =
                store::sms_settings(conn, location.id, &location.name).map_err(DbError::from)?;
            Ok((location, editable, integrations, saved))
        })
        .await?;
    let (shown, error) = match draft {
        Some((draft, error)) => (draft, Some(error)),
        None => (saved, None),
    };
    let mut rows = rows(integrations);
    if let Some(t) = &transport {
        if let Some(row) = rows.iter_mut().find(|r| r.channel == t.channel.as_str()) {
            row.api_base_url = t.api_base_url.clone();
            row.sender = t.sender.clone();
            row.transport_error = Some(t.error.clone());
        }
    }
    let status = if error.is_some() || transport.is_some() {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        actix_web::http::StatusCode::OK
    };
    let page = SettingsPage {
        nav,
        urls: webhook_urls(&base, location.id),
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
        flash,
    };
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

pub async fn show_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
) -> Result<HttpResponse, PageError> {
    render(&state, &req, &session, user, path.into_inner(), None, None).await
}

#[derive(Debug, Deserialize)]
pub struct SmsForm {
    #[serde(default)]
    opt_out_keywords: String,
    #[serde(default)]
    opt_in_keywords: String,
    #[serde(default)]
    help_keywords: String,
    #[serde(default)]
    opt_out_reply: String,
    #[serde(default)]
    opt_in_reply: String,
    #[serde(default)]
    help_reply: String,
}

fn words(list: &str) -> Vec<String> {
    list.split([',', '\n'])
        .map(|w| {
            w.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The form as settings, normalised (not yet checked).
fn from_form(form: &SmsForm) -> SmsSettings {
    SmsSettings {
        keywords: Keywords {
            opt_out: words(&form.opt_out_keywords),
            opt_in: words(&form.opt_in_keywords),
            help: words(&form.help_keywords),
        },
        opt_out_reply: form.opt_out_reply.trim().to_string(),
        opt_in_reply: form.opt_in_reply.trim().to_string(),
        help_reply: form.help_reply.trim().to_string(),
    }
}

/// The lists must keep the words carriers and the FCC treat as opt-outs,
/// and no word may mean two things.
fn check(settings: &SmsSettings) -> Result<(), String> {
    let required = [
        "STOP",
        "QUIT",
        "END",
        "REVOKE",
        "OPT OUT",
        "CANCEL",
        "UNSUBSCRIBE",
    ];
    let fail = Err;
    for word in required {
        if match_keyword(word, &settings.keywords) != Some(KeywordMatch::OptOut) {
            return fail(format!(
                "Opt-out keywords must keep {word}: the FCC treats it as an opt-out whatever the list says."
            ));
        }
    }
    if settings.keywords.opt_in.is_empty() {
        return fail("Give at least one opt-in keyword (START is the usual one).".into());
    }
    for w in &settings.keywords.opt_in {
        if settings.keywords.opt_out.contains(w) || settings.keywords.help.contains(w) {
            return fail(format!(
                "\"{w}\" is on two lists; a keyword must mean one thing."
            ));
        }
    }
    if let Some(w) = settings
        .keywords
        .opt_out
        .iter()
        .chain(&settings.keywords.opt_in)
        .chain(&settings.keywords.help)
        .find(|w| w.chars().count() > 30)
    {
        return fail(format!(
            "\"{w}\" is longer than 30 characters; keywords are single words or short phrases."
        ));
    }
    for (name, reply) in [
        ("opt-out", &settings.opt_out_reply),
        ("opt-in", &settings.opt_in_reply),
        ("help", &settings.help_reply),
    ] {
        let n = reply.chars().count();
        if n == 0 || n > 320 {
            return fail(format!(
                "The {name} reply must have 1 to 320 characters (it has {n})."
            ));
        }
    }
    Ok(())
}

pub async fn save_sms_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<SmsForm>,
) -> Result<HttpResponse, PageError> {
    let location_id = path.into_inner();
    let settings = from_form(&form);
    if let Err(why) = check(&settings) {
        return render(
            &state,
            &req,
            &session,
            user,
            location_id,
            Some((settings, why)),
            None,
        )
        .await;
    }
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let location = editable_location(conn, &user, location_id)?;
        store::save_sms_settings(conn, location.id, &settings).map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    session.insert(FLASH, "Keywords and replies saved.")?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}

#[derive(Debug, Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    secret: String,
}

/// Replaces an integration's webhook secret after it was rotated at the
/// provider.
pub async fn rotate_secret(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, String)>,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<SecretForm>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel: Channel = channel.parse().map_err(PageError::BadRequest)?;
    let secret = form.secret.trim().to_string();
    if secret.len() < 8 || secret.chars().any(char::is_whitespace) {
        return Err(PageError::BadRequest(
            "The new secret must have at least 8 characters and no spaces; paste it exactly as the provider shows it. Nothing was changed.".into(),
        ));
    }
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let location = editable_location(conn, &user, location_id)?;
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
        format!("The {} secret was replaced.", channel.label()),
    )?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(opt_out: &str, opt_in: &str) -> SmsForm {
        SmsForm {
            opt_out_keywords: opt_out.into(),
            opt_in_keywords: opt_in.into(),
            help_keywords: "HELP, INFO".into(),
            opt_out_reply: "Bye.".into(),
            opt_in_reply: "Welcome back.".into(),
            help_reply: "Reply STOP to stop.".into(),
        }
    }

    const FCC: &str = "stop, quit, end, revoke, opt  out, cancel, unsubscribe";

    #[test]
    fn keeps_the_fcc_words_and_normalises() {
        let validate = |f: SmsForm| {
            let s = from_form(&f);
            check(&s).map(|()| s)
        };
        let s = validate(form(&format!("{FCC}, basta"), "start")).unwrap();
        assert!(s.keywords.opt_out.contains(&"OPT OUT".to_string()));
        assert!(s.keywords.opt_out.contains(&"BASTA".to_string()));
        let why = validate(form("quit, end", "start")).unwrap_err();
        assert!(why.contains("STOP"), "{why}");
        let why = validate(form(FCC, "")).unwrap_err();
        assert!(why.contains("opt-in"), "{why}");
        let why = validate(form(&format!("{FCC}, yes"), "yes")).unwrap_err();
        assert!(why.contains("two lists"), "{why}");
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask("demo-twilio-auth-token"), "••••••••oken");
    }
}

#[derive(Debug, Deserialize)]
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
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<TransportForm>,
) -> Result<HttpResponse, PageError> {
    let (location_id, channel) = path.into_inner();
    let channel: Channel = channel.parse().map_err(PageError::BadRequest)?;
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
            return render(&state, &req, &session, user, location_id, None, Some(draft)).await;
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
        let location = editable_location(conn, &user, location_id)?;
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

#[derive(Debug, Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// Renames the location (agency users).
pub async fn rename_location(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    CurrentUser(user): CurrentUser,
    CsrfForm(form): CsrfForm<RenameForm>,
) -> Result<HttpResponse, PageError> {
    let location_id = path.into_inner();
    let name = form.name.trim().to_string();
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let location = editable_location(conn, &user, location_id)?;
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(PageError::Unprocessable(
                "Give the location a name of 1 to 100 characters. Nothing was changed.".into(),
            ));
        }
        locations::rename(conn, location.id, &name).map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    session.insert(FLASH, "The location was renamed.".to_string())?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}
