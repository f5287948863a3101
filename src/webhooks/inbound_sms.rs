//! Twilio inbound SMS: every message goes on the contact's timeline; an
//! opt-out keyword (or Twilio's `OptOutType=STOP`) sets permanent SMS DND,
//! an opt-in keyword lifts the permanent SMS reasons, HELP gets the help
//! text. The answer is TwiML with the location's confirmation text.
//!
//! This is the webhook that comes in floods (a campaign's replies), so its
//! events are written in batches ([`super::batch`]): the contacts of a
//! batch are locked in one statement, the events and messages stored in
//! one, and their DND changes written in one. Anything out of the ordinary
//! (a sender who is not a contact yet, a batch that fails) is done event by
//! event, the way a batch of one is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel::{Connection, PgConnection};

use super::batch::Batcher;
use super::twilio::{header, param, required, twiml, verify};
use super::{called_url, counted, read_body, WebhookError};
use crate::db::contacts::Contact;
use crate::db::dnd::{self as dnd_store, LockedChange};
use crate::db::webhooks::{self as store, InboundEvents, NewEvent, NewInbound, TwilioContext};
use crate::db::{DbError, DbPool};
use crate::domain::dnd::{
    match_keyword, Actor, ActorKind, DndState, KeywordMatch, Reason, Transition,
};
use crate::domain::{Channel, PhoneNumber};
use crate::metrics::Metrics;
use crate::web::AppState;

/// One inbound SMS webhook as received, before anything is checked.
pub struct SmsJob {
    location_id: i64,
    url: String,
    signature: Option<String>,
    body: web::Bytes,
}

/// What Twilio is answered: the TwiML reply, and whether the event was a
/// retry of one stored before (for the counters).
pub struct SmsAnswer {
    reply: Option<String>,
    duplicate: bool,
}

pub type SmsResult = Result<SmsAnswer, WebhookError>;

/// Writes inbound SMS webhooks in batches; one per server.
pub type SmsBatcher = Batcher<SmsJob, SmsResult>;

pub fn start_batcher(
    pool: DbPool,
    writers: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<SmsBatcher> {
    Batcher::start(pool, writers, metrics, process_batch, |e| {
        Err(WebhookError::Db(e.replicate()))
    })
}

pub async fn receive_sms(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let url = called_url(&req, &state);
    let signature = header(&req, "X-Twilio-Signature");
    let result = async {
        let body = read_body(payload).await?;
        let job = SmsJob {
            location_id,
            url,
            signature,
            body,
        };
        // The writer answers every job it takes; no answer means it died,
        // and nothing is acknowledged that was not stored.
        state
            .inbound_sms
            .submit(job)
            .await
            .map_err(|()| WebhookError::Db(DbError::Cancelled))?
    }
    .await;
    let answer = counted(
        &state.metrics,
        location_id,
        result.map(|a| (a.reply, a.duplicate)),
    )?;
    Ok(twiml(answer.as_deref()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmsOutcome {
    OptOut,
    OptIn,
    Help,
    Message,
}

impl SmsOutcome {
    fn as_str(self) -> &'static str {
        match self {
            SmsOutcome::OptOut => "opt_out",
            SmsOutcome::OptIn => "opt_in",
            SmsOutcome::Help => "help",
            SmsOutcome::Message => "message",
        }
    }
}

/// A verified, parsed inbound SMS.
struct Prepared {
    location_id: i64,
    sid: String,
    from: PhoneNumber,
    to: String,
    text: String,
    payload: String,
    outcome: SmsOutcome,
    reply: Option<String>,
}

/// Verifies the signature and reads the message; decides its outcome from
/// the message alone, so a retry of it gets the same answer.
fn prepare(context: &TwilioContext, job: &SmsJob) -> Result<Prepared, WebhookError> {
    let params = verify(context, &job.url, &job.body, job.signature.as_deref())?;
    let sid = required(&params, "MessageSid")?.to_string();
    let from =
        PhoneNumber::parse_in_region(required(&params, "From")?, &context.location.default_region)
            .map_err(|e| WebhookError::Malformed(format!("From: {}", e.message)))?;
    let text = param(&params, "Body").unwrap_or("").to_string();
    // Twilio's Advanced Opt-Out verdict wins; otherwise the location's own
    // keyword lists.
    let matched = match param(&params, "OptOutType")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("STOP") => Some(KeywordMatch::OptOut),
        Some("START") => Some(KeywordMatch::OptIn),
        Some("HELP") => Some(KeywordMatch::Help),
        _ => match_keyword(&text, &context.settings.keywords),
    };
    let settings = &context.settings;
    let (outcome, reply) = match matched {
        Some(KeywordMatch::OptOut) => (SmsOutcome::OptOut, Some(&settings.opt_out_reply)),
        Some(KeywordMatch::OptIn) => (SmsOutcome::OptIn, Some(&settings.opt_in_reply)),
        Some(KeywordMatch::Help) => (SmsOutcome::Help, Some(&settings.help_reply)),
        None => (SmsOutcome::Message, None),
    };
    Ok(Prepared {
        location_id: context.location.id,
        to: param(&params, "To").unwrap_or("").to_string(),
        payload: String::from_utf8_lossy(&job.body).to_string(),
        sid,
        from,
        text,
        outcome,
        reply: reply.cloned(),
    })
}

impl Prepared {
    fn event(&self, contact_id: i64) -> NewEvent<'_> {
        NewEvent {
            provider: "twilio",
            kind: "inbound_sms",
            key: &self.sid,
            payload: &self.payload,
            contact_id: Some(contact_id),
            outcome: self.outcome.as_str(),
        }
    }

    fn message(&self, contact_id: i64) -> NewInbound<'_> {
        NewInbound {
            contact_id,
            channel: Channel::Sms,
            body: &self.text,
            from: self.from.as_str(),
            to: &self.to,
            sid: &self.sid,
        }
    }

    /// What the message does to the contact's DND (the rules decide):
    /// `None` when nothing changes.
    fn decide(&self, state: &DndState, contact_id: i64) -> Result<Option<Transition>, DbError> {
        let actor = Actor::new(ActorKind::Contact, Some(contact_id), self.from.as_str());
        let source = format!("{} \"{}\"", self.sid, self.text.trim());
        let now = Utc::now();
        match self.outcome {
            SmsOutcome::OptOut => state
                .set(
                    Channel::Sms,
                    Reason::SmsOptOut,
                    &actor,
                    now,
                    Some(self.from.as_str().to_string()),
                    Some(source),
                )
                .map(Some)
                // The contact's own opt-out is never refused; if the rules
                // ever did, storing the event without it would be wrong.
                .map_err(|r| DbError::Invariant(r.to_string())),
            // Nothing to lift is fine: the opt-in is still recorded.
            SmsOutcome::OptIn => Ok(state
                .lift_only(
                    Channel::Sms,
                    &actor,
                    now,
                    Some(source),
                    Reason::is_permanent_sms,
                )
                .ok()),
            SmsOutcome::Help | SmsOutcome::Message => Ok(None),
        }
    }
}

