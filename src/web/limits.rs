//! Per API key limits, kept in this server's memory: a rate (a token
//! bucket: a burst, then so many requests a second) and a number of
//! requests in flight at once. Past either, 429 with `Retry-After`. With
//! several servers each keeps its own count: a key may reach the limit on
//! each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyLimitConfig {
    pub per_second: f64,
    pub burst: f64,
    pub in_flight: usize,
}

impl Default for KeyLimitConfig {
    fn default() -> Self {
        KeyLimitConfig {
            per_second: 100.0,
            burst: 200.0,
            in_flight: 16,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    in_flight: Arc<Semaphore>,
}

/// Why a request was not let in, and when to try again (seconds).
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    Rate { retry_after: u64 },
    InFlight,
}

#[derive(Default)]
pub struct KeyLimits {
    config: KeyLimitConfig,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl KeyLimits {
    pub fn new(config: KeyLimitConfig) -> Self {
        KeyLimits {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Lets one request of this key in (the permit is held until it is
    /// answered), or says why not.
    pub fn admit(&self, key_id: i64, now: Instant) -> Result<OwnedSemaphorePermit, Refused> {
        let c = self.config;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key_id).or_insert_with(|| Bucket {
            tokens: c.burst,
            at: now,
            in_flight: Arc::new(Semaphore::new(c.in_flight.max(1))),
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * c.per_second).min(c.burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let wait = ((1.0 - bucket.tokens) / c.per_second.max(0.001)).ceil() as u64;
            return Err(Refused::Rate {
                retry_after: wait.max(1),
            });
        }
        let permit = bucket
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::InFlight)?;
        bucket.tokens -= 1.0;
        Ok(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate_and_a_cap_on_requests_in_flight() {
        let limits = KeyLimits::new(KeyLimitConfig {
            per_second: 2.0,
            burst: 3.0,
            in_flight: 2,
        });
        let t0 = Instant::now();
        let a = limits.admit(1, t0).unwrap();
        let _b = limits.admit(1, t0).unwrap();
        assert_eq!(limits.admit(1, t0).unwrap_err(), Refused::InFlight);
        drop(a);
        let _c = limits.admit(1, t0).unwrap();
        // The burst is spent (three let in): wait for the rate.
        drop(_c);
        assert!(matches!(
            limits.admit(1, t0),
            Err(Refused::Rate { retry_after: 1 })
        ));
        assert!(limits.admit(1, t0 + Duration::from_millis(600)).is_ok());
        // Another key has its own.
        assert!(limits.admit(2, t0).is_ok());
    }
}
