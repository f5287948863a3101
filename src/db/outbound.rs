//! Recording outbound messages through the gate, and the dispatcher's
//! side of handing them over. The gate's rule is
//! [`crate::domain::dnd::decide_blocks`], the only copy of it: every path
//! here gathers the facts (the contact's switch and own reasons, the
//! reasons kept on the address the message goes to) and asks it.
//!
//! Each decision is taken holding a share lock on the address (the lock a
//! consent event on it takes exclusively) and on the contact's row (which a
//! user's change takes for update): a DND committed a moment earlier is
//! seen, one being written waits until the message is recorded, and the
//! dispatcher asks again right before the provider call.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, SmallInt, Text};

use super::contacts::Contact;
use super::dnd as dnd_store;
use super::schema::{contacts, messages};
use super::sql_types::unknown_value;
use super::DbError;
use crate::domain::address::kept_spellings;
use crate::domain::dnd::{decide_blocks, Block, Decision, Origin, Reason};
use crate::domain::message::later_status;
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

/// An outbound message as recorded. `channel` and `origin` are the stored
/// text: a value this version cannot read fails that one message when it
/// is handed over, never the others claimed with it.
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
    pub claimed_at: Option<DateTime<Utc>>,
    pub handed_over_at: Option<DateTime<Utc>>,
}

pub struct NewMessage<'a> {
    pub contact_id: i64,
    pub channel: Channel,
    pub origin: Origin,
    pub body: &'a str,
    pub subject: Option<&'a str>,
}

struct ShareAddresses {
    locations: Vec<i64>,
    addresses: Vec<String>,
}

super::prepared::prepared_statement!(
    ShareAddresses,
    "SELECT count(pg_advisory_xact_lock_shared(k.key)) FROM (
        SELECT DISTINCT dnd_address_lock_key(a.location_id, a.address) AS key
        FROM unnest(?::int8[], ?::text[]) AS a (location_id, address)
        ORDER BY 1) k",
    |s| [Array<BigInt> => &s.locations, Array<Text> => &s.addresses]
);

/// Share-locks one address of a location in every spelling the gate reads
/// (see the module documentation).
fn share_address(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Option<Channel>,
    address: &str,
) -> QueryResult<()> {
    let addresses = match channel {
        Some(channel) => kept_spellings(channel, address),
        None => vec![address.to_string()],
    };
    ShareAddresses {
        locations: vec![location_id; addresses.len()],
        addresses,
    }
    .execute(conn)?;
    Ok(())
}

/// The gate for one message to `address`: the decision, or `Unreadable`
/// when a stored value cannot be read (never "allowed").
fn decide_one(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
    origin: Origin,
    address: &str,
) -> Result<Option<Decision>, DbError> {
    match dnd_store::gate_state(conn, location_id, contact_id, channel, address) {
        Ok(state) => Ok(state.map(|s| s.decide(channel, origin))),
        Err(e) => match unknown_value(&e) {
            Some(unknown) => Ok(Some(Decision::Unreadable(format!(
                "DND state could not be read, so nothing is sent: {unknown}"
            )))),
            None => Err(e.into()),
        },
    }
}

/// The gate's answer for a contact and channel without sending anything
/// (for dialers and external automations): the address a message would go
/// to, and the decision for it. An automated message's decision: the rule
/// is the same for every origin.
pub fn check(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
) -> Result<(Option<String>, Decision), SendError> {
    let contact = super::contacts::find(conn, location_id, contact_id)?
        .ok_or(SendError::NotFound(contact_id))?;
    let Some(to) = contact.addresses().on(channel).map(str::to_string) else {
        return Ok((None, contact_state_decision(conn, &contact, channel)?));
    };
    let decision = decide_one(
        conn,
        location_id,
        contact_id,
        channel,
        Origin::Automated,
        &to,
    )?
    .ok_or(SendError::NotFound(contact_id))?;
    Ok((Some(to), decision))
}

