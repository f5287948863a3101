//! What provider webhooks store: the events (idempotently), Mailgun's
//! replay cache, the contact timeline, the location's SMS settings, and the
//! find-or-create of the contact an event concerns.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use super::contacts::{self, Contact, ContactInput};
use super::locations::Location;
use super::prepared::prepared_statement;
use super::schema::{
    contacts as contacts_table, location_sms_settings, mailgun_tokens, messages, webhook_events,
};
use super::DbError;
use crate::domain::dnd::Keywords;
use crate::domain::{Channel, EmailAddress, PhoneNumber};

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

/// What a Twilio webhook needs before it can act, in one round trip: the
/// location, its Twilio SMS auth token, and its keywords and replies.
pub struct TwilioContext {
    pub location: Location,
    /// `None`: no Twilio SMS integration; `Some(None)`: no token set.
    pub auth_token: Option<Option<String>>,
    pub settings: SmsSettings,
}

pub fn twilio_context(
    conn: &mut PgConnection,
    location_id: i64,
) -> QueryResult<Option<TwilioContext>> {
    use super::schema::{integrations, locations};
    type Settings = (
        Vec<String>,
        Vec<String>,
        Vec<String>,
        String,
        String,
        String,
    );
    type Row = (Location, Option<(String, Option<String>)>, Option<Settings>);
    let row: Option<Row> = locations::table
        .left_join(
            integrations::table.on(integrations::location_id
                .eq(locations::id)
                .and(integrations::channel.eq(Channel::Sms.as_str()))),
        )
        .left_join(
            location_sms_settings::table.on(location_sms_settings::location_id.eq(locations::id)),
        )
        .filter(locations::id.eq(location_id))
        .select((
            Location::as_select(),
            (integrations::provider, integrations::secret).nullable(),
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
    Ok(row.map(|(location, integration, settings)| TwilioContext {
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
        auth_token: integration
            .filter(|(provider, _)| provider == "twilio")
            .map(|(_, secret)| secret),
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

/// A provider event as stored: what it was and what it did.
pub struct NewEvent<'a> {
    pub provider: &'static str,
    pub kind: &'a str,
    /// The provider's own id for it (its retries carry the same).
    pub key: &'a str,
    pub payload: &'a str,
    pub contact_id: Option<i64>,
    /// What it did: opt_out, opt_in, help, message, a reason, recorded.
    pub outcome: &'static str,
}

/// Stores an event unless the same event (same provider key) is stored
/// already: `Some(id)` when new, `None` for a provider's retry. The unique
/// key serialises concurrent deliveries of one event.
pub fn record_event(
    conn: &mut PgConnection,
    location_id: i64,
    e: &NewEvent<'_>,
) -> QueryResult<Option<i64>> {
    diesel::insert_into(webhook_events::table)
        .values((
            webhook_events::location_id.eq(location_id),
            webhook_events::provider.eq(e.provider),
            webhook_events::kind.eq(e.kind),
            webhook_events::event_key.eq(e.key),
            webhook_events::payload.eq(e.payload),
            webhook_events::contact_id.eq(e.contact_id),
            webhook_events::outcome.eq(e.outcome),
        ))
        .on_conflict((
            webhook_events::location_id,
            webhook_events::provider,
            webhook_events::event_key,
        ))
        .do_nothing()
        .returning(webhook_events::id)
        .get_result(conn)
        .optional()
}

/// Inbound messages and the events that carried them, stored together in
/// one statement; an event stored already (a provider's retry) stores
/// neither. Each field is a column, one element per event.
#[derive(Default)]
pub struct InboundEvents {
    location_id: Vec<i64>,
    provider: Vec<&'static str>,
    kind: Vec<String>,
    key: Vec<String>,
    payload: Vec<String>,
    contact_id: Vec<i64>,
    outcome: Vec<&'static str>,
    channel: Vec<&'static str>,
    body: Vec<String>,
    from: Vec<String>,
    to: Vec<String>,
    sid: Vec<String>,
}

prepared_statement!(
    InboundEvents -> (BigInt, Text),
    "WITH event AS (
        INSERT INTO webhook_events
            (location_id, provider, kind, event_key, payload, contact_id, outcome)
        SELECT * FROM unnest(?::int8[], ?::text[], ?::text[], ?::text[], ?::text[],
            ?::int8[], ?::text[])
        ON CONFLICT (location_id, provider, event_key) DO NOTHING
        RETURNING location_id, provider, event_key, contact_id
    ), message AS (
        INSERT INTO messages (location_id, contact_id, channel, direction, body,
            from_address, to_address, provider_sid, status)
        SELECT e.location_id, e.contact_id, m.channel, 'inbound', m.body, m.from_address,
            m.to_address, m.sid, 'received'
        FROM event e
        JOIN unnest(?::int8[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
            ?::text[])
            AS m (location_id, provider, event_key, channel, body, from_address, to_address, sid)
            ON m.location_id = e.location_id AND m.provider = e.provider
            AND m.event_key = e.event_key
        ON CONFLICT (location_id, provider_sid) DO NOTHING
    )
    SELECT location_id, event_key FROM event",
    |s| [
        Array<BigInt> => &s.location_id,
        Array<Text> => &s.provider,
        Array<Text> => &s.kind,
        Array<Text> => &s.key,
        Array<Text> => &s.payload,
        Array<BigInt> => &s.contact_id,
        Array<Text> => &s.outcome,
        Array<BigInt> => &s.location_id,
        Array<Text> => &s.provider,
        Array<Text> => &s.key,
        Array<Text> => &s.channel,
        Array<Text> => &s.body,
        Array<Text> => &s.from,
        Array<Text> => &s.to,
        Array<Text> => &s.sid,
    ]
);

impl InboundEvents {
    /// Adds one event and its message (the message's contact is the
    /// event's). The caller leaves out repeats of a key within one batch.
    pub fn push(&mut self, location_id: i64, e: &NewEvent<'_>, m: &NewInbound<'_>) {
        self.location_id.push(location_id);
        self.provider.push(e.provider);
        self.kind.push(e.kind.to_string());
        self.key.push(e.key.to_string());
        self.payload.push(e.payload.to_string());
        self.contact_id.push(m.contact_id);
        self.outcome.push(e.outcome);
        self.channel.push(m.channel.as_str());
        self.body.push(m.body.to_string());
        self.from.push(m.from.to_string());
        self.to.push(m.to.to_string());
        self.sid.push(m.sid.to_string());
    }

    /// Stores them; returns the (location, key) of the events that were
    /// new (the others were stored before).
    pub fn store(self, conn: &mut PgConnection) -> QueryResult<Vec<(i64, String)>> {
        if self.key.is_empty() {
            return Ok(Vec::new());
        }
        self.load(conn)
    }
}

/// [`record_event`] for an inbound message, which also goes on the
/// contact's timeline: both in one statement, and neither for a retry.
pub fn record_inbound(
    conn: &mut PgConnection,
    location_id: i64,
    e: &NewEvent<'_>,
    m: &NewInbound<'_>,
) -> QueryResult<bool> {
    let mut events = InboundEvents::default();
    events.push(location_id, e, m);
    Ok(!events.store(conn)?.is_empty())
}

/// How long a Mailgun token is remembered: well past the 5-minute window in
/// which its timestamp is accepted at all.
const TOKEN_MEMORY_HOURS: i64 = 24;

/// Records a Mailgun signature token; `false` if it was seen before (a
/// replay). Forgotten tokens are outside the timestamp window anyway.
pub fn remember_mailgun_token(
    conn: &mut PgConnection,
    location_id: i64,
    token: &str,
) -> QueryResult<bool> {
    diesel::delete(
        mailgun_tokens::table
            .filter(mailgun_tokens::seen_at.lt(Utc::now() - Duration::hours(TOKEN_MEMORY_HOURS))),
    )
    .execute(conn)?;
    let inserted = diesel::insert_into(mailgun_tokens::table)
        .values((
            mailgun_tokens::location_id.eq(location_id),
            mailgun_tokens::token.eq(token),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(inserted == 1)
}

/// The location's contact whose `$column` is `$value`, locked for the
/// transaction. (A macro: diesel cannot box a query with a locking clause,
/// and a plain query stays a cached prepared statement.)
macro_rules! find_locked {
    ($conn:expr, $location_id:expr, $column:ident, $value:expr) => {
        contacts_table::table
            .filter(contacts_table::location_id.eq($location_id))
            .filter(contacts_table::$column.eq($value))
            .select(Contact::as_select())
            .for_update()
            .first::<Contact>($conn)
            .optional()
    };
}

/// The location's contacts with these phones, locked for the transaction
/// in id order (so writers locking several never deadlock each other).
pub fn lock_contacts_by_phone(
    conn: &mut PgConnection,
    location_id: i64,
    phones: &[&str],
) -> QueryResult<Vec<Contact>> {
    contacts_table::table
        .filter(contacts_table::location_id.eq(location_id))
        .filter(contacts_table::phone.eq_any(phones))
        .order_by(contacts_table::id)
        .select(Contact::as_select())
        .for_update()
        .load(conn)
}

/// The contact with this phone, created (with just the phone) when none
/// has it, so the wish is kept for a later import. Every `contact_for_*`
/// returns the row locked for this transaction (found `FOR UPDATE`, or
/// inserted by it), so its DND can be changed with `dnd::apply_locked`.
pub fn contact_for_phone(
    conn: &mut PgConnection,
    location_id: i64,
    phone: &PhoneNumber,
) -> Result<Contact, DbError> {
    let found = find_locked!(conn, location_id, phone, phone.as_str())?;
    if let Some(c) = found {
        return Ok(c);
    }
    upsert_minimal(
        conn,
        location_id,
        ContactInput {
            phone: Some(phone.clone()),
            ..Default::default()
        },
    )
}

pub fn contact_for_email(
    conn: &mut PgConnection,
    location_id: i64,
    email: &EmailAddress,
) -> Result<Contact, DbError> {
    let found = find_locked!(conn, location_id, email, email.as_str())?;
    if let Some(c) = found {
        return Ok(c);
    }
    upsert_minimal(
        conn,
        location_id,
        ContactInput {
            email: Some(email.clone()),
            ..Default::default()
        },
    )
}

/// A WhatsApp user (`wa_id` is the number without `+`): by WhatsApp id, else
/// by phone, else a new contact with both.
pub fn contact_for_whatsapp(
    conn: &mut PgConnection,
    location_id: i64,
    wa_id: &str,
) -> Result<Contact, DbError> {
    let found = find_locked!(conn, location_id, whatsapp_id, wa_id)?;
    if let Some(c) = found {
        return Ok(c);
    }
    let phone = PhoneNumber::parse(&format!("+{wa_id}")).ok();
    if let Some(phone) = &phone {
        let by_phone = find_locked!(conn, location_id, phone, phone.as_str())?;
        if let Some(c) = by_phone {
            diesel::update(contacts_table::table.find((location_id, c.id)))
                .set(contacts_table::whatsapp_id.eq(wa_id))
                .execute(conn)?;
            return Ok(c);
        }
    }
    insert_bare(
        conn,
        location_id,
        phone.as_ref().map(PhoneNumber::as_str),
        None,
        Some(wa_id),
    )
}

/// A Messenger user by page-scoped id, created if unknown.
pub fn contact_for_facebook(
    conn: &mut PgConnection,
    location_id: i64,
    psid: &str,
) -> Result<Contact, DbError> {
    let found = find_locked!(conn, location_id, facebook_id, psid)?;
    match found {
        Some(c) => Ok(c),
        None => insert_bare(conn, location_id, None, Some(psid), None),
    }
}

fn upsert_minimal(
    conn: &mut PgConnection,
    location_id: i64,
    input: ContactInput,
) -> Result<Contact, DbError> {
    contacts::upsert(conn, location_id, &input)
        .map(|(c, _)| c)
        .map_err(|e| match e {
            contacts::UpsertError::Db(e) => e,
            other => DbError::Invariant(other.to_string()),
        })
}

fn insert_bare(
    conn: &mut PgConnection,
    location_id: i64,
    phone: Option<&str>,
    facebook_id: Option<&str>,
    whatsapp_id: Option<&str>,
) -> Result<Contact, DbError> {
    Ok(diesel::insert_into(contacts_table::table)
        .values(contacts::NewContact {
            location_id,
            name: "",
            phone,
            email: None,
            facebook_id,
            whatsapp_id,
            gmb_id: None,
        })
        .returning(Contact::as_returning())
        .get_result(conn)?)
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

pub struct NewInbound<'a> {
    pub contact_id: i64,
    pub channel: Channel,
    pub body: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub sid: &'a str,
}

/// Records an outbound message's reported status, never moving it
/// backwards (`rank` orders the statuses; callbacks arrive out of order).
#[allow(clippy::too_many_arguments)]
pub fn update_outbound_status(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    sid: &str,
    status: &str,
    error_code: Option<i32>,
    to: &str,
    from: &str,
    rank: impl Fn(&str) -> u8,
) -> QueryResult<()> {
    let current: Option<(i64, String)> = messages::table
        .filter(messages::location_id.eq(location_id))
        .filter(messages::provider_sid.eq(sid))
        .select((messages::id, messages::status))
        .for_update()
        .first(conn)
        .optional()?;
    match current {
        Some((id, old)) => {
            if rank(status) > rank(&old) {
                diesel::update(messages::table.find((location_id, id)))
                    .set((
                        messages::status.eq(status),
                        messages::error_code.eq(error_code),
                        messages::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)?;
            }
        }
        None => {
            // A callback for a message sent outside dnd: keep it on the
            // timeline all the same.
            diesel::insert_into(messages::table)
                .values((
                    messages::location_id.eq(location_id),
                    messages::contact_id.eq(contact_id),
                    messages::channel.eq(Channel::Sms.as_str()),
                    messages::direction.eq("outbound"),
                    messages::from_address.eq(from),
                    messages::to_address.eq(to),
                    messages::provider_sid.eq(sid),
                    messages::status.eq(status),
                    messages::error_code.eq(error_code),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
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
