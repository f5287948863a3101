//! The one path every provider event takes into the database, whatever
//! the provider: a parser turns a verified webhook into [`ProviderEvent`]s
//! and [`apply`] stores them and applies their effect in one transaction,
//! for one webhook or a batch of many (group commit).
//!
//! In that transaction: replayed signature tokens are refused; the
//! addresses the events concern are locked (sorted, so batches never wait
//! on each other in a circle); events stored before are retries and change
//! nothing; each consent event goes through the rules, in arrival order, on
//! the reasons kept on its address, stale ones recorded as such; the
//! reasons are written before any contact is created, so a contact made
//! for a new sender is blocked by its own STOP in one write; events, inbound
//! messages and history are stored; outbound statuses move forward.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};

use super::dnd::{self as dnd_store, AddressKey, AddressState, AddressWrite, HistoryColumns};
use super::prepared::prepared_statement;
use super::schema::{mailgun_seen_tokens, messages};
use super::DbError;
use crate::domain::dnd::{ConsentEvent, HistoryEntry};
use crate::domain::local_time::Zone;
use crate::domain::message::status_rank;
use crate::domain::Channel;

/// One event a provider told us about, parsed and verified.
#[derive(Debug, Clone)]
pub struct ProviderEvent {
    /// `twilio`, `mailgun`, `meta`.
    pub provider: &'static str,
    /// What it was: `inbound_sms`, `status`, a Mailgun event, `whatsapp`...
    pub kind: String,
    /// The provider's own id for it; its retries carry the same.
    pub key: String,
    /// The webhook's body, as received.
    pub payload: String,
    /// The channel and canonical address it concerns, if it names one.
    pub channel: Channel,
    pub address: Option<String>,
    /// What it says about consent, if anything.
    pub consent: Option<ConsentEvent>,
    /// What it did, for the stored event: opt_out, opt_in, help, message,
    /// a reason, recorded.
    pub outcome: &'static str,
    /// A message from the person, for their timeline (its sender becomes a
    /// contact if none has the address).
    pub inbound: Option<InboundText>,
    /// A report on a message we sent.
    pub status: Option<StatusReport>,
}

#[derive(Debug, Clone)]
pub struct InboundText {
    pub body: String,
    pub from: String,
    pub to: String,
    pub sid: String,
}

#[derive(Debug, Clone)]
pub struct StatusReport {
    pub sid: String,
    pub status: String,
    pub error_code: Option<i32>,
    pub to: String,
    pub from: String,
    /// Our message id, when the callback URL carries it (the dispatcher
    /// asks for `?m=<id>`): the report then finds the message even before
    /// the dispatcher recorded the provider's SID.
    pub message_id: Option<i64>,
}

/// What one webhook delivered: its events, and the signature token to
/// remember (Mailgun's), which makes a replay of the request refused.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub location_id: i64,
    pub events: Vec<ProviderEvent>,
    pub nonce: Option<String>,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored and applied; `fresh` of its events were new (the others were
    /// provider retries of events stored before).
    Applied { fresh: usize, repeated: usize },
    /// Its signature token was used before: a replay, refused.
    Replayed,
}

impl Stored {
    /// Every event of it was stored before (a provider's retry).
    pub fn is_retry(self) -> bool {
        matches!(self, Stored::Applied { fresh: 0, .. })
    }
}

/// How long a Mailgun token is remembered: well past the 5-minute window in
/// which its timestamp is accepted at all.
const TOKEN_MEMORY_HOURS: i64 = 24;

/// Stores the deliveries and applies their events, in one transaction.
pub fn apply(conn: &mut PgConnection, deliveries: &[Delivery]) -> Result<Vec<Stored>, DbError> {
    conn.transaction(|conn| apply_within(conn, deliveries))
}

