//! Storing a contact's DND: the reasons in force, the switch and bitmask on
//! the contact, and the append-only history, always written together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use diesel::sql_types::{Array, BigInt, Bool, Nullable, SmallInt, Text, Timestamptz};

use super::prepared::prepared_statement;
use super::schema::{contact_dnd_reasons, contacts, dnd_history};
use super::DbError;
use crate::domain::dnd::{
    Action, ActiveReason, Actor, ActorKind, DndState, HistoryEntry, Reason, Refusal, Transition,
};
use crate::domain::Channel;

#[derive(Debug, thiserror::Error)]
pub enum DndError {
    #[error("no such contact")]
    NotFound,
    #[error("{0}")]
    Refused(Refusal),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for DndError {
    fn from(e: diesel::result::Error) -> Self {
        DndError::Db(e.into())
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contact_dnd_reasons)]
struct ReasonRow {
    channel: String,
    reason: String,
    address: Option<String>,
    set_at: DateTime<Utc>,
    actor_kind: String,
    actor_id: Option<i64>,
    actor_label: String,
    source: Option<String>,
}

fn actor_of(kind: &str, id: Option<i64>, label: &str) -> Actor {
    // The column is constrained; an unknown value would be a broken database.
    Actor::new(kind.parse().unwrap_or(ActorKind::Provider), id, label)
}

impl ReasonRow {
    fn into_active(self) -> Option<(Channel, ActiveReason)> {
        let channel: Channel = self.channel.parse().ok()?;
        let reason: Reason = self.reason.parse().ok()?;
        Some((
            channel,
            ActiveReason {
                reason,
                since: self.set_at,
                actor: actor_of(&self.actor_kind, self.actor_id, &self.actor_label),
                address: self.address,
                source: self.source,
            },
        ))
    }
}

/// The DND state of one contact of a location (`None` if there is no such
/// contact in this location).
pub fn load_state(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
) -> QueryResult<Option<DndState>> {
    let all: Option<bool> = contacts::table
        .find((location_id, contact_id))
        .select(contacts::dnd_all)
        .first(conn)
        .optional()?;
    let Some(all) = all else {
        return Ok(None);
    };
    Ok(Some(DndState::from_parts(
        all,
        load_reasons(conn, location_id, contact_id)?,
    )))
}

fn load_reasons(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
) -> QueryResult<Vec<(Channel, ActiveReason)>> {
    Ok(contact_dnd_reasons::table
        .filter(contact_dnd_reasons::location_id.eq(location_id))
        .filter(contact_dnd_reasons::contact_id.eq(contact_id))
        .select(ReasonRow::as_select())
        .load(conn)?
        .into_iter()
        .filter_map(ReasonRow::into_active)
        .collect())
}

/// Runs one DND change for a contact: locks the contact's row (two changes
/// to one contact never interleave), reads its state, lets the rules decide,
/// and writes the new state and its history in the same transaction. A
/// refusal writes nothing.
pub fn apply(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    change: impl FnOnce(&DndState) -> Result<Transition, Refusal>,
) -> Result<Transition, DndError> {
    conn.transaction(|conn| apply_within(conn, location_id, contact_id, change))
}

/// [`apply`] inside a transaction the caller already holds (a webhook
/// stores its event and the DND change together). Writes nothing before
/// the rules have decided, so a refusal needs no savepoint to undo.
pub fn apply_within(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    change: impl FnOnce(&DndState) -> Result<Transition, Refusal>,
) -> Result<Transition, DndError> {
    let all: bool = contacts::table
        .find((location_id, contact_id))
        .select(contacts::dnd_all)
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(DndError::NotFound)?;
    let before = DndState::from_parts(all, load_reasons(conn, location_id, contact_id)?);
    let transition = change(&before).map_err(DndError::Refused)?;
    write(conn, location_id, contact_id, &before, &transition)?;
    Ok(transition)
}

/// [`apply_within`] for a contact the caller has already read and locked
/// in this transaction (`FOR UPDATE`, or inserted it): no second lock, and
/// no read of the reasons when its bitmask says it has none.
pub fn apply_locked(
    conn: &mut PgConnection,
    contact: &super::contacts::Contact,
    change: impl FnOnce(&DndState) -> Result<Transition, Refusal>,
) -> Result<Transition, DndError> {
    let before = state_of_locked(conn, contact)?;
    let transition = change(&before).map_err(DndError::Refused)?;
    write(conn, contact.location_id, contact.id, &before, &transition)?;
    Ok(transition)
}

/// Transitions of one or many contacts as one statement (one round trip,
/// however many contacts, reasons and history entries): the reasons that
/// went away, the ones that came, the switch and bitmask on each contact,
/// and the history. Each field is a column, one element per row.
#[derive(Default)]
struct TransitionWrite {
    gone_location: Vec<i64>,
    gone_contact: Vec<i64>,
    gone_channel: Vec<&'static str>,
    gone_reason: Vec<&'static str>,
    new_location: Vec<i64>,
    new_contact: Vec<i64>,
    new_channel: Vec<&'static str>,
    new_reason: Vec<&'static str>,
    new_kind: Vec<&'static str>,
    new_address: Vec<Option<String>>,
    new_set_at: Vec<DateTime<Utc>>,
    new_actor_kind: Vec<&'static str>,
    new_actor_id: Vec<Option<i64>>,
    new_actor_label: Vec<String>,
    new_source: Vec<Option<String>>,
    summary_location: Vec<i64>,
    summary_contact: Vec<i64>,
    summary_all: Vec<bool>,
    summary_mask: Vec<i16>,
    h_location: Vec<i64>,
    h_contact: Vec<i64>,
    h_channel: Vec<Option<&'static str>>,
    h_reason: Vec<Option<&'static str>>,
    h_kind: Vec<Option<&'static str>>,
    h_action: Vec<&'static str>,
    h_actor_kind: Vec<&'static str>,
    h_actor_id: Vec<Option<i64>>,
    h_actor_label: Vec<String>,
    h_address: Vec<Option<String>>,
    h_source: Vec<Option<String>>,
    h_at: Vec<DateTime<Utc>>,
}

prepared_statement!(
    TransitionWrite,
    "WITH gone AS (
        DELETE FROM contact_dnd_reasons r
        USING unnest(?::int8[], ?::int8[], ?::text[], ?::text[])
            AS d (location_id, contact_id, channel, reason)
        WHERE r.location_id = d.location_id AND r.contact_id = d.contact_id
          AND r.channel = d.channel AND r.reason = d.reason
    ), added AS (
        INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind,
            address, set_at, actor_kind, actor_id, actor_label, source)
        SELECT * FROM unnest(?::int8[], ?::int8[], ?::text[], ?::text[], ?::text[],
            ?::text[], ?::timestamptz[], ?::text[], ?::int8[], ?::text[], ?::text[])
    ), summary AS (
        UPDATE contacts c SET dnd_all = s.dnd_all, dnd_mask = s.dnd_mask
        FROM unnest(?::int8[], ?::int8[], ?::bool[], ?::int2[])
            AS s (location_id, id, dnd_all, dnd_mask)
        WHERE c.location_id = s.location_id AND c.id = s.id
    )
    INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action,
        actor_kind, actor_id, actor_label, address, source, at)
    SELECT * FROM unnest(?::int8[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::text[],
        ?::text[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::timestamptz[])",
    |s| [
        Array<BigInt> => &s.gone_location,
        Array<BigInt> => &s.gone_contact,
        Array<Text> => &s.gone_channel,
        Array<Text> => &s.gone_reason,
        Array<BigInt> => &s.new_location,
        Array<BigInt> => &s.new_contact,
        Array<Text> => &s.new_channel,
        Array<Text> => &s.new_reason,
        Array<Text> => &s.new_kind,
        Array<Nullable<Text>> => &s.new_address,
        Array<Timestamptz> => &s.new_set_at,
        Array<Text> => &s.new_actor_kind,
        Array<Nullable<BigInt>> => &s.new_actor_id,
        Array<Text> => &s.new_actor_label,
        Array<Nullable<Text>> => &s.new_source,
        Array<BigInt> => &s.summary_location,
        Array<BigInt> => &s.summary_contact,
        Array<Bool> => &s.summary_all,
        Array<SmallInt> => &s.summary_mask,
        Array<BigInt> => &s.h_location,
        Array<BigInt> => &s.h_contact,
        Array<Nullable<Text>> => &s.h_channel,
        Array<Nullable<Text>> => &s.h_reason,
        Array<Nullable<Text>> => &s.h_kind,
        Array<Text> => &s.h_action,
        Array<Text> => &s.h_actor_kind,
        Array<Nullable<BigInt>> => &s.h_actor_id,
        Array<Text> => &s.h_actor_label,
        Array<Nullable<Text>> => &s.h_address,
        Array<Nullable<Text>> => &s.h_source,
        Array<Timestamptz> => &s.h_at,
    ]
);

impl TransitionWrite {
    /// Adds what turns `before` into `transition.state` for one contact.
    fn push(
        &mut self,
        location_id: i64,
        contact_id: i64,
        before: &DndState,
        transition: &Transition,
    ) {
        let after = &transition.state;
        let held_by = |state: &DndState, channel: Channel, reason: Reason| {
            state.reasons(channel).iter().any(|a| a.reason == reason)
        };
        for (channel, active) in before.all_reasons() {
            if !held_by(after, channel, active.reason) {
                self.gone_location.push(location_id);
                self.gone_contact.push(contact_id);
                self.gone_channel.push(channel.as_str());
                self.gone_reason.push(active.reason.as_str());
            }
        }
        for (channel, active) in after.all_reasons() {
            if !held_by(before, channel, active.reason) {
                self.new_location.push(location_id);
                self.new_contact.push(contact_id);
                self.new_channel.push(channel.as_str());
                self.new_reason.push(active.reason.as_str());
                self.new_kind.push(active.reason.kind().as_str());
                self.new_address.push(active.address.clone());
                self.new_set_at.push(active.since);
                self.new_actor_kind.push(active.actor.kind.as_str());
                self.new_actor_id.push(active.actor.id);
                self.new_actor_label.push(active.actor.label.clone());
                self.new_source.push(active.source.clone());
            }
        }
        if before.all != after.all || before.channel_mask() != after.channel_mask() {
            self.summary_location.push(location_id);
            self.summary_contact.push(contact_id);
            self.summary_all.push(after.all);
            self.summary_mask.push(after.channel_mask());
        }
        for e in &transition.entries {
            self.h_location.push(location_id);
            self.h_contact.push(contact_id);
            self.h_channel.push(e.channel.map(Channel::as_str));
            self.h_reason.push(e.reason.map(Reason::as_str));
            self.h_kind.push(e.reason.map(|r| r.kind().as_str()));
            self.h_action.push(e.action.as_str());
            self.h_actor_kind.push(e.actor.kind.as_str());
            self.h_actor_id.push(e.actor.id);
            self.h_actor_label.push(e.actor.label.clone());
            self.h_address.push(e.address.clone());
            self.h_source.push(e.source.clone());
            self.h_at.push(e.at);
        }
    }

    fn is_empty(&self) -> bool {
        self.gone_contact.is_empty()
            && self.new_contact.is_empty()
            && self.summary_contact.is_empty()
            && self.h_contact.is_empty()
    }
}

fn write(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    before: &DndState,
    transition: &Transition,
) -> QueryResult<()> {
    write_locked_changes(
        conn,
        &[LockedChange {
            location_id,
            contact_id,
            before,
            transition,
        }],
    )
}

/// One contact's DND change, as a batch of webhooks decided it: the state
/// its row held when locked, and where the batch's events took it.
pub struct LockedChange<'a> {
    pub location_id: i64,
    pub contact_id: i64,
    pub before: &'a DndState,
    pub transition: &'a Transition,
}

