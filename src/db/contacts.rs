use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::dnd as dnd_store;
use super::schema::contacts;
use super::DbError;
use crate::domain::dnd::{Action, Actor, HistoryEntry, Status};
use crate::domain::search::{PhoneReading, Search};
use crate::domain::{Addresses, Channel, EmailAddress, PhoneNumber};

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, serde::Serialize)]
#[diesel(table_name = contacts)]
pub struct Contact {
    pub location_id: i64,
    pub id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub facebook_id: Option<String>,
    pub whatsapp_id: Option<String>,
    pub gmb_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub dnd_all: bool,
    /// Bit i: `Channel::ALL[i]` holds a reason (kept by `db::dnd`).
    pub dnd_mask: i16,
    /// 2 on, 1 partial, 0 off (computed by PostgreSQL from the two above).
    pub dnd_status: i16,
    /// Inbound DND: messages from the contact muted, calls rejected.
    pub inbound_sms_dnd: bool,
    pub inbound_calls_dnd: bool,
}

impl Contact {
    pub fn dnd_status(&self) -> Status {
        Status::from_code(self.dnd_status).unwrap_or(Status::of(self.dnd_all, self.dnd_mask))
    }

    /// What the contact is called on pages: its name, else the first
    /// address it has (phone, email, WhatsApp, Messenger, Google), else its
    /// number in the location.
    pub fn title(&self) -> String {
        let name = self.name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
        [
            &self.phone,
            &self.email,
            &self.whatsapp_id,
            &self.facebook_id,
            &self.gmb_id,
        ]
        .into_iter()
        .flatten()
        .map(|a| a.trim())
        .find(|a| !a.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Contact #{}", self.id))
    }

    /// The channels holding a reason (its own or its addresses'), in
    /// display order.
    pub fn blocked_channels(&self) -> Vec<Channel> {
        Channel::in_mask(self.dnd_mask)
    }

    pub fn inbound(&self) -> crate::domain::dnd::InboundDnd {
        crate::domain::dnd::InboundDnd {
            sms: self.inbound_sms_dnd,
            calls: self.inbound_calls_dnd,
        }
    }

    /// Where each channel reaches this contact.
    pub fn addresses(&self) -> Addresses<'_> {
        Addresses {
            phone: self.phone.as_deref(),
            email: self.email.as_deref(),
            facebook_id: self.facebook_id.as_deref(),
            gmb_id: self.gmb_id.as_deref(),
            whatsapp_id: self.whatsapp_id.as_deref(),
        }
    }

    /// Every address the contact has, once each.
    pub fn address_list(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::with_capacity(5);
        for a in [
            &self.phone,
            &self.email,
            &self.facebook_id,
            &self.gmb_id,
            &self.whatsapp_id,
        ]
        .into_iter()
        .flatten()
        {
            if !seen.contains(&a.as_str()) {
                seen.push(a);
            }
        }
        seen.into_iter()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = contacts)]
pub struct NewContact<'a> {
    pub location_id: i64,
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub facebook_id: Option<&'a str>,
    pub whatsapp_id: Option<&'a str>,
    pub gmb_id: Option<&'a str>,
}

/// A contact as a client sends it: validated and in canonical form (E.164
/// phone and WhatsApp id, normalised email, trimmed ids), not yet stored.
/// `None` means "not given", which never clears a stored value.
#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub name: Option<String>,
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
    pub facebook_id: Option<String>,
    pub whatsapp_id: Option<String>,
    pub gmb_id: Option<String>,
}

/// A contact's fields as typed (API body or browser form); blank means
/// "not given".
#[derive(Debug, Clone, Default)]
pub struct ContactFields {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub facebook_id: Option<String>,
    pub whatsapp_id: Option<String>,
    pub gmb_id: Option<String>,
}

/// Blank strings count as "not given".
pub fn given(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl ContactFields {
    /// Every address in its one canonical form: numbers (national ones read
    /// in the location's region) in E.164, emails normalised, ids trimmed.
    /// Every bad field is reported, each with its name.
    pub fn validate(self, region: &str) -> Result<ContactInput, Vec<crate::domain::InvalidField>> {
        use crate::domain::{address, InvalidField};
        let mut errors = Vec::new();
        let name = given(self.name);
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            errors.push(InvalidField::new("name", "is longer than 200 characters"));
        } else if name
            .as_ref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            errors.push(InvalidField::new("name", "contains a control character"));
        }
        fn keep<T>(
            errors: &mut Vec<InvalidField>,
            r: Result<Option<T>, InvalidField>,
        ) -> Option<T> {
            r.unwrap_or_else(|e| {
                errors.push(e);
                None
            })
        }
        let phone = keep(
            &mut errors,
            given(self.phone)
                .map(|p| PhoneNumber::parse(&p, region))
                .transpose(),
        );
        let email = keep(
            &mut errors,
            given(self.email)
                .map(|e| EmailAddress::parse(&e))
                .transpose(),
        );
        let facebook_id = keep(
            &mut errors,
            given(self.facebook_id)
                .map(|f| address::platform_id("facebook_id", &f))
                .transpose(),
        );
        let whatsapp_id = keep(
            &mut errors,
            given(self.whatsapp_id)
                .map(|w| address::whatsapp_id(&w, region))
                .transpose(),
        );
        let gmb_id = keep(
            &mut errors,
            given(self.gmb_id)
                .map(|g| address::platform_id("gmb_id", &g))
                .transpose(),
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ContactInput {
            name,
            phone,
            email,
            facebook_id,
            whatsapp_id,
            gmb_id,
        })
    }
}

