//! DND-change webhooks to customers' servers: `contact.dnd_updated`, signed
//! `X-DND-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` with the
//! subscription's secret, sent from the outbox with retries for a day, in
//! history order per contact. The URL is checked against the host rules
//! before every delivery, and the client follows no redirects and resolves
//! no name to a private address (unless those are allowed).

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use super::hosts::HostPolicy;
use crate::db::dnd::HistoryRow;
use crate::db::subscriptions::{self, Due, Sent};
use crate::db::{self, DbError, DbPool};

/// Deliveries claimed per round.
const BATCH: i64 = 20;

/// The event a change becomes, as JSON.
pub fn event(change: &HistoryRow, location_id: i64) -> serde_json::Value {
    serde_json::json!({
        "id": change.id,
        "type": "contact.dnd_updated",
        "location_id": location_id,
        "contact_id": change.contact_id,
        "channel": change.channel.map(|c| c.as_str()),
        "reason": change.reason.map(|r| r.as_str()),
        "action": change.action.as_str(),
        "actor": {
            "kind": change.actor_kind.as_str(),
            "id": change.actor_id,
            "label": change.actor_label,
        },
        "address": change.address,
        "at": change.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The delivery loop's parts.
#[derive(Clone)]
pub struct Notifier {
    pub pool: DbPool,
    pub client: reqwest::Client,
    pub hosts: HostPolicy,
}

impl Notifier {
    pub fn new(pool: DbPool, hosts: HostPolicy) -> Result<Self, reqwest::Error> {
        Ok(Notifier {
            pool,
            client: hosts.client()?,
            hosts,
        })
    }

    /// Runs on the current actix system until `stop` turns true (a round
    /// in flight is finished first): a round whenever the last one found
    /// work, else every second; housekeeping every hour.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        actix_web::rt::spawn(async move {
            let mut stop = stop;
            let mut last_sweep: Option<std::time::Instant> = None;
            while !*stop.borrow() {
                if last_sweep.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
                    last_sweep = Some(std::time::Instant::now());
                    if let Err(e) = self.housekeeping().await {
                        tracing::warn!(error = %e, "housekeeping failed");
                    }
                }
                match self.run_once().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook delivery round failed"),
                }
                tokio::select! {
                    _ = actix_web::rt::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        })
    }

    /// Settled deliveries older than 30 days are deleted, and import
    /// previews never confirmed within a day drop their file.
    pub async fn housekeeping(&self) -> Result<(usize, usize), DbError> {
        db::run(&self.pool, |conn| -> Result<_, DbError> {
            Ok((
                subscriptions::prune(conn, 30)?,
                crate::db::imports::expire_previews(conn, 24)?,
            ))
        })
        .await
    }

    /// One round: claims due deliveries and sends them side by side (a
    /// slow receiver costs its own deliveries their timeout, not the
    /// others'), then records each. Returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let claimed = db::run(&self.pool, |conn| subscriptions::claim(conn, BATCH)).await?;
        let n = claimed.len();
        let sent = futures_util::future::join_all(claimed.iter().map(|due| self.send(due))).await;
        let now = Utc::now();
        let recorded = db::run(&self.pool, move |conn| -> Result<(), DbError> {
            for (due, sent) in claimed.iter().zip(&sent) {
                subscriptions::record(conn, due, sent, now)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "webhook deliveries could not be recorded");
        }
        Ok(n)
    }

    async fn send(&self, due: &Due) -> Sent {
        let failed = |status: Option<i32>, error: String| Sent::Failed { status, error };
        let url = match self.hosts.check_webhook(&due.url) {
            Ok(url) => url,
            Err(e) => return failed(None, format!("not sent: {e}")),
        };
        let secret = match &due.secret {
            Ok(s) => s,
            Err(e) => return failed(None, format!("not sent: the secret is unreadable ({e})")),
        };
        let body = event(&due.change, due.location_id).to_string();
        let timestamp = Utc::now().timestamp();
        let answer = self
            .client
            .post(url)
            .timeout(Duration::from_secs(10))
            .header("Content-Type", "application/json")
            .header("User-Agent", "dnd-webhooks/1")
            .header(
                "X-DND-Signature",
                signature(secret, timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => Sent::Delivered {
                status: i32::from(r.status().as_u16()),
            },
            Ok(r) => failed(
                Some(i32::from(r.status().as_u16())),
                format!("the receiver answered {}", r.status()),
            ),
            Err(e) => failed(None, format!("could not reach the receiver: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let header = signature("whsec_test", 1_700_000_000, br#"{"id":1}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        let hex = header.split("v1=").nth(1).unwrap();
        assert_eq!(hex.len(), 64);
        assert_ne!(
            header,
            signature("whsec_test", 1_700_000_001, br#"{"id":1}"#)
        );
        assert_ne!(
            header,
            signature("whsec_test", 1_700_000_000, br#"{"id":2}"#)
        );
        assert_ne!(
            header,
            signature("whsec_other", 1_700_000_000, br#"{"id":1}"#)
        );
    }
}
