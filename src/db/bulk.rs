//! One DND change applied to many contacts of a location, set-based: the
//! contacts are locked, read and written a chunk at a time (a few queries
//! and one write per chunk, never one round trip per contact), and each
//! contact's change is decided by the same rules as a single change.
//!
//! Each chunk is a transaction of its own: a contact's new state and its
//! history rows are committed together, as with a single change, while the
//! advisory locks of a chunk's addresses (one per address, held to the end
//! of its transaction) stay within the lock table's room. A bulk change
//! that stops half-way (the database went away) has committed whole
//! contacts only, and running it again changes only the rest.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::Utc;
use diesel::prelude::*;

use super::contacts::Contact;
use super::dnd::{lock_contacts, states_of, DndWrite};
use super::DbError;
use crate::domain::dnd::{reason_code, DndState, Refusal, Transition};

/// Contacts per transaction: at most five addresses each, so at most
/// 2,500 advisory locks per chunk (PostgreSQL's default lock table holds
/// 64 per connection, shared: 6,400 for 100 connections).
const CHUNK: usize = 500;

/// Connections a large bulk change spreads over (see [`apply_on`]).
pub const CONNECTIONS: u32 = 2;

/// The largest list one bulk change takes.
pub const MAX_CONTACTS: usize = 100_000;

/// A contact the change was not applied to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub contact_id: i64,
    /// A short name of why (`not_found`, or the reasons that stay, as in
    /// [`Refusal::code`]).
    pub reason: String,
    /// The rules' own sentence.
    pub message: String,
}

/// What a bulk change did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub changed: usize,
    pub unchanged: usize,
    pub skipped: Vec<Skipped>,
    /// Changed, but a lift left reasons the actor may not lift in force:
    /// the channel stays blocked for them.
    pub still_blocked: Vec<Skipped>,
    /// The contacts changed, by id.
    pub changed_ids: Vec<i64>,
    /// The change stopped part-way (the database failed): what is counted
    /// was committed, the rest was not done. Running it again finishes it.
    pub interrupted: Option<String>,
}

impl BulkOutcome {
    fn merge(&mut self, part: BulkOutcome) {
        self.changed += part.changed;
        self.unchanged += part.unchanged;
        self.skipped.extend(part.skipped);
        self.still_blocked.extend(part.still_blocked);
        self.changed_ids.extend(part.changed_ids);
    }

    /// The skipped contacts counted by reason, most frequent first, with
    /// one of the rules' sentences for each.
    pub fn skipped_by_reason(&self) -> Vec<(String, usize, String)> {
        by_reason(&self.skipped)
    }

    /// [`Self::skipped_by_reason`] for the contacts still blocked.
    pub fn still_blocked_by_reason(&self) -> Vec<(String, usize, String)> {
        by_reason(&self.still_blocked)
    }
}

