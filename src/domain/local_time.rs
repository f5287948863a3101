//! Times as a location reads them: in its IANA time zone
//! (`locations.time_zone`), with the zone's abbreviation. Pure: the pages
//! wrap these in `<time>` (with the UTC instant for machines and in a
//! tooltip); reason texts use them as they are.

use chrono::{DateTime, NaiveDate, Offset, Utc};
use chrono_tz::{OffsetName, Tz};

/// A location's time zone. A name chrono-tz does not know reads as UTC
/// (the location form refuses such names; an old row could still hold one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

impl Zone {
    pub const UTC: Zone = Zone(Tz::UTC);

    /// The zone named `name` (`America/New_York`), or UTC.
    pub fn named(name: &str) -> Zone {
        name.parse().map(Zone).unwrap_or(Zone::UTC)
    }

    /// Its IANA name (`UTC` for a name that did not parse).
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// How the zone names itself at `at`: `EST` / `EDT`, `IST`. Zones the
    /// time zone database gives no letters to (it writes `-03`) read as the
    /// offset from UTC, `UTC−03:00` (with a minus sign, as a screen reader
    /// says "minus").
    pub fn abbreviation(self, at: DateTime<Utc>) -> String {
        let offset = *at.with_timezone(&self.0).offset();
        match offset.abbreviation() {
            Some(name) if name.chars().any(|c| c.is_ascii_alphabetic()) => name.to_string(),
            _ => {
                let seconds = offset.fix().local_minus_utc();
                let sign = if seconds < 0 { '−' } else { '+' };
                let minutes = seconds.unsigned_abs() / 60;
                format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
            }
        }
    }

    /// `2026-11-27 18:53 EST`.
    pub fn minutes(self, at: DateTime<Utc>) -> String {
        self.local(at, "%Y-%m-%d %H:%M")
    }

    /// `2026-11-27 18:53:07 EST`, for tables that order events within a
    /// minute.
    pub fn seconds(self, at: DateTime<Utc>) -> String {
        self.local(at, "%Y-%m-%d %H:%M:%S")
    }

    /// The calendar day it is at the location at `at`.
    pub fn date(self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.0).date_naive()
    }

    fn local(self, at: DateTime<Utc>, format: &str) -> String {
        format!(
            "{} {}",
            at.with_timezone(&self.0).format(format),
            self.abbreviation(at)
        )
    }
}

/// `2026-11-27 23:53 UTC`: the instant itself, as the pages' tooltips
/// give it.
pub fn utc_minutes(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-11-27 23:53:07 UTC`.
pub fn utc_seconds(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn new_york_is_est_in_winter_and_edt_in_summer() {
        let ny = Zone::named("America/New_York");
        assert_eq!(
            ny.minutes(at(2026, 11, 27, 23, 53, 0)),
            "2026-11-27 18:53 EST"
        );
        assert_eq!(ny.minutes(at(2026, 7, 4, 16, 0, 0)), "2026-07-04 12:00 EDT");
        // Across the change of 2026-03-08 (02:00 EST becomes 03:00 EDT).
        assert_eq!(
            ny.seconds(at(2026, 3, 8, 6, 59, 59)),
            "2026-03-08 01:59:59 EST"
        );
        assert_eq!(
            ny.seconds(at(2026, 3, 8, 7, 0, 0)),
            "2026-03-08 03:00:00 EDT"
        );
    }

    #[test]
    fn kolkata_is_ist_half_an_hour_off() {
        let kolkata = Zone::named("Asia/Kolkata");
        assert_eq!(
            kolkata.minutes(at(2026, 11, 27, 23, 53, 0)),
            "2026-11-28 05:23 IST"
        );
    }

    #[test]
    fn a_zone_without_letters_reads_as_its_offset() {
        assert_eq!(
            Zone::named("America/Sao_Paulo").minutes(at(2026, 11, 27, 23, 53, 0)),
            "2026-11-27 20:53 UTC−03:00"
        );
        assert_eq!(
            Zone::named("Asia/Kathmandu").minutes(at(2026, 11, 27, 23, 53, 0)),
            "2026-11-28 05:38 UTC+05:45"
        );
        assert_eq!(
            Zone::named("Etc/GMT+5").abbreviation(at(2026, 1, 1, 0, 0, 0)),
            "UTC−05:00"
        );
    }

    #[test]
    fn an_unknown_zone_reads_as_utc() {
        let zone = Zone::named("Not/AZone");
        assert_eq!(zone, Zone::UTC);
        assert_eq!(zone.name(), "UTC");
        assert_eq!(
            zone.minutes(at(2026, 11, 27, 23, 53, 0)),
            "2026-11-27 23:53 UTC"
        );
        assert_eq!(
            Zone::named("").minutes(at(2026, 1, 2, 3, 4, 5)),
            "2026-01-02 03:04 UTC"
        );
    }

    #[test]
    fn the_local_date_is_the_day_at_the_location() {
        let late = at(2026, 11, 28, 2, 0, 0);
        assert_eq!(
            Zone::named("America/New_York").date(late),
            NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
        );
        assert_eq!(
            Zone::named("Australia/Sydney").date(late),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert_eq!(utc_minutes(late), "2026-11-28 02:00 UTC");
        assert_eq!(utc_seconds(late), "2026-11-28 02:00:00 UTC");
    }
}
