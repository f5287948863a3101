//! Fixes of stored data that need the application's own rules, run once
//! after the migrations. SQL alone cannot spell a number the way
//! libphonenumber does.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};

use super::dnd::{lock_addresses, DndWrite};
use super::DbError;
use crate::domain::dnd::{Action, Actor, ActorKind, HistoryEntry, Reason};
use crate::domain::{Channel, PhoneNumber};

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Numbers {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    whatsapp_id: Option<String>,
}

#[derive(QueryableByName)]
struct Kept {
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = Text)]
    address: String,
}

#[derive(QueryableByName)]
struct Respelled {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = Bool)]
    phone: bool,
    #[diesel(sql_type = Bool)]
    whatsapp: bool,
}

/// Named anew whenever what it does changes, so a database that ran an
/// earlier version of it runs this one too (every version is idempotent).
const PHONE_SPELLINGS: &str = "dnd follows respelled numbers";

/// The channels whose addresses are numbers.
const NUMBER_CHANNELS: [Channel; 3] = [Channel::Sms, Channel::Call, Channel::Whatsapp];

/// How many spellings one transaction fixes: each takes two address locks,
/// and locks live in PostgreSQL's shared lock table until commit.
const SPELLINGS_PER_TRANSACTION: usize = 200;

/// Runs the fixes not done yet; the names of those it ran.
pub fn run(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    let done: Done = diesel::sql_query("SELECT count(*) AS n FROM data_fixes WHERE name = $1")
        .bind::<Text, _>(PHONE_SPELLINGS)
        .get_result(conn)?;
    if done.n > 0 {
        return Ok(Vec::new());
    }
    respell_numbers(conn)?;
    diesel::sql_query("INSERT INTO data_fixes (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind::<Text, _>(PHONE_SPELLINGS)
        .execute(conn)?;
    Ok(vec![PHONE_SPELLINGS.to_string()])
}

/// A number of a location in the spelling it is stored in, and in E.164
/// as the parser spells it now.
type Spelling = (i64, String, String);

/// Numbers stored before every path used one parser: the API kept a trunk
/// prefix (`+44 (0)20 7946 0958` became `+4402079460958`) while that
/// person's STOP arrived as `+442079460958`, and the reasons kept on the
/// old spelling were on a string no provider sends. Every stored spelling
/// (on contacts, and where reasons and clocks are kept) is fixed by
/// [`respell`], a few hundred per transaction: each transaction leaves the
/// data consistent, so an interrupted run is simply run again.
fn respell_numbers(conn: &mut PgConnection) -> Result<(), DbError> {
    let spellings: Vec<Spelling> = stored_spellings(conn)?.into_iter().collect();
    for chunk in spellings.chunks(SPELLINGS_PER_TRANSACTION) {
        conn.transaction(|conn| -> Result<(), DbError> {
            lock_addresses(
                conn,
                chunk
                    .iter()
                    .flat_map(|(l, old, new)| [(*l, old.as_str()), (*l, new.as_str())]),
            )?;
            lock_holders(conn, chunk)?;
            let mut history = DndWrite::default();
            for spelling in chunk {
                respell(conn, spelling, &mut history)?;
            }
            history.execute(conn)?;
            Ok(())
        })?;
    }
    if !spellings.is_empty() {
        tracing::info!(count = spellings.len(), "stored numbers respelled");
    }
    Ok(())
}

/// Every stored number whose canonical spelling differs, read page by page
/// in index order (outside any transaction: nothing is locked meanwhile).
fn stored_spellings(conn: &mut PgConnection) -> Result<BTreeSet<Spelling>, DbError> {
    let mut found = BTreeSet::new();
    let mut note = |location_id: i64, stored: &str| {
        if let Ok(canonical) = PhoneNumber::parse_international(stored) {
            if canonical.as_str() != stored {
                found.insert((location_id, stored.to_string(), canonical.into_inner()));
            }
        }
    };
    let mut after = 0i64;
    loop {
        let page: Vec<Numbers> = diesel::sql_query(
            "SELECT id, location_id, phone, whatsapp_id FROM contacts
             WHERE id > $1 AND (phone IS NOT NULL OR whatsapp_id IS NOT NULL)
             ORDER BY id LIMIT 5000",
        )
        .bind::<BigInt, _>(after)
        .load(conn)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for c in &page {
            for stored in [&c.phone, &c.whatsapp_id].into_iter().flatten() {
                note(c.location_id, stored);
            }
        }
    }
    let channels: Vec<&str> = NUMBER_CHANNELS.iter().map(|c| c.as_str()).collect();
    for table in ["address_dnd_reasons", "address_consent"] {
        let (mut location, mut address) = (0i64, String::new());
        loop {
            let page: Vec<Kept> = diesel::sql_query(format!(
                "SELECT DISTINCT location_id, address FROM {table}
                 WHERE (location_id, address) > ($1, $2) AND channel = ANY($3)
                 ORDER BY location_id, address LIMIT 5000"
            ))
            .bind::<BigInt, _>(location)
            .bind::<Text, _>(&address)
            .bind::<Array<Text>, _>(&channels)
            .load(conn)?;
            let Some(last) = page.last() else { break };
            (location, address) = (last.location_id, last.address.clone());
            for k in &page {
                note(k.location_id, &k.address);
            }
        }
    }
    Ok(found)
}

/// Locks every contact holding either spelling of the chunk's numbers, in
/// id order, as every other writer of many contacts does (a bulk send, the
/// mask triggers): taken one spelling at a time, they could deadlock.
fn lock_holders(conn: &mut PgConnection, chunk: &[Spelling]) -> Result<(), DbError> {
    let (locations, addresses): (Vec<i64>, Vec<&str>) = chunk
        .iter()
        .flat_map(|(l, old, new)| [(*l, old.as_str()), (*l, new.as_str())])
        .unzip();
    diesel::sql_query(
        "SELECT count(*) AS n FROM (
             SELECT c.id FROM contacts c
             JOIN unnest($1::int8[], $2::text[]) AS k (location_id, address)
               ON c.location_id = k.location_id AND (c.phone = k.address OR c.whatsapp_id = k.address)
             ORDER BY c.location_id, c.id
             FOR UPDATE OF c) locked",
    )
    .bind::<Array<BigInt>, _>(&locations)
    .bind::<Array<Text>, _>(&addresses)
    .get_result::<Done>(conn)?;
    Ok(())
}