fn apply_within(conn: &mut PgConnection, deliveries: &[Delivery]) -> Result<Vec<Stored>, DbError> {
    let replayed = remember_tokens(conn, deliveries)?;
    let mut results: Vec<Stored> = deliveries
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if replayed.contains(&i) {
                Stored::Replayed
            } else {
                Stored::Applied {
                    fresh: 0,
                    repeated: 0,
                }
            }
        })
        .collect();
    // The events to consider, in arrival order, with their delivery.
    let events: Vec<(usize, i64, &ProviderEvent)> = deliveries
        .iter()
        .enumerate()
        .filter(|(i, _)| !replayed.contains(i))
        .flat_map(|(i, d)| d.events.iter().map(move |e| (i, d.location_id, e)))
        .collect();
    if events.is_empty() {
        return Ok(results);
    }

    dnd_store::lock_addresses(
        conn,
        events
            .iter()
            .filter_map(|(_, location_id, e)| e.address.as_deref().map(|a| (*location_id, a))),
    )?;

    // Retries: stored before, or a second copy within this batch.
    let known = stored_keys(conn, &events)?;
    let mut seen: HashSet<(i64, &str, &str)> = HashSet::new();
    let fresh: Vec<bool> = events
        .iter()
        .map(|(_, location_id, e)| {
            let key = (*location_id, e.provider, e.key.as_str());
            !known.contains(&(key.0, key.1.to_string(), key.2.to_string())) && seen.insert(key)
        })
        .collect();
    for ((i, _, _), is_new) in events.iter().zip(&fresh) {
        if let Stored::Applied { fresh, repeated } = &mut results[*i] {
            if *is_new {
                *fresh += 1;
            } else {
                *repeated += 1;
            }
        }
    }

    // The rules, event by event, on the reasons kept on each address.
    let keys: Vec<AddressKey> = events
        .iter()
        .zip(&fresh)
        .filter(|(_, is_new)| **is_new)
        .filter_map(|((_, location_id, e), _)| {
            e.consent.as_ref().map(|c| AddressKey {
                location_id: *location_id,
                channel: c.channel,
                address: c.address.clone(),
            })
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let before = dnd_store::address_states(conn, &keys)?;
    // The history's words give times as the location reads them.
    let zones = if keys.is_empty() {
        HashMap::new()
    } else {
        let mut ids: Vec<i64> = keys.iter().map(|k| k.location_id).collect();
        ids.sort_unstable();
        ids.dedup();
        super::locations::zones_of(conn, &ids)?
    };
    let mut now: HashMap<AddressKey, AddressState> = before.clone();
    let mut entries: Vec<(usize, HistoryEntry)> = Vec::new();
    for (n, ((_, location_id, e), is_new)) in events.iter().zip(&fresh).enumerate() {
        let (Some(consent), true) = (&e.consent, *is_new) else {
            continue;
        };
        let key = AddressKey {
            location_id: *location_id,
            channel: consent.channel,
            address: consent.address.clone(),
        };
        let AddressState {
            reasons: state,
            clocks,
        } = now
            .get(&key)
            .cloned()
            .ok_or_else(|| DbError::Invariant(format!("{key:?} was locked but not read")))?;
        // A provider's own reason or the person's own act is never refused;
        // if the rules ever did, storing the event without it would be wrong.
        let applied = state
            .apply_consent(
                consent,
                &clocks,
                zones.get(location_id).copied().unwrap_or(Zone::UTC),
            )
            .map_err(|r| DbError::Invariant(format!("a {} event was refused: {r}", e.provider)))?;
        entries.extend(applied.transition.entries.into_iter().map(|h| (n, h)));
        now.insert(
            key,
            AddressState {
                reasons: applied.transition.state,
                clocks: applied.clocks,
            },
        );
    }
    let mut reasons = AddressWrite::default();
    for (key, after) in &now {
        if let Some(old) = before.get(key) {
            reasons.change(key, old, after);
        }
    }
    reasons.execute(conn)?;

    // Contacts: a person who texts in becomes one (blocked at once by the
    // trigger if their address holds a reason); then who holds what.
    let holders = holders(conn, &events, &fresh)?;

    // Events, inbound messages and the history, on their contacts.
    let mut rows = EventRows::default();
    for (n, ((_, location_id, e), is_new)) in events.iter().zip(&fresh).enumerate() {
        if *is_new {
            rows.push(*location_id, e, holders[n]);
        }
    }
    for (n, entry) in &entries {
        let (_, location_id, _) = events[*n];
        rows.history.push(location_id, holders[*n], entry);
    }
    rows.execute(conn)?;

    for (n, ((_, location_id, e), is_new)) in events.iter().zip(&fresh).enumerate() {
        if let (Some(report), true) = (&e.status, *is_new) {
            record_status(conn, *location_id, report, holders[n])?;
        }
    }
    Ok(results)
}

/// Remembers the deliveries' signature tokens; the indexes of those whose
/// token was seen before (replays).
fn remember_tokens(
    conn: &mut PgConnection,
    deliveries: &[Delivery],
) -> Result<HashSet<usize>, DbError> {
    let mut replayed = HashSet::new();
    if deliveries.iter().all(|d| d.nonce.is_none()) {
        return Ok(replayed);
    }
    diesel::delete(
        mailgun_seen_tokens::table.filter(
            mailgun_seen_tokens::seen_at.lt(Utc::now() - Duration::hours(TOKEN_MEMORY_HOURS)),
        ),
    )
    .execute(conn)?;
    // One memory for every location: the signature does not cover the
    // location, so a token honoured for one is a replay for all.
    for (i, d) in deliveries.iter().enumerate() {
        let Some(token) = &d.nonce else { continue };
        let inserted = diesel::insert_into(mailgun_seen_tokens::table)
            .values(mailgun_seen_tokens::token.eq(token))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if inserted == 0 {
            replayed.insert(i);
        }
    }
    Ok(replayed)
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    event_key: String,
}

/// The events of the batch that are stored already.
fn stored_keys(
    conn: &mut PgConnection,
    events: &[(usize, i64, &ProviderEvent)],
) -> QueryResult<HashSet<(i64, String, String)>> {
    let locations: Vec<i64> = events.iter().map(|(_, l, _)| *l).collect();
    let providers: Vec<&str> = events.iter().map(|(_, _, e)| e.provider).collect();
    let keys: Vec<&str> = events.iter().map(|(_, _, e)| e.key.as_str()).collect();
    let rows: Vec<KeyRow> = diesel::sql_query(
        "SELECT w.location_id, w.provider, w.event_key FROM webhook_events w
         JOIN unnest($1::int8[], $2::text[], $3::text[]) AS k (location_id, provider, event_key)
           ON w.location_id = k.location_id AND w.provider = k.provider AND w.event_key = k.event_key",
    )
    .bind::<Array<BigInt>, _>(&locations)
    .bind::<Array<Text>, _>(&providers)
    .bind::<Array<Text>, _>(&keys)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.location_id, r.provider, r.event_key))
        .collect())
}

