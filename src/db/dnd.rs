//! Storing DND. A contact's own reasons (`manual`) and its all-channels
//! switch are kept on the contact; every other reason is kept against the
//! address it concerns (location, channel, address), so it follows the
//! person's number or email, not a row of ours. A contact's state is its
//! own reasons and the reasons of the addresses it has now. The history is
//! append-only and written in the same statement as the change.
//!
//! Lock order, everywhere: the advisory locks of the addresses involved
//! (sorted), then contact rows. The database's triggers keep each contact's
//! mask (the list's filter and the bulk gate's first look) in step with the
//! reasons, and take the same address locks.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};

use super::contacts::Contact;
use super::prepared::prepared_statement;
use super::schema::{address_dnd_reasons, contact_dnd_reasons, contacts, dnd_history};
use super::DbError;
use crate::domain::address::kept_spellings;
use crate::domain::dnd::{
    Action, ActiveReason, Actor, ActorKind, Clocks, DndState, HistoryEntry, Kind, Reason, Refusal,
    Transition,
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
struct OwnRow {
    channel: Channel,
    reason: Reason,
    set_at: DateTime<Utc>,
    actor_kind: ActorKind,
    actor_id: Option<i64>,
    actor_label: String,
    source: Option<String>,
}

impl OwnRow {
    fn into_active(self) -> (Channel, ActiveReason) {
        (
            self.channel,
            ActiveReason {
                reason: self.reason,
                since: self.set_at,
                actor: Actor::new(self.actor_kind, self.actor_id, self.actor_label),
                // Kept on the contact, not on an address.
                address: None,
                source: self.source,
            },
        )
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = address_dnd_reasons)]
struct AddressRow {
    address: String,
    channel: Channel,
    reason: Reason,
    set_at: DateTime<Utc>,
    actor_kind: ActorKind,
    actor_id: Option<i64>,
    actor_label: String,
    source: Option<String>,
}

impl AddressRow {
    fn into_active(self) -> (Channel, ActiveReason) {
        (
            self.channel,
            ActiveReason {
                reason: self.reason,
                since: self.set_at,
                actor: Actor::new(self.actor_kind, self.actor_id, self.actor_label),
                address: Some(self.address),
                source: self.source,
            },
        )
    }
}

/// One address of a location on one channel: what consent is kept against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey {
    pub location_id: i64,
    pub channel: Channel,
    pub address: String,
}

/// Takes the advisory locks of these addresses of a location, in one
/// order, for the rest of the transaction. A consent event on an address,
/// a contact taking it and a user lifting one of its reasons all take it,
/// so each sees what the one before it committed.
pub fn lock_addresses<'a>(
    conn: &mut PgConnection,
    addresses: impl IntoIterator<Item = (i64, &'a str)>,
) -> QueryResult<()> {
    let mut keys: Vec<(i64, &str)> = addresses.into_iter().collect();
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort();
    keys.dedup();
    let (locations, addresses): (Vec<i64>, Vec<String>) =
        keys.into_iter().map(|(l, a)| (l, a.to_string())).unzip();
    LockAddresses {
        locations,
        addresses,
    }
    .execute(conn)?;
    Ok(())
}

struct LockAddresses {
    locations: Vec<i64>,
    addresses: Vec<String>,
}

prepared_statement!(
    LockAddresses,
    "SELECT count(pg_advisory_xact_lock(k.key)) FROM (
        SELECT DISTINCT dnd_address_lock_key(a.location_id, a.address) AS key
        FROM unnest(?::int8[], ?::text[]) AS a (location_id, address)
        ORDER BY 1) k",
    |s| [Array<BigInt> => &s.locations, Array<Text> => &s.addresses]
);

/// The DND state of one contact of a location (`None` if there is no such
/// contact in this location): its own reasons and switch, and the reasons
/// of the address it has now on each channel. A stored value this binary
/// cannot read is an error, never skipped.
pub fn load_state(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
) -> QueryResult<Option<DndState>> {
    let Some(contact) = super::contacts::find(conn, location_id, contact_id)? else {
        return Ok(None);
    };
    state_of(conn, &contact).map(Some)
}

/// The state of a contact already read.
pub fn state_of(conn: &mut PgConnection, contact: &Contact) -> QueryResult<DndState> {
    let mut states = states_of(conn, contact.location_id, std::slice::from_ref(contact))?;
    Ok(states.pop().unwrap_or_default())
}

/// A reason of one of the contacts (`contact_id`) or kept on one of their
/// addresses (`address`). Read by name, or by position (`Queryable`, in
/// this order) as a record of the contact page's one statement.
#[derive(QueryableByName, Queryable)]
pub(crate) struct ReasonRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    contact_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    address: Option<String>,
    #[diesel(sql_type = diesel::dsl::SqlTypeOf<contact_dnd_reasons::channel>)]
    channel: Channel,
    #[diesel(sql_type = diesel::dsl::SqlTypeOf<contact_dnd_reasons::reason>)]
    reason: Reason,
    #[diesel(sql_type = Timestamptz)]
    set_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::dsl::SqlTypeOf<contact_dnd_reasons::actor_kind>)]
    actor_kind: ActorKind,
    #[diesel(sql_type = Nullable<BigInt>)]
    actor_id: Option<i64>,
    #[diesel(sql_type = Text)]
    actor_label: String,
    #[diesel(sql_type = Nullable<Text>)]
    source: Option<String>,
}