/// Fixes one stored spelling, under the locks of both spellings:
/// - the reasons and clocks kept on the old spelling are kept on the
///   canonical one too (the person's STOP follows their number);
/// - contacts holding the old spelling get the canonical one, unless
///   another contact of the location has it already (then the two are one
///   person for someone to merge, and it is said in the log);
/// - where a contact still reaches the old spelling, that spelling gets the
///   canonical one's reasons as well, so neither twin is sendable while
///   the other is blocked; elsewhere the old spelling's rows go.
fn respell(
    conn: &mut PgConnection,
    (location_id, old, new): &Spelling,
    history: &mut DndWrite,
) -> Result<(), DbError> {
    let all: Vec<&str> = NUMBER_CHANNELS.iter().map(|c| c.as_str()).collect();
    copy_kept(conn, *location_id, old, new, &all, history)?;

    let now = chrono::Utc::now();
    for (column, channel) in [("phone", Channel::Sms), ("whatsapp_id", Channel::Whatsapp)] {
        let respelled: Vec<Respelled> = diesel::sql_query(format!(
            "UPDATE contacts SET {column} = $3
             WHERE location_id = $1 AND {column} = $2
               AND NOT EXISTS (SELECT 1 FROM contacts o WHERE o.location_id = $1 AND o.{column} = $3)
             RETURNING id"
        ))
        .bind::<BigInt, _>(location_id)
        .bind::<Text, _>(old)
        .bind::<Text, _>(new)
        .load(conn)?;
        for contact in respelled {
            history.history(
                *location_id,
                Some(contact.id),
                &HistoryEntry {
                    channel: Some(channel),
                    reason: None,
                    action: Action::AddressChanged,
                    actor: Actor::new(
                        ActorKind::Provider,
                        None,
                        "upgrade: one spelling per number",
                    ),
                    at: now,
                    address: Some(old.clone()),
                    source: Some(new.clone()),
                    event_at: None,
                    detail: Some(format!(
                        "The stored number {old} is now spelled {new}, as providers send it. \
                         DND kept on either spelling applies to this contact."
                    )),
                },
            );
        }
    }

    let held: Held = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE location_id = $1 AND phone = $2) AS phone,
                EXISTS (SELECT 1 FROM contacts WHERE location_id = $1 AND (whatsapp_id = $2
                        OR (whatsapp_id IS NULL AND phone = $2))) AS whatsapp",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Text, _>(old)
    .get_result(conn)?;
    let (still, gone): (Vec<Channel>, Vec<Channel>) =
        NUMBER_CHANNELS.into_iter().partition(|c| match c {
            Channel::Whatsapp => held.whatsapp,
            _ => held.phone,
        });
    let (still, gone): (Vec<&str>, Vec<&str>) = (
        still.iter().map(|c| c.as_str()).collect(),
        gone.iter().map(|c| c.as_str()).collect(),
    );
    if !still.is_empty() {
        tracing::warn!(
            location_id,
            "a contact's stored number is another contact's in its canonical spelling; \
             both keep the DND of either until someone merges them"
        );
        copy_kept(conn, *location_id, new, old, &still, history)?;
    }
    for table in ["address_dnd_reasons", "address_consent"] {
        diesel::sql_query(format!(
            "DELETE FROM {table} WHERE location_id = $1 AND address = $2 AND channel = ANY($3)"
        ))
        .bind::<BigInt, _>(location_id)
        .bind::<Text, _>(old)
        .bind::<Array<Text>, _>(&gone)
        .execute(conn)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Carried {
    #[diesel(sql_type = Text)]
    channel: Channel,
    #[diesel(sql_type = Text)]
    reason: Reason,
    #[diesel(sql_type = Bool)]
    copied: bool,
    #[diesel(sql_type = Bool)]
    superseded: bool,
}

/// Keeps the reasons and clocks of `from` on `to` as well (on these
/// channels); what `to` has already stays, and a reason that a newer
/// consent change about it on `to` (a START there, a user's lift) has
/// overtaken is not brought back. Each is said in `to`'s history.
fn copy_kept(
    conn: &mut PgConnection,
    location_id: i64,
    from: &str,
    to: &str,
    channels: &[&str],
    history: &mut DndWrite,
) -> Result<(), DbError> {
    let carried: Vec<Carried> = diesel::sql_query(
        "WITH kept AS (
             SELECT r.*, EXISTS (
                 SELECT 1 FROM address_consent c
                 WHERE c.location_id = r.location_id AND c.address = $3
                   AND c.channel = r.channel AND c.reason = r.reason
                   AND c.last_change_at > r.set_at) AS superseded
             FROM address_dnd_reasons r
             WHERE r.location_id = $1 AND r.address = $2 AND r.channel = ANY($4)
         ), copied AS (
             INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
                 actor_kind, actor_id, actor_label, source)
             SELECT location_id, $3, channel, reason, kind, set_at, actor_kind, actor_id,
                 actor_label, source
             FROM kept WHERE NOT superseded
             ON CONFLICT DO NOTHING
             RETURNING channel, reason
         )
         SELECT k.channel, k.reason, c.reason IS NOT NULL AS copied, k.superseded
         FROM kept k LEFT JOIN copied c ON c.channel = k.channel AND c.reason = k.reason",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Text, _>(from)
    .bind::<Text, _>(to)
    .bind::<Array<Text>, _>(channels)
    .load(conn)?;
    diesel::sql_query(
        "INSERT INTO address_consent (location_id, address, channel, reason, last_change_at)
         SELECT location_id, $3, channel, reason, last_change_at
         FROM address_consent
         WHERE location_id = $1 AND address = $2 AND channel = ANY($4)
         ON CONFLICT (location_id, address, channel, reason) DO UPDATE
             SET last_change_at = greatest(address_consent.last_change_at, excluded.last_change_at)",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Text, _>(from)
    .bind::<Text, _>(to)
    .bind::<Array<Text>, _>(channels)
    .execute(conn)?;
    let now = chrono::Utc::now();
    for c in carried.iter().filter(|c| c.copied || c.superseded) {
        let (action, detail) = if c.copied {
            (
                Action::AddressChanged,
                format!("Kept on {from}, the same number as stored before; now kept on {to} too."),
            )
        } else {
            (
                Action::Stale,
                format!(
                    "Kept on {from}, the same number as stored before; not brought to {to}, \
                     where a newer consent change about it was made."
                ),
            )
        };
        history.history(
            location_id,
            None,
            &HistoryEntry {
                channel: Some(c.channel),
                reason: Some(c.reason),
                action,
                actor: upgrade(),
                at: now,
                address: Some(to.to_string()),
                source: Some(from.to_string()),
                event_at: None,
                detail: Some(detail),
            },
        );
    }
    Ok(())
}

/// Who the history names for what the upgrade did.
fn upgrade() -> Actor {
    Actor::new(
        ActorKind::Provider,
        None,
        "upgrade: one spelling per number",
    )
}
