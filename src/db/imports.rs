//! Imports: contacts from a CSV file (upserted by phone, then email, with
//! optional DND flags that only ever turn DND on) and suppression lists
//! (an `imported_opt_out` reason on each address). Each is recorded in
//! `imports`, which the history names.
//!
//! Rows are written a chunk at a time, set-based: one look-up of every
//! contact a chunk's rows touch, their addresses locked in one statement
//! before any row (the one lock order), one INSERT of the new contacts.
//! Each chunk is a transaction (a dry run rolls each back), so a contact
//! and its DND are committed together and the advisory locks stay few.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use super::bulk::{self, BulkOutcome};
use super::contacts::{self, Contact, ContactFields, ContactInput, NewContact};
use super::dnd::{self as dnd_store, AddressKey, DndWrite};
use super::schema::{contacts as contacts_table, imports};
use super::DbError;
use crate::domain::address;
use crate::domain::dnd::{Actor, Reason, Switches};
use crate::domain::import::{ContactRow, Parsed, RowError, SuppressionRow};
use crate::domain::{Channel, EmailAddress, PhoneNumber};

/// Rows per transaction.
const CHUNK: usize = 1000;

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportOutcome {
    /// Data rows in the file (blank lines aside).
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub errors: Vec<ErrorView>,
    /// The import stopped part-way (the database failed): what is counted
    /// was committed; the rest of the file was not imported.
    #[serde(skip)]
    pub interrupted: Option<String>,
}

/// A row error as the API and the pages show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorView {
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl From<RowError> for ErrorView {
    fn from(e: RowError) -> Self {
        ErrorView {
            line: e.line,
            field: e.field,
            message: e.message,
        }
    }
}

impl ImportOutcome {
    fn add(&mut self, other: ImportOutcome) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.errors.extend(other.errors);
    }
}

/// Who runs an import, where, and how it is named in the history.
pub struct ImportRun<'a> {
    pub location_id: i64,
    /// The location's region, for numbers written without a country code.
    pub region: &'a str,
    pub actor: &'a Actor,
    /// What the history says the change came from ("import #12").
    pub source: String,
    pub dry_run: bool,
}

/// How one chunk's transaction ends when it does not commit.
enum End {
    /// A dry run: everything is rolled back, the outcome kept.
    DryRun(ImportOutcome),
    /// What was locked moved in between: this chunk starts again.
    Again,
    Failed(DbError),
}

impl From<diesel::result::Error> for End {
    fn from(e: diesel::result::Error) -> Self {
        End::Failed(e.into())
    }
}

impl From<DbError> for End {
    fn from(e: DbError) -> Self {
        End::Failed(e)
    }
}

/// Runs `chunk` in a transaction of its own: committed, or rolled back with
/// its outcome in a dry run, or again from the start (up to five times)
/// when its locks found things moved.
fn in_transaction(
    conn: &mut PgConnection,
    dry_run: bool,
    mut chunk: impl FnMut(&mut PgConnection) -> Result<ImportOutcome, End>,
) -> Result<ImportOutcome, DbError> {
    for _ in 0..5 {
        let done = conn.transaction(|conn| -> Result<ImportOutcome, End> {
            super::wait_for_locks(conn)?;
            let outcome = chunk(conn)?;
            if dry_run {
                Err(End::DryRun(outcome))
            } else {
                Ok(outcome)
            }
        });
        match done {
            Ok(outcome) | Err(End::DryRun(outcome)) => return Ok(outcome),
            Err(End::Again) => continue,
            Err(End::Failed(e)) => return Err(e),
        }
    }
    Err(DbError::Invariant(
        "contacts kept changing while an import was locking them; try again".into(),
    ))
}

/// A row checked and in canonical form, ready to write.
#[derive(Debug, Clone)]
pub struct ReadyRow {
    pub line: u64,
    pub input: ContactInput,
    pub dnd: Switches,
}