/// One event in its own transaction: finds (or creates) and locks the
/// contact, stores the event and message, applies the change. Returns
/// whether it was a retry of a stored event.
fn apply_one(conn: &mut PgConnection, p: &Prepared) -> Result<bool, WebhookError> {
    conn.transaction(|conn| {
        // Finding (or creating) the contact first is harmless for a
        // retry: the first delivery created it already.
        let contact = store::contact_for_phone(conn, p.location_id, &p.from)?;
        if !store::record_inbound(
            conn,
            p.location_id,
            &p.event(contact.id),
            &p.message(contact.id),
        )? {
            return Ok(true);
        }
        let before = dnd_store::state_of_locked(conn, &contact)?;
        if let Some(transition) = p.decide(&before, contact.id)? {
            dnd_store::write_locked_changes(
                conn,
                &[LockedChange {
                    location_id: p.location_id,
                    contact_id: contact.id,
                    before: &before,
                    transition: &transition,
                }],
            )?;
        }
        Ok(false)
    })
}

fn process_one(conn: &mut PgConnection, job: &SmsJob) -> SmsResult {
    let context = store::twilio_context(conn, job.location_id)?
        .ok_or(WebhookError::UnknownLocation(job.location_id))?;
    let p = prepare(&context, job)?;
    let duplicate = apply_one(conn, &p)?;
    Ok(SmsAnswer {
        reply: p.reply,
        duplicate,
    })
}

/// Answers a batch of jobs, in order, and says whether the connection
/// worked (a database that went away fails every job with a 503).
fn process_batch(conn: &mut PgConnection, jobs: Vec<SmsJob>) -> (Vec<SmsResult>, bool) {
    let answers = answer_batch(conn, jobs);
    let worked = !answers
        .iter()
        .any(|a| matches!(a, Err(WebhookError::Db(e)) if e.is_unavailable()));
    (answers, worked)
}