/// A contact without an address on the channel: its own switch and reasons
/// still answer (a dialer asking about calls to a contact with no number
/// learns that DND is on, not only that there is no number).
fn contact_state_decision(
    conn: &mut PgConnection,
    contact: &Contact,
    channel: Channel,
) -> Result<Decision, SendError> {
    match dnd_store::state_of(conn, contact) {
        Ok(state) => Ok(state.decide(channel, Origin::Automated)),
        Err(e) => match unknown_value(&e) {
            Some(unknown) => Ok(Decision::Unreadable(format!(
                "DND state could not be read: {unknown}"
            ))),
            None => Err(SendError::Db(e.into())),
        },
    }
}

/// Decides and records one message: `queued` for the dispatcher, `blocked`
/// with its reasons, or `failed` when the DND state could not be read.
/// Nothing but `queued` is ever handed to a provider.
pub fn send_one(
    conn: &mut PgConnection,
    location_id: i64,
    m: &NewMessage<'_>,
) -> Result<(Outbound, Decision), SendError> {
    conn.transaction(|conn| {
        // The address lock first, then the row (the order every writer
        // takes them in); if the contact's address changed in between, the
        // lock was on the wrong address: again.
        let mut attempt = 0;
        let (contact, to) = loop {
            attempt += 1;
            let seen = super::contacts::find(conn, location_id, m.contact_id)?
                .ok_or(SendError::NotFound(m.contact_id))?;
            let to = seen
                .addresses()
                .on(m.channel)
                .ok_or(SendError::NoAddress(m.channel.label()))?
                .to_string();
            share_address(conn, location_id, Some(m.channel), &to)?;
            let contact: Contact = contacts::table
                .find((location_id, m.contact_id))
                .select(Contact::as_select())
                .for_share()
                .first(conn)
                .optional()?
                .ok_or(SendError::NotFound(m.contact_id))?;
            if contact.addresses().on(m.channel) == Some(to.as_str()) || attempt >= 5 {
                break (contact, to);
            }
        };
        if contact.addresses().on(m.channel) != Some(to.as_str()) {
            return Err(SendError::Db(DbError::Invariant(
                "the contact's address kept changing while a message was being sent".into(),
            )));
        }
        let decision = decide_one(conn, location_id, contact.id, m.channel, m.origin, &to)?
            .ok_or(SendError::NotFound(m.contact_id))?;
        let error = match &decision {
            Decision::Unreadable(why) => Some(why.clone()),
            _ => None,
        };
        let message = diesel::insert_into(messages::table)
            .values((
                messages::location_id.eq(location_id),
                messages::contact_id.eq(contact.id),
                messages::channel.eq(m.channel),
                messages::direction.eq("outbound"),
                messages::origin.eq(m.origin),
                messages::body.eq(m.body),
                messages::subject.eq(m.subject),
                messages::to_address.eq(&to),
                messages::status.eq(decision.message_status()),
                messages::blocked_reasons.eq(decision.block_names()),
                messages::error_message.eq(error),
                messages::next_attempt_at.eq(decision.is_allowed().then(Utc::now)),
            ))
            .returning(Outbound::as_returning())
            .get_result(conn)?;
        Ok((message, decision))
    })
}

/// One recipient of a bulk send as gathered, in as few bytes as the
/// question allows (most recipients are reachable and hold nothing, and
/// are answered `NULL`): comma-separated, `-` when the contact has no
/// address on the channel, `*` for the all-channels switch, and the names
/// of the reasons on the channel, its own and its address's.
#[derive(Debug, Clone, QueryableByName)]
struct Gathered {
    #[diesel(sql_type = BigInt)]
    contact_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    facts: Option<String>,
}

impl Gathered {
    fn reachable(&self) -> bool {
        !self
            .facts
            .as_deref()
            .is_some_and(|f| f.split(',').any(|fact| fact == "-"))
    }

    /// The gate's decision: the one rule, on the gathered facts. A reason
    /// this version cannot read blocks the message (it is failed).
    fn decide(&self) -> Decision {
        let mut all = false;
        let mut reasons = Vec::new();
        for fact in self.facts.iter().flat_map(|f| f.split(',')) {
            match fact {
                "" | "-" => {}
                "*" => all = true,
                name => match name.parse::<Reason>() {
                    Ok(reason) => reasons.push(reason),
                    Err(_) => {
                        return Decision::Unreadable(format!(
                            "DND state could not be read, so nothing is sent: the database holds \
                             reason \"{name}\", which this version of dnd does not know \
                             (written by a newer version?)"
                        ))
                    }
                },
            }
        }
        decide_blocks(all, reasons, Origin::Automated)
    }
}