/// Writes the changes of many contacts, each locked by the caller in this
/// transaction, in one statement.
pub fn write_locked_changes(
    conn: &mut PgConnection,
    changes: &[LockedChange<'_>],
) -> QueryResult<()> {
    let mut w = TransitionWrite::default();
    for c in changes {
        w.push(c.location_id, c.contact_id, c.before, c.transition);
    }
    if !w.is_empty() {
        w.execute(conn)?;
    }
    Ok(())
}

/// [`states_of_locked`] for one contact.
pub fn state_of_locked(
    conn: &mut PgConnection,
    contact: &super::contacts::Contact,
) -> QueryResult<DndState> {
    Ok(states_of_locked(conn, contact.location_id, &[contact])?
        .remove(&contact.id)
        .unwrap_or_else(|| DndState::from_parts(contact.dnd_all, Vec::new())))
}

/// The DND state of contacts the caller has locked (read and `FOR UPDATE`)
/// in this transaction: their reasons in one query, only for those whose
/// bitmask says they have any.
pub fn states_of_locked(
    conn: &mut PgConnection,
    location_id: i64,
    contacts: &[&super::contacts::Contact],
) -> QueryResult<std::collections::HashMap<i64, DndState>> {
    let with_reasons: Vec<i64> = contacts
        .iter()
        .filter(|c| c.dnd_mask != 0)
        .map(|c| c.id)
        .collect();
    let mut reasons: std::collections::HashMap<i64, Vec<(Channel, ActiveReason)>> =
        Default::default();
    if !with_reasons.is_empty() {
        let rows: Vec<(i64, ReasonRow)> = contact_dnd_reasons::table
            .filter(contact_dnd_reasons::location_id.eq(location_id))
            .filter(contact_dnd_reasons::contact_id.eq_any(&with_reasons))
            .select((contact_dnd_reasons::contact_id, ReasonRow::as_select()))
            .load(conn)?;
        for (contact_id, row) in rows {
            if let Some(active) = row.into_active() {
                reasons.entry(contact_id).or_default().push(active);
            }
        }
    }
    Ok(contacts
        .iter()
        .map(|c| {
            let held = reasons.remove(&c.id).unwrap_or_default();
            (c.id, DndState::from_parts(c.dnd_all, held))
        })
        .collect())
}

/// One stored history row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = dnd_history)]
pub struct HistoryRow {
    pub id: i64,
    pub channel: Option<String>,
    pub reason: Option<String>,
    pub kind: Option<String>,
    pub action: String,
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub actor_label: String,
    pub address: Option<String>,
    pub source: Option<String>,
    pub at: DateTime<Utc>,
}

impl HistoryRow {
    /// Back to the domain's form (for replaying, and for display).
    pub fn entry(&self) -> Option<HistoryEntry> {
        Some(HistoryEntry {
            channel: self.channel.as_deref().map(str::parse).transpose().ok()?,
            reason: self.reason.as_deref().map(str::parse).transpose().ok()?,
            action: self.action.parse().ok()?,
            actor: actor_of(&self.actor_kind, self.actor_id, &self.actor_label),
            at: self.at,
            address: self.address.clone(),
            source: self.source.clone(),
        })
    }

    pub fn channel_label(&self) -> &'static str {
        match self.channel.as_deref().map(str::parse::<Channel>) {
            Some(Ok(c)) => c.label(),
            _ => "All channels",
        }
    }

    pub fn reason_label(&self) -> &'static str {
        match self.reason.as_deref().map(str::parse::<Reason>) {
            Some(Ok(r)) => r.label(),
            _ => "All-channels switch",
        }
    }

    pub fn action_label(&self) -> &'static str {
        match self.action.parse::<Action>() {
            Ok(Action::Set) => "turned on",
            Ok(Action::Lifted) => "lifted",
            Ok(Action::Repeated) => "received again",
            Err(_) => "changed",
        }
    }
}

/// A contact's history, newest first.
pub fn history(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    limit: i64,
) -> QueryResult<Vec<HistoryRow>> {
    dnd_history::table
        .filter(dnd_history::location_id.eq(location_id))
        .filter(dnd_history::contact_id.eq(contact_id))
        .order_by(dnd_history::id.desc())
        .limit(limit)
        .select(HistoryRow::as_select())
        .load(conn)
}
