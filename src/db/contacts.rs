use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use super::dnd as dnd_store;
use super::schema::contacts;
use super::DbError;
use crate::domain::dnd::{Action, Actor, HistoryEntry, Status};
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

/// One page of a location's contacts.
#[derive(Debug, Clone)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub has_next: bool,
    pub has_prev: bool,
}

/// What the contact list shows: a search and the DND filters, combined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub search: Option<String>,
    pub status: Option<Status>,
    /// Contacts that may not be reached on this channel (its own reasons or
    /// the all-channels switch).
    pub blocked: Option<Channel>,
}

impl ListFilter {
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
        })
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

/// Lists a location's contacts in a stable order (name, then id), a page at
/// a time. Keyset pagination: every page costs the same however deep it is.
/// A search that looks like a phone number (digits, +, spaces, dashes,
/// parentheses) matches the start of the phone ("+1 415" finds +1415…);
/// any other matches any part of the name or email.
pub fn list(
    conn: &mut PgConnection,
    location_id: i64,
    filter: &ListFilter,
    cursor: &Cursor,
    page_size: i64,
) -> Result<ContactPage, DbError> {
    // The page's ids first, from an index alone (each filter and order has
    // one that holds what it tests), then those rows.
    let (mut query, order) = filtered(location_id, filter);
    let forward = !matches!(cursor, Cursor::Before(_));
    let anchor = match cursor {
        Cursor::First => None,
        Cursor::After(id) => Some((">", *id)),
        Cursor::Before(id) => Some(("<", *id)),
    };
    let key = order.expression();
    if let Some((op, id)) = anchor {
        // The anchor's sort key is read from PostgreSQL itself, so the order
        // compared is exactly the order sorted (same function, same
        // collation); then the row comparison is an index range.
        let anchor_key: Option<Option<String>> = contacts::table
            .filter(contacts::location_id.eq(location_id))
            .filter(contacts::id.eq(id))
            .select(sql::<diesel::sql_types::Nullable<Text>>(key))
            .first(conn)
            .optional()?;
        if let Some(Some(anchor_key)) = anchor_key {
            query = query.filter(
                sql::<Bool>(&format!("({key}, contacts.id) {op} ("))
                    .bind::<Text, _>(anchor_key)
                    .sql(", ")
                    .bind::<BigInt, _>(id)
                    .sql(")"),
            );
        }
    }
    query = if forward {
        query.order_by((sql::<Text>(key).asc(), contacts::id.asc()))
    } else {
        query.order_by((sql::<Text>(key).desc(), contacts::id.desc()))
    };
    let mut ids: Vec<i64> = query.limit(page_size + 1).load(conn)?;
    let more = ids.len() as i64 > page_size;
    ids.truncate(page_size as usize);
    if !forward {
        ids.reverse();
    }
    // Planned for its ids each time (`sql_query` is not kept prepared): a
    // kept plan could scan the location instead.
    let mut found: std::collections::HashMap<i64, Contact> =
        diesel::sql_query("SELECT * FROM contacts WHERE location_id = $1 AND id = ANY($2)")
            .bind::<BigInt, _>(location_id)
            .bind::<diesel::sql_types::Array<BigInt>, _>(&ids)
            .load::<Contact>(conn)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
    let rows: Vec<Contact> = ids.iter().filter_map(|id| found.remove(id)).collect();
    Ok(ContactPage {
        contacts: rows,
        has_next: if forward { more } else { true },
        has_prev: match cursor {
            Cursor::First => false,
            Cursor::After(_) => true,
            Cursor::Before(_) => more,
        },
    })
}

type IdQuery<'a> = contacts::BoxedQuery<'a, diesel::pg::Pg, BigInt>;

/// The ids of a location's contacts that match the list's filter, and the
/// order the list shows them in.
fn filtered(location_id: i64, filter: &ListFilter) -> (IdQuery<'static>, SortKey) {
    let mut query = contacts::table
        .filter(contacts::location_id.eq(location_id))
        .select(contacts::id)
        .into_boxed();
    // A phone search lists by number: the phone index then gives both the
    // matches and their order, whatever the share of contacts that match.
    let mut order = SortKey::Name;
    if let Some(term) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let digits: String = term.chars().filter(char::is_ascii_digit).collect();
        let looks_like_phone = !digits.is_empty()
            && term
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if looks_like_phone {
            order = SortKey::Phone;
            query = query.filter(contacts::phone.like(format!("+{digits}%")));
        } else {
            let pattern = format!("%{}%", escape_like(&term.to_lowercase()));
            query = query.filter(
                sql::<Bool>("(lower(contacts.name) LIKE ")
                    .bind::<Text, _>(pattern.clone())
                    .sql(" OR contacts.email LIKE ")
                    .bind::<Text, _>(pattern)
                    .sql(")"),
            );
        }
    }
    if let Some(status) = filter.status {
        query = query.filter(contacts::dnd_status.eq(status.code()));
    }
    if let Some(channel) = filter.blocked {
        // Written exactly as the partial index's predicate, so it is used.
        let bit = channel.bit();
        query = query.filter(sql::<Bool>(&format!(
            "(contacts.dnd_all OR (contacts.dnd_mask & {bit}) <> 0)"
        )));
    }
    (query, order)
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
    let (query, _) = filtered(location_id, filter);
    query
        .order_by(contacts::id.asc())
        .limit(limit + 1)
        .load(conn)
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
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
