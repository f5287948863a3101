//! DND-change webhooks: a location's subscriptions, and their outbox of
//! deliveries. The database writes a delivery for each subscription with
//! every history row that changes DND (a trigger on the history: in the
//! same transaction as the change); this module claims the due ones, in
//! history order per contact, and records how each went.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Timestamptz};

use super::dnd::HistoryRow;
use super::schema::{dnd_history, webhook_deliveries, webhook_subscriptions};
use super::DbError;

/// How long a delivery is retried before it is given up.
pub const RETRY_FOR_HOURS: i64 = 24;
/// How long a claimed delivery is left alone while it is being sent: well
/// past the client's timeout (a round's deliveries are sent side by side).
const LEASE_SECS: i64 = 120;
/// Deliveries one location gets per round, so one location's burst (a
/// bulk change) never holds the others' back.
const PER_LOCATION: i64 = 5;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_subscriptions)]
pub struct Subscription {
    pub location_id: i64,
    pub id: i64,
    pub url: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A new subscription and its signing secret (shown once).
pub fn create(
    conn: &mut PgConnection,
    location_id: i64,
    url: &str,
    created_by: &str,
) -> Result<(Subscription, String), DbError> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("whsec_{}", hex::encode(bytes));
    let sealed = crate::secrets::seal("webhook_subscriptions.secret", &secret)
        .map_err(|e| DbError::Invariant(format!("the webhook secret could not be sealed: {e}")))?;
    let created = diesel::insert_into(webhook_subscriptions::table)
        .values((
            webhook_subscriptions::location_id.eq(location_id),
            webhook_subscriptions::url.eq(url),
            webhook_subscriptions::secret.eq(sealed),
            webhook_subscriptions::created_by.eq(created_by),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)?;
    Ok((created, secret))
}

/// The location's live subscriptions, oldest first.
pub fn list(conn: &mut PgConnection, location_id: i64) -> QueryResult<Vec<Subscription>> {
    webhook_subscriptions::table
        .filter(webhook_subscriptions::location_id.eq(location_id))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .order_by(webhook_subscriptions::id.asc())
        .select(Subscription::as_select())
        .load(conn)
}

/// Removes a subscription (kept, marked deleted, for its delivery log):
/// nothing more is queued for it, and what waits is cancelled. `false` if
/// the location has no such live subscription.
pub fn delete(conn: &mut PgConnection, location_id: i64, id: i64) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let n = diesel::update(webhook_subscriptions::table.find((location_id, id)))
            .filter(webhook_subscriptions::deleted_at.is_null())
            .set(webhook_subscriptions::deleted_at.eq(diesel::dsl::now))
            .execute(conn)?;
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::location_id.eq(location_id))
                .filter(webhook_deliveries::subscription_id.eq(id))
                .filter(webhook_deliveries::state.eq("pending")),
        )
        .set(webhook_deliveries::state.eq("cancelled"))
        .execute(conn)?;
        Ok(n == 1)
    })
}

/// One line of a location's delivery log.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: i64,
    pub subscription_id: i64,
    pub history_id: i64,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The location's latest deliveries, newest first.
pub fn log(conn: &mut PgConnection, location_id: i64, limit: i64) -> QueryResult<Vec<DeliveryRow>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::location_id.eq(location_id))
        .order_by(webhook_deliveries::id.desc())
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)
}

