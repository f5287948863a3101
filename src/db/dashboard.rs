//! What a location's dashboard shows: DND changes per day for 30 days by
//! channel, the reasons set most, what holds DND now, messages the gate
//! blocked, and support requests waiting. Every query is one location's,
//! on an index of its own.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Text, Timestamptz};

use crate::domain::chart::Day;
use crate::domain::dnd::Reason;
use crate::domain::Channel;

/// Days the dashboard looks back.
pub const DAYS: i64 = 30;

#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// Oldest first, one per day (empty days included), in the location's
    /// time zone.
    pub days: Vec<Day>,
    /// Reasons set in the period, most first.
    pub top_reasons: Vec<(Reason, i64)>,
    /// Reasons in force now (on contacts and on addresses), most first.
    pub active: Vec<(Reason, i64)>,
    /// Contacts with DND on / partial now.
    pub contacts_on: i64,
    pub contacts_partial: i64,
    /// Messages the gate blocked in the period, by channel.
    pub blocked: Vec<(Channel, i64)>,
    /// Opt-in evidence requests waiting for support.
    pub open_requests: i64,
}

impl Dashboard {
    pub fn blocked_total(&self) -> i64 {
        self.blocked.iter().map(|(_, n)| n).sum()
    }

    pub fn changes_total(&self) -> i64 {
        self.days.iter().map(Day::total).sum()
    }
}

#[derive(QueryableByName)]
struct DayCount {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct KeyCount {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The dashboard of a location whose calendar is `time_zone`.
pub fn load(
    conn: &mut PgConnection,
    location_id: i64,
    time_zone: &str,
    now: DateTime<Utc>,
) -> QueryResult<Dashboard> {
    let today = crate::domain::optin::local_today(time_zone, now);
    let first = today - Duration::days(DAYS - 1);
    let since = now - Duration::days(DAYS);
    let zone = if time_zone.parse::<chrono_tz::Tz>().is_ok() {
        time_zone
    } else {
        "UTC"
    };
    let per_day: Vec<DayCount> = diesel::sql_query(
        "SELECT (at AT TIME ZONE $2)::date AS day, channel, count(*) AS n
         FROM dnd_history
         WHERE location_id = $1 AND at >= $3 AND channel IS NOT NULL
           AND action IN ('set', 'lifted')
         GROUP BY 1, 2",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Text, _>(zone)
    .bind::<Timestamptz, _>(since)
    .load(conn)?;
    let days = (0..DAYS)
        .map(|i| {
            let date = first + Duration::days(i);
            Day {
                date,
                counts: Channel::ALL
                    .into_iter()
                    .filter_map(|c| {
                        let n: i64 = per_day
                            .iter()
                            .filter(|d| d.day == date && d.channel == c.as_str())
                            .map(|d| d.n)
                            .sum();
                        (n > 0).then_some((c, n))
                    })
                    .collect(),
            }
        })
        .collect();
    let reasons = |rows: Vec<KeyCount>| -> Vec<(Reason, i64)> {
        rows.into_iter()
            .filter_map(|r| r.key.parse::<Reason>().ok().map(|reason| (reason, r.n)))
            .collect()
    };
    let top_reasons = reasons(
        diesel::sql_query(
            "SELECT reason AS key, count(*) AS n FROM dnd_history
             WHERE location_id = $1 AND at >= $2 AND action = 'set' AND reason IS NOT NULL
             GROUP BY reason ORDER BY n DESC, reason LIMIT 6",
        )
        .bind::<BigInt, _>(location_id)
        .bind::<Timestamptz, _>(since)
        .load(conn)?,
    );
    let active = reasons(
        diesel::sql_query(
            "SELECT reason AS key, count(*) AS n FROM (
                 SELECT reason FROM contact_dnd_reasons WHERE location_id = $1
                 UNION ALL
                 SELECT reason FROM address_dnd_reasons WHERE location_id = $1) r
             GROUP BY reason ORDER BY n DESC, reason",
        )
        .bind::<BigInt, _>(location_id)
        .load(conn)?,
    );
    let statuses: Vec<KeyCount> = diesel::sql_query(
        "SELECT dnd_status::text AS key, count(*) AS n FROM contacts
         WHERE location_id = $1 AND dnd_status > 0 GROUP BY dnd_status",
    )
    .bind::<BigInt, _>(location_id)
    .load(conn)?;
    let status = |code: &str| statuses.iter().find(|s| s.key == code).map_or(0, |s| s.n);
    let blocked: Vec<KeyCount> = diesel::sql_query(
        "SELECT channel AS key, count(*) AS n FROM messages
         WHERE location_id = $1 AND status = 'blocked' AND created_at >= $2
         GROUP BY channel ORDER BY n DESC",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<Timestamptz, _>(since)
    .load(conn)?;
    let open_requests: i64 = super::schema::optin_open_requests::table
        .filter(super::schema::optin_open_requests::location_id.eq(location_id))
        .count()
        .get_result(conn)?;
    Ok(Dashboard {
        days,
        top_reasons,
        active,
        contacts_on: status("2"),
        contacts_partial: status("1"),
        blocked: blocked
            .into_iter()
            .filter_map(|r| r.key.parse::<Channel>().ok().map(|c| (c, r.n)))
            .collect(),
        open_requests,
    })
}
