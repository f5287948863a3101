//! Storing a contact's DND: the reasons in force, the switch and bitmask on
//! the contact, and the append-only history, always written together.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

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
    let reasons = if contact.dnd_mask == 0 {
        Vec::new()
    } else {
        load_reasons(conn, contact.location_id, contact.id)?
    };
    let before = DndState::from_parts(contact.dnd_all, reasons);
    let transition = change(&before).map_err(DndError::Refused)?;
    write(conn, contact.location_id, contact.id, &before, &transition)?;
    Ok(transition)
}

fn write(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    before: &DndState,
    transition: &Transition,
) -> QueryResult<()> {
    let after = &transition.state;
    for (channel, active) in before.all_reasons() {
        if !after
            .reasons(channel)
            .iter()
            .any(|a| a.reason == active.reason)
        {
            diesel::delete(contact_dnd_reasons::table.find((
                location_id,
                contact_id,
                channel.as_str(),
                active.reason.as_str(),
            )))
            .execute(conn)?;
        }
    }
    for (channel, active) in after.all_reasons() {
        if !before
            .reasons(channel)
            .iter()
            .any(|a| a.reason == active.reason)
        {
            diesel::insert_into(contact_dnd_reasons::table)
                .values((
                    contact_dnd_reasons::location_id.eq(location_id),
                    contact_dnd_reasons::contact_id.eq(contact_id),
                    contact_dnd_reasons::channel.eq(channel.as_str()),
                    contact_dnd_reasons::reason.eq(active.reason.as_str()),
                    contact_dnd_reasons::kind.eq(active.reason.kind().as_str()),
                    contact_dnd_reasons::address.eq(&active.address),
                    contact_dnd_reasons::set_at.eq(active.since),
                    contact_dnd_reasons::actor_kind.eq(active.actor.kind.as_str()),
                    contact_dnd_reasons::actor_id.eq(active.actor.id),
                    contact_dnd_reasons::actor_label.eq(&active.actor.label),
                    contact_dnd_reasons::source.eq(&active.source),
                ))
                .execute(conn)?;
        }
    }
    if before.all != after.all || before.channel_mask() != after.channel_mask() {
        diesel::update(contacts::table.find((location_id, contact_id)))
            .set((
                contacts::dnd_all.eq(after.all),
                contacts::dnd_mask.eq(after.channel_mask()),
            ))
            .execute(conn)?;
    }
    for e in &transition.entries {
        diesel::insert_into(dnd_history::table)
            .values((
                dnd_history::location_id.eq(location_id),
                dnd_history::contact_id.eq(contact_id),
                dnd_history::channel.eq(e.channel.map(Channel::as_str)),
                dnd_history::reason.eq(e.reason.map(Reason::as_str)),
                dnd_history::kind.eq(e.reason.map(|r| r.kind().as_str())),
                dnd_history::action.eq(e.action.as_str()),
                dnd_history::actor_kind.eq(e.actor.kind.as_str()),
                dnd_history::actor_id.eq(e.actor.id),
                dnd_history::actor_label.eq(&e.actor.label),
                dnd_history::address.eq(&e.address),
                dnd_history::source.eq(&e.source),
                dnd_history::at.eq(e.at),
            ))
            .execute(conn)?;
    }
    Ok(())
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