fn answer_batch(conn: &mut PgConnection, jobs: Vec<SmsJob>) -> Vec<SmsResult> {
    if let [job] = jobs.as_slice() {
        return vec![process_one(conn, job)];
    }
    let mut answers: Vec<Option<SmsResult>> = jobs.iter().map(|_| None).collect();
    let mut contexts: HashMap<i64, Result<Option<TwilioContext>, DbError>> = HashMap::new();
    let mut ready = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let context = contexts
            .entry(job.location_id)
            .or_insert_with(|| store::twilio_context(conn, job.location_id).map_err(DbError::from));
        let prepared = match context {
            Err(e) => Err(WebhookError::Db(e.replicate())),
            Ok(None) => Err(WebhookError::UnknownLocation(job.location_id)),
            Ok(Some(context)) => prepare(context, job),
        };
        match prepared {
            Ok(p) => ready.push((i, p)),
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    let applied = if ready.is_empty() {
        Vec::new()
    } else {
        match conn.transaction(|conn| apply_batch(conn, &ready)) {
            Ok(applied) => applied,
            Err(e) if e.is_unavailable() => {
                for (i, _) in &ready {
                    answers[*i] = Some(Err(WebhookError::Db(e.replicate())));
                }
                Vec::new()
            }
            // Whatever else went wrong (a deadlock with another writer, a
            // rule refusing), each event on its own gets its own answer.
            Err(_) => vec![None; ready.len()],
        }
    };
    for ((i, p), duplicate) in ready.into_iter().zip(applied) {
        answers[i] = Some(match duplicate {
            Some(duplicate) => Ok(SmsAnswer {
                reply: p.reply,
                duplicate,
            }),
            // Not done in the batch (its sender is not a contact yet).
            None => apply_one(conn, &p).map(|duplicate| SmsAnswer {
                reply: p.reply,
                duplicate,
            }),
        });
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(WebhookError::Db(DbError::Invariant(
                    "an inbound SMS was left unanswered".into(),
                )))
            })
        })
        .collect()
}

/// The batch's events for existing contacts, in one transaction: per
/// event `Some(duplicate)` when done, `None` when left to [`apply_one`].
fn apply_batch(
    conn: &mut PgConnection,
    ready: &[(usize, Prepared)],
) -> Result<Vec<Option<bool>>, DbError> {
    // Lock every sender's contact, location by location and by id within
    // one: batches running side by side lock in the same order.
    let mut phones: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (_, p) in ready {
        phones
            .entry(p.location_id)
            .or_default()
            .push(p.from.as_str());
    }
    let mut contacts: HashMap<(i64, &str), Contact> = HashMap::new();
    for (location_id, list) in &phones {
        for contact in store::lock_contacts_by_phone(conn, *location_id, list)? {
            let Some(phone) = list.iter().find(|p| contact.phone.as_deref() == Some(**p)) else {
                continue;
            };
            contacts.insert((*location_id, *phone), contact);
        }
    }

    let mut answers: Vec<Option<bool>> = ready.iter().map(|_| None).collect();
    let mut events = InboundEvents::default();
    let mut seen = HashSet::new();
    let mut stored = Vec::new();
    for (k, (_, p)) in ready.iter().enumerate() {
        let Some(contact) = contacts.get(&(p.location_id, p.from.as_str())) else {
            continue;
        };
        if !seen.insert((p.location_id, p.sid.as_str())) {
            // The same event twice in one batch: the second is a retry.
            answers[k] = Some(true);
            continue;
        }
        events.push(p.location_id, &p.event(contact.id), &p.message(contact.id));
        stored.push(k);
    }
    let new: HashSet<(i64, String)> = events.store(conn)?.into_iter().collect();

    // The state of each contact with a new event, then each event applied
    // in arrival order on top of the one before it.
    let mut by_location: BTreeMap<i64, Vec<&Contact>> = BTreeMap::new();
    for contact in contacts.values() {
        by_location
            .entry(contact.location_id)
            .or_default()
            .push(contact);
    }
    let mut before: HashMap<(i64, i64), DndState> = HashMap::new();
    for (location_id, list) in &by_location {
        for (id, state) in dnd_store::states_of_locked(conn, *location_id, list)? {
            before.insert((*location_id, id), state);
        }
    }
    let mut changed: BTreeMap<(i64, i64), Transition> = BTreeMap::new();
    for k in stored {
        let p = &ready[k].1;
        let is_new = new.contains(&(p.location_id, p.sid.clone()));
        answers[k] = Some(!is_new);
        if !is_new {
            continue;
        }
        let Some(contact) = contacts.get(&(p.location_id, p.from.as_str())) else {
            continue;
        };
        let key = (p.location_id, contact.id);
        let current = match changed.get(&key) {
            Some(t) => &t.state,
            None => before.get(&key).ok_or_else(|| {
                DbError::Invariant(format!("contact {} was locked but not read", contact.id))
            })?,
        };
        if let Some(next) = p.decide(current, contact.id)? {
            match changed.get_mut(&key) {
                Some(t) => {
                    t.entries.extend(next.entries);
                    t.state = next.state;
                    t.remaining = next.remaining;
                }
                None => {
                    changed.insert(key, next);
                }
            }
        }
    }
    let mut writes = Vec::with_capacity(changed.len());
    for ((location_id, contact_id), transition) in &changed {
        if let Some(state) = before.get(&(*location_id, *contact_id)) {
            writes.push(LockedChange {
                location_id: *location_id,
                contact_id: *contact_id,
                before: state,
                transition,
            });
        }
    }
    dnd_store::write_locked_changes(conn, &writes)?;
    Ok(answers)
}