impl ContactInput {
    fn address_list(&self) -> impl Iterator<Item = &str> {
        [
            self.phone.as_ref().map(PhoneNumber::as_str),
            self.email.as_ref().map(EmailAddress::as_str),
            self.facebook_id.as_deref(),
            self.gmb_id.as_deref(),
            self.whatsapp_id.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

#[derive(Debug, thiserror::Error)]
pub enum UpsertError {
    #[error("a contact needs a phone or an email to be matched on")]
    NoKey,
    /// The value of `field` belongs to another contact of the location.
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UpsertError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        // Two clients giving one address to two contacts at once: the
        // unique index settles it, and says which field.
        if let Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &e {
            let field = match info.constraint_name() {
                Some("contacts_location_id_phone_key") => Some("phone"),
                Some("contacts_location_id_email_key") => Some("email"),
                Some("contacts_whatsapp_key") => Some("whatsapp_id"),
                Some("contacts_facebook_key") => Some("facebook_id"),
                _ => None,
            };
            if let Some(field) = field {
                return UpsertError::Conflict {
                    field,
                    message: format!("this {field} belongs to another contact of this location"),
                };
            }
        }
        UpsertError::Db(e.into())
    }
}

pub fn find(conn: &mut PgConnection, location_id: i64, id: i64) -> QueryResult<Option<Contact>> {
    contacts::table
        .find((location_id, id))
        .select(Contact::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_phone(
    conn: &mut PgConnection,
    location_id: i64,
    phone: &PhoneNumber,
) -> QueryResult<Option<Contact>> {
    contacts::table
        .filter(contacts::location_id.eq(location_id))
        .filter(contacts::phone.eq(phone.as_str()))
        .select(Contact::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_email(
    conn: &mut PgConnection,
    location_id: i64,
    email: &EmailAddress,
) -> QueryResult<Option<Contact>> {
    contacts::table
        .filter(contacts::location_id.eq(location_id))
        .filter(contacts::email.eq(email.as_str()))
        .select(Contact::as_select())
        .first(conn)
        .optional()
}

/// The location's contact that holds `value` in `$column`, locked (or
/// only read, with `read`).
macro_rules! holder {
    ($conn:expr, $location_id:expr, $column:ident, $value:expr) => {
        contacts::table
            .filter(contacts::location_id.eq($location_id))
            .filter(contacts::$column.eq($value))
            .select(Contact::as_select())
            .for_update()
            .first::<Contact>($conn)
            .optional()
    };
    ($conn:expr, $location_id:expr, $column:ident, $value:expr, read) => {
        contacts::table
            .filter(contacts::location_id.eq($location_id))
            .filter(contacts::$column.eq($value))
            .select(Contact::as_select())
            .first::<Contact>($conn)
            .optional()
    };
}

/// The contacts an upsert matches by its phone and by its email, locked
/// or only read.
fn matched(
    conn: &mut PgConnection,
    location_id: i64,
    input: &ContactInput,
    lock: bool,
) -> QueryResult<(Option<Contact>, Option<Contact>)> {
    let by_phone = match (&input.phone, lock) {
        (Some(p), true) => holder!(conn, location_id, phone, p.as_str())?,
        (Some(p), false) => holder!(conn, location_id, phone, p.as_str(), read)?,
        (None, _) => None,
    };
    let by_email = match (&input.email, lock) {
        (Some(e), true) => holder!(conn, location_id, email, e.as_str())?,
        (Some(e), false) => holder!(conn, location_id, email, e.as_str(), read)?,
        (None, _) => None,
    };
    Ok((by_phone, by_email))
}

/// Creates the contact, or updates the one with this phone (else this
/// email). Given fields overwrite, missing ones are kept; nothing here
/// touches a reason. A phone, WhatsApp id or Messenger id that belongs to
/// another contact of the location is a conflict naming the field.
///
/// The addresses given are locked first, so a consent event on one of them
/// is either committed before (and the database's trigger blocks the
/// contact at once) or waits for this. When an address changes, the
/// history of the contact says where the old address's reasons stay and
/// which reasons the new one brings.
pub fn upsert(
    conn: &mut PgConnection,
    location_id: i64,
    input: &ContactInput,
    actor: &Actor,
) -> Result<(Contact, Upserted), UpsertError> {
    if input.phone.is_none() && input.email.is_none() {
        return Err(UpsertError::NoKey);
    }
    again(conn, |conn| upsert_once(conn, location_id, input, actor))
}

/// Runs `attempt` in a transaction of its own, again from the start when
/// it finds that what it locked moved under it: the advisory locks it took
/// are released with its rollback, so every attempt takes its locks in the
/// one sorted order (never a second set on top of the first).
fn again<T>(
    conn: &mut PgConnection,
    mut attempt: impl FnMut(&mut PgConnection) -> Result<T, Attempt>,
) -> Result<T, UpsertError> {
    for _ in 0..5 {
        match conn.transaction(&mut attempt) {
            Ok(done) => return Ok(done),
            Err(Attempt::Again) => continue,
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
    Err(UpsertError::Db(DbError::Invariant(
        "a contact's addresses kept changing while it was being locked; try again".into(),
    )))
}

/// How one attempt of a locked contact write ends when it does not commit.
enum Attempt {
    /// The addresses seen before locking changed: start over.
    Again,
    Failed(UpsertError),
}

impl From<diesel::result::Error> for Attempt {
    fn from(e: diesel::result::Error) -> Self {
        Attempt::Failed(e.into())
    }
}

impl From<DbError> for Attempt {
    fn from(e: DbError) -> Self {
        Attempt::Failed(UpsertError::Db(e))
    }
}

impl From<UpsertError> for Attempt {
    fn from(e: UpsertError) -> Self {
        Attempt::Failed(e)
    }
}

fn upsert_once(
    conn: &mut PgConnection,
    location_id: i64,
    input: &ContactInput,
    actor: &Actor,
) -> Result<(Contact, Upserted), Attempt> {
    {
        // Every address involved is locked in one go, before any row: the
        // ones given and those the matched contact has now (its row is
        // written, and its other addresses' consent events write it too).
        // If the match changed between the look and the locks, again.
        let seen = matched(conn, location_id, input, false)?;
        let mut addresses: Vec<&str> = input.address_list().collect();
        for c in [&seen.0, &seen.1].into_iter().flatten() {
            addresses.extend(c.address_list());
        }
        dnd_store::lock_addresses(conn, addresses.into_iter().map(|a| (location_id, a)))?;
        let locked = matched(conn, location_id, input, true)?;
        let same = |a: &Option<Contact>, b: &Option<Contact>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.id == b.id && a.addresses() == b.addresses(),
            _ => false,
        };
        if !(same(&seen.0, &locked.0) && same(&seen.1, &locked.1)) {
            return Err(Attempt::Again);
        }
        let (by_phone, by_email) = locked;
        let existing = match (by_phone, by_email) {
            (Some(p), Some(e)) if p.id != e.id => {
                return Err(Attempt::Failed(UpsertError::Conflict {
                    field: "email",
                    message: format!(
                        "the phone belongs to contact {} and the email to contact {}; \
                         update them separately",
                        p.id, e.id
                    ),
                }))
            }
            (Some(c), _) | (None, Some(c)) => Some(c),
            (None, None) => None,
        };
        let matched_id = existing.as_ref().map(|c| c.id);
        refuse_taken(
            conn,
            location_id,
            input,
            matched_id,
            &["whatsapp_id", "facebook_id"],
        )?;
        match existing {
            Some(current) => {
                let updated = overwrite(conn, location_id, &current, input)?;
                record_address_changes(conn, &current, &updated, actor)?;
                Ok((updated, Upserted::Updated))
            }
            None => {
                let created = diesel::insert_into(contacts::table)
                    .values(NewContact {
                        location_id,
                        name: input.name.as_deref().unwrap_or(""),
                        phone: input.phone.as_ref().map(|p| p.as_str()),
                        email: input.email.as_ref().map(|e| e.as_str()),
                        facebook_id: input.facebook_id.as_deref(),
                        whatsapp_id: input.whatsapp_id.as_deref(),
                        gmb_id: input.gmb_id.as_deref(),
                    })
                    .returning(Contact::as_returning())
                    .get_result(conn)?;
                Ok((created, Upserted::Created))
            }
        }
    }
}

/// Edits one contact by its id (the browser's edit form): given fields
/// replace, missing ones are kept (an edit never clears an address, and
/// never a reason). An address that belongs to another contact of the
/// location is a conflict naming the field. The old and new addresses are
/// locked before the row, as everywhere; if the contact's addresses change
/// between the look and the locks, it looks again.
pub fn edit(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    input: &ContactInput,
    actor: &Actor,
) -> Result<Option<Contact>, UpsertError> {
    again(conn, |conn| {
        edit_once(conn, location_id, contact_id, input, actor)
    })
}

fn edit_once(
    conn: &mut PgConnection,
    location_id: i64,
    contact_id: i64,
    input: &ContactInput,
    actor: &Actor,
) -> Result<Option<Contact>, Attempt> {
    {
        let Some(seen) = find(conn, location_id, contact_id)? else {
            return Ok(None);
        };
        let addresses: Vec<&str> = input.address_list().chain(seen.address_list()).collect();
        dnd_store::lock_addresses(conn, addresses.into_iter().map(|a| (location_id, a)))?;
        let locked: Option<Contact> = contacts::table
            .find((location_id, contact_id))
            .select(Contact::as_select())
            .for_update()
            .first(conn)
            .optional()?;
        let current = match locked {
            None => return Ok(None),
            Some(c) if c.addresses() == seen.addresses() => c,
            Some(_) => return Err(Attempt::Again),
        };
        refuse_taken(
            conn,
            location_id,
            input,
            Some(contact_id),
            &["phone", "email", "whatsapp_id", "facebook_id"],
        )?;
        let updated = overwrite(conn, location_id, &current, input)?;
        record_address_changes(conn, &current, &updated, actor)?;
        Ok(Some(updated))
    }
}

/// Refuses an address of `input` (among `fields`) that another contact of
/// the location holds: one address is one person. `owner` is the contact
/// being written (its own addresses are no conflict).
fn refuse_taken(
    conn: &mut PgConnection,
    location_id: i64,
    input: &ContactInput,
    owner: Option<i64>,
    fields: &[&'static str],
) -> Result<(), Attempt> {
    for &field in fields {
        let (value, holder) = match field {
            "phone" => {
                let v = input.phone.as_ref().map(|p| p.as_str());
                (
                    v,
                    match v {
                        Some(v) => holder!(conn, location_id, phone, v, read)?,
                        None => None,
                    },
                )
            }
            "email" => {
                let v = input.email.as_ref().map(|e| e.as_str());
                (
                    v,
                    match v {
                        Some(v) => holder!(conn, location_id, email, v, read)?,
                        None => None,
                    },
                )
            }
            "whatsapp_id" => {
                let v = input.whatsapp_id.as_deref();
                (
                    v,
                    match v {
                        Some(v) => holder!(conn, location_id, whatsapp_id, v, read)?,
                        None => None,
                    },
                )
            }
            _ => {
                let v = input.facebook_id.as_deref();
                (
                    v,
                    match v {
                        Some(v) => holder!(conn, location_id, facebook_id, v, read)?,
                        None => None,
                    },
                )
            }
        };
        if let (Some(value), Some(other)) = (value, holder) {
            if Some(other.id) != owner {
                return Err(Attempt::Failed(UpsertError::Conflict {
                    field,
                    message: format!(
                        "{field} {value} belongs to contact {} of this location; one address is one person",
                        other.id
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// Writes `input` over `current`: given fields replace, missing ones stay.
pub(super) fn overwrite(
    conn: &mut PgConnection,
    location_id: i64,
    current: &Contact,
    input: &ContactInput,
) -> QueryResult<Contact> {
    diesel::update(contacts::table.find((location_id, current.id)))
        .set((
            contacts::name.eq(input.name.as_deref().unwrap_or(&current.name)),
            contacts::phone.eq(input
                .phone
                .as_ref()
                .map(|p| p.as_str())
                .or(current.phone.as_deref())),
            contacts::email.eq(input
                .email
                .as_ref()
                .map(|e| e.as_str())
                .or(current.email.as_deref())),
            contacts::facebook_id.eq(input
                .facebook_id
                .as_deref()
                .or(current.facebook_id.as_deref())),
            contacts::whatsapp_id.eq(input
                .whatsapp_id
                .as_deref()
                .or(current.whatsapp_id.as_deref())),
            contacts::gmb_id.eq(input.gmb_id.as_deref().or(current.gmb_id.as_deref())),
            contacts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Contact::as_returning())
        .get_result(conn)
}

/// For each channel whose address changed, and where the old or the new
/// address holds a reason, a history row on the contact: the old address's
/// reasons stay on it, the new one's apply now. Nothing is deleted.
pub(super) fn record_address_changes(
    conn: &mut PgConnection,
    before: &Contact,
    after: &Contact,
    actor: &Actor,
) -> Result<(), DbError> {
    let (old, new) = (before.addresses(), after.addresses());
    let changed: Vec<Channel> = Channel::ALL
        .into_iter()
        .filter(|c| old.on(*c) != new.on(*c))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let keys: Vec<dnd_store::AddressKey> = changed
        .iter()
        .flat_map(|c| [old.on(*c), new.on(*c)].map(|a| (*c, a)))
        .filter_map(|(channel, a)| {
            a.map(|address| dnd_store::AddressKey {
                location_id: after.location_id,
                channel,
                address: address.to_string(),
            })
        })
        .collect();
    let states = dnd_store::address_states(conn, &keys)?;
    let reasons_on = |channel: Channel, address: Option<&str>| -> Vec<&'static str> {
        address
            .and_then(|a| {
                states.get(&dnd_store::AddressKey {
                    location_id: after.location_id,
                    channel,
                    address: a.to_string(),
                })
            })
            .map(|s| {
                s.reasons
                    .reasons(channel)
                    .iter()
                    .map(|r| r.reason.label())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut write = dnd_store::DndWrite::default();
    let now = chrono::Utc::now();
    for channel in changed {
        let (from, to) = (old.on(channel), new.on(channel));
        let (stay, bring) = (reasons_on(channel, from), reasons_on(channel, to));
        if stay.is_empty() && bring.is_empty() {
            continue;
        }
        let mut detail = format!(
            "{} address changed from {} to {}.",
            channel.label(),
            from.unwrap_or("none"),
            to.unwrap_or("none")
        );
        if let (Some(from), false) = (from, stay.is_empty()) {
            detail.push_str(&format!(
                " Reasons on {from} stay on that address: {}.",
                stay.join(", ")
            ));
        }
        if let (Some(to), false) = (to, bring.is_empty()) {
            detail.push_str(&format!(" {to} is blocked already: {}.", bring.join(", ")));
        }
        write.history(
            after.location_id,
            Some(after.id),
            &HistoryEntry {
                channel: Some(channel),
                reason: None,
                action: Action::AddressChanged,
                actor: actor.clone(),
                at: now,
                address: from.map(str::to_string),
                source: to.map(str::to_string),
                event_at: None,
                detail: Some(detail),
            },
        );
    }
    write.execute(conn)?;
    Ok(())
}

/// Where a page of the contact list starts: right after (or right before)
/// the contact with this id, in the (lower(name), id) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(i64),
    Before(i64),
}

impl Cursor {
    /// Whether a page read from this cursor has pages after and before it,
    /// given whether the read found more rows than the page holds (in the
    /// direction read: backwards for `Before`).
    pub fn pager(&self, more: bool) -> (bool, bool) {
        match self {
            Cursor::First => (more, false),
            Cursor::After(_) => (more, true),
            Cursor::Before(_) => (true, more),
        }
    }
}

/// One page of a location's contacts.
#[derive(Debug, Clone)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub has_next: bool,
    pub has_prev: bool,
    /// How many contacts the whole list (with its filter) holds.
    pub total: Total,
}

/// How many contacts a list holds: counted exactly up to [`COUNT_CAP`],
/// past that PostgreSQL's planner estimate (a location may hold millions,
/// and counting them all on every page would cost more than the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(i64),
    About(i64),
    /// A text search not walked to its end: at least this many match from
    /// the page's first row on (in its direction). Counting them all would
    /// walk the whole location's names.
    AtLeast(i64),
}

/// Lists up to this many contacts are counted exactly.
pub const COUNT_CAP: i64 = 1000;

/// What the contact list shows: a search and the DND filters, combined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub search: Option<String>,
    pub status: Option<Status>,
    /// Contacts that may not be reached on this channel (its own reasons or
    /// the all-channels switch).
    pub blocked: Option<Channel>,
    /// Where a number searched without its country code is read (the
    /// location's region); empty: as an international number.
    pub region: String,
}

impl ListFilter {
    /// No search and no filter: the whole location, in name order.
    pub fn is_whole_location(&self) -> bool {
        self.parsed_search().is_none() && self.status.is_none() && self.blocked.is_none()
    }

    /// The filter as the list's query string gives it (`q`, `status`,
    /// `channel`; blank means any): an unknown status or channel says why.
    pub fn from_query(q: &str, status: &str, channel: &str) -> Result<Self, String> {
        Ok(ListFilter {
            search: Some(q.to_string()),
            status: (!status.is_empty())
                .then(|| status.parse::<Status>())
                .transpose()?,
            blocked: (!channel.is_empty())
                .then(|| channel.parse::<Channel>())
                .transpose()?,
            region: String::new(),
        })
    }

    /// The same filter, with numbers read in `region` (the location's).
    pub fn in_region(mut self, region: &str) -> Self {
        self.region = region.to_string();
        self
    }

    /// The search, understood.
    pub fn parsed_search(&self) -> Option<Search> {
        Search::parse(self.search.as_deref().unwrap_or(""), &self.region)
    }

    /// The query string that keeps these filters (`q=…&status=…&`), for
    /// links back to the list.
    pub fn query_string(q: &str, status: &str, channel: &str) -> String {
        let mut out = String::new();
        for (key, value) in [("q", q), ("status", status), ("channel", channel)] {
            if !value.is_empty() {
                out.push_str(&format!("{key}={}&", urlencoding::encode(value)));
            }
        }
        out
    }
}

/// A value bound to a list query.
#[derive(Debug, Clone)]
enum Value {
    BigInt(i64),
    SmallInt(i16),
    Text(String),
}

/// The conditions of a list query: SQL text with `$n` placeholders, and
/// the values bound to them. Written as text (not diesel's DSL) so that
/// the same conditions can be listed, counted and shown to the planner
/// (`EXPLAIN`) for an estimate.
#[derive(Debug, Clone)]
struct Conditions {
    sql: String,
    values: Vec<Value>,
}

impl Conditions {
    /// Every list is one location's.
    fn new(location_id: i64) -> Self {
        Conditions {
            sql: "contacts.location_id = $1".into(),
            values: vec![Value::BigInt(location_id)],
        }
    }

    /// Adds `AND (sql)`; each `?` in `sql` is the next of `values`.
    fn and(&mut self, sql: &str, values: impl IntoIterator<Item = Value>) {
        let numbered = self.fragment(sql, values);
        self.sql.push_str(&format!(" AND ({numbered})"));
    }

    /// `sql` with each `?` numbered after these conditions' values, and
    /// `values` bound to them: SQL to use elsewhere in the same query.
    fn fragment(&mut self, sql: &str, values: impl IntoIterator<Item = Value>) -> String {
        let mut values = values.into_iter();
        let mut out = String::with_capacity(sql.len());
        for c in sql.chars() {
            if c == '?' {
                if let Some(v) = values.next() {
                    self.values.push(v);
                }
                out.push_str(&format!("${}", self.values.len()));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// `sql` (which names `$n` placeholders of these conditions and any
    /// after them), with the values bound; `extra` are bound after.
    fn query(
        &self,
        sql: String,
        extra: Vec<Value>,
    ) -> diesel::query_builder::BoxedSqlQuery<
        'static,
        diesel::pg::Pg,
        diesel::query_builder::SqlQuery,
    > {
        let mut query = diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>();
        for v in self.values.iter().cloned().chain(extra) {
            query = match v {
                Value::BigInt(n) => query.bind::<BigInt, _>(n),
                Value::SmallInt(n) => query.bind::<diesel::sql_types::SmallInt, _>(n),
                Value::Text(t) => query.bind::<Text, _>(t),
            };
        }
        query
    }

    /// [`Self::query`], kept as a prepared statement of the connection
    /// (by its text, which holds no values): for lists whose best plan does
    /// not depend on the values, so PostgreSQL does not parse and plan it
    /// again for each page.
    fn kept(
        &self,
        sql: String,
        extra: Vec<Value>,
    ) -> super::prepared::Kept<
        diesel::query_builder::BoxedSqlQuery<
            'static,
            diesel::pg::Pg,
            diesel::query_builder::SqlQuery,
        >,
    > {
        super::prepared::Kept::new(self.query(sql, extra))
    }

    /// The next placeholder after these conditions' own.
    fn next(&self, after: usize) -> String {
        format!("${}", self.values.len() + after + 1)
    }
}

/// A location's contacts by id.
struct ContactsById {
    location_id: i64,
    ids: Vec<i64>,
}

super::prepared::prepared_statement!(
    ContactsById -> diesel::sql_types::Untyped,
    "SELECT * FROM contacts WHERE location_id = ? AND id = ANY(?)",
    |s| [BigInt => &s.location_id, diesel::sql_types::Array<BigInt> => &s.ids]
);

/// A row of the list with its sort key.
#[derive(QueryableByName)]
struct ListedRow {
    #[diesel(embed)]
    contact: Contact,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    key: Option<String>,
}

#[derive(QueryableByName)]
struct ListedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    key: Option<String>,
}

/// Lists a location's contacts in a stable order (name, then id), a page at
/// a time. Keyset pagination: every page costs the same however deep it is.
/// A search that looks like a phone number (digits, +, spaces, dashes,
/// parentheses) matches numbers that start with it (read in the filter's
/// region when it has no `+`) or end with it, listed by number; any other
/// search matches names with a word starting with each of its words, in any
/// order, or emails containing it.
pub fn list(
    conn: &mut PgConnection,
    location_id: i64,
    filter: &ListFilter,
    cursor: &Cursor,
    page_size: i64,
    estimates: &Estimates,
) -> Result<ContactPage, DbError> {
    let (branches, order) = branches(location_id, filter);
    let forward = !matches!(cursor, Cursor::Before(_));
    let key = order.expression();
    let anchor = match cursor {
        Cursor::First => None,
        Cursor::After(id) | Cursor::Before(id) => {
            // The anchor's sort key is read from PostgreSQL itself, so the
            // order compared is exactly the order sorted (same function,
            // same collation); then the row comparison is an index range.
            let anchor_key: Option<Option<String>> = contacts::table
                .filter(contacts::location_id.eq(location_id))
                .filter(contacts::id.eq(*id))
                .select(sql::<diesel::sql_types::Nullable<Text>>(key))
                .first(conn)
                .optional()?;
            anchor_key.flatten().map(|k| (k, *id))
        }
    };
    let (op, direction) = if forward { (">", "ASC") } else { ("<", "DESC") };
    // The page's ids first, from an index alone (each filter and order has
    // one that holds what it tests), then those rows. A phone search with
    // several readings runs one index range per reading, each in number
    // order, and keeps the first of them all.
    let mut found: Vec<ListedId> = Vec::new();
    // The rows, when the walk read them already.
    let mut fetched: Option<std::collections::HashMap<i64, Contact>> = None;
    let search = filter.parsed_search();
    // What the walk of a text search saw: all its matches, or some.
    let mut walked_total = None;
    if let Some(Search::Text { words, whole }) = &search {
        let (walked, end, seen) = walk_names(
            conn,
            &branches[0].0,
            (words, whole),
            key,
            anchor.clone(),
            forward,
            page_size as usize + 1,
        )?;
        found = walked;
        walked_total = Some(match (end, cursor) {
            (true, Cursor::First) => Total::Exact(seen),
            // Walked back from the anchor: what it saw lies before the
            // page; the page says the rest.
            (_, Cursor::Before(_)) => Total::AtLeast(0),
            _ => Total::AtLeast(seen),
        });
    } else {
        // The whole location in name order: the rows themselves in the
        // same walk of the index (one round trip less than ids, then rows).
        let whole_location = filter.is_whole_location();
        for (branch, suffix) in &branches {
            let (range, extra) = match &anchor {
                Some((k, id)) => (
                    format!(
                        " AND ({key}, contacts.id) {op} ({}, {})",
                        branch.next(0),
                        branch.next(1)
                    ),
                    vec![Value::Text(k.clone()), Value::BigInt(*id)],
                ),
                None => (String::new(), Vec::new()),
            };
            let text = if *suffix {
                // The numbers that end so are few (4 digits or more: one in
                // ten thousand): found by the suffix index first, then sorted.
                // Materialised, so the planner cannot prefer walking the number
                // order instead (a whole location, for a rare ending).
                format!(
                    "WITH ending AS MATERIALIZED (SELECT contacts.id, {key} AS key FROM contacts \
                 WHERE {}{range}) SELECT id, key FROM ending \
                 ORDER BY key {direction}, id {direction} LIMIT {}",
                    branch.sql,
                    page_size + 1
                )
            } else {
                format!(
                    "SELECT contacts.id, {key} AS key FROM contacts WHERE {}{range} \
                 ORDER BY {key} {direction}, contacts.id {direction} LIMIT {}",
                    branch.sql,
                    page_size + 1
                )
            };
            // Kept prepared only for the whole location in name order: a
            // status or channel filter can match most contacts or very
            // few, and one plan kept for both would walk the location for
            // a rare one.
            if whole_location && !*suffix {
                let text = text.replacen("SELECT contacts.id, ", "SELECT contacts.*, ", 1);
                let rows = branch.kept(text, extra).load::<ListedRow>(conn)?;
                let fetched = fetched.get_or_insert_with(std::collections::HashMap::new);
                for row in rows {
                    found.push(ListedId {
                        id: row.contact.id,
                        key: row.key,
                    });
                    fetched.insert(row.contact.id, row.contact);
                }
            } else {
                found.extend(branch.query(text, extra).load::<ListedId>(conn)?);
            }
        }
    }
    if branches.len() > 1 {
        // Only phone searches have several branches, and numbers are
        // ASCII in the "C" collation: Rust's order is PostgreSQL's.
        found.sort_by(|a, b| (&a.key, a.id).cmp(&(&b.key, b.id)));
        if !forward {
            found.reverse();
        }
        let mut seen = std::collections::HashSet::new();
        found.retain(|f| seen.insert(f.id));
    }
    let mut ids: Vec<i64> = found.into_iter().map(|f| f.id).collect();
    let more = ids.len() as i64 > page_size;
    ids.truncate(page_size as usize);
    if !forward {
        ids.reverse();
    }
    // Kept prepared: the primary key finds them whatever the ids (a plan
    // made while the table was nearly empty is made again once ANALYZE
    // has seen it grow).
    let mut rows: std::collections::HashMap<i64, Contact> = match fetched {
        Some(rows) => rows,
        None => ContactsById {
            location_id,
            ids: ids.clone(),
        }
        .load::<Contact>(conn)?
        .into_iter()
        .map(|c| (c.id, c))
        .collect(),
    };
    let contacts: Vec<Contact> = ids.iter().filter_map(|id| rows.remove(id)).collect();
    let (has_next, has_prev) = cursor.pager(more);
    // One page holding the whole list is its count; a text search says
    // what its walk saw; else counted.
    let total = match walked_total {
        _ if !has_next && !has_prev => Total::Exact(contacts.len() as i64),
        Some(seen) => seen,
        None => total(conn, location_id, filter, estimates)?,
    };
    Ok(ContactPage {
        contacts,
        has_next,
        has_prev,
        total,
    })
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A line of `EXPLAIN`'s answer.
#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// How many contacts the filter matches: the planner's estimate first (no
/// rows read; for the whole location, the one `estimates` keeps); a list
/// it expects to be short is counted, up to [`COUNT_CAP`].
pub fn total(
    conn: &mut PgConnection,
    location_id: i64,
    filter: &ListFilter,
    estimates: &Estimates,
) -> Result<Total, DbError> {
    let estimate = if filter.is_whole_location() {
        estimates.whole_location(conn, location_id)?
    } else {
        planner_estimate(conn, location_id, filter)?
    };
    total_from_estimate(conn, location_id, filter, estimate)
}

/// The rows the planner expects the filter to match (`i64::MAX`: it would
/// not say).
fn planner_estimate(
    conn: &mut PgConnection,
    location_id: i64,
    filter: &ListFilter,
) -> Result<i64, DbError> {
    let (conditions, _) = filtered(location_id, filter);
    let select = format!("SELECT 1 FROM contacts WHERE {}", conditions.sql);
    let plan: Vec<PlanLine> = conditions
        .query(format!("EXPLAIN {select}"), Vec::new())
        .load(conn)?;
    Ok(plan
        .first()
        .and_then(|p| estimated_rows(&p.line))
        .unwrap_or(i64::MAX))
}

/// How long a location's estimate is kept.
const ESTIMATE_KEPT_FOR: Duration = Duration::from_secs(60);
/// How many locations' estimates are kept at most (then all are dropped:
/// each costs one planning to get back).
const ESTIMATES_KEPT: usize = 10_000;

/// The planner's estimate of each location's contacts, kept a minute, for
/// the list's "≈ N" on a location too large to count. Planning the count
/// costs PostgreSQL about 50 µs, more than reading the page's 50 rows;
/// the figure only changes when ANALYZE (or the table's growth) changes
/// the statistics, and is an estimate either way. A list that fits on one
/// page, or a location the estimate says is small, is still counted on
/// every view. One per connection pool, so one per database.
#[derive(Default)]
pub struct Estimates {
    kept: Mutex<HashMap<i64, (i64, Instant)>>,
}

impl Estimates {
    /// The location's estimate: the one kept if it is fresh, else the
    /// planner's, then kept.
    pub fn whole_location(
        &self,
        conn: &mut PgConnection,
        location_id: i64,
    ) -> Result<i64, DbError> {
        if let Some(&(n, at)) = self.lock().get(&location_id) {
            if at.elapsed() < ESTIMATE_KEPT_FOR {
                return Ok(n);
            }
        }
        let whole = ListFilter::default();
        let n = planner_estimate(conn, location_id, &whole)?;
        let mut kept = self.lock();
        if kept.len() >= ESTIMATES_KEPT {
            kept.clear();
        }
        kept.insert(location_id, (n, Instant::now()));
        Ok(n)
    }

    // A panic elsewhere while holding the lock leaves estimates that are
    // still estimates.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, Instant)>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// [`total`] once the planner's estimate is known (`i64::MAX`: none).
pub(crate) fn total_from_estimate(
    conn: &mut PgConnection,
    location_id: i64,
    filter: &ListFilter,
    estimate: i64,
) -> Result<Total, DbError> {
    if estimate <= 10 * COUNT_CAP {
        let (conditions, _) = filtered(location_id, filter);
        let select = format!("SELECT 1 FROM contacts WHERE {}", conditions.sql);
        let counted: Counted = conditions
            .query(
                format!(
                    "SELECT count(*) AS n FROM ({select} LIMIT {}) AS matching",
                    COUNT_CAP + 1
                ),
                Vec::new(),
            )
            .get_result(conn)?;
        if counted.n <= COUNT_CAP {
            return Ok(Total::Exact(counted.n));
        }
    }
    // Past the cap: the estimate, unless it is below what was counted
    // (statistics older than the rows), then what is known.
    Ok(if estimate > COUNT_CAP {
        Total::About(estimate)
    } else {
        Total::AtLeast(COUNT_CAP + 1)
    })
}

/// The rows the top node of a plan expects: `rows=N` in `EXPLAIN`'s
/// first line (`Index Only Scan using … (cost=0.43..8.45 rows=1234
/// width=4)`).
fn estimated_rows(line: &str) -> Option<i64> {
    let rest = &line[line.find(" rows=")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The conditions of the contacts of a location that match the list's
/// filter (a phone search's readings together), and the order the list
/// shows them in.
fn filtered(location_id: i64, filter: &ListFilter) -> (Conditions, SortKey) {
    let search = filter.parsed_search();
    let readings = match &search {
        Some(Search::Phone(readings)) => readings.iter().collect(),
        _ => Vec::new(),
    };
    conditions(location_id, filter, search.as_ref(), &readings, true)
}

/// The list's conditions once per reading of a phone search (each an index
/// range: in number order for a start, by ending for an end, which says
/// `true`), or once.
fn branches(location_id: i64, filter: &ListFilter) -> (Vec<(Conditions, bool)>, SortKey) {
    let search = filter.parsed_search();
    match &search {
        Some(Search::Phone(readings)) if !readings.is_empty() => (
            readings
                .iter()
                .map(|r| {
                    (
                        conditions(location_id, filter, search.as_ref(), &[r], true).0,
                        matches!(r, PhoneReading::Suffix(_)),
                    )
                })
                .collect(),
            SortKey::Phone,
        ),
        _ => {
            // A text search's branch holds the other filters only.
            let (c, order) = conditions(location_id, filter, search.as_ref(), &[], false);
            (vec![(c, false)], order)
        }
    }
}

/// The conditions of the list; a text search's only `with_text` (the walk
/// of [`walk_names`] tests it on each entry itself).
fn conditions(
    location_id: i64,
    filter: &ListFilter,
    search: Option<&Search>,
    readings: &[&PhoneReading],
    with_text: bool,
) -> (Conditions, SortKey) {
    let mut c = Conditions::new(location_id);
    // A phone search lists by number: the phone index then gives both the
    // matches and their order, whatever the share of contacts that match.
    let mut order = SortKey::Name;
    match search {
        Some(Search::Phone(_)) => {
            order = SortKey::Phone;
            let (sql, values): (Vec<&str>, Vec<Value>) = readings
                .iter()
                .map(|r| match r {
                    PhoneReading::Prefix(p) => (
                        "contacts.phone LIKE ?",
                        Value::Text(format!("{}%", escape_like(p))),
                    ),
                    // Served by contacts_phone_suffix_idx.
                    PhoneReading::Suffix(d) => (
                        "reverse(contacts.phone) LIKE ?",
                        Value::Text(format!(
                            "{}%",
                            escape_like(&d.chars().rev().collect::<String>())
                        )),
                    ),
                })
                .unzip();
            if sql.is_empty() {
                c.and("false", []);
            } else {
                c.and(&sql.join(" OR "), values);
            }
        }
        Some(Search::Text { words, whole }) if with_text => {
            let (sql, values) = text_match(words, whole, "contacts");
            c.and(&sql, values);
        }
        Some(Search::Text { .. }) | None => {}
    }
    if let Some(status) = filter.status {
        c.and("contacts.dnd_status = ?", [Value::SmallInt(status.code())]);
    }
    if let Some(channel) = filter.blocked {
        // Written exactly as the partial index's predicate, so it is used.
        let bit = channel.bit();
        c.and(
            &format!("contacts.dnd_all OR (contacts.dnd_mask & {bit}) <> 0"),
            [],
        );
    }
    (c, order)
}

/// A text search as SQL on `table`'s `name` and `email` (with `?` for its
/// values): each word starts a word of the name (at its start, or after a
/// space or a hyphen), in any order; or the whole text is part of the email.
fn text_match(words: &[String], whole: &str, table: &str) -> (String, Vec<Value>) {
    let mut sql = Vec::new();
    let mut values = Vec::new();
    for word in words {
        let w = escape_like(word);
        sql.push(format!(
            "(lower({table}.name) LIKE ? OR lower({table}.name) LIKE ? OR lower({table}.name) LIKE ?)"
        ));
        values.extend([
            Value::Text(format!("{w}%")),
            Value::Text(format!("% {w}%")),
            Value::Text(format!("%-{w}%")),
        ]);
    }
    values.push(Value::Text(format!("%{}%", escape_like(whole))));
    (
        format!("({}) OR {table}.email LIKE ?", sql.join(" AND ")),
        values,
    )
}

#[derive(QueryableByName)]
struct StretchEnd {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    key: Option<String>,
    /// How many entries the stretch had.
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How much of the list a text search walks before it asks the trigram
/// indexes instead: a name that matches one entry in a hundred has its page
/// in the first 5,000; a rarer one is found faster by the indexes.
const STRETCH: i64 = 5_000;

/// The entries of the list order (from `anchor`, in `forward` order) that
/// match a text search, up to `need` of them; whether every match after the
/// anchor was seen; and how many matched in all that was looked at.
///
/// Which plan finds them best depends on how many names match, which the
/// planner cannot guess from a pattern (it guessed 99 Garcias of 20,000 and
/// sorted them all; a guess the other way walks a million names for a rare
/// one). So it is decided here, by looking: first the list's index is walked
/// a stretch (name and email ride along in it, each entry tested there,
/// stopping at the last match needed); a search that did not fill its page
/// there is rare, and the rest of its matches come from the trigram indexes
/// on name and email, sorted.
fn walk_names(
    conn: &mut PgConnection,
    base: &Conditions,
    search: (&[String], &str),
    key: &str,
    anchor: Option<(String, i64)>,
    forward: bool,
    need: usize,
) -> Result<(Vec<ListedId>, bool, i64), DbError> {
    let (op, direction, back) = if forward {
        (">", "ASC", "DESC")
    } else {
        ("<", "DESC", "ASC")
    };
    let after = |c: &mut Conditions, from: &Option<(String, i64)>| {
        if let Some((k, id)) = from {
            c.and(
                &format!("({key}, contacts.id) {op} (?, ?)"),
                [Value::Text(k.clone()), Value::BigInt(*id)],
            );
        }
    };
    let mut c = base.clone();
    after(&mut c, &anchor);
    let stretch = format!(
        "SELECT contacts.id, {key} AS key, contacts.name, contacts.email FROM contacts \
         WHERE {} ORDER BY {key} {direction}, contacts.id {direction} LIMIT {STRETCH}",
        c.sql
    );
    let (matching, values) = text_match(search.0, search.1, "stretch");
    let mut tested = c.clone();
    let test = tested.fragment(&matching, values);
    // In the stretch's own order, so the scan stops at the last match
    // needed.
    let mut found = tested
        .query(
            format!(
                "SELECT id, key FROM ({stretch}) AS stretch WHERE {test} \
                 ORDER BY key {direction}, id {direction} LIMIT {need}"
            ),
            Vec::new(),
        )
        .load::<ListedId>(conn)?;
    if found.len() >= need {
        let seen = found.len() as i64;
        return Ok((found, false, seen));
    }
    // Every match of the stretch is found: where it ends, and whether the
    // list goes on past it.
    let end: Option<StretchEnd> = c
        .query(
            format!(
                "SELECT id, key, count(*) OVER () AS n FROM ({stretch}) AS stretch \
                 ORDER BY key {back}, id {back} LIMIT 1"
            ),
            Vec::new(),
        )
        .get_result(conn)
        .optional()?;
    let Some(end) = end.filter(|e| e.n >= STRETCH) else {
        let seen = found.len() as i64;
        return Ok((found, true, seen));
    };
    let Some(end_key) = end.key else {
        // A NULL key cannot be walked past (names are NOT NULL).
        let seen = found.len() as i64;
        return Ok((found, true, seen));
    };
    // The rest from the trigram indexes: only bitmap scans are allowed for
    // this one statement (and allowed back after it, whatever transaction
    // the caller is in), so the planner cannot walk the list instead.
    let mut rest = base.clone();
    after(&mut rest, &Some((end_key, end.id)));
    let (matching, values) = text_match(search.0, search.1, "contacts");
    rest.and(&matching, values);
    let wanted = need - found.len();
    let more = conn.transaction(|conn| -> Result<Vec<Walked>, DbError> {
        diesel::sql_query(
            "SELECT set_config('enable_seqscan', 'off', true), \
             set_config('enable_indexscan', 'off', true), \
             set_config('enable_indexonlyscan', 'off', true)",
        )
        .execute(conn)?;
        let rows = rest
            .query(
                format!(
                    "SELECT contacts.id, {key} AS key, count(*) OVER () AS n FROM contacts \
                     WHERE {} ORDER BY key {direction}, contacts.id {direction} LIMIT {wanted}",
                    rest.sql
                ),
                Vec::new(),
            )
            .load::<Walked>(conn)?;
        diesel::sql_query(
            "SELECT set_config('enable_seqscan', 'on', true), \
             set_config('enable_indexscan', 'on', true), \
             set_config('enable_indexonlyscan', 'on', true)",
        )
        .execute(conn)?;
        Ok(rows)
    })?;
    let seen = found.len() as i64 + more.first().map_or(0, |r| r.n);
    found.extend(more.into_iter().map(|r| ListedId {
        id: r.id,
        key: r.key,
    }));
    Ok((found, true, seen))
}

#[derive(QueryableByName)]
struct Walked {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    key: Option<String>,
    /// How many rows the query matched in all (before its limit).
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every contact of a location the list's filter matches (what a bulk
/// change on "this list" acts on), by id, at most `limit + 1` so the
/// caller can tell the list was longer than it takes.
pub fn matching_ids(
    conn: &mut PgConnection,
    location_id: i64,
    filter: &ListFilter,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let (conditions, _) = filtered(location_id, filter);
    let text = format!(
        "SELECT contacts.id FROM contacts WHERE {} ORDER BY contacts.id LIMIT {}",
        conditions.sql,
        limit + 1
    );
    Ok(conditions
        .query(text, Vec::new())
        .load::<Id>(conn)?
        .into_iter()
        .map(|i| i.id)
        .collect())
}

/// What the list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    /// Name, case-insensitively (then id): the normal order.
    Name,
    /// Phone number (then id), for phone searches: only contacts with a
    /// phone match those, so the key is never null there.
    Phone,
}

impl SortKey {
    fn expression(self) -> &'static str {
        match self {
            SortKey::Name => "lower(contacts.name)",
            SortKey::Phone => "contacts.phone",
        }
    }
}

/// `%` and `_` in a search term are literal characters, not wildcards.
fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn the_planner_estimate_is_read_from_the_plan() {
        assert_eq!(
            super::estimated_rows(
                "Index Only Scan using contacts_pkey on contacts  (cost=0.43..8.45 rows=1234 width=4)"
            ),
            Some(1234)
        );
        assert_eq!(super::estimated_rows("Result"), None);
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