/// The facts for a recipient list in one set-based statement. The mask
/// (kept by the database's triggers from the same reasons, in the same
/// transactions) says which recipients hold a reason on the channel; only
/// those have their reasons read. (Planned with its values each time: a
/// statement prepared once was slower, its generic plan worse for a list
/// of 100,000.)
fn gather(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    contact_ids: &[i64],
) -> QueryResult<Vec<Gathered>> {
    diesel::sql_query(
        "SELECT g.id AS contact_id,
                CASE WHEN g.address IS NULL OR g.dnd_all OR (g.dnd_mask & $4) <> 0 THEN concat_ws(',',
                         CASE WHEN g.address IS NULL THEN '-' END,
                         CASE WHEN g.dnd_all THEN '*' END,
                         CASE WHEN (g.dnd_mask & $4) <> 0 THEN (
                             SELECT string_agg(x.reason, ',') FROM (
                                 SELECT r.reason FROM contact_dnd_reasons r
                                 WHERE r.location_id = $1 AND r.contact_id = g.id
                                   AND r.channel = $3
                                 UNION ALL
                                 SELECT a.reason FROM address_dnd_reasons a
                                 WHERE a.location_id = $1 AND a.address = g.address
                                   AND a.channel = $3) x) END)
                END AS facts
         FROM (SELECT c.id, c.dnd_all, c.dnd_mask,
                      dnd_contact_address($3, c.phone, c.email, c.facebook_id, c.gmb_id,
                                          c.whatsapp_id) AS address
               FROM contacts c WHERE c.location_id = $1 AND c.id = ANY($2::bigint[])) g",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Array<BigInt>, _>(contact_ids)
    .bind::<Text, _>(channel)
    .bind::<SmallInt, _>(channel.bit())
    .load(conn)
}

/// One recipient's decision, before anything is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkDecision {
    pub contact_id: i64,
    /// The contact has an address on the channel (else nothing is sent).
    pub reachable: bool,
    pub decision: Decision,
}

/// Decides a recipient list without recording anything (what a bulk send
/// would do, e.g. to preview it). Unknown ids are left out.
pub fn decide_bulk(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    contact_ids: &[i64],
) -> Result<Vec<BulkDecision>, DbError> {
    Ok(gather(conn, location_id, channel, contact_ids)?
        .into_iter()
        .map(|g| BulkDecision {
            decision: g.decide(),
            contact_id: g.contact_id,
            reachable: g.reachable(),
        })
        .collect())
}

/// One recipient's result in a bulk send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkResult {
    pub contact_id: i64,
    pub id: Option<i64>,
    /// queued, blocked, failed, no_address or not_found
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub error: Option<String>,
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    contact_id: i64,
}

