//! Group commit for webhooks: events that arrive while others are being
//! written are written together, in one transaction of a few statements,
//! and each is answered once that transaction has committed.
//!
//! Under load almost all of a webhook's cost is per transaction (round
//! trips, a commit, a context switch on each side), not per row; batching
//! lets a few connections carry many events. With nothing else in flight,
//! an event is written alone at once, so a quiet location waits no longer
//! than before. No event is acknowledged before the commit that stored it.

use std::sync::Arc;

use diesel::PgConnection;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::db::{self, DbError, DbPool};
use crate::metrics::Metrics;

/// The most events written in one transaction.
pub const MAX_BATCH: usize = 128;

type Reply<R> = oneshot::Sender<R>;

/// Hands jobs to a writer task; see the module documentation.
pub struct Batcher<J, R> {
    jobs: mpsc::UnboundedSender<(J, Reply<R>)>,
}

impl<J, R> Clone for Batcher<J, R> {
    fn clone(&self) -> Self {
        Batcher {
            jobs: self.jobs.clone(),
        }
    }
}

impl<J: Send + 'static, R: Send + 'static> Batcher<J, R> {
    /// Starts the writer on a thread of its own (so it does not depend on
    /// which runtime builds the app), with at most `writers` batches in
    /// flight at once. `process` answers every job of a batch, in order,
    /// and says whether the connection worked; `failed` answers each job of
    /// a batch that never got a connection.
    pub fn start(
        pool: DbPool,
        writers: usize,
        metrics: Arc<Metrics>,
        process: fn(&mut PgConnection, Vec<J>) -> (Vec<R>, bool),
        failed: fn(&DbError) -> R,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("dnd-batcher".into())
            .spawn(move || {
                runtime.block_on(run(rx, pool, writers.max(1), metrics, process, failed))
            })?;
        Ok(Batcher { jobs: tx })
    }

    /// Queues a job and waits for its answer. `Err(job)` if the writer is
    /// gone, so the caller can do the work itself.
    pub async fn submit(&self, job: J) -> Result<R, ()> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((job, tx)).map_err(|_| ())?;
        rx.await.map_err(|_| ())
    }
}

async fn run<J: Send + 'static, R: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<(J, Reply<R>)>,
    pool: DbPool,
    writers: usize,
    metrics: Arc<Metrics>,
    process: fn(&mut PgConnection, Vec<J>) -> (Vec<R>, bool),
    failed: fn(&DbError) -> R,
) {
    let slots = Arc::new(Semaphore::new(writers));
    loop {
        // Wait for a free writer first: while all are busy, new jobs pile
        // up in the channel and the next batch takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        Metrics::bump(&metrics.webhook_batches);
        Metrics::add(&metrics.webhook_batched_events, batch.len() as u64);
        let pool = pool.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (jobs, replies): (Vec<J>, Vec<Reply<R>>) = batch.into_iter().unzip();
            let expected = jobs.len();
            match db::run_reporting::<_, DbError, _>(&pool, move |conn| process(conn, jobs)).await {
                Ok(results) => {
                    debug_assert_eq!(results.len(), expected, "one answer per job");
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A requester that went away needs no answer.
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(failed(&e));
                    }
                }
            }
        });
    }
}
