//! The one path of every webhook: verify → parse into provider events (per
//! provider, pure) → [`crate::db::events::apply`]. Webhooks that arrive
//! while others are being written are written together (group commit,
//! [`super::batch`]); each is answered after the commit that stored it.
//! Adding a provider is a route, a signature scheme and a parser here.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use diesel::PgConnection;

use super::batch::Batcher;
use super::{mailgun, meta, twilio, Provider, WebhookError};
use crate::db::events::{self, Delivery, Stored};
use crate::db::webhooks::{self as store, WebhookContext};
use crate::db::{DbError, DbPool};
use crate::metrics::Metrics;

/// Which webhook a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    TwilioSms,
    TwilioStatus,
    Mailgun,
    Meta,
}

impl Route {
    pub fn provider(self) -> Provider {
        match self {
            Route::TwilioSms | Route::TwilioStatus => Provider::Twilio,
            Route::Mailgun => Provider::Mailgun,
            Route::Meta => Provider::Meta,
        }
    }
}

/// One webhook as received, before anything is checked.
pub struct WebhookJob {
    pub route: Route,
    pub location_id: i64,
    /// The URL the provider called (and signed).
    pub url: String,
    pub signature: Option<String>,
    pub body: Bytes,
    pub received_at: DateTime<Utc>,
}

/// What the provider is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// TwiML, with the confirmation text for a keyword.
    Twiml(Option<String>),
    Mailgun,
    Meta,
}

#[derive(Debug)]
pub struct Answered {
    pub reply: Reply,
    /// Every event of it had been stored before (a provider's retry).
    pub retry: bool,
}

pub type JobResult = Result<Answered, WebhookError>;

/// Writes webhooks in batches; one per server.
pub type WebhookBatcher = Batcher<WebhookJob, JobResult>;

pub fn start_batcher(
    pool: DbPool,
    writers: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<WebhookBatcher> {
    Batcher::start(pool, writers, metrics, process_batch, |e| {
        Err(WebhookError::Db(e.replicate()))
    })
}

/// Verifies and reads one webhook with its location's context (pure: no
/// database; public for the fuzz targets and their regression tests).
pub fn prepare(
    context: &WebhookContext,
    job: &WebhookJob,
) -> Result<(Delivery, Reply), WebhookError> {
    let signature = job.signature.as_deref();
    match job.route {
        Route::TwilioSms => {
            let (event, reply) =
                twilio::inbound(context, &job.url, &job.body, signature, job.received_at)?;
            Ok((single(context, event), Reply::Twiml(reply)))
        }
        Route::TwilioStatus => {
            let event = twilio::status(context, &job.url, &job.body, signature, job.received_at)?;
            Ok((single(context, event), Reply::Twiml(None)))
        }
        Route::Mailgun => Ok((
            mailgun::delivery(context, &job.body, job.received_at)?,
            Reply::Mailgun,
        )),
        Route::Meta => Ok((
            meta::delivery(context, &job.body, signature, job.received_at)?,
            Reply::Meta,
        )),
    }
}

fn single(context: &WebhookContext, event: events::ProviderEvent) -> Delivery {
    Delivery {
        location_id: context.location.id,
        events: vec![event],
        nonce: None,
    }
}

fn answer(stored: Stored, reply: Reply) -> JobResult {
    match stored {
        Stored::Replayed => Err(WebhookError::Refused {
            provider: Provider::Mailgun,
            why: "this signature token was used before (a replay)".into(),
        }),
        stored => Ok(Answered {
            reply,
            retry: stored.is_retry(),
        }),
    }
}

/// Answers a batch of jobs, in order, and says whether the connection
/// worked (a database that went away fails every job with a 503).
fn process_batch(conn: &mut PgConnection, jobs: Vec<WebhookJob>) -> (Vec<JobResult>, bool) {
    let answers = answer_batch(conn, jobs);
    let worked = !answers
        .iter()
        .any(|a| matches!(a, Err(WebhookError::Db(e)) if e.is_unavailable()));
    (answers, worked)
}

fn answer_batch(conn: &mut PgConnection, jobs: Vec<WebhookJob>) -> Vec<JobResult> {
    let mut answers: Vec<Option<JobResult>> = jobs.iter().map(|_| None).collect();
    let mut contexts: HashMap<i64, Result<Option<WebhookContext>, DbError>> = HashMap::new();
    let (mut ready, mut deliveries, mut replies) = (Vec::new(), Vec::new(), Vec::new());
    for (i, job) in jobs.iter().enumerate() {
        let context = contexts
            .entry(job.location_id)
            .or_insert_with(|| store::context(conn, job.location_id).map_err(DbError::from));
        let prepared = match context {
            Err(e) => Err(WebhookError::Db(e.replicate())),
            Ok(None) => Err(WebhookError::UnknownLocation(
                job.route.provider(),
                job.location_id,
            )),
            Ok(Some(context)) => prepare(context, job),
        };
        match prepared {
            Ok((delivery, reply)) => {
                ready.push(i);
                deliveries.push(delivery);
                replies.push(reply);
            }
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    if !ready.is_empty() {
        match events::apply(conn, &deliveries) {
            Ok(stored) => {
                for ((i, reply), stored) in ready.into_iter().zip(replies).zip(stored) {
                    answers[i] = Some(answer(stored, reply));
                }
            }
            // The database is gone: every webhook of the batch is retried
            // by its provider. (A lock timeout is about one address: the
            // others are stored one by one below.)
            Err(e) if e.is_unavailable() && !e.is_lock_timeout() => {
                for i in ready {
                    answers[i] = Some(Err(WebhookError::Db(e.replicate())));
                }
            }
            // Whatever else went wrong (a deadlock with another writer, a
            // rule refusing), each webhook on its own gets its own answer.
            Err(_) => {
                for ((i, delivery), reply) in ready.into_iter().zip(&deliveries).zip(replies) {
                    answers[i] = Some(match events::apply(conn, std::slice::from_ref(delivery)) {
                        Ok(stored) => match stored.into_iter().next() {
                            Some(stored) => answer(stored, reply),
                            None => Err(WebhookError::Db(DbError::Invariant(
                                "a webhook was left unanswered".into(),
                            ))),
                        },
                        Err(e) => Err(WebhookError::Db(e)),
                    });
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(WebhookError::Db(DbError::Invariant(
                    "a webhook was left unanswered".into(),
                )))
            })
        })
        .collect()
}
