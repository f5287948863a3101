//! Storing inbound DND (a contact's two switches) and what a call to the
//! location gets.

use chrono::Utc;
use diesel::prelude::*;

use super::contacts::Contact;
use super::dnd::{DndError, DndWrite};
use super::schema::{contacts, location_voice_settings};
use crate::domain::dnd::{Actor, DndState, InboundDnd, Refusal, Transition};
use crate::domain::Channel;

/// Turns inbound DND switches of a contact on or off, inside the caller's
/// transaction: the row is locked (after any address locks the caller
/// took, the one lock order), changed, and each change gets a history
/// row. A refusal writes nothing.
pub fn switch_within(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    changes: &[(Channel, bool)],
    actor: &Actor,
) -> Result<InboundDnd, DndError> {
    let contact: Contact = contacts::table
        .find((location_id, contact_id))
        .select(Contact::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(DndError::NotFound)?;
    let now = Utc::now();
    let mut state = contact.inbound();
    let mut write = DndWrite::default();
    for (channel, on) in changes {
        let (next, entry) = state
            .switch(*channel, *on, actor, now)
            .map_err(DndError::Refused)?;
        state = next;
        if let Some(e) = entry {
            write.history(location_id, Some(contact_id), &e);
        }
    }
    if state != contact.inbound() {
        diesel::update(contacts::table.find((location_id, contact_id)))
            .set((
                contacts::inbound_sms_dnd.eq(state.sms),
                contacts::inbound_calls_dnd.eq(state.calls),
            ))
            .execute(conn)?;
    }
    write.execute(conn)?;
    Ok(state)
}

/// [`switch_within`] in a transaction of its own.
pub fn switch(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    changes: &[(Channel, bool)],
    actor: &Actor,
) -> Result<InboundDnd, DndError> {
    conn.transaction(|conn| switch_within(conn, location_id, contact_id, changes, actor))
}

/// An outbound change and inbound switches of one contact in one
/// transaction: all of it, or nothing when either is refused.
pub fn apply_both(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    outbound: impl FnOnce(&DndState) -> Result<Transition, Refusal>,
    inbound: &[(Channel, bool)],
    actor: &Actor,
) -> Result<(DndState, InboundDnd), DndError> {
    conn.transaction(|conn| {
        let t = super::dnd::apply_within(conn, location_id, contact_id, outbound)?;
        let switched = switch_within(conn, location_id, contact_id, inbound, actor)?;
        Ok((t.state, switched))
    })
}

/// What a call gets when it is not rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceSettings {
    /// Forward to this number (E.164)…
    pub forward_to: Option<String>,
    /// …or say this (the default sentence when empty).
    pub message: String,
}

impl VoiceSettings {
    /// The message said when there is no number to forward to.
    pub fn spoken(&self, location_name: &str) -> String {
        if self.message.trim().is_empty() {
            format!(
                "Thank you for calling {location_name}. We cannot take your call right now; please send us a text message."
            )
        } else {
            self.message.clone()
        }
    }
}

pub fn voice_settings(conn: &mut PgConnection, location_id: i64) -> QueryResult<VoiceSettings> {
    let row: Option<(Option<String>, String)> = location_voice_settings::table
        .find(location_id)
        .select((
            location_voice_settings::forward_to,
            location_voice_settings::message,
        ))
        .first(conn)
        .optional()?;
    Ok(row
        .map(|(forward_to, message)| VoiceSettings {
            forward_to,
            message,
        })
        .unwrap_or_default())
}

pub fn save_voice_settings(
    conn: &mut PgConnection,
    location_id: i64,
    settings: &VoiceSettings,
) -> QueryResult<()> {
    diesel::insert_into(location_voice_settings::table)
        .values((
            location_voice_settings::location_id.eq(location_id),
            location_voice_settings::forward_to.eq(&settings.forward_to),
            location_voice_settings::message.eq(&settings.message),
        ))
        .on_conflict(location_voice_settings::location_id)
        .do_update()
        .set((
            location_voice_settings::forward_to.eq(&settings.forward_to),
            location_voice_settings::message.eq(&settings.message),
            location_voice_settings::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}
