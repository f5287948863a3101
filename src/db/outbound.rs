//! Recording outbound messages through the gate. The decision is taken in
//! the same transaction that records the message, holding a share lock on
//! the contact's row: a DND change (which takes the row for update) either
//! committed before and is seen, or waits until the message is recorded.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};

use super::contacts::Contact;
use super::dnd as dnd_store;
use super::schema::{contacts, messages};
use super::DbError;
use crate::domain::dnd::{Block, Decision, Origin};
use crate::domain::Channel;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no contact {0} in this location")]
    NotFound(i64),
    #[error("the contact has no {0} address to send to")]
    NoAddress(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for SendError {
    fn from(e: diesel::result::Error) -> Self {
        SendError::Db(e.into())
    }
}

/// An outbound message as recorded.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct Outbound {
    pub location_id: i64,
    pub id: i64,
    pub contact_id: i64,
    pub channel: String,
    pub direction: String,
    pub origin: Option<String>,
    pub body: String,
    pub subject: Option<String>,
    pub to_address: Option<String>,
    pub status: String,
    pub blocked_reasons: Vec<String>,
    pub provider_sid: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an outbound message is sent to on a channel.
pub fn address(contact: &Contact, channel: Channel) -> Option<&str> {
    match channel {
        Channel::Sms | Channel::Call => contact.phone.as_deref(),
        Channel::Email => contact.email.as_deref(),
        Channel::Facebook => contact.facebook_id.as_deref(),
        Channel::Whatsapp => contact.whatsapp_id.as_deref().or(contact.phone.as_deref()),
        Channel::Gmb => contact.gmb_id.as_deref(),
    }
}

pub struct NewMessage<'a> {
    pub contact_id: i64,
    pub channel: Channel,
    pub origin: Origin,
    pub body: &'a str,
    pub subject: Option<&'a str>,
}

/// Decides and records one message: `queued` for the dispatcher, or
/// `blocked` with its reasons (never handed to a provider).
pub fn send_one(
    conn: &mut PgConnection,
    location_id: i64,
    m: &NewMessage<'_>,
) -> Result<(Outbound, Decision), SendError> {
    conn.transaction(|conn| {
        let contact: Contact = contacts::table
            .find((location_id, m.contact_id))
            .select(Contact::as_select())
            .for_share()
            .first(conn)
            .optional()?
            .ok_or(SendError::NotFound(m.contact_id))?;
        let state = dnd_store::load_state(conn, location_id, contact.id)?.unwrap_or_default();
        let decision = state.decide(m.channel, m.origin);
        let to = address(&contact, m.channel).ok_or(SendError::NoAddress(m.channel.label()))?;
        let (status, reasons): (&str, Vec<String>) = match &decision {
            Decision::Allowed => ("queued", Vec::new()),
            Decision::Blocked(blocks) => (
                "blocked",
                blocks.iter().map(|b| b.as_str().to_string()).collect(),
            ),
        };
        let message = diesel::insert_into(messages::table)
            .values((
                messages::location_id.eq(location_id),
                messages::contact_id.eq(contact.id),
                messages::channel.eq(m.channel.as_str()),
                messages::direction.eq("outbound"),
                messages::origin.eq(m.origin.as_str()),
                messages::body.eq(m.body),
                messages::subject.eq(m.subject),
                messages::to_address.eq(to),
                messages::status.eq(status),
                messages::blocked_reasons.eq(&reasons),
                messages::next_attempt_at.eq((status == "queued").then(Utc::now)),
            ))
            .returning(Outbound::as_returning())
            .get_result(conn)?;
        Ok((message, decision))
    })
}

/// One recipient's result in a bulk send.
#[derive(Debug, Clone, QueryableByName)]
pub struct BulkResult {
    #[diesel(sql_type = BigInt)]
    pub contact_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub id: Option<i64>,
    /// queued, blocked, no_address or not_found
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Array<Text>)]
    pub reasons: Vec<String>,
}

/// The bit of a channel in `contacts.dnd_mask`.
fn bit(channel: Channel) -> i16 {
    1 << Channel::ALL.iter().position(|c| *c == channel).unwrap_or(0)
}