/// Decides a whole recipient list and records every message (`queued`,
/// `blocked` with its reasons, or `failed` when a stored value could not be
/// read), in one transaction of three statements whatever its size; answers
/// per recipient, in the order of the request (`no_address` and
/// `not_found` are not recorded).
///
/// The contacts are share-locked by a statement of their own first: a
/// statement that waits for a lock re-reads the locked rows but not the
/// other tables it reads, so the deciding statement must start after the
/// wait, with a snapshot that sees any DND committed meanwhile. They are
/// locked in id order, the order the database's triggers lock the holders
/// of an address in, so the two never wait on each other in a circle.
pub fn send_bulk(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    body: &str,
    subject: Option<&str>,
    contact_ids: &[i64],
) -> Result<Vec<BulkResult>, DbError> {
    conn.transaction(|conn| {
        super::wait_for_locks(conn)?;
        diesel::sql_query(
            "SELECT 1 FROM contacts WHERE location_id = $1 AND id = ANY($2::bigint[])
             ORDER BY id FOR SHARE",
        )
        .bind::<BigInt, _>(location_id)
        .bind::<Array<BigInt>, _>(contact_ids)
        .execute(conn)?;
        let gathered = gather(conn, location_id, channel, contact_ids)?;
        let mut decided: std::collections::HashMap<i64, (bool, Decision)> = gathered
            .into_iter()
            .map(|g| (g.contact_id, (g.reachable(), g.decide())))
            .collect();
        let (mut ids, mut status, mut reasons, mut errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, (reachable, decision)) in &decided {
            if *reachable {
                ids.push(*id);
                status.push(decision.message_status());
                reasons.push(decision.block_names().join(","));
                errors.push(match decision {
                    Decision::Unreadable(why) => Some(why.as_str()),
                    _ => None,
                });
            }
        }
        let recorded: Vec<Recorded> = if ids.is_empty() {
            Vec::new()
        } else {
            // The address is read again from the contacts, share-locked
            // since before they were decided: the one they were decided on.
            diesel::sql_query(
                "INSERT INTO messages (location_id, contact_id, channel, direction, origin, body,
                     subject, to_address, status, blocked_reasons, error_message, next_attempt_at)
                 SELECT $1, m.contact_id, $2, 'outbound', 'automated', $3, $4,
                        dnd_contact_address($2, c.phone, c.email, c.facebook_id, c.gmb_id,
                                            c.whatsapp_id),
                        m.status, coalesce(string_to_array(nullif(m.reasons, ''), ','), '{}'),
                        m.error, CASE WHEN m.status = 'queued' THEN now() END
                 FROM unnest($5::int8[], $6::text[], $7::text[], $8::text[])
                     AS m (contact_id, status, reasons, error)
                 JOIN contacts c ON c.location_id = $1 AND c.id = m.contact_id
                 RETURNING id, contact_id",
            )
            .bind::<BigInt, _>(location_id)
            .bind::<Text, _>(channel)
            .bind::<Text, _>(body)
            .bind::<Nullable<Text>, _>(subject)
            .bind::<Array<BigInt>, _>(&ids)
            .bind::<Array<Text>, _>(&status)
            .bind::<Array<Text>, _>(&reasons)
            .bind::<Array<Nullable<Text>>, _>(&errors)
            .load(conn)?
        };
        let message_of: std::collections::HashMap<i64, i64> =
            recorded.into_iter().map(|r| (r.contact_id, r.id)).collect();
        let mut results = Vec::with_capacity(contact_ids.len());
        for id in contact_ids {
            let Some((reachable, decision)) = decided.remove(id) else {
                // Listed twice, or not a contact of this location.
                if !results.iter().any(|r: &BulkResult| r.contact_id == *id) {
                    results.push(BulkResult {
                        contact_id: *id,
                        id: None,
                        status: "not_found",
                        reasons: Vec::new(),
                        error: None,
                    });
                }
                continue;
            };
            results.push(match reachable {
                false => BulkResult {
                    contact_id: *id,
                    id: None,
                    status: "no_address",
                    reasons: Vec::new(),
                    error: None,
                },
                true => BulkResult {
                    contact_id: *id,
                    id: message_of.get(id).copied(),
                    status: decision.message_status(),
                    reasons: decision.block_names(),
                    error: match decision {
                        Decision::Unreadable(why) => Some(why),
                        _ => None,
                    },
                },
            });
        }
        Ok(results)
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

/// At most this many of one location's messages in one claim.
const PER_LOCATION: i64 = 5;

/// Claims up to `limit` due messages, each location's oldest first and
/// the locations in turn (one location's bulk send holds no other
/// location's message behind it): `sending`, with the time of the claim,
/// so no other dispatcher takes them. Nothing is decided yet:
/// [`hand_over`] asks the gate right before each provider call. A crash
/// after this leaves them `sending` without a hand-over, which
/// [`reconcile_stuck`] queues again.
pub fn claim(conn: &mut PgConnection, limit: i64) -> Result<Vec<Outbound>, DbError> {
    Ok(diesel::sql_query(
        "UPDATE messages m SET status = 'sending', claimed_at = now(), handed_over_at = NULL,
                attempts = m.attempts + 1, updated_at = now()
         FROM (
             SELECT c.location_id, c.id FROM messages c
             WHERE (c.location_id, c.id) IN (
                 -- The locations with queued messages (one index probe
                 -- each), then a few of each one's oldest due messages,
                 -- ranked so every location gets its first before any its
                 -- second, the locations in a random turn (a location with
                 -- a long backlog is not always first). Picked without
                 -- locks: only the chosen rows are locked below.
                 WITH RECURSIVE queued (location_id) AS (
                     (SELECT location_id FROM messages
                      WHERE status = 'queued' AND direction = 'outbound'
                      ORDER BY location_id LIMIT 1)
                     UNION ALL
                     SELECT (SELECT m.location_id FROM messages m
                             WHERE m.status = 'queued' AND m.direction = 'outbound'
                               AND m.location_id > q.location_id
                             ORDER BY m.location_id LIMIT 1)
                     FROM queued q WHERE q.location_id IS NOT NULL
                 ), turns AS (
                     SELECT location_id, random() AS turn FROM queued
                     WHERE location_id IS NOT NULL
                 )
                 SELECT r.location_id, r.id FROM (
                     SELECT d.location_id, d.id, t.turn,
                            row_number() OVER (PARTITION BY d.location_id
                                               ORDER BY d.next_attempt_at, d.id) AS n
                     FROM turns t
                     CROSS JOIN LATERAL (
                         SELECT m.location_id, m.id, m.next_attempt_at FROM messages m
                         WHERE m.location_id = t.location_id AND m.status = 'queued'
                           AND m.direction = 'outbound' AND m.next_attempt_at <= now()
                         ORDER BY m.next_attempt_at, m.id
                         LIMIT $2) d) r
                 ORDER BY r.n, r.turn
                 LIMIT $1)
               AND c.status = 'queued'
             FOR UPDATE SKIP LOCKED) due
         WHERE m.location_id = due.location_id AND m.id = due.id AND m.status = 'queued'
         RETURNING m.location_id, m.id, m.contact_id, m.channel, m.direction, m.origin, m.body,
                   m.subject, m.to_address, m.status, m.blocked_reasons, m.provider_sid,
                   m.error_code, m.error_message, m.attempts, m.created_at, m.updated_at,
                   m.claimed_at, m.handed_over_at",
    )
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(PER_LOCATION.min(limit))
    .load::<OutboundRow>(conn)?
    .into_iter()
    .map(Outbound::from)
    .collect())
}

#[derive(QueryableByName)]
#[diesel(table_name = messages)]
struct OutboundRow {
    location_id: i64,
    id: i64,
    contact_id: i64,
    channel: String,
    direction: String,
    origin: Option<String>,
    body: String,
    subject: Option<String>,
    to_address: Option<String>,
    status: String,
    blocked_reasons: Vec<String>,
    provider_sid: Option<String>,
    error_code: Option<i32>,
    error_message: Option<String>,
    attempts: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    claimed_at: Option<DateTime<Utc>>,
    handed_over_at: Option<DateTime<Utc>>,
}

impl From<OutboundRow> for Outbound {
    fn from(r: OutboundRow) -> Self {
        Outbound {
            location_id: r.location_id,
            id: r.id,
            contact_id: r.contact_id,
            channel: r.channel,
            direction: r.direction,
            origin: r.origin,
            body: r.body,
            subject: r.subject,
            to_address: r.to_address,
            status: r.status,
            blocked_reasons: r.blocked_reasons,
            provider_sid: r.provider_sid,
            error_code: r.error_code,
            error_message: r.error_message,
            attempts: r.attempts,
            created_at: r.created_at,
            updated_at: r.updated_at,
            claimed_at: r.claimed_at,
            handed_over_at: r.handed_over_at,
        }
    }
}

/// What the dispatcher may do with a claimed message.
#[derive(Debug)]
pub enum HandOver {
    /// Hand it to this integration now (recorded as handed over).
    Send(Box<super::integrations::Integration>),
    /// The gate stopped it (recorded `blocked`).
    Blocked(Vec<Block>),
    /// It cannot go out (recorded `failed`, with why).
    Failed(String),
    /// Someone else dealt with it meanwhile.
    Gone,
}

/// Right before the provider call: the gate once more, on the address the
/// message goes to (a STOP committed while it waited in a claimed batch
/// stops it here), and the integration that will carry it. A value this
/// version cannot read (the message's channel or origin, a reason, the
/// integration's transport) fails the message: it is never sent, and never
/// sent some other way.
pub fn hand_over(conn: &mut PgConnection, m: &Outbound) -> Result<HandOver, DbError> {
    conn.transaction(|conn| {
        let row = messages::table.find((m.location_id, m.id));
        let fail = |conn: &mut PgConnection, why: String| -> Result<HandOver, DbError> {
            diesel::update(row)
                .set((
                    messages::status.eq("failed"),
                    messages::error_message.eq(&why),
                    messages::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
            Ok(HandOver::Failed(why))
        };
        let Some(to) = m.to_address.clone() else {
            return fail(conn, "the message has no address to go to".into());
        };
        share_address(conn, m.location_id, m.channel.parse().ok(), &to)?;
        let current: Option<(String, Option<DateTime<Utc>>)> = row
            .select((messages::status, messages::handed_over_at))
            .for_update()
            .first(conn)
            .optional()?;
        if !matches!(current, Some((ref status, None)) if status == "sending") {
            return Ok(HandOver::Gone);
        }
        let channel: Channel = match m.channel.parse() {
            Ok(c) => c,
            Err(_) => {
                return fail(
                    conn,
                    format!(
                    "the message's channel \"{}\" is not one this version of dnd knows; not sent",
                    m.channel
                ),
                )
            }
        };
        let origin: Origin = match m.origin.as_deref().unwrap_or("automated").parse() {
            Ok(o) => o,
            Err(_) => {
                return fail(
                    conn,
                    "the message's origin is not one this version of dnd knows; not sent".into(),
                )
            }
        };
        // The contact's row in share mode: a user's DND change either
        // committed before (and is seen) or waits until this is recorded.
        let exists = contacts::table
            .find((m.location_id, m.contact_id))
            .select(contacts::id)
            .for_share()
            .first::<i64>(conn)
            .optional()?;
        if exists.is_none() {
            return fail(conn, "the contact no longer exists".into());
        }
        match decide_one(conn, m.location_id, m.contact_id, channel, origin, &to)? {
            None => fail(conn, "the contact no longer exists".into()),
            Some(Decision::Unreadable(why)) => fail(conn, why),
            Some(Decision::Blocked(blocks)) => {
                let names: Vec<&str> = blocks.iter().map(|b| b.as_str()).collect();
                diesel::update(row)
                    .set((
                        messages::status.eq("blocked"),
                        messages::blocked_reasons.eq(names),
                        messages::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)?;
                Ok(HandOver::Blocked(blocks))
            }
            Some(Decision::Allowed) => {
                let integration = match super::integrations::find(conn, m.location_id, channel) {
                    Ok(Some(i)) => i,
                    Ok(None) => {
                        return fail(conn, format!("this location has no {channel} integration"))
                    }
                    Err(e) => match unknown_value(&e) {
                        Some(unknown) => {
                            return fail(conn, format!("the integration cannot be used: {unknown}"))
                        }
                        None => return Err(e.into()),
                    },
                };
                diesel::update(row)
                    .set((
                        messages::handed_over_at.eq(diesel::dsl::now),
                        messages::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)?;
                Ok(HandOver::Send(Box::new(integration)))
            }
        }
    })
}

/// The provider took it: its SID is recorded on the message. A status
/// report that came first about the same SID on a row of its own (a
/// callback the dispatcher did not ask for, e.g. a Messaging Service's)
/// is merged into the message, so the two meet on one row whichever came
/// first; the status only moves forward.
pub fn mark_sent(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    provider_sid: &str,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        let (status, error_code): (String, Option<i32>) = messages::table
            .find((location_id, id))
            .select((messages::status, messages::error_code))
            .for_update()
            .first(conn)?;
        let early: Vec<(String, Option<i32>)> = diesel::delete(
            messages::table
                .filter(messages::location_id.eq(location_id))
                .filter(messages::provider_sid.eq(provider_sid))
                .filter(messages::id.ne(id))
                .filter(messages::origin.is_null()),
        )
        .returning((messages::status, messages::error_code))
        .get_results(conn)?;
        let mut next = later_status(&status, "sent").to_string();
        let mut code = error_code;
        for (reported, reported_code) in &early {
            if later_status(&next, reported) != next {
                next = reported.clone();
                code = *reported_code;
            }
        }
        diesel::update(messages::table.find((location_id, id)))
            .set((
                messages::status.eq(next),
                messages::error_code.eq(code),
                messages::provider_sid.eq(provider_sid),
                messages::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        Ok(())
    })
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
            messages::claimed_at.eq(None::<DateTime<Utc>>),
            messages::handed_over_at.eq(None::<DateTime<Utc>>),
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

/// The provider may have taken the message without saying so (a timeout
/// after the request went out, a 5xx): it is never sent again, and stays
/// `unknown` until a status report settles it (one that came first wins).
pub fn mark_unknown(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    why: &str,
) -> QueryResult<()> {
    diesel::update(
        messages::table
            .find((location_id, id))
            .filter(messages::status.eq("sending")),
    )
    .set((
        messages::status.eq("unknown"),
        messages::error_message.eq(why),
        messages::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Hands back a claimed message that was never handed over (the
/// dispatcher is stopping): queued again at once, the claim's attempt not
/// counted, instead of waiting for [`reconcile_stuck`].
pub fn release_claim(conn: &mut PgConnection, location_id: i64, id: i64) -> QueryResult<()> {
    diesel::update(
        messages::table
            .find((location_id, id))
            .filter(messages::status.eq("sending"))
            .filter(messages::handed_over_at.is_null()),
    )
    .set((
        messages::status.eq("queued"),
        messages::claimed_at.eq(None::<DateTime<Utc>>),
        messages::attempts.eq(messages::attempts - 1),
        messages::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    Ok(())
}

/// What [`reconcile_stuck`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Claimed but never handed over (a dispatcher died first): queued
    /// again, and the gate will be asked again.
    pub requeued: usize,
    /// Handed over, but the outcome was never recorded: it may have gone
    /// out, so it is never sent again; `unknown` until a status report from
    /// the provider settles it.
    pub unknown: usize,
}

/// Finds messages left `sending` for longer than `after` and settles them
/// without ever sending one twice.
pub fn reconcile_stuck(
    conn: &mut PgConnection,
    after: chrono::Duration,
) -> QueryResult<Reconciled> {
    let cutoff = Utc::now() - after;
    let requeued = diesel::update(
        messages::table
            .filter(messages::status.eq("sending"))
            .filter(messages::claimed_at.lt(cutoff))
            .filter(messages::handed_over_at.is_null()),
    )
    .set((
        messages::status.eq("queued"),
        messages::next_attempt_at.eq(diesel::dsl::now),
        messages::claimed_at.eq(None::<DateTime<Utc>>),
        messages::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    let unknown = diesel::update(
        messages::table
            .filter(messages::status.eq("sending"))
            .filter(messages::claimed_at.lt(cutoff))
            .filter(messages::handed_over_at.lt(cutoff)),
    )
    .set((
        messages::status.eq("unknown"),
        messages::error_message.eq(
            "the provider call did not finish, so whether the message went out is unknown; \
             it is not sent again, and a status report from the provider will settle it",
        ),
        messages::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)?;
    Ok(Reconciled { requeued, unknown })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(f: Option<&str>) -> Gathered {
        Gathered {
            contact_id: 1,
            facts: f.map(str::to_string),
        }
    }

    #[test]
    fn gathered_facts_are_decided_by_the_one_rule() {
        assert_eq!(facts(None).decide(), Decision::Allowed);
        assert!(facts(None).reachable());
        let unreachable = facts(Some("-,*"));
        assert!(!unreachable.reachable());
        assert_eq!(
            unreachable.decide(),
            Decision::Blocked(vec![Block::AllChannels])
        );
        // In the domain's order, whatever order the database listed them in.
        assert_eq!(
            facts(Some("*,sms_opt_out,manual")).decide(),
            Decision::Blocked(vec![
                Block::AllChannels,
                Block::Reason(Reason::Manual),
                Block::Reason(Reason::SmsOptOut)
            ])
        );
        assert!(matches!(
            facts(Some("sms_opt_out,regulator_block")).decide(),
            Decision::Unreadable(why) if why.contains("regulator_block")
        ));
    }
}