fn by_reason(list: &[Skipped]) -> Vec<(String, usize, String)> {
    let mut counts: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for s in list {
        counts.entry(&s.reason).or_insert((0, &s.message)).0 += 1;
    }
    let mut out: Vec<(String, usize, String)> = counts
        .into_iter()
        .map(|(r, (n, m))| (r.to_string(), n, m.to_string()))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Applies `change` to each of these contacts of a location (ids of other
/// locations, or of no contact, are skipped as `not_found`). A contact
/// whose change the rules refuse is skipped with the refusal; one whose
/// state the change leaves as it was is unchanged and gets no history row.
pub fn apply(
    conn: &mut PgConnection,
    location_id: i64,
    contact_ids: &[i64],
    change: impl Fn(&DndState) -> Result<Transition, Refusal> + Sync,
) -> Result<BulkOutcome, DbError> {
    apply_on(vec![conn], location_id, contact_ids, change)
}

/// [`apply`] with a chunk at a time on each of these connections, side by
/// side: most of a large change's time is the database writing contact
/// rows and their indexes, which a second backend does on a second core.
///
/// Chunks hold disjoint contacts, and each takes its address locks (in one
/// sorted statement) before any row lock, as every writer does: two chunks
/// that share an address wait for each other there, never in a circle.
pub fn apply_on(
    conns: Vec<&mut PgConnection>,
    location_id: i64,
    contact_ids: &[i64],
    change: impl Fn(&DndState) -> Result<Transition, Refusal> + Sync,
) -> Result<BulkOutcome, DbError> {
    let mut ids = contact_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let chunks: Vec<&[i64]> = ids.chunks(CHUNK).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<(BulkOutcome, Option<DbError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = conns
            .into_iter()
            .map(|conn| {
                let (chunks, next, failed, change) = (&chunks, &next, &failed, &change);
                scope.spawn(move || -> (BulkOutcome, Option<DbError>) {
                    let mut outcome = BulkOutcome::default();
                    while !failed.load(Ordering::Relaxed) {
                        let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        // A chunk's counts join the outcome only once it
                        // has committed.
                        let mut part = BulkOutcome::default();
                        let done = conn.transaction(|conn| {
                            super::wait_for_locks(conn)?;
                            apply_within(conn, location_id, chunk, |_, s| change(s), &mut part)
                        });
                        if let Err(e) = done {
                            failed.store(true, Ordering::Relaxed);
                            return (outcome, Some(e));
                        }
                        outcome.merge(part);
                    }
                    (outcome, None)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    (
                        BulkOutcome::default(),
                        Some(DbError::Invariant("a bulk worker panicked".into())),
                    )
                })
            })
            .collect()
    });
    let mut total = BulkOutcome::default();
    let mut failure = None;
    for (part, error) in results {
        total.merge(part);
        failure = failure.or(error);
    }
    if let Some(e) = failure {
        let done = total.changed + total.unchanged + total.skipped.len();
        if done == 0 {
            return Err(e);
        }
        total.interrupted = Some(format!(
            "The change stopped after {done} contacts ({e}); those are done, the others were \
             not changed. Run it again to finish: contacts already done count as unchanged."
        ));
    }
    total.skipped.sort_by_key(|s| s.contact_id);
    total.still_blocked.sort_by_key(|s| s.contact_id);
    Ok(total)
}

/// One chunk, inside the caller's transaction: locks these contacts, reads
/// their states, lets `change` decide for each (by id) and writes it all
/// in one statement. (An import's DND flags go through here too.)
pub fn apply_within(
    conn: &mut PgConnection,
    location_id: i64,
    ids: &[i64],
    change: impl Fn(i64, &DndState) -> Result<Transition, Refusal>,
    outcome: &mut BulkOutcome,
) -> Result<(), DbError> {
    let contacts = lock_contacts(conn, location_id, ids)?;
    let found: HashMap<i64, &Contact> = contacts.iter().map(|c| (c.id, c)).collect();
    for id in ids.iter().filter(|id| !found.contains_key(id)) {
        outcome.skipped.push(Skipped {
            contact_id: *id,
            reason: "not_found".into(),
            message: format!("No contact {id} in this location."),
        });
    }
    let states = states_of(conn, location_id, &contacts)?;
    let now = Utc::now();
    // Read when a message needs it (its dates are the location's).
    let mut zone = None;
    let mut write = DndWrite::default();
    for (contact, before) in contacts.iter().zip(&states) {
        match change(contact.id, before) {
            Ok(mut t) if t.state != *before => {
                let addresses = contact.addresses();
                t.locate(|c| addresses.on(c).map(str::to_string));
                write.contact_change(contact, before, &t, now)?;
                outcome.changed += 1;
                outcome.changed_ids.push(contact.id);
                if let Some(reason) = reason_code(&t.remaining) {
                    let z = match zone {
                        Some(z) => z,
                        None => *zone.insert(super::locations::zone_of(conn, location_id)?),
                    };
                    let why: Vec<String> = t.remaining.iter().map(|a| a.explain(z)).collect();
                    outcome.still_blocked.push(Skipped {
                        contact_id: contact.id,
                        reason,
                        message: format!("Still blocked: {}.", why.join("; ")),
                    });
                }
            }
            Ok(_) => outcome.unchanged += 1,
            Err(refusal) => outcome.skipped.push(Skipped {
                contact_id: contact.id,
                reason: refusal.code(),
                message: refusal.message,
            }),
        }
    }
    write.execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{BulkOutcome, Skipped};

    #[test]
    fn skipped_contacts_are_counted_by_reason() {
        let skip = |id, reason: &str| Skipped {
            contact_id: id,
            reason: reason.into(),
            message: format!("because {reason}"),
        };
        let outcome = BulkOutcome {
            changed: 1,
            unchanged: 0,
            skipped: vec![
                skip(1, "sms_opt_out"),
                skip(2, "not_found"),
                skip(3, "sms_opt_out"),
            ],
            still_blocked: Vec::new(),
            changed_ids: Vec::new(),
            interrupted: None,
        };
        assert_eq!(
            outcome.skipped_by_reason(),
            vec![
                (
                    "sms_opt_out".to_string(),
                    2,
                    "because sms_opt_out".to_string()
                ),
                ("not_found".to_string(), 1, "because not_found".to_string()),
            ]
        );
    }
}