/// A delivery claimed for sending: where, with what secret, what change.
pub struct Due {
    pub location_id: i64,
    pub id: i64,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub url: String,
    pub secret: Result<String, String>,
    pub change: HistoryRow,
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    subscription_id: i64,
    #[diesel(sql_type = BigInt)]
    history_id: i64,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries: pending, due, and the first still
/// pending of their subscription and contact (so one contact's changes
/// arrive in the order they happened, a failing one holding the rest back
/// until it is delivered or given up). A claimed delivery is leased for a
/// minute: another server skips it meanwhile.
pub fn claim(conn: &mut PgConnection, limit: i64) -> Result<Vec<Due>, DbError> {
    conn.transaction(|conn| {
        let claimed: Vec<Claimed> = diesel::sql_query(format!(
            "UPDATE webhook_deliveries d
                SET next_attempt_at = now() + interval '{LEASE_SECS} seconds',
                    attempts = d.attempts + 1
             FROM (
                SELECT l.location_id, l.id FROM webhook_deliveries l
                WHERE (l.location_id, l.id) IN (
                    SELECT r.location_id, r.id FROM (
                        SELECT d2.location_id, d2.id, d2.next_attempt_at, d2.history_id,
                               row_number() OVER (PARTITION BY d2.location_id
                                                  ORDER BY d2.next_attempt_at, d2.history_id) AS n
                        FROM webhook_deliveries d2
                        WHERE d2.state = 'pending' AND d2.next_attempt_at <= now()
                          -- Never for a subscription removed meanwhile (its
                          -- last changes may have been queued as it was
                          -- deleted; housekeeping cancels them).
                          AND EXISTS (
                              SELECT 1 FROM webhook_subscriptions s
                              WHERE s.location_id = d2.location_id
                                AND s.id = d2.subscription_id AND s.deleted_at IS NULL)
                          AND NOT EXISTS (
                              SELECT 1 FROM webhook_deliveries e
                              WHERE e.location_id = d2.location_id
                                AND e.subscription_id = d2.subscription_id
                                AND e.order_key = d2.order_key AND e.state = 'pending'
                                AND e.history_id < d2.history_id)
                    ) r
                    WHERE r.n <= {PER_LOCATION}
                    ORDER BY r.next_attempt_at, r.history_id
                    LIMIT $1)
                FOR UPDATE SKIP LOCKED
             ) due
             WHERE d.location_id = due.location_id AND d.id = due.id
               AND d.state = 'pending'
             RETURNING d.location_id, d.id, d.subscription_id, d.history_id, d.attempts,
                       d.created_at"
        ))
        .bind::<BigInt, _>(limit)
        .load(conn)?;
        let mut due = Vec::with_capacity(claimed.len());
        for c in claimed {
            let (url, sealed): (String, String) = webhook_subscriptions::table
                .find((c.location_id, c.subscription_id))
                .select((webhook_subscriptions::url, webhook_subscriptions::secret))
                .first(conn)?;
            let change: HistoryRow = dnd_history::table
                .find((c.location_id, c.history_id))
                .select(HistoryRow::as_select())
                .first(conn)?;
            due.push(Due {
                location_id: c.location_id,
                id: c.id,
                attempts: c.attempts,
                created_at: c.created_at,
                url,
                secret: crate::secrets::open("webhook_subscriptions.secret", &sealed)
                    .map_err(|e| e.to_string()),
                change,
            });
        }
        Ok(due)
    })
}

/// How a delivery went.
pub enum Sent {
    Delivered {
        status: i32,
    },
    /// Refused or unreachable: tried again later, until it is a day old.
    Failed {
        status: Option<i32>,
        error: String,
    },
}

/// Records a delivery's outcome: delivered, or retried after a back-off
/// that doubles from 30 s up to an hour, or given up once it is
/// [`RETRY_FOR_HOURS`] old. Only the claim that sent it records it (its
/// attempt number is the claim's token): a send that outlived its lease
/// and was claimed again elsewhere changes nothing here.
pub fn record(
    conn: &mut PgConnection,
    due: &Due,
    sent: &Sent,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let target = webhook_deliveries::table
        .find((due.location_id, due.id))
        .filter(webhook_deliveries::state.eq("pending"))
        .filter(webhook_deliveries::attempts.eq(due.attempts));
    match sent {
        Sent::Delivered { status } => diesel::update(target)
            .set((
                webhook_deliveries::state.eq("delivered"),
                webhook_deliveries::last_status.eq(Some(*status)),
                webhook_deliveries::last_error.eq(None::<String>),
                webhook_deliveries::delivered_at.eq(Some(now)),
            ))
            .execute(conn)?,
        Sent::Failed { status, error } => {
            let next = now + backoff(due.attempts);
            let give_up = next > due.created_at + Duration::hours(RETRY_FOR_HOURS);
            let error: String = error.chars().take(500).collect();
            diesel::update(target)
                .set((
                    webhook_deliveries::state.eq(if give_up { "failed" } else { "pending" }),
                    webhook_deliveries::last_status.eq(*status),
                    webhook_deliveries::last_error.eq(Some(error)),
                    webhook_deliveries::next_attempt_at.eq(next),
                ))
                .execute(conn)?
        }
    };
    Ok(())
}

/// The wait after the `attempts`-th failed try: 30 s, 1 min, 2 min, …, at
/// most an hour.
pub fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(1, 8) - 1;
    Duration::seconds((30i64 << exponent).min(3600))
}

/// Housekeeping: deliveries still pending for a deleted subscription are
/// cancelled, and those settled more than `keep_days` ago are deleted (the
/// log shows recent ones). Returns how many were deleted.
pub fn prune(conn: &mut PgConnection, keep_days: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE webhook_deliveries d SET state = 'cancelled'
         FROM webhook_subscriptions s
         WHERE d.state = 'pending' AND s.location_id = d.location_id
           AND s.id = d.subscription_id AND s.deleted_at IS NOT NULL",
    )
    .execute(conn)?;
    diesel::sql_query(
        "DELETE FROM webhook_deliveries
         WHERE state <> 'pending' AND created_at < now() - make_interval(days => $1::int)",
    )
    .bind::<BigInt, _>(keep_days)
    .execute(conn)
}

/// Deliveries waiting (for tests and the settings page).
pub fn pending(conn: &mut PgConnection, location_id: i64) -> QueryResult<i64> {
    webhook_deliveries::table
        .filter(webhook_deliveries::location_id.eq(location_id))
        .filter(webhook_deliveries::state.eq("pending"))
        .count()
        .get_result(conn)
}

/// Makes every pending delivery of a location due now (tests, and an
/// operator who fixed the receiver and does not want to wait).
pub fn retry_now(conn: &mut PgConnection, location_id: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE webhook_deliveries SET next_attempt_at = now()
         WHERE location_id = $1 AND state = 'pending'",
    )
    .bind::<BigInt, _>(location_id)
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(1).num_seconds(), 30);
        assert_eq!(backoff(2).num_seconds(), 60);
        assert_eq!(backoff(5).num_seconds(), 480);
        assert_eq!(backoff(50).num_seconds(), 3600);
    }
}