#[derive(QueryableByName)]
struct HolderRow {
    #[diesel(sql_type = BigInt)]
    i: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// For each event, the contact that holds its address on its channel now
/// (`None` if nobody does), after creating a contact for every new inbound
/// message whose sender is nobody yet.
fn holders(
    conn: &mut PgConnection,
    events: &[(usize, i64, &ProviderEvent)],
    fresh: &[bool],
) -> QueryResult<Vec<Option<i64>>> {
    let mut out = lookup_holders(conn, events, |_| true)?;
    // Only the senders nobody holds are inserted: an insert that would
    // conflict still runs the row's triggers first.
    let mut senders: Vec<(i64, &str)> = events
        .iter()
        .zip(fresh)
        .zip(&out)
        .filter(|((_, is_new), holder)| **is_new && holder.is_none())
        .filter_map(|(((_, location_id, e), _), _)| {
            e.inbound
                .as_ref()
                .and(e.address.as_deref())
                .map(|a| (*location_id, a))
        })
        .collect();
    if senders.is_empty() {
        return Ok(out);
    }
    senders.sort();
    senders.dedup();
    let (locations, phones): (Vec<i64>, Vec<&str>) = senders.into_iter().unzip();
    // No one else can give these numbers to a contact meanwhile: that takes
    // the numbers' locks, which this transaction holds. (So a plain insert:
    // one that may conflict costs more, and runs its triggers all the same.)
    let made: Vec<MadeRow> = diesel::sql_query(
        "INSERT INTO contacts (location_id, phone)
         SELECT * FROM unnest($1::int8[], $2::text[]) ORDER BY 1, 2
         RETURNING location_id, id, phone",
    )
    .bind::<Array<BigInt>, _>(&locations)
    .bind::<Array<Text>, _>(&phones)
    .load(conn)?;
    for (n, (_, location_id, e)) in events.iter().enumerate() {
        if out[n].is_none() && fresh[n] && e.inbound.is_some() {
            out[n] = made
                .iter()
                .find(|m| {
                    m.location_id == *location_id && Some(m.phone.as_str()) == e.address.as_deref()
                })
                .map(|m| m.id);
        }
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct MadeRow {
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    phone: String,
}

/// The contact holding each event's address on its channel (for the
/// events `which` picks; `None` for the others).
fn lookup_holders(
    conn: &mut PgConnection,
    events: &[(usize, i64, &ProviderEvent)],
    which: impl Fn(usize) -> bool,
) -> QueryResult<Vec<Option<i64>>> {
    let mut locations = Vec::new();
    let mut channels = Vec::new();
    let mut addresses = Vec::new();
    let mut index = Vec::new();
    for (n, (_, location_id, e)) in events.iter().enumerate() {
        if let (Some(a), true) = (&e.address, which(n)) {
            locations.push(*location_id);
            channels.push(e.channel);
            addresses.push(a.as_str());
            index.push(n as i64);
        }
    }
    let mut out = vec![None; events.len()];
    if locations.is_empty() {
        return Ok(out);
    }
    let rows: Vec<HolderRow> = diesel::sql_query(
        "SELECT k.i, h.id FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[])
             AS k (location_id, channel, address, i)
         CROSS JOIN LATERAL (
             SELECT c.id FROM contacts c
             WHERE c.location_id = k.location_id
               AND (c.phone = k.address OR c.email = k.address OR c.whatsapp_id = k.address
                    OR c.facebook_id = k.address OR c.gmb_id = k.address)
               AND dnd_contact_address(k.channel, c.phone, c.email, c.facebook_id, c.gmb_id,
                                       c.whatsapp_id) = k.address
             ORDER BY c.id LIMIT 1) h",
    )
    .bind::<Array<BigInt>, _>(&locations)
    .bind::<Array<Text>, _>(&channels)
    .bind::<Array<Text>, _>(&addresses)
    .bind::<Array<BigInt>, _>(&index)
    .load(conn)?;
    for r in rows {
        out[r.i as usize] = Some(r.id);
    }
    Ok(out)
}

/// New events, the inbound messages they carried and the history they
/// wrote, in one statement. `ON CONFLICT DO NOTHING` is only a safety net:
/// retries were left out under the addresses' locks already.
#[derive(Default)]
struct EventRows {
    location_id: Vec<i64>,
    provider: Vec<&'static str>,
    kind: Vec<String>,
    key: Vec<String>,
    payload: Vec<String>,
    contact_id: Vec<Option<i64>>,
    outcome: Vec<&'static str>,
    m_location_id: Vec<i64>,
    m_contact_id: Vec<i64>,
    m_channel: Vec<Channel>,
    m_body: Vec<String>,
    m_from: Vec<String>,
    m_to: Vec<String>,
    m_sid: Vec<String>,
    history: HistoryColumns,
}

prepared_statement!(
    EventRows,
    "WITH event AS (
        INSERT INTO webhook_events
            (location_id, provider, kind, event_key, payload, contact_id, outcome)
        SELECT * FROM unnest(?::int8[], ?::text[], ?::text[], ?::text[], ?::text[],
            ?::int8[], ?::text[])
        ON CONFLICT (location_id, provider, event_key) DO NOTHING
    ), message AS (
        INSERT INTO messages (location_id, contact_id, channel, direction, body,
            from_address, to_address, provider_sid, status)
        SELECT m.location_id, m.contact_id, m.channel, 'inbound', m.body, m.from_address,
            m.to_address, m.sid, 'received'
        FROM unnest(?::int8[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
            AS m (location_id, contact_id, channel, body, from_address, to_address, sid)
        ON CONFLICT (location_id, provider_sid) DO NOTHING
    )
    INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action,
        actor_kind, actor_id, actor_label, address, source, at, event_at, detail)
    SELECT * FROM unnest(?::int8[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::text[],
        ?::text[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::timestamptz[],
        ?::timestamptz[], ?::text[])",
    |s| [
        Array<BigInt> => &s.location_id,
        Array<Text> => &s.provider,
        Array<Text> => &s.kind,
        Array<Text> => &s.key,
        Array<Text> => &s.payload,
        Array<Nullable<BigInt>> => &s.contact_id,
        Array<Text> => &s.outcome,
        Array<BigInt> => &s.m_location_id,
        Array<BigInt> => &s.m_contact_id,
        Array<Text> => &s.m_channel,
        Array<Text> => &s.m_body,
        Array<Text> => &s.m_from,
        Array<Text> => &s.m_to,
        Array<Text> => &s.m_sid,
        Array<BigInt> => &s.history.location,
        Array<Nullable<BigInt>> => &s.history.contact,
        Array<Nullable<Text>> => &s.history.channel,
        Array<Nullable<Text>> => &s.history.reason,
        Array<Nullable<Text>> => &s.history.kind,
        Array<Text> => &s.history.action,
        Array<Text> => &s.history.actor_kind,
        Array<Nullable<BigInt>> => &s.history.actor_id,
        Array<Text> => &s.history.actor_label,
        Array<Nullable<Text>> => &s.history.address,
        Array<Nullable<Text>> => &s.history.source,
        Array<Timestamptz> => &s.history.at,
        Array<Nullable<Timestamptz>> => &s.history.event_at,
        Array<Nullable<Text>> => &s.history.detail,
    ]
);

impl EventRows {
    fn push(&mut self, location_id: i64, e: &ProviderEvent, contact_id: Option<i64>) {
        self.location_id.push(location_id);
        self.provider.push(e.provider);
        self.kind.push(e.kind.clone());
        self.key.push(e.key.clone());
        self.payload.push(e.payload.clone());
        self.contact_id.push(contact_id);
        self.outcome.push(e.outcome);
        if let (Some(text), Some(contact_id)) = (&e.inbound, contact_id) {
            self.m_location_id.push(location_id);
            self.m_contact_id.push(contact_id);
            self.m_channel.push(e.channel);
            self.m_body.push(text.body.clone());
            self.m_from.push(text.from.clone());
            self.m_to.push(text.to.clone());
            self.m_sid.push(text.sid.clone());
        }
    }

    fn execute(self, conn: &mut PgConnection) -> QueryResult<()> {
        if !self.key.is_empty() || !self.history.is_empty() {
            RunQueryDsl::execute(self, conn)?;
        }
        Ok(())
    }
}

/// A provider's report on a message we sent: it moves the message's status
/// forward only. It finds the message by the provider's SID, or by our id
/// when the callback URL carries it (the report may come before the
/// dispatcher recorded the SID: then it records the SID itself). A report
/// on a message sent outside dnd is kept on the timeline of the contact
/// that holds the number, as a row of its own; the dispatcher merges such a
/// row into its message if it turns out to be ours.
pub fn record_status(
    conn: &mut PgConnection,
    location_id: i64,
    report: &StatusReport,
    holder: Option<i64>,
) -> QueryResult<()> {
    let by_sid: Option<i64> = messages::table
        .filter(messages::location_id.eq(location_id))
        .filter(messages::provider_sid.eq(&report.sid))
        .select(messages::id)
        .for_update()
        .first(conn)
        .optional()?;
    type Ours = (i64, String, Option<String>, Option<i32>);
    let ours: Option<Ours> = match (by_sid, report.message_id) {
        (Some(id), _) => messages::table
            .find((location_id, id))
            .select((
                messages::id,
                messages::status,
                messages::provider_sid,
                messages::error_code,
            ))
            .first(conn)
            .optional()?,
        (None, Some(id)) => messages::table
            .find((location_id, id))
            .filter(messages::direction.eq("outbound"))
            .filter(messages::to_address.eq(&report.to))
            .select((
                messages::id,
                messages::status,
                messages::provider_sid,
                messages::error_code,
            ))
            .for_update()
            .first(conn)
            .optional()?,
        (None, None) => None,
    };
    match ours {
        Some((id, status, sid, error_code)) => {
            let moved = status_rank(&report.status) > status_rank(&status);
            diesel::update(messages::table.find((location_id, id)))
                .set((
                    messages::status.eq(if moved { &report.status } else { &status }),
                    messages::error_code.eq(if moved { report.error_code } else { error_code }),
                    messages::provider_sid.eq(sid.unwrap_or_else(|| report.sid.clone())),
                    messages::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
        }
        None => {
            if let Some(contact_id) = holder {
                diesel::insert_into(messages::table)
                    .values((
                        messages::location_id.eq(location_id),
                        messages::contact_id.eq(contact_id),
                        messages::channel.eq(Channel::Sms),
                        messages::direction.eq("outbound"),
                        messages::from_address.eq(&report.from),
                        messages::to_address.eq(&report.to),
                        messages::provider_sid.eq(&report.sid),
                        messages::status.eq(&report.status),
                        messages::error_code.eq(report.error_code),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}