impl ReasonRow {
    /// A contact's own reason has no address; one kept on an address
    /// names it.
    fn into_active(self) -> (Channel, ActiveReason) {
        (
            self.channel,
            ActiveReason {
                reason: self.reason,
                since: self.set_at,
                actor: Actor::new(self.actor_kind, self.actor_id, self.actor_label),
                address: self.address,
                source: self.source,
            },
        )
    }
}

struct ReasonsOfContacts {
    location_id: i64,
    ids: Vec<i64>,
    held: Vec<String>,
}

prepared_statement!(
    ReasonsOfContacts -> diesel::sql_types::Untyped,
    "SELECT contact_id, NULL::text AS address, channel, reason, set_at, actor_kind, actor_id,
            actor_label, source
     FROM contact_dnd_reasons WHERE location_id = ? AND contact_id = ANY(?)
     UNION ALL
     SELECT NULL, address, channel, reason, set_at, actor_kind, actor_id, actor_label, source
     FROM address_dnd_reasons WHERE location_id = ? AND address = ANY(?)",
    |s| [
        BigInt => &s.location_id, Array<BigInt> => &s.ids,
        BigInt => &s.location_id, Array<Text> => &s.held,
    ]
);

/// The states of contacts of one location already read, in their order,
/// in one round trip however many there are.
pub fn states_of(
    conn: &mut PgConnection,
    location_id: i64,
    contacts: &[Contact],
) -> QueryResult<Vec<DndState>> {
    let ids: Vec<i64> = contacts.iter().map(|c| c.id).collect();
    let mut held: Vec<String> = contacts
        .iter()
        .flat_map(|c| {
            let addresses = c.addresses();
            Channel::ALL
                .iter()
                .filter_map(|ch| addresses.on(*ch).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    held.sort_unstable();
    held.dedup();
    let rows: Vec<ReasonRow> = if ids.is_empty() {
        Vec::new()
    } else {
        // The contacts' own reasons and those kept on their addresses in
        // one round trip.
        ReasonsOfContacts {
            location_id,
            ids,
            held,
        }
        .load(conn)?
    };
    Ok(states_from_rows(contacts, rows))
}

/// The states of `contacts` from their own reasons and the reasons kept on
/// any of their addresses (`rows`, in any order; rows of other addresses
/// are ignored).
pub(crate) fn states_from_rows(contacts: &[Contact], rows: Vec<ReasonRow>) -> Vec<DndState> {
    let mut own: HashMap<i64, Vec<(Channel, ActiveReason)>> = HashMap::new();
    let mut kept: HashMap<String, Vec<(Channel, ActiveReason)>> = HashMap::new();
    for row in rows {
        match (row.contact_id, row.address.clone()) {
            (Some(id), _) => own.entry(id).or_default().push(row.into_active()),
            (None, Some(address)) => kept.entry(address).or_default().push(row.into_active()),
            (None, None) => {}
        }
    }
    contacts
        .iter()
        .map(|contact| {
            let addresses = contact.addresses();
            let on_addresses = Channel::ALL
                .iter()
                .filter_map(|ch| addresses.on(*ch))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .flat_map(|a| kept.get(a).cloned().unwrap_or_default())
                // The address must be the one the contact has on *that*
                // channel (a number is an SMS address and maybe a WhatsApp
                // one; an id string could be two things).
                .filter(|(channel, r)| addresses.on(*channel) == r.address.as_deref());
            DndState::from_parts(
                contact.dnd_all,
                own.remove(&contact.id)
                    .unwrap_or_default()
                    .into_iter()
                    .chain(on_addresses),
            )
        })
        .collect()
}

/// What the gate needs for one message about to go to `address` on
/// `channel`: the contact's switch and own reasons on the channel, and the
/// reasons kept on that very address (which may no longer be the contact's
/// address: a queued message goes where it was addressed), in any spelling
/// it may be kept under.
pub fn gate_state(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
    address: &str,
) -> QueryResult<Option<DndState>> {
    let all: Option<bool> = contacts::table
        .find((location_id, contact_id))
        .select(contacts::dnd_all)
        .first(conn)
        .optional()?;
    let Some(all) = all else {
        return Ok(None);
    };
    let own: Vec<OwnRow> = contact_dnd_reasons::table
        .filter(contact_dnd_reasons::location_id.eq(location_id))
        .filter(contact_dnd_reasons::contact_id.eq(contact_id))
        .select(OwnRow::as_select())
        .load(conn)?;
    let kept: Vec<AddressRow> = address_dnd_reasons::table
        .filter(address_dnd_reasons::location_id.eq(location_id))
        .filter(address_dnd_reasons::address.eq_any(kept_spellings(channel, address)))
        .select(AddressRow::as_select())
        .load(conn)?;
    Ok(Some(DndState::from_parts(
        all,
        own.into_iter()
            .map(OwnRow::into_active)
            .chain(kept.into_iter().map(AddressRow::into_active))
            .filter(|(c, _)| *c == channel),
    )))
}

/// The contact of a location holding each of these addresses on `channel`
/// now, by address (addresses no contact holds are absent).
pub fn holders<'a>(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    addresses: impl IntoIterator<Item = &'a str>,
) -> QueryResult<HashMap<String, i64>> {
    #[derive(QueryableByName)]
    struct Holder {
        #[diesel(sql_type = Text)]
        address: String,
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let addresses: Vec<&str> = addresses.into_iter().collect();
    if addresses.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Holder> = diesel::sql_query(
        "SELECT h.holder_channel, a.address, h.holder_id AS id
         FROM unnest($2::text[]) AS a (address)
         JOIN LATERAL dnd_holders(ARRAY[$1::int8], ARRAY[a.address], ARRAY[$3::text]) h ON true",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Array<Text>, _>(&addresses)
    .bind::<Text, _>(channel.as_str())
    .load(conn)?;
    Ok(rows.into_iter().map(|h| (h.address, h.id)).collect())
}

/// Runs one DND change for a contact by a person or the API: locks the
/// contact's addresses and its row (two changes never interleave, and no
/// consent event lands on its addresses meanwhile), reads its state, lets
/// the rules decide, and writes the new state and its history in the same
/// transaction. A refusal writes nothing.
pub fn apply(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    change: impl FnOnce(&DndState) -> Result<Transition, Refusal>,
) -> Result<Transition, DndError> {
    conn.transaction(|conn| apply_within(conn, location_id, contact_id, change))
}

/// [`apply`] inside a transaction the caller holds.
pub fn apply_within(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    change: impl FnOnce(&DndState) -> Result<Transition, Refusal>,
) -> Result<Transition, DndError> {
    let contact = lock_contact(conn, location_id, contact_id)?.ok_or(DndError::NotFound)?;
    let before = state_of(conn, &contact)?;
    let mut transition = change(&before).map_err(DndError::Refused)?;
    // A reason kept by address that names none is kept on the address the
    // contact has on that channel now.
    let addresses = contact.addresses();
    transition.locate(|c| addresses.on(c).map(str::to_string));
    let mut write = DndWrite::default();
    write.contact_change(&contact, &before, &transition, Utc::now())?;
    write.execute(conn)?;
    Ok(transition)
}

/// Locks a contact for a change of its DND: [`lock_contacts`] for one.
pub fn lock_contact(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
) -> Result<Option<Contact>, DbError> {
    Ok(lock_contacts(conn, location_id, &[contact_id])?.pop())
}

/// Locks these contacts for a change of their DND, in the one lock order:
/// their addresses' locks (sorted), then their rows (by id). Addresses are
/// read before the rows are locked; if any changed in between, it starts
/// again in a savepoint whose rollback releases that attempt's
/// locks, as every writer's lock of a contact does.
pub fn lock_contacts(
    conn: &mut PgConnection,
    location_id: i64,
    ids: &[i64],
) -> Result<Vec<Contact>, DbError> {
    enum Attempt {
        Again,
        Failed(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Attempt {
        fn from(e: diesel::result::Error) -> Self {
            Attempt::Failed(e)
        }
    }
    for _ in 0..5 {
        let attempt = conn.transaction(|conn| -> Result<Vec<Contact>, Attempt> {
            let seen: Vec<Contact> = read_contacts(conn, location_id, ids, false)?;
            lock_addresses(
                conn,
                seen.iter()
                    .flat_map(|c| c.address_list().map(|a| (location_id, a))),
            )?;
            let locked = read_contacts(conn, location_id, ids, true)?;
            let same = locked.len() == seen.len()
                && locked
                    .iter()
                    .zip(&seen)
                    .all(|(a, b)| a.id == b.id && a.addresses() == b.addresses());
            if same {
                Ok(locked)
            } else {
                Err(Attempt::Again)
            }
        });
        match attempt {
            Ok(found) => return Ok(found),
            Err(Attempt::Again) => continue,
            Err(Attempt::Failed(e)) => return Err(e.into()),
        }
    }
    Err(DbError::Invariant(
        "contacts' addresses kept changing while they were being locked; try again".into(),
    ))
}

/// These contacts of a location, by id (locked for update if asked).
/// Planned for its ids each time, as the list's rows are.
fn read_contacts(
    conn: &mut PgConnection,
    location_id: i64,
    ids: &[i64],
    for_update: bool,
) -> QueryResult<Vec<Contact>> {
    let sql = if for_update {
        "SELECT * FROM contacts WHERE location_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"
    } else {
        "SELECT * FROM contacts WHERE location_id = $1 AND id = ANY($2) ORDER BY id"
    };
    diesel::sql_query(sql)
        .bind::<BigInt, _>(location_id)
        .bind::<Array<BigInt>, _>(ids)
        .load(conn)
}

/// What is kept on one address and channel: its reasons, and when consent
/// about each reason last changed (an event older than that is stale).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressState {
    pub reasons: DndState,
    pub clocks: Clocks,
}

/// The state of these addresses, read under their locks.
pub fn address_states(
    conn: &mut PgConnection,
    keys: &[AddressKey],
) -> QueryResult<HashMap<AddressKey, AddressState>> {
    let mut out: HashMap<AddressKey, AddressState> = keys
        .iter()
        .map(|k| (k.clone(), AddressState::default()))
        .collect();
    if keys.is_empty() {
        return Ok(out);
    }
    let locations: Vec<i64> = keys.iter().map(|k| k.location_id).collect();
    let addresses: Vec<&str> = keys.iter().map(|k| k.address.as_str()).collect();
    // Reasons and clocks in one round trip (planned for its values each
    // time: the gate's batches vary widely in size).
    let rows: Vec<KeptRow> = diesel::sql_query(
        "WITH k AS (SELECT DISTINCT * FROM unnest($1::int8[], $2::text[]) AS k (location_id, address))
         SELECT a.location_id, a.address, a.channel, a.reason, a.set_at, a.actor_kind, a.actor_id,
                a.actor_label, a.source, NULL::timestamptz AS last_change_at
         FROM k JOIN address_dnd_reasons a ON a.location_id = k.location_id AND a.address = k.address
         UNION ALL
         SELECT c.location_id, c.address, c.channel, c.reason, NULL, NULL, NULL, NULL, NULL,
                c.last_change_at
         FROM k JOIN address_consent c ON c.location_id = k.location_id AND c.address = k.address",
    )
    .bind::<Array<BigInt>, _>(&locations)
    .bind::<Array<Text>, _>(&addresses)
    .load(conn)?;
    let mut reasons: HashMap<AddressKey, Vec<(Channel, ActiveReason)>> = HashMap::new();
    for row in rows {
        let key = AddressKey {
            location_id: row.location_id,
            channel: row.channel,
            address: row.address,
        };
        match (row.reason, row.set_at, row.actor_kind, row.actor_label) {
            (Some(reason), None, _, _) => {
                if let (Some(entry), Some(at)) = (out.get_mut(&key), row.last_change_at) {
                    entry.clocks.advance(reason, at);
                }
            }
            (Some(reason), Some(since), Some(kind), Some(label)) => {
                let address = Some(key.address.clone());
                reasons.entry(key).or_default().push((
                    row.channel,
                    ActiveReason {
                        reason,
                        since,
                        actor: Actor::new(kind, row.actor_id, label),
                        address,
                        source: row.source,
                    },
                ));
            }
            _ => {
                return Err(diesel::result::Error::DeserializationError(
                    format!("an incomplete reason row on {:?}", key).into(),
                ))
            }
        }
    }
    for (key, held) in reasons {
        if let Some(entry) = out.get_mut(&key) {
            entry.reasons = DndState::from_parts(false, held);
        }
    }
    Ok(out)
}

/// A reason kept on an address, or (with no `set_at`) a reason's clock.
#[derive(QueryableByName)]
struct KeptRow {
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = Text)]
    address: String,
    #[diesel(sql_type = Text)]
    channel: Channel,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<Reason>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    set_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    actor_kind: Option<ActorKind>,
    #[diesel(sql_type = Nullable<BigInt>)]
    actor_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    actor_label: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    source: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_change_at: Option<DateTime<Utc>>,
}

/// One write of DND changes, for one contact or many addresses, as one
/// statement (one round trip): reasons gone and added on contacts and on
/// addresses, switches, addresses' last consent change, and the history.
/// Each field is a column, one element per row.
#[derive(Default)]
pub struct DndWrite {
    own_gone_location: Vec<i64>,
    own_gone_contact: Vec<i64>,
    own_gone_channel: Vec<Channel>,
    own_gone_reason: Vec<Reason>,
    own_new_location: Vec<i64>,
    own_new_contact: Vec<i64>,
    own_new_channel: Vec<Channel>,
    own_new_reason: Vec<Reason>,
    own_new_kind: Vec<Kind>,
    own_new_set_at: Vec<DateTime<Utc>>,
    own_new_actor_kind: Vec<ActorKind>,
    own_new_actor_id: Vec<Option<i64>>,
    own_new_actor_label: Vec<String>,
    own_new_source: Vec<Option<String>>,
    address: AddressWrite,
    switch_location: Vec<i64>,
    switch_contact: Vec<i64>,
    switch_all: Vec<bool>,
    history: HistoryColumns,
}

/// Changes of the reasons kept on addresses, and of their last consent
/// change, as one statement of their own (what provider events write).
#[derive(Default)]
pub struct AddressWrite {
    gone_location: Vec<i64>,
    gone_address: Vec<String>,
    gone_channel: Vec<Channel>,
    gone_reason: Vec<Reason>,
    new_location: Vec<i64>,
    new_address: Vec<String>,
    new_channel: Vec<Channel>,
    new_reason: Vec<Reason>,
    new_kind: Vec<Kind>,
    new_set_at: Vec<DateTime<Utc>>,
    new_actor_kind: Vec<ActorKind>,
    new_actor_id: Vec<Option<i64>>,
    new_actor_label: Vec<String>,
    new_source: Vec<Option<String>>,
    clock_location: Vec<i64>,
    clock_address: Vec<String>,
    clock_channel: Vec<Channel>,
    clock_reason: Vec<Reason>,
    clock_at: Vec<DateTime<Utc>>,
}

/// The CTEs both statements write address changes with, and their binds.
macro_rules! address_ctes {
    () => {
        "address_gone AS (
        DELETE FROM address_dnd_reasons r
        USING unnest(?::int8[], ?::text[], ?::text[], ?::text[])
            AS d (location_id, address, channel, reason)
        WHERE r.location_id = d.location_id AND r.address = d.address
          AND r.channel = d.channel AND r.reason = d.reason
    ), address_added AS (
        INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind,
            set_at, actor_kind, actor_id, actor_label, source)
        SELECT * FROM unnest(?::int8[], ?::text[], ?::text[], ?::text[], ?::text[],
            ?::timestamptz[], ?::text[], ?::int8[], ?::text[], ?::text[])
    ), clock AS (
        INSERT INTO address_consent (location_id, address, channel, reason, last_change_at)
        SELECT * FROM unnest(?::int8[], ?::text[], ?::text[], ?::text[], ?::timestamptz[])
        ON CONFLICT (location_id, address, channel, reason) DO UPDATE
            SET last_change_at = greatest(address_consent.last_change_at, excluded.last_change_at)
    )"
    };
}

prepared_statement!(
    AddressWrite,
    concat!("WITH ", address_ctes!(), " SELECT 1"),
    |s| [
        Array<BigInt> => &s.gone_location,
        Array<Text> => &s.gone_address,
        Array<Text> => &s.gone_channel,
        Array<Text> => &s.gone_reason,
        Array<BigInt> => &s.new_location,
        Array<Text> => &s.new_address,
        Array<Text> => &s.new_channel,
        Array<Text> => &s.new_reason,
        Array<Text> => &s.new_kind,
        Array<Timestamptz> => &s.new_set_at,
        Array<Text> => &s.new_actor_kind,
        Array<Nullable<BigInt>> => &s.new_actor_id,
        Array<Text> => &s.new_actor_label,
        Array<Nullable<Text>> => &s.new_source,
        Array<BigInt> => &s.clock_location,
        Array<Text> => &s.clock_address,
        Array<Text> => &s.clock_channel,
        Array<Text> => &s.clock_reason,
        Array<Timestamptz> => &s.clock_at,
    ]
);

impl AddressWrite {
    /// What turns an address's `before` into `after` (the reasons kept on
    /// it, and the clocks that moved).
    pub fn change(&mut self, key: &AddressKey, before: &AddressState, after: &AddressState) {
        for (channel, active) in before.reasons.all_reasons() {
            if !holds(&after.reasons, channel, active.reason) {
                self.gone(key.location_id, &key.address, channel, active.reason);
            }
        }
        for (channel, active) in after.reasons.all_reasons() {
            if !holds(&before.reasons, channel, active.reason) {
                self.new_reason(key.location_id, &key.address, channel, active);
            }
        }
        for (reason, at) in after.clocks.iter() {
            if before.clocks.of(reason) != Some(at) {
                self.clock(key.location_id, &key.address, key.channel, reason, at);
            }
        }
    }

    fn gone(&mut self, location_id: i64, address: &str, channel: Channel, reason: Reason) {
        self.gone_location.push(location_id);
        self.gone_address.push(address.to_string());
        self.gone_channel.push(channel);
        self.gone_reason.push(reason);
    }

    fn new_reason(&mut self, location_id: i64, address: &str, channel: Channel, a: &ActiveReason) {
        self.new_location.push(location_id);
        self.new_address.push(address.to_string());
        self.new_channel.push(channel);
        self.new_reason.push(a.reason);
        self.new_kind.push(a.reason.kind());
        self.new_set_at.push(a.since);
        self.new_actor_kind.push(a.actor.kind);
        self.new_actor_id.push(a.actor.id);
        self.new_actor_label.push(a.actor.label.clone());
        self.new_source.push(a.source.clone());
    }

    /// One clock row per address, channel and reason (a second one for the
    /// same key in one statement would be refused): the latest time wins.
    fn clock(
        &mut self,
        location_id: i64,
        address: &str,
        channel: Channel,
        reason: Reason,
        at: DateTime<Utc>,
    ) {
        let existing = (0..self.clock_location.len()).find(|&i| {
            self.clock_location[i] == location_id
                && self.clock_channel[i] == channel
                && self.clock_reason[i] == reason
                && self.clock_address[i] == address
        });
        match existing {
            Some(i) => self.clock_at[i] = self.clock_at[i].max(at),
            None => {
                self.clock_location.push(location_id);
                self.clock_address.push(address.to_string());
                self.clock_channel.push(channel);
                self.clock_reason.push(reason);
                self.clock_at.push(at);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.gone_address.is_empty() && self.new_address.is_empty() && self.clock_address.is_empty()
    }

    /// Writes it in one statement (nothing when empty).
    pub fn execute(self, conn: &mut PgConnection) -> QueryResult<()> {
        if !self.is_empty() {
            RunQueryDsl::execute(self, conn)?;
        }
        Ok(())
    }
}

/// History rows, each field a column (one element per row), for the
/// statements that append them.
#[derive(Default)]
pub struct HistoryColumns {
    pub location: Vec<i64>,
    pub contact: Vec<Option<i64>>,
    pub channel: Vec<Option<Channel>>,
    pub reason: Vec<Option<Reason>>,
    pub kind: Vec<Option<Kind>>,
    pub action: Vec<Action>,
    pub actor_kind: Vec<ActorKind>,
    pub actor_id: Vec<Option<i64>>,
    pub actor_label: Vec<String>,
    pub address: Vec<Option<String>>,
    pub source: Vec<Option<String>>,
    pub at: Vec<DateTime<Utc>>,
    pub event_at: Vec<Option<DateTime<Utc>>>,
    pub detail: Vec<Option<String>>,
}

impl HistoryColumns {
    /// A history row, shown on `contact_id` (the contact that holds the
    /// address, if any) and, for consent rows, on whichever contact holds
    /// the address later.
    pub fn push(&mut self, location_id: i64, contact_id: Option<i64>, e: &HistoryEntry) {
        self.location.push(location_id);
        self.contact.push(contact_id);
        self.channel.push(e.channel);
        self.reason.push(e.reason);
        self.kind.push(e.reason.map(Reason::kind));
        self.action.push(e.action);
        self.actor_kind.push(e.actor.kind);
        self.actor_id.push(e.actor.id);
        self.actor_label.push(e.actor.label.clone());
        self.address.push(e.address.clone());
        self.source.push(e.source.clone());
        self.at.push(e.at);
        self.event_at.push(e.event_at);
        self.detail.push(e.detail.clone());
    }

    pub fn is_empty(&self) -> bool {
        self.location.is_empty()
    }
}

prepared_statement!(
    DndWrite,
    concat!(
        r#"WITH own_gone AS (
        DELETE FROM contact_dnd_reasons r
        USING unnest(?::int8[], ?::int8[], ?::text[], ?::text[])
            AS d (location_id, contact_id, channel, reason)
        WHERE r.location_id = d.location_id AND r.contact_id = d.contact_id
          AND r.channel = d.channel AND r.reason = d.reason
    ), own_added AS (
        INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind,
            set_at, actor_kind, actor_id, actor_label, source)
        SELECT * FROM unnest(?::int8[], ?::int8[], ?::text[], ?::text[], ?::text[],
            ?::timestamptz[], ?::text[], ?::int8[], ?::text[], ?::text[])
    ), switched AS (
        UPDATE contacts c SET dnd_all = s.dnd_all
        FROM unnest(?::int8[], ?::int8[], ?::bool[]) AS s (location_id, id, dnd_all)
        WHERE c.location_id = s.location_id AND c.id = s.id
    ), "#,
        address_ctes!(),
        r#"
    INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action,
        actor_kind, actor_id, actor_label, address, source, at, event_at, detail)
    SELECT * FROM unnest(?::int8[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::text[],
        ?::text[], ?::int8[], ?::text[], ?::text[], ?::text[], ?::timestamptz[],
        ?::timestamptz[], ?::text[])"#
    ),
    |s| [
        Array<BigInt> => &s.own_gone_location,
        Array<BigInt> => &s.own_gone_contact,
        Array<Text> => &s.own_gone_channel,
        Array<Text> => &s.own_gone_reason,
        Array<BigInt> => &s.own_new_location,
        Array<BigInt> => &s.own_new_contact,
        Array<Text> => &s.own_new_channel,
        Array<Text> => &s.own_new_reason,
        Array<Text> => &s.own_new_kind,
        Array<Timestamptz> => &s.own_new_set_at,
        Array<Text> => &s.own_new_actor_kind,
        Array<Nullable<BigInt>> => &s.own_new_actor_id,
        Array<Text> => &s.own_new_actor_label,
        Array<Nullable<Text>> => &s.own_new_source,
        Array<BigInt> => &s.switch_location,
        Array<BigInt> => &s.switch_contact,
        Array<Bool> => &s.switch_all,
        Array<BigInt> => &s.address.gone_location,
        Array<Text> => &s.address.gone_address,
        Array<Text> => &s.address.gone_channel,
        Array<Text> => &s.address.gone_reason,
        Array<BigInt> => &s.address.new_location,
        Array<Text> => &s.address.new_address,
        Array<Text> => &s.address.new_channel,
        Array<Text> => &s.address.new_reason,
        Array<Text> => &s.address.new_kind,
        Array<Timestamptz> => &s.address.new_set_at,
        Array<Text> => &s.address.new_actor_kind,
        Array<Nullable<BigInt>> => &s.address.new_actor_id,
        Array<Text> => &s.address.new_actor_label,
        Array<Nullable<Text>> => &s.address.new_source,
        Array<BigInt> => &s.address.clock_location,
        Array<Text> => &s.address.clock_address,
        Array<Text> => &s.address.clock_channel,
        Array<Text> => &s.address.clock_reason,
        Array<Timestamptz> => &s.address.clock_at,
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

/// Whether `state` holds `reason` on `channel`.
fn holds(state: &DndState, channel: Channel, reason: Reason) -> bool {
    state.reasons(channel).iter().any(|a| a.reason == reason)
}

impl DndWrite {
    /// What turns a contact's `before` into `transition.state`: own reasons
    /// on the contact, address-keyed ones on the address the contact has on
    /// that channel now (a reason naming any other address is refused: it
    /// would block or free someone else). Lifting an address's reason is a
    /// consent change of that address at `now`.
    pub fn contact_change(
        &mut self,
        contact: &Contact,
        before: &DndState,
        transition: &Transition,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let (location_id, contact_id) = (contact.location_id, contact.id);
        let after = &transition.state;
        let addresses = contact.addresses();
        let place = |channel: Channel, active: &ActiveReason| -> Result<Option<String>, DbError> {
            match (&active.address, addresses.on(channel)) {
                (None, _) => Ok(None),
                (Some(a), Some(held)) if a == held => Ok(Some(a.clone())),
                (Some(a), _) => Err(DbError::Invariant(format!(
                    "a {} reason on {a} cannot be set through contact {contact_id}, whose {} address is {}",
                    active.reason,
                    channel,
                    addresses.on(channel).unwrap_or("none")
                ))),
            }
        };
        for (channel, active) in before.all_reasons() {
            if holds(after, channel, active.reason) {
                continue;
            }
            match place(channel, active)? {
                None => self.own_gone(location_id, contact_id, channel, active.reason),
                Some(address) => {
                    self.address
                        .gone(location_id, &address, channel, active.reason);
                    self.address
                        .clock(location_id, &address, channel, active.reason, now);
                }
            }
        }
        for (channel, active) in after.all_reasons() {
            if holds(before, channel, active.reason) {
                continue;
            }
            match place(channel, active)? {
                None => self.own_new(location_id, contact_id, channel, active),
                Some(address) => {
                    self.address
                        .new_reason(location_id, &address, channel, active);
                    self.address
                        .clock(location_id, &address, channel, active.reason, active.since);
                }
            }
        }
        if before.all != after.all {
            self.switch_location.push(location_id);
            self.switch_contact.push(contact_id);
            self.switch_all.push(after.all);
        }
        for e in &transition.entries {
            self.history(location_id, Some(contact_id), e);
        }
        Ok(())
    }

    fn own_gone(&mut self, location_id: i64, contact_id: i64, channel: Channel, reason: Reason) {
        self.own_gone_location.push(location_id);
        self.own_gone_contact.push(contact_id);
        self.own_gone_channel.push(channel);
        self.own_gone_reason.push(reason);
    }

    fn own_new(&mut self, location_id: i64, contact_id: i64, channel: Channel, a: &ActiveReason) {
        self.own_new_location.push(location_id);
        self.own_new_contact.push(contact_id);
        self.own_new_channel.push(channel);
        self.own_new_reason.push(a.reason);
        self.own_new_kind.push(a.reason.kind());
        self.own_new_set_at.push(a.since);
        self.own_new_actor_kind.push(a.actor.kind);
        self.own_new_actor_id.push(a.actor.id);
        self.own_new_actor_label.push(a.actor.label.clone());
        self.own_new_source.push(a.source.clone());
    }

    /// What turns an address's `before` into `after` (see
    /// [`AddressWrite::change`]), written with the rest.
    pub fn address_change(
        &mut self,
        key: &AddressKey,
        before: &AddressState,
        after: &AddressState,
    ) {
        self.address.change(key, before, after);
    }

    /// A history row (see [`HistoryColumns::push`]).
    pub fn history(&mut self, location_id: i64, contact_id: Option<i64>, e: &HistoryEntry) {
        self.history.push(location_id, contact_id, e);
    }

    fn is_empty(&self) -> bool {
        self.own_gone_contact.is_empty()
            && self.own_new_contact.is_empty()
            && self.address.is_empty()
            && self.switch_contact.is_empty()
            && self.history.is_empty()
    }

    /// Writes it all in one statement (nothing when empty).
    pub fn execute(self, conn: &mut PgConnection) -> QueryResult<()> {
        if !self.is_empty() {
            RunQueryDsl::execute(self, conn)?;
        }
        Ok(())
    }
}

/// One stored history row.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = dnd_history)]
pub struct HistoryRow {
    pub id: i64,
    pub contact_id: Option<i64>,
    pub channel: Option<Channel>,
    pub reason: Option<Reason>,
    pub kind: Option<Kind>,
    pub action: Action,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub actor_label: String,
    pub address: Option<String>,
    pub source: Option<String>,
    pub at: DateTime<Utc>,
    pub event_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

impl HistoryRow {
    /// Back to the domain's form (for replaying, and for display).
    pub fn entry(&self) -> HistoryEntry {
        HistoryEntry {
            channel: self.channel,
            reason: self.reason,
            action: self.action,
            actor: Actor::new(self.actor_kind, self.actor_id, self.actor_label.clone()),
            at: self.at,
            address: self.address.clone(),
            source: self.source.clone(),
            event_at: self.event_at,
            detail: self.detail.clone(),
        }
    }

    pub fn channel_label(&self) -> &'static str {
        self.channel.map_or("All channels", Channel::label)
    }

    pub fn reason_label(&self) -> &'static str {
        match (self.reason, self.action) {
            (Some(r), _) => r.label(),
            (None, Action::AddressChanged) => "Address changed",
            (None, Action::InboundOn | Action::InboundOff) => "Inbound DND",
            (None, _) => "All-channels switch",
        }
    }

    pub fn action_label(&self) -> &'static str {
        self.action.label()
    }

    /// The reason this row put (or found) in force, for the marker saying
    /// who can lift it; none for a lift or a late event, where "who can
    /// lift" would read as if it were still on.
    pub fn reason_put_in_force(&self) -> Option<Reason> {
        match self.action {
            Action::Set | Action::Repeated => self.reason,
            _ => None,
        }
    }

    /// The source as pages show it: support acts only by approving an
    /// opt-in request, whose id is the source of its rows.
    pub fn source_label(&self) -> Option<String> {
        let source = self.source.as_deref()?;
        Some(match (self.actor_kind, source.parse::<i64>()) {
            (ActorKind::Support, Ok(id)) => format!("opt-in request #{id}"),
            _ => source.to_string(),
        })
    }
}

/// A contact's history, newest first: the rows written on it, and the
/// consent rows of the addresses it has now (why a contact created with an
/// opted-out number is blocked: that number's STOP, whoever held it then).
pub fn history(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    limit: i64,
) -> QueryResult<Vec<HistoryRow>> {
    match super::contacts::find(conn, location_id, contact_id)? {
        Some(contact) => history_of(conn, &contact, limit),
        None => Ok(Vec::new()),
    }
}

/// A contact's own history rows, and those of the addresses it holds now.
struct HistoryOf {
    location_id: i64,
    held: Vec<String>,
    contact_id: i64,
    limit: i64,
}

prepared_statement!(
    HistoryOf -> diesel::sql_types::Untyped,
    "(SELECT id, contact_id, channel, reason, kind, action, actor_kind, actor_id,
             actor_label, address, source, at, event_at, detail
      FROM dnd_history
      WHERE location_id = ? AND contact_id = ?
      ORDER BY id DESC LIMIT ?)
     UNION ALL
     (SELECT id, contact_id, channel, reason, kind, action, actor_kind, actor_id,
             actor_label, address, source, at, event_at, detail
      FROM dnd_history
      WHERE location_id = ? AND address = ANY(?) AND action <> 'address_changed'
        AND contact_id IS DISTINCT FROM ?
      ORDER BY id DESC LIMIT ?)",
    |s| [
        BigInt => &s.location_id, BigInt => &s.contact_id, BigInt => &s.limit,
        BigInt => &s.location_id, Array<Text> => &s.held, BigInt => &s.contact_id,
        BigInt => &s.limit,
    ]
);