/// Checks every row by the rules of a contact typed in a form, and refuses
/// a row that repeats an address of an earlier row of the file (which of
/// the two is right cannot be told). Pure: no database.
pub fn prepare_contacts(
    parsed: Parsed<ContactRow>,
    region: &str,
) -> (Vec<ReadyRow>, Vec<ErrorView>) {
    let mut errors: Vec<ErrorView> = parsed.errors.into_iter().map(ErrorView::from).collect();
    let mut ready = Vec::with_capacity(parsed.rows.len());
    let mut first: HashMap<(&'static str, String), u64> = HashMap::new();
    for row in parsed.rows {
        let line = row.line;
        let fields = ContactFields {
            name: row.name,
            phone: row.phone,
            email: row.email,
            facebook_id: row.facebook_id,
            whatsapp_id: row.whatsapp_id,
            gmb_id: None,
        };
        let input = match fields.validate(region) {
            Ok(input) => input,
            Err(bad) => {
                errors.extend(bad.into_iter().map(|f| ErrorView {
                    line,
                    field: f.field.to_string(),
                    message: f.message,
                }));
                continue;
            }
        };
        if input.phone.is_none() && input.email.is_none() {
            errors.push(ErrorView {
                line,
                field: "phone".into(),
                message: "a contact needs a phone or an email to be matched on".into(),
            });
            continue;
        }
        let keys: Vec<(&'static str, String)> = [
            (
                "phone",
                input.phone.as_ref().map(|p| p.as_str().to_string()),
            ),
            (
                "email",
                input.email.as_ref().map(|e| e.as_str().to_string()),
            ),
            ("whatsapp_id", input.whatsapp_id.clone()),
            ("facebook_id", input.facebook_id.clone()),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.map(|v| (f, v)))
        .collect();
        if let Some(((field, value), earlier)) = keys
            .iter()
            .find_map(|k| first.get(k).map(|line| (k, *line)))
        {
            errors.push(ErrorView {
                line,
                field: field.to_string(),
                message: format!(
                    "{value} is also on line {earlier}; keep one row per person (this one was skipped)"
                ),
            });
            continue;
        }
        for k in keys {
            first.insert(k, line);
        }
        ready.push(ReadyRow {
            line,
            input,
            dnd: row.dnd,
        });
    }
    (ready, errors)
}

/// Imports a contacts file's rows: creates or updates each, then turns on
/// the DND its flags ask for. Never clears DND, never clears a field.
pub fn import_contacts(
    conn: &mut PgConnection,
    run: &ImportRun<'_>,
    parsed: Parsed<ContactRow>,
    progress: &dyn Fn(&mut PgConnection, usize),
) -> Result<ImportOutcome, DbError> {
    let rows = parsed.rows.len() + parsed.errors.len();
    let (ready, errors) = prepare_contacts(parsed, run.region);
    let mut total = ImportOutcome {
        rows,
        errors,
        ..Default::default()
    };
    // Rows of different chunks that match one contact (one by its phone,
    // one by its email) are found over the whole file first: each chunk
    // only sees its own rows.
    let (ready, repeated) = one_row_per_contact(conn, run.location_id, ready)?;
    total.errors.extend(repeated);
    run_chunks(conn, run, &ready, total, progress, |conn, chunk| {
        contacts_chunk(conn, run, chunk)
    })
}

/// Writes the ready rows a chunk at a time, each in its transaction (rolled
/// back in a dry run), saying how far it got after each; the rows counted
/// so far are those `total` already holds (refused before any chunk).
fn run_chunks<R>(
    conn: &mut PgConnection,
    run: &ImportRun<'_>,
    ready: &[R],
    mut total: ImportOutcome,
    progress: &dyn Fn(&mut PgConnection, usize),
    mut chunk: impl FnMut(&mut PgConnection, &[R]) -> Result<ImportOutcome, End>,
) -> Result<ImportOutcome, DbError> {
    let mut done = total.rows - ready.len();
    for rows in ready.chunks(CHUNK) {
        let result = in_transaction(conn, run.dry_run, |conn| chunk(conn, rows));
        if !total.settle(result, done)? {
            break;
        }
        done += rows.len();
        progress(conn, done);
    }
    total.errors.sort_by_key(|e| e.line);
    Ok(total)
}

impl ImportOutcome {
    /// Adds a chunk's outcome. A chunk that failed after others committed
    /// stops the import with what was done said (`false`: stop); a
    /// failure before anything was committed is the error itself.
    fn settle(
        &mut self,
        result: Result<ImportOutcome, DbError>,
        done: usize,
    ) -> Result<bool, DbError> {
        match result {
            Ok(outcome) => {
                self.add(outcome);
                Ok(true)
            }
            Err(e) if self.created + self.updated + self.unchanged > 0 => {
                self.interrupted = Some(format!(
                    "The import stopped after {done} of {} rows ({e}): the rows counted were \
                     imported, the rest were not. Import the file again to finish: rows already \
                     imported count as unchanged.",
                    self.rows
                ));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Refuses every row after the first that matches the same existing
/// contact (say one by its phone and a later one by its email): which of
/// them is right cannot be told. Read only; each chunk checks again under
/// its locks.
fn one_row_per_contact(
    conn: &mut PgConnection,
    location_id: i64,
    ready: Vec<ReadyRow>,
) -> Result<(Vec<ReadyRow>, Vec<ErrorView>), DbError> {
    let held = related(conn, location_id, &ready, false)?;
    let by_phone: HashMap<&str, i64> = held
        .iter()
        .filter_map(|h| h.phone.as_deref().map(|p| (p, h.id)))
        .collect();
    let by_email: HashMap<&str, i64> = held
        .iter()
        .filter_map(|h| h.email.as_deref().map(|e| (e, h.id)))
        .collect();
    let mut first: HashMap<i64, u64> = HashMap::new();
    let mut kept = Vec::with_capacity(ready.len());
    let mut errors = Vec::new();
    for row in ready {
        let matched = row
            .input
            .phone
            .as_ref()
            .and_then(|p| by_phone.get(p.as_str()))
            .or_else(|| {
                row.input
                    .email
                    .as_ref()
                    .and_then(|e| by_email.get(e.as_str()))
            })
            .copied();
        if let Some(id) = matched {
            if let Some(earlier) = first.get(&id) {
                errors.push(ErrorView {
                    line: row.line,
                    field: "phone".into(),
                    message: format!(
                        "matches contact {id} like line {earlier}; keep one row per person (this one was skipped)"
                    ),
                });
                continue;
            }
            first.insert(id, row.line);
        }
        kept.push(row);
    }
    Ok((kept, errors))
}

/// Every contact of the location holding one of these rows' phones,
/// emails, WhatsApp or Messenger ids (locked, in id order, if asked).
fn related(
    conn: &mut PgConnection,
    location_id: i64,
    rows: &[ReadyRow],
    lock: bool,
) -> QueryResult<Vec<Contact>> {
    let pick = |f: fn(&ContactInput) -> Option<&str>| -> Vec<&str> {
        rows.iter().filter_map(|r| f(&r.input)).collect()
    };
    let phones = pick(|i| i.phone.as_ref().map(PhoneNumber::as_str));
    let emails = pick(|i| i.email.as_ref().map(EmailAddress::as_str));
    let whatsapp = pick(|i| i.whatsapp_id.as_deref());
    let facebook = pick(|i| i.facebook_id.as_deref());
    // Planned for its values each time (never kept prepared), as the
    // list's look-ups by id are.
    let sql = format!(
        "SELECT * FROM contacts WHERE location_id = $1
           AND (phone = ANY($2) OR email = ANY($3) OR whatsapp_id = ANY($4) OR facebook_id = ANY($5))
         ORDER BY id{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    diesel::sql_query(sql)
        .bind::<BigInt, _>(location_id)
        .bind::<Array<Text>, _>(&phones)
        .bind::<Array<Text>, _>(&emails)
        .bind::<Array<Text>, _>(&whatsapp)
        .bind::<Array<Text>, _>(&facebook)
        .load(conn)
}

/// What a row does to the contact it matches.
enum Plan<'a> {
    Create(&'a ReadyRow),
    Update(&'a ReadyRow, &'a Contact),
    Same(&'a ReadyRow, &'a Contact),
}

fn contacts_chunk(
    conn: &mut PgConnection,
    run: &ImportRun<'_>,
    rows: &[ReadyRow],
) -> Result<ImportOutcome, End> {
    let location_id = run.location_id;
    let seen = related(conn, location_id, rows, false)?;
    let mut addresses: Vec<&str> = rows
        .iter()
        .flat_map(|r| {
            [
                r.input.phone.as_ref().map(PhoneNumber::as_str),
                r.input.email.as_ref().map(EmailAddress::as_str),
                r.input.whatsapp_id.as_deref(),
                r.input.facebook_id.as_deref(),
            ]
        })
        .flatten()
        .collect();
    addresses.extend(seen.iter().flat_map(Contact::address_list));
    dnd_store::lock_addresses(conn, addresses.into_iter().map(|a| (location_id, a)))?;
    let locked = related(conn, location_id, rows, true)?;
    let same = locked.len() == seen.len()
        && locked
            .iter()
            .zip(&seen)
            .all(|(a, b)| a.id == b.id && a.addresses() == b.addresses());
    if !same {
        return Err(End::Again);
    }

    let index = |f: fn(&Contact) -> Option<&str>| -> HashMap<&str, &Contact> {
        locked.iter().filter_map(|c| f(c).map(|v| (v, c))).collect()
    };
    let by_phone = index(|c| c.phone.as_deref());
    let by_email = index(|c| c.email.as_deref());
    let by_whatsapp = index(|c| c.whatsapp_id.as_deref());
    let by_facebook = index(|c| c.facebook_id.as_deref());

    let mut outcome = ImportOutcome::default();
    let mut plans: Vec<Plan> = Vec::with_capacity(rows.len());
    let mut matched_by: HashMap<i64, u64> = HashMap::new();
    for row in rows {
        let input = &row.input;
        let phone_holder = input
            .phone
            .as_ref()
            .and_then(|p| by_phone.get(p.as_str()).copied());
        let email_holder = input
            .email
            .as_ref()
            .and_then(|e| by_email.get(e.as_str()).copied());
        let refuse = |field: &str, message: String| ErrorView {
            line: row.line,
            field: field.to_string(),
            message,
        };
        let existing = match (phone_holder, email_holder) {
            (Some(p), Some(e)) if p.id != e.id => {
                outcome.errors.push(refuse(
                    "email",
                    format!(
                        "the phone belongs to contact {} and the email to contact {}; update them separately",
                        p.id, e.id
                    ),
                ));
                continue;
            }
            (Some(c), _) | (None, Some(c)) => Some(c),
            (None, None) => None,
        };
        let taken = [
            ("whatsapp_id", input.whatsapp_id.as_deref(), &by_whatsapp),
            ("facebook_id", input.facebook_id.as_deref(), &by_facebook),
        ]
        .into_iter()
        .find_map(|(field, value, holders)| {
            let other = holders.get(value?)?;
            (Some(other.id) != existing.map(|c| c.id)).then(|| {
                refuse(
                    field,
                    format!(
                        "{field} {} belongs to contact {} of this location; one address is one person",
                        value.unwrap_or_default(),
                        other.id
                    ),
                )
            })
        });
        if let Some(e) = taken {
            outcome.errors.push(e);
            continue;
        }
        match existing {
            None => plans.push(Plan::Create(row)),
            Some(c) => {
                if let Some(earlier) = matched_by.insert(c.id, row.line) {
                    outcome.errors.push(refuse(
                        "phone",
                        format!(
                            "matches contact {} like line {earlier}; keep one row per person (this one was skipped)",
                            c.id
                        ),
                    ));
                    continue;
                }
                if changes(c, input) {
                    plans.push(Plan::Update(row, c));
                } else {
                    plans.push(Plan::Same(row, c));
                }
            }
        }
    }

    // New contacts in one statement; matched back by their phone or email
    // (each unique in the location and in the file).
    let new: Vec<NewContact> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Create(r) => Some(new_contact(location_id, &r.input)),
            _ => None,
        })
        .collect();
    let created: Vec<Contact> = if new.is_empty() {
        Vec::new()
    } else {
        diesel::insert_into(contacts_table::table)
            .values(&new)
            .returning(Contact::as_returning())
            .get_results(conn)?
    };
    let created_by_phone: HashMap<&str, i64> = created
        .iter()
        .filter_map(|c| c.phone.as_deref().map(|p| (p, c.id)))
        .collect();
    let created_by_email: HashMap<&str, i64> = created
        .iter()
        .filter_map(|c| c.email.as_deref().map(|e| (e, c.id)))
        .collect();

    let mut updated: HashSet<i64> = HashSet::new();
    let mut wants: HashMap<i64, &Switches> = HashMap::new();
    let mut touched: Vec<i64> = Vec::with_capacity(plans.len());
    for plan in &plans {
        let (row, id) = match plan {
            Plan::Create(r) => {
                let id = r
                    .input
                    .phone
                    .as_ref()
                    .and_then(|p| created_by_phone.get(p.as_str()))
                    .or_else(|| {
                        r.input
                            .email
                            .as_ref()
                            .and_then(|e| created_by_email.get(e.as_str()))
                    })
                    .copied()
                    .ok_or_else(|| {
                        DbError::Invariant(format!(
                            "the contact of line {} was not created",
                            r.line
                        ))
                    })?;
                outcome.created += 1;
                (r, id)
            }
            Plan::Update(r, current) => {
                let after = contacts::overwrite(conn, location_id, current, &r.input)?;
                contacts::record_address_changes(conn, current, &after, run.actor)?;
                updated.insert(current.id);
                (r, current.id)
            }
            Plan::Same(r, current) => (r, current.id),
        };
        if !row.dnd.is_empty() {
            wants.insert(id, &row.dnd);
            touched.push(id);
        }
    }

    // The DND the flags ask for, by the rules of a user turning it on.
    let mut dnd = BulkOutcome::default();
    if !touched.is_empty() {
        let now = Utc::now();
        bulk::apply_within(
            conn,
            location_id,
            &touched,
            |id, state| {
                let switches = wants.get(&id).copied().cloned().unwrap_or_default();
                state.switch(&switches, run.actor, now, &run.source, None)
            },
            &mut dnd,
        )?;
        if let Some(refused) = dnd.skipped.first() {
            return Err(End::Failed(DbError::Invariant(format!(
                "an import's DND flag was refused for contact {}: {}",
                refused.contact_id, refused.message
            ))));
        }
    }
    let dnd_changed: HashSet<i64> = dnd.changed_ids.iter().copied().collect();
    for plan in &plans {
        match plan {
            Plan::Create(_) => {}
            Plan::Update(_, c) | Plan::Same(_, c) => {
                if updated.contains(&c.id) || dnd_changed.contains(&c.id) {
                    outcome.updated += 1;
                } else {
                    outcome.unchanged += 1;
                }
            }
        }
    }
    Ok(outcome)
}

/// Whether writing `input` over `current` changes anything (given fields
/// replace, missing ones stay).
fn changes(current: &Contact, input: &ContactInput) -> bool {
    let differs = |given: Option<&str>, stored: Option<&str>| given.is_some() && given != stored;
    differs(input.name.as_deref(), Some(current.name.as_str()))
        || differs(
            input.phone.as_ref().map(PhoneNumber::as_str),
            current.phone.as_deref(),
        )
        || differs(
            input.email.as_ref().map(EmailAddress::as_str),
            current.email.as_deref(),
        )
        || differs(input.whatsapp_id.as_deref(), current.whatsapp_id.as_deref())
        || differs(input.facebook_id.as_deref(), current.facebook_id.as_deref())
}

fn new_contact(location_id: i64, input: &ContactInput) -> NewContact<'_> {
    NewContact {
        location_id,
        name: input.name.as_deref().unwrap_or(""),
        phone: input.phone.as_ref().map(PhoneNumber::as_str),
        email: input.email.as_ref().map(EmailAddress::as_str),
        facebook_id: input.facebook_id.as_deref(),
        whatsapp_id: input.whatsapp_id.as_deref(),
        gmb_id: input.gmb_id.as_deref(),
    }
}

/// Imports a suppression list: each address (in the location's canonical
/// form for the channel) gets the `imported_opt_out` reason, whether or
/// not a contact holds it yet (one who takes it later is blocked at once).
/// An address that already has it is unchanged; `created` counts the
/// addresses newly suppressed.
pub fn import_suppressions(
    conn: &mut PgConnection,
    run: &ImportRun<'_>,
    channel: Channel,
    parsed: Parsed<SuppressionRow>,
    progress: &dyn Fn(&mut PgConnection, usize),
) -> Result<ImportOutcome, DbError> {
    let rows = parsed.rows.len() + parsed.errors.len();
    let mut errors: Vec<ErrorView> = parsed.errors.into_iter().map(ErrorView::from).collect();
    let mut ready: Vec<(u64, String, Option<String>)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut repeated = 0;
    for row in parsed.rows {
        let canonical = match channel {
            Channel::Email => EmailAddress::parse(&row.address).map(|e| e.as_str().to_string()),
            Channel::Whatsapp => address::whatsapp_id(&row.address, run.region),
            _ => PhoneNumber::parse(&row.address, run.region).map(PhoneNumber::into_inner),
        };
        match canonical {
            Ok(a) if seen.insert(a.clone()) => ready.push((row.line, a, row.note)),
            Ok(_) => repeated += 1,
            Err(e) => errors.push(ErrorView {
                line: row.line,
                field: "address".into(),
                message: e.message,
            }),
        }
    }
    let total = ImportOutcome {
        rows,
        unchanged: repeated,
        errors,
        ..Default::default()
    };
    run_chunks(conn, run, &ready, total, progress, |conn, chunk| {
        suppressions_chunk(conn, run, channel, chunk)
    })
}

fn suppressions_chunk(
    conn: &mut PgConnection,
    run: &ImportRun<'_>,
    channel: Channel,
    rows: &[(u64, String, Option<String>)],
) -> Result<ImportOutcome, End> {
    let location_id = run.location_id;
    dnd_store::lock_addresses(conn, rows.iter().map(|(_, a, _)| (location_id, a.as_str())))?;
    let keys: Vec<AddressKey> = rows
        .iter()
        .map(|(_, a, _)| AddressKey {
            location_id,
            channel,
            address: a.clone(),
        })
        .collect();
    let before = dnd_store::address_states(conn, &keys)?;
    let holders = dnd_store::holders(
        conn,
        location_id,
        channel,
        rows.iter().map(|(_, a, _)| a.as_str()),
    )?;
    let now = Utc::now();
    let mut write = DndWrite::default();
    let mut outcome = ImportOutcome::default();
    for ((line, address, note), key) in rows.iter().zip(&keys) {
        let old = before.get(key).cloned().unwrap_or_default();
        let source = match note {
            Some(n) => format!("{}: {n}", run.source),
            None => run.source.clone(),
        };
        let t = old
            .reasons
            .set(
                channel,
                Reason::ImportedOptOut,
                run.actor,
                now,
                Some(address.clone()),
                Some(source),
            )
            .map_err(|r| DbError::Invariant(format!("line {line}: {r}")))?;
        if t.state == old.reasons {
            outcome.unchanged += 1;
            continue;
        }
        let mut after = old.clone();
        after.reasons = t.state;
        after.clocks.advance(Reason::ImportedOptOut, now);
        write.address_change(key, &old, &after);
        for e in &t.entries {
            write.history(location_id, holders.get(address.as_str()).copied(), e);
        }
        outcome.created += 1;
    }
    write.execute(conn)?;
    Ok(outcome)
}

/// One import as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = imports)]
pub struct ImportRecord {
    pub location_id: i64,
    pub id: i64,
    pub kind: String,
    pub channel: Option<String>,
    pub file_name: String,
    pub actor_label: String,
    pub state: String,
    pub rows_total: i32,
    pub rows_done: i32,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub errors: String,
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ImportRecord {
    pub fn errors(&self) -> Vec<ErrorView> {
        serde_json::from_str(&self.errors).unwrap_or_default()
    }

    /// How far it got, in per cent.
    pub fn percent(&self) -> i32 {
        if self.rows_total <= 0 {
            100
        } else {
            (self.rows_done.min(self.rows_total) * 100) / self.rows_total
        }
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// What the history names it by.
    pub fn source(&self) -> String {
        format!("import #{}", self.id)
    }
}

/// A new import (state `preview` with its file for the browser's
/// confirm step, or `running` straight away for the API).
pub struct NewImport<'a> {
    pub location_id: i64,
    pub kind: &'a str,
    pub channel: Option<Channel>,
    pub file_name: &'a str,
    pub file: Option<&'a [u8]>,
    pub actor: &'a Actor,
    pub state: &'a str,
    pub rows_total: usize,
}

pub fn create(conn: &mut PgConnection, new: &NewImport<'_>) -> QueryResult<ImportRecord> {
    diesel::insert_into(imports::table)
        .values((
            imports::location_id.eq(new.location_id),
            imports::kind.eq(new.kind),
            imports::channel.eq(new.channel.map(|c| c.as_str())),
            imports::file_name.eq(new.file_name),
            imports::file.eq(new.file),
            imports::actor_kind.eq(new.actor.kind.as_str()),
            imports::actor_id.eq(new.actor.id),
            imports::actor_label.eq(&new.actor.label),
            imports::state.eq(new.state),
            imports::rows_total.eq(new.rows_total as i32),
        ))
        .returning(ImportRecord::as_returning())
        .get_result(conn)
}

pub fn find(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
) -> QueryResult<Option<ImportRecord>> {
    imports::table
        .find((location_id, id))
        .select(ImportRecord::as_select())
        .first(conn)
        .optional()
}

/// The file of an import waiting for its confirmation.
pub fn file_of(conn: &mut PgConnection, location_id: i64, id: i64) -> QueryResult<Option<Vec<u8>>> {
    imports::table
        .find((location_id, id))
        .filter(imports::state.eq("preview"))
        .select(imports::file)
        .first::<Option<Vec<u8>>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Marks a previewed import as running, once: `false` if it was not
/// waiting (confirmed twice, or already run).
pub fn start(conn: &mut PgConnection, location_id: i64, id: i64) -> QueryResult<bool> {
    let n = diesel::update(imports::table.find((location_id, id)))
        .filter(imports::state.eq("preview"))
        .set((imports::state.eq("running"), imports::rows_done.eq(0)))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn record_progress(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    done: usize,
) -> QueryResult<()> {
    diesel::update(imports::table.find((location_id, id)))
        .set(imports::rows_done.eq(done as i32))
        .execute(conn)?;
    Ok(())
}

/// Stores what a finished import did, and drops its file.
pub fn finish(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    result: &Result<ImportOutcome, String>,
) -> QueryResult<()> {
    let target = diesel::update(imports::table.find((location_id, id)));
    match result {
        Ok(o) => target
            .set((
                imports::state.eq("done"),
                imports::file.eq(None::<Vec<u8>>),
                imports::rows_total.eq(o.rows as i32),
                imports::rows_done.eq(o.rows as i32),
                imports::created.eq(o.created as i32),
                imports::updated.eq(o.updated as i32),
                imports::unchanged.eq(o.unchanged as i32),
                imports::errors
                    .eq(serde_json::to_string(&o.errors).unwrap_or_else(|_| "[]".into())),
                imports::finished_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?,
        Err(why) => target
            .set((
                imports::state.eq("failed"),
                imports::file.eq(None::<Vec<u8>>),
                imports::failure.eq(why),
                imports::finished_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// What an import's run ends as on its record: done, or failed with why
/// (an interrupted one says how far it got).
pub fn as_finished(result: &Result<ImportOutcome, DbError>) -> Result<ImportOutcome, String> {
    match result {
        Ok(o) => match &o.interrupted {
            Some(why) => Err(why.clone()),
            None => Ok(o.clone()),
        },
        Err(e) => Err(format!(
            "The import failed before any row was imported ({e})."
        )),
    }
}

/// Previews not confirmed within `hours` are closed and their files
/// dropped (a file holds people's addresses: it is kept only to be
/// imported). Returns how many.
pub fn expire_previews(conn: &mut PgConnection, hours: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE imports SET state = 'failed', file = NULL, finished_at = now(),
             failure = 'Not confirmed within a day: the file was dropped. Upload it again.'
         WHERE state = 'preview' AND created_at < now() - make_interval(hours => $1::int)",
    )
    .bind::<BigInt, _>(hours)
    .execute(conn)
}

/// Stores a preview's findings on the import (the page shows them until
/// the user confirms).
pub fn record_preview(
    conn: &mut PgConnection,
    location_id: i64,
    id: i64,
    o: &ImportOutcome,
) -> QueryResult<()> {
    diesel::update(imports::table.find((location_id, id)))
        .set((
            imports::rows_total.eq(o.rows as i32),
            imports::created.eq(o.created as i32),
            imports::updated.eq(o.updated as i32),
            imports::unchanged.eq(o.unchanged as i32),
            imports::errors.eq(serde_json::to_string(&o.errors).unwrap_or_else(|_| "[]".into())),
        ))
        .execute(conn)?;
    Ok(())
}

/// The location's imports, newest first.
pub fn for_location(
    conn: &mut PgConnection,
    location_id: i64,
    limit: i64,
) -> QueryResult<Vec<ImportRecord>> {
    imports::table
        .filter(imports::location_id.eq(location_id))
        .order_by(imports::created_at.desc())
        .limit(limit)
        .select(ImportRecord::as_select())
        .load(conn)
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    Contacts,
    /// A suppression list for one channel (SMS, email or WhatsApp).
    Suppressions(Channel),
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Contacts => "contacts",
            ImportKind::Suppressions(_) => "suppressions",
        }
    }

    pub fn channel(self) -> Option<Channel> {
        match self {
            ImportKind::Contacts => None,
            ImportKind::Suppressions(c) => Some(c),
        }
    }

    /// A suppression list's channel, checked: only the channels an
    /// opt-out list is kept for.
    pub fn suppressions(channel: &str) -> Result<Self, crate::domain::InvalidField> {
        let bad = || {
            crate::domain::InvalidField::new(
                "channel",
                format!("\"{channel}\" has no suppression lists: use sms, email or whatsapp"),
            )
        };
        let c: Channel = channel.parse().map_err(|_| bad())?;
        if Reason::ImportedOptOut.channels().contains(&c) {
            Ok(ImportKind::Suppressions(c))
        } else {
            Err(bad())
        }
    }
}

/// A file read, of either kind.
pub enum ParsedFile {
    Contacts(Parsed<ContactRow>),
    Suppressions(Channel, Parsed<SuppressionRow>),
}

impl ParsedFile {
    /// Reads `bytes` as a file of this kind; a file refused as a whole
    /// says why.
    pub fn read(
        kind: ImportKind,
        bytes: &[u8],
    ) -> Result<Self, crate::domain::import::FileRefused> {
        use crate::domain::import;
        Ok(match kind {
            ImportKind::Contacts => ParsedFile::Contacts(import::contacts(bytes)?),
            ImportKind::Suppressions(c) => {
                ParsedFile::Suppressions(c, import::suppressions(bytes)?)
            }
        })
    }

    /// Data rows, readable or not.
    pub fn rows(&self) -> usize {
        match self {
            ParsedFile::Contacts(p) => p.rows.len() + p.errors.len(),
            ParsedFile::Suppressions(_, p) => p.rows.len() + p.errors.len(),
        }
    }
}

/// Imports a file read, of either kind.
pub fn import(
    conn: &mut PgConnection,
    run: &ImportRun<'_>,
    file: ParsedFile,
    progress: &dyn Fn(&mut PgConnection, usize),
) -> Result<ImportOutcome, DbError> {
    match file {
        ParsedFile::Contacts(p) => import_contacts(conn, run, p, progress),
        ParsedFile::Suppressions(c, p) => import_suppressions(conn, run, c, p, progress),
    }
}
