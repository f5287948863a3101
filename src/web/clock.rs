//! Every time a page shows, in the location's time zone:
//! `<time datetime="2026-11-27T23:53:00Z" title="2026-11-27 23:53 UTC">2026-11-27 18:53 EST</time>`.
//! The UTC instant stays in `datetime` (machines) and `title` (a person
//! comparing with a provider's log). CSV exports and the JSON API keep
//! RFC 3339 in UTC and do not come here.
//!
//! In a template: `{% let clock = location.clock() %}` once (the page's
//! module imports [`Clocked`]), then `{{ clock.time(x) }}`,
//! `{{ clock.time_seconds(x) }}` or `{{ clock.date(x) }}`. The result is
//! marked HTML-safe: it is built here from numbers and the zone's
//! abbreviation, never from input.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::local_time::{utc_minutes, utc_seconds, Zone};

/// Renders instants in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock(Zone);

/// What a page can take its clock from: a location, or a row that carries
/// its location's time zone.
pub trait Clocked {
    fn time_zone(&self) -> &str;

    fn clock(&self) -> Clock {
        Clock::new(Zone::named(self.time_zone()))
    }
}

impl Clocked for crate::db::locations::Location {
    fn time_zone(&self) -> &str {
        &self.time_zone
    }
}

/// A request with its location (support's pages span every location).
impl Clocked for crate::db::optin::Listed {
    fn time_zone(&self) -> &str {
        &self.time_zone
    }
}

/// An instant, however deep in references a template holds it (`if let`
/// and `for` bind references).
pub trait Instant {
    fn instant(&self) -> DateTime<Utc>;
}

impl Instant for DateTime<Utc> {
    fn instant(&self) -> DateTime<Utc> {
        *self
    }
}

impl<T: Instant + ?Sized> Instant for &T {
    fn instant(&self) -> DateTime<Utc> {
        (**self).instant()
    }
}

impl Clock {
    pub fn new(zone: Zone) -> Clock {
        Clock(zone)
    }

    pub fn zone(&self) -> Zone {
        self.0
    }

    /// Date, hours and minutes.
    pub fn time(&self, at: impl Instant) -> LocalTime {
        self.render(at.instant(), Precision::Minutes)
    }

    /// Date, hours, minutes and seconds.
    pub fn time_seconds(&self, at: impl Instant) -> LocalTime {
        self.render(at.instant(), Precision::Seconds)
    }

    /// The local date only.
    pub fn date(&self, at: impl Instant) -> LocalTime {
        self.render(at.instant(), Precision::Date)
    }

    fn render(&self, at: DateTime<Utc>, precision: Precision) -> LocalTime {
        LocalTime {
            at,
            zone: self.0,
            precision,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Date,
    Minutes,
    Seconds,
}

/// One instant as a page shows it: a `<time>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    at: DateTime<Utc>,
    zone: Zone,
    precision: Precision,
}

impl LocalTime {
    /// The text a person reads, without the markup.
    pub fn text(&self) -> String {
        match self.precision {
            Precision::Date => self.zone.date(self.at).to_string(),
            Precision::Minutes => self.zone.minutes(self.at),
            Precision::Seconds => self.zone.seconds(self.at),
        }
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (machine, utc) = match self.precision {
            // A date is the location's day: its machine form is that day.
            Precision::Date => (self.zone.date(self.at).to_string(), utc_minutes(self.at)),
            Precision::Minutes => (
                self.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                utc_minutes(self.at),
            ),
            Precision::Seconds => (
                self.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                utc_seconds(self.at),
            ),
        };
        write!(
            f,
            r#"<time datetime="{machine}" title="{utc}">{}</time>"#,
            self.text()
        )
    }
}

/// Only digits, `-`, `:`, `+`, `−`, spaces, `T`, `Z`, `UTC` and the time
/// zone database's abbreviations (ASCII letters) go into the output.
impl askama::filters::HtmlSafe for LocalTime {}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::Template;
    use chrono::TimeZone;

    fn instant() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 23, 53, 7).unwrap()
    }

    fn clock(name: &str) -> Clock {
        Clock::new(Zone::named(name))
    }

    #[test]
    fn renders_a_time_element_with_the_utc_instant() {
        let ny = clock("America/New_York");
        assert_eq!(
            ny.time(instant()).to_string(),
            r#"<time datetime="2026-11-27T23:53:07Z" title="2026-11-27 23:53 UTC">2026-11-27 18:53 EST</time>"#
        );
        assert_eq!(
            ny.time_seconds(instant()).to_string(),
            r#"<time datetime="2026-11-27T23:53:07Z" title="2026-11-27 23:53:07 UTC">2026-11-27 18:53:07 EST</time>"#
        );
        assert_eq!(
            clock("Asia/Kolkata").date(instant()).to_string(),
            r#"<time datetime="2026-11-28" title="2026-11-27 23:53 UTC">2026-11-28</time>"#
        );
        assert_eq!(
            clock("Nowhere/Atlantis").time(instant()).to_string(),
            r#"<time datetime="2026-11-27T23:53:07Z" title="2026-11-27 23:53 UTC">2026-11-27 23:53 UTC</time>"#
        );
    }

    #[derive(Template)]
    #[template(
        source = "<p>{{ clock.time(at) }}</p>{% if let Some(t) = maybe %}<p>{{ clock.date(t) }}</p>{% endif %}",
        ext = "html"
    )]
    struct Page {
        clock: Clock,
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    #[test]
    fn templates_insert_it_unescaped_without_the_safe_filter() {
        let page = Page {
            clock: clock("America/Sao_Paulo"),
            at: instant(),
            maybe: Some(instant()),
        };
        assert_eq!(
            page.render().unwrap(),
            "<p><time datetime=\"2026-11-27T23:53:07Z\" title=\"2026-11-27 23:53 UTC\">2026-11-27 20:53 UTC−03:00</time></p>\
             <p><time datetime=\"2026-11-27\" title=\"2026-11-27 23:53 UTC\">2026-11-27</time></p>"
        );
    }
}