/// [`history`] of a contact already read, in one round trip.
pub fn history_of(
    conn: &mut PgConnection,
    contact: &Contact,
    limit: i64,
) -> QueryResult<Vec<HistoryRow>> {
    // Its own rows, and those of the addresses it holds now.
    let rows: Vec<HistoryRow> = HistoryOf {
        location_id: contact.location_id,
        held: contact.address_list().map(str::to_string).collect(),
        contact_id: contact.id,
        limit,
    }
    .load(conn)?;
    Ok(history_from_rows(contact, rows, limit))
}

/// The contact's history, newest first, from its own rows and those of the
/// addresses it holds (`rows`): an address's row counts only if the
/// contact holds that address on the row's channel.
pub(crate) fn history_from_rows(
    contact: &Contact,
    rows: Vec<HistoryRow>,
    limit: i64,
) -> Vec<HistoryRow> {
    let addresses = contact.addresses();
    let mut rows: Vec<HistoryRow> = rows
        .into_iter()
        .filter(|r| {
            r.contact_id == Some(contact.id)
                || r.channel
                    .is_some_and(|c| addresses.on(c) == r.address.as_deref())
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    rows.truncate(limit as usize);
    rows
}

/// The history kept on one address and channel, oldest first (to replay
/// the address's reasons).
pub fn address_history(conn: &mut PgConnection, key: &AddressKey) -> QueryResult<Vec<HistoryRow>> {
    dnd_history::table
        .filter(dnd_history::location_id.eq(key.location_id))
        .filter(dnd_history::address.eq(&key.address))
        .filter(dnd_history::channel.eq(key.channel))
        .filter(dnd_history::reason.ne(Reason::Manual))
        .order_by(dnd_history::id.asc())
        .select(HistoryRow::as_select())
        .load(conn)
}
