//! Counters a load balancer or Prometheus can read at `/metrics`. In
//! memory per server: they count what this server saw since it started.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub webhooks_accepted: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    pub webhooks_refused_signature: AtomicU64,
    pub webhooks_refused_malformed: AtomicU64,
    pub webhooks_unavailable: AtomicU64,
    pub webhook_batches: AtomicU64,
    pub webhook_batched_events: AtomicU64,
}

impl Metrics {
    pub fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let rows = [
            ("dnd_webhooks_accepted_total", &self.webhooks_accepted, "Webhook events stored and applied"),
            ("dnd_webhooks_duplicate_total", &self.webhooks_duplicate, "Provider retries of events already stored"),
            ("dnd_webhooks_refused_signature_total", &self.webhooks_refused_signature, "Webhooks refused for a missing or bad signature, stale timestamp or replayed token"),
            ("dnd_webhooks_refused_malformed_total", &self.webhooks_refused_malformed, "Webhooks refused as malformed"),
            ("dnd_webhooks_unavailable_total", &self.webhooks_unavailable, "Webhooks answered 503 because the database was unavailable"),
            ("dnd_webhook_batches_total", &self.webhook_batches, "Batches of webhooks written (each one transaction, or one per webhook when it had to fall back)"),
            ("dnd_webhook_batched_events_total", &self.webhook_batched_events, "Webhooks written in those batches"),
        ];
        let mut out = String::new();
        for (name, counter, help) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                counter.load(Ordering::Relaxed)
            ));
        }
        out
    }
}