/// The per-recipient decision as SQL: the same rule as
/// `DndState::decide` (the all-channels switch, then the channel's own
/// reasons), for a whole list at once. Binds: $1 location, $2 ids, $3
/// channel, $4 the channel's bit.
fn decided_cte(channel: Channel) -> String {
    let address = match channel {
        Channel::Sms | Channel::Call => "c.phone",
        Channel::Email => "c.email",
        Channel::Facebook => "c.facebook_id",
        Channel::Whatsapp => "coalesce(c.whatsapp_id, c.phone)",
        Channel::Gmb => "c.gmb_id",
    };
    format!(
        "decided AS (
             SELECT c.id, {address} AS address,
                    (CASE WHEN c.dnd_all THEN ARRAY['all_channels'] ELSE ARRAY[]::text[] END)
                    || CASE WHEN (c.dnd_mask & $4::smallint) <> 0 THEN coalesce(
                           (SELECT array_agg(r.reason ORDER BY r.reason) FROM contact_dnd_reasons r
                            WHERE r.location_id = $1 AND r.contact_id = c.id AND r.channel = $3),
                           ARRAY[]::text[]) ELSE ARRAY[]::text[] END AS reasons
             FROM contacts c
             WHERE c.location_id = $1 AND c.id = ANY($2::bigint[])
         )"
    )
}

/// One recipient's decision, before anything is recorded.
#[derive(Debug, Clone, QueryableByName)]
pub struct BulkDecision {
    #[diesel(sql_type = BigInt)]
    pub contact_id: i64,
    /// The contact has an address on the channel.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub reachable: bool,
    #[diesel(sql_type = Array<Text>)]
    pub reasons: Vec<String>,
}

/// Decides a recipient list without recording anything (what a bulk send
/// would do, e.g. to preview it). Unknown ids are left out.
pub fn decide_bulk(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    contact_ids: &[i64],
) -> Result<Vec<BulkDecision>, DbError> {
    let query = format!(
        "WITH {} SELECT d.id AS contact_id, d.address IS NOT NULL AS reachable, d.reasons FROM decided d",
        decided_cte(channel)
    );
    Ok(diesel::sql_query(query)
        .bind::<BigInt, _>(location_id)
        .bind::<Array<BigInt>, _>(contact_ids)
        .bind::<Text, _>(channel.as_str())
        .bind::<diesel::sql_types::SmallInt, _>(bit(channel))
        .load(conn)?)
}

/// Decides a whole recipient list in one set-based statement, records every
/// message (`queued`, or `blocked` with its reasons), and answers per
/// recipient (`no_address` and `not_found` are not recorded).
///
/// The contacts are share-locked by a statement of their own first: a
/// statement that waits for a lock re-reads the locked rows but not the
/// other tables it reads, so the deciding statement must start after the
/// wait, with a snapshot that sees any DND committed meanwhile. They are
/// locked in id order, the order webhook batches lock theirs in, so the two
/// never wait on each other in a circle.
pub fn send_bulk(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    body: &str,
    subject: Option<&str>,
    contact_ids: &[i64],
) -> Result<Vec<BulkResult>, DbError> {
    let query = format!(
        "WITH {},
         recorded AS (
             INSERT INTO messages (location_id, contact_id, channel, direction, origin, body, subject,
                                   to_address, status, blocked_reasons, next_attempt_at)
             SELECT $1, d.id, $3, 'outbound', 'automated', $5, $6, d.address,
                    CASE WHEN cardinality(d.reasons) > 0 THEN 'blocked' ELSE 'queued' END,
                    d.reasons,
                    CASE WHEN cardinality(d.reasons) > 0 THEN NULL ELSE now() END
             FROM decided d WHERE d.address IS NOT NULL
             RETURNING contact_id, id, status, blocked_reasons
         )
         SELECT r.contact_id, r.id, r.status, r.blocked_reasons AS reasons FROM recorded r
         UNION ALL
         SELECT d.id, NULL, 'no_address', ARRAY[]::text[] FROM decided d WHERE d.address IS NULL
         UNION ALL
         SELECT w.id, NULL, 'not_found', ARRAY[]::text[] FROM (SELECT DISTINCT unnest($2::bigint[]) AS id) w
         WHERE NOT EXISTS (SELECT 1 FROM decided d WHERE d.id = w.id)",
        decided_cte(channel)
    );
    conn.transaction(|conn| {
        diesel::sql_query(
            "SELECT 1 FROM contacts WHERE location_id = $1 AND id = ANY($2::bigint[])
             ORDER BY id FOR SHARE",
        )
        .bind::<BigInt, _>(location_id)
        .bind::<Array<BigInt>, _>(contact_ids)
        .execute(conn)?;
        Ok(diesel::sql_query(query)
            .bind::<BigInt, _>(location_id)
            .bind::<Array<BigInt>, _>(contact_ids)
            .bind::<Text, _>(channel.as_str())
            .bind::<diesel::sql_types::SmallInt, _>(bit(channel))
            .bind::<Text, _>(body)
            .bind::<Nullable<Text>, _>(subject)
            .load(conn)?)
    })
}

