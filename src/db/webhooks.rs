//! What provider webhooks read before they act (the location, its
//! integrations' secrets, its keywords and replies) and the contact
//! timeline they write to. Storing events is `db::events`.

use chrono::Utc;
use diesel::prelude::*;

use super::locations::Location;
use super::schema::{integrations, location_sms_settings, messages};
use crate::domain::dnd::Keywords;
use crate::domain::Channel;

/// A location's keyword lists and confirmation replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSettings {
    pub keywords: Keywords,
    pub opt_out_reply: String,
    pub opt_in_reply: String,
    pub help_reply: String,
}

impl SmsSettings {
    /// Short, no marketing content, as carriers and the FCC ask.
    pub fn defaults(location_name: &str) -> Self {
        SmsSettings {
            keywords: Keywords::default(),
            opt_out_reply: format!(
                "{location_name}: you are unsubscribed and will get no more messages. Reply START to resubscribe."
            ),
            opt_in_reply: format!(
                "{location_name}: you are resubscribed. Reply STOP to unsubscribe."
            ),
            help_reply: format!(
                "{location_name}: reply STOP to unsubscribe or START to resubscribe. Msg & data rates may apply."
            ),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = location_sms_settings)]
struct SettingsRow {
    opt_out_keywords: Vec<String>,
    opt_in_keywords: Vec<String>,
    help_keywords: Vec<String>,
    opt_out_reply: String,
    opt_in_reply: String,
    help_reply: String,
}

pub fn sms_settings(
    conn: &mut PgConnection,
    location_id: i64,
    location_name: &str,
) -> QueryResult<SmsSettings> {
    let row: Option<SettingsRow> = location_sms_settings::table
        .find(location_id)
        .select(SettingsRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row
        .map(SettingsRow::into_settings)
        .unwrap_or_else(|| SmsSettings::defaults(location_name)))
}

impl SettingsRow {
    fn into_settings(self) -> SmsSettings {
        SmsSettings {
            keywords: Keywords {
                opt_out: self.opt_out_keywords,
                opt_in: self.opt_in_keywords,
                help: self.help_keywords,
            },
            opt_out_reply: self.opt_out_reply,
            opt_in_reply: self.opt_in_reply,
            help_reply: self.help_reply,
        }
    }
}

/// What a webhook needs before it can verify and read a request, in one
/// round trip per location: the location, what signs each provider's
/// webhooks, and its keywords and replies.
pub struct WebhookContext {
    pub location: Location,
    pub signers: Vec<Signer>,
    pub settings: SmsSettings,
}

/// The part of an integration that verifies its provider's webhooks. Read
/// as text and nothing more: an integration row this binary cannot read
/// whole (a status or transport written by a newer version) must never
/// stop the location's consent intake on its other channels.
#[derive(Clone)]
pub struct Signer {
    pub channel: Channel,
    pub provider: String,
    /// Redacted by `Debug`: it never reaches a log line.
    pub secret: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("channel", &self.channel)
            .field("provider", &self.provider)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl WebhookContext {
    /// The location's integration for a channel, if it is this provider's.
    pub fn integration(&self, channel: Channel, provider: &str) -> Option<&Signer> {
        self.signers
            .iter()
            .find(|i| i.channel == channel && i.provider == provider)
    }
}

/// The location's signers; a row on a channel this version does not know
/// is skipped, and said in the log.
fn signers(conn: &mut PgConnection, location_id: i64) -> QueryResult<Vec<Signer>> {
    let rows: Vec<(i64, String, String, Option<String>)> = integrations::table
        .filter(integrations::location_id.eq(location_id))
        .select((
            integrations::id,
            integrations::channel,
            integrations::provider,
            integrations::secret,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, channel, provider, secret)| match channel.parse() {
            Ok(channel) => Some(Signer {
                channel,
                provider,
                // Encrypted at rest; one that does not open verifies
                // nothing, so that provider's webhooks are refused.
                secret: secret.and_then(|s| match crate::secrets::open("integrations.secret", &s) {
                    Ok(plain) => Some(plain),
                    Err(e) => {
                        tracing::error!(location_id, integration_id = id, error = %e, "a webhook secret is unreadable");
                        None
                    }
                }),
            }),
            Err(_) => {
                tracing::warn!(
                    location_id,
                    integration_id = id,
                    channel,
                    "an integration on a channel this version does not know; its webhooks are refused"
                );
                None
            }
        })
        .collect())
}

pub fn context(conn: &mut PgConnection, location_id: i64) -> QueryResult<Option<WebhookContext>> {
    use super::schema::locations;
    type Settings = (
        Vec<String>,
        Vec<String>,
        Vec<String>,
        String,
        String,
        String,
    );
    let row: Option<(Location, Option<Settings>)> = locations::table
        .left_join(
            location_sms_settings::table.on(location_sms_settings::location_id.eq(locations::id)),
        )
        .filter(locations::id.eq(location_id))
        .select((
            Location::as_select(),
            (
                location_sms_settings::opt_out_keywords,
                location_sms_settings::opt_in_keywords,
                location_sms_settings::help_keywords,
                location_sms_settings::opt_out_reply,
                location_sms_settings::opt_in_reply,
                location_sms_settings::help_reply,
            )
                .nullable(),
        ))
        .first(conn)
        .optional()?;
    let Some((location, settings)) = row else {
        return Ok(None);
    };
    let signers = signers(conn, location.id)?;
    Ok(Some(WebhookContext {
        settings: settings
            .map(
                |(opt_out, opt_in, help, opt_out_reply, opt_in_reply, help_reply)| {
                    SettingsRow {
                        opt_out_keywords: opt_out,
                        opt_in_keywords: opt_in,
                        help_keywords: help,
                        opt_out_reply,
                        opt_in_reply,
                        help_reply,
                    }
                    .into_settings()
                },
            )
            .unwrap_or_else(|| SmsSettings::defaults(&location.name)),
        signers,
        location,
    }))
}

pub fn save_sms_settings(
    conn: &mut PgConnection,
    location_id: i64,
    s: &SmsSettings,
) -> QueryResult<()> {
    let values = (
        location_sms_settings::location_id.eq(location_id),
        location_sms_settings::opt_out_keywords.eq(&s.keywords.opt_out),
        location_sms_settings::opt_in_keywords.eq(&s.keywords.opt_in),
        location_sms_settings::help_keywords.eq(&s.keywords.help),
        location_sms_settings::opt_out_reply.eq(&s.opt_out_reply),
        location_sms_settings::opt_in_reply.eq(&s.opt_in_reply),
        location_sms_settings::help_reply.eq(&s.help_reply),
        location_sms_settings::updated_at.eq(diesel::dsl::now),
    );
    diesel::insert_into(location_sms_settings::table)
        .values(values)
        .on_conflict(location_sms_settings::location_id)
        .do_update()
        .set(values)
        .execute(conn)?;
    Ok(())
}

/// One message on a contact's timeline.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: i64,
    pub channel: String,
    pub direction: String,
    pub body: String,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    pub provider_sid: Option<String>,
    pub status: String,
    pub error_code: Option<i32>,
    pub created_at: chrono::DateTime<Utc>,
    pub origin: Option<String>,
    pub subject: Option<String>,
    pub blocked_reasons: Vec<String>,
    pub error_message: Option<String>,
    /// An inbound SMS from a contact with inbound SMS DND: kept, and no
    /// one is notified of it.
    pub muted: bool,
}

impl Message {
    /// The blocking reasons in words, for the timeline.
    pub fn blocked_labels(&self) -> String {
        self.blocked_reasons
            .iter()
            .map(|r| match crate::domain::dnd::Block::parse(r) {
                Some(crate::domain::dnd::Block::AllChannels) => "All channels".to_string(),
                Some(crate::domain::dnd::Block::Reason(reason)) => reason.label().to_string(),
                None => r.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A contact's timeline, newest first.
pub fn timeline(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    messages::table
        .filter(messages::location_id.eq(location_id))
        .filter(messages::contact_id.eq(contact_id))
        .order_by(messages::id.desc())
        .limit(limit)
        .select(Message::as_select())
        .load(conn)
}