pub fn find(conn: &mut PgConnection, location_id: i64, id: i64) -> QueryResult<Option<Outbound>> {
    messages::table
        .find((location_id, id))
        .filter(messages::direction.eq("outbound"))
        .select(Outbound::as_select())
        .first(conn)
        .optional()
}

/// The blocks a stored message names, back as the domain's type.
pub fn blocks(reasons: &[String]) -> Vec<Block> {
    reasons.iter().filter_map(|r| Block::parse(r)).collect()
}

/// A message the dispatcher claimed (status `sending`), with the
/// integration that will carry it.
pub struct Claimed {
    pub message: Outbound,
    pub integration: Option<super::integrations::Integration>,
}

/// Claims up to `limit` due messages. Each is checked against the gate
/// again (a DND set after it was queued stops it here: `blocked`), then
/// marked `sending` so no other dispatcher takes it; a crash after this
/// point leaves it `sending`, never sent twice.
pub fn claim(conn: &mut PgConnection, limit: i64) -> Result<Vec<Claimed>, DbError> {
    conn.transaction(|conn| {
        let due: Vec<Outbound> = messages::table
            .filter(messages::status.eq("queued"))
            .filter(messages::direction.eq("outbound"))
            .filter(messages::next_attempt_at.le(diesel::dsl::now))
            .order_by(messages::next_attempt_at)
            .limit(limit)
            .select(Outbound::as_select())
            .for_update()
            .skip_locked()
            .load(conn)?;
        let mut claimed = Vec::with_capacity(due.len());
        for m in due {
            let row = messages::table.find((m.location_id, m.id));
            let channel: Channel = match m.channel.parse() {
                Ok(c) => c,
                Err(e) => {
                    diesel::update(row)
                        .set((messages::status.eq("failed"), messages::error_message.eq(e)))
                        .execute(conn)?;
                    continue;
                }
            };
            // The contact's row in share mode: a DND change either committed
            // before (and is seen) or waits until this claim is recorded.
            contacts::table
                .find((m.location_id, m.contact_id))
                .select(contacts::id)
                .for_share()
                .first::<i64>(conn)?;
            let state =
                dnd_store::load_state(conn, m.location_id, m.contact_id)?.unwrap_or_default();
            let origin = if m.origin.as_deref() == Some("manual") {
                Origin::Manual
            } else {
                Origin::Automated
            };
            if let Decision::Blocked(blocks) = state.decide(channel, origin) {
                let reasons: Vec<String> = blocks.iter().map(|b| b.as_str().to_string()).collect();
                diesel::update(row)
                    .set((
                        messages::status.eq("blocked"),
                        messages::blocked_reasons.eq(reasons),
                        messages::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)?;
                continue;
            }
            let message: Outbound = diesel::update(row)
                .set((
                    messages::status.eq("sending"),
                    messages::attempts.eq(messages::attempts + 1),
                    messages::updated_at.eq(diesel::dsl::now),
                ))
                .returning(Outbound::as_returning())
                .get_result(conn)?;
            let integration = super::integrations::find(conn, m.location_id, channel)?;
            claimed.push(Claimed {
                message,
                integration,
            });
        }
        Ok(claimed)
    })
}

pub fn mark_sent(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    provider_sid: &str,
) -> QueryResult<()> {
    diesel::update(messages::table.find((location_id, id)))
        .set((
            messages::status.eq("sent"),
            messages::provider_sid.eq(provider_sid),
            messages::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Back in the queue after a transient failure, `delay` from now.
pub fn requeue(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    delay: chrono::Duration,
    why: &str,
) -> QueryResult<()> {
    diesel::update(messages::table.find((location_id, id)))
        .set((
            messages::status.eq("queued"),
            messages::next_attempt_at.eq(Utc::now() + delay),
            messages::error_message.eq(why),
            messages::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    code: Option<u32>,
    why: &str,
) -> QueryResult<()> {
    diesel::update(messages::table.find((location_id, id)))
        .set((
            messages::status.eq("failed"),
            messages::error_code.eq(code.map(|c| c as i32)),
            messages::error_message.eq(why),
            messages::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}
