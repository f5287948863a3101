//! Opt-in evidence requests: the only way a permanent DND is lifted by
//! someone other than the contact (DESIGN.md, "Lifting a permanent DND
//! through support"). What a filed request must hold, when its evidence is
//! stale, and which reasons an approval lifts. Pure: the caller passes the
//! time and the location's default region.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use super::dnd::{ActiveReason, Reason};
use super::local_time::Zone;
use super::{InvalidField, PhoneNumber};

/// The longest recording link and note a request keeps.
pub const MAX_URL_CHARS: usize = 2000;
pub const MAX_NOTE_CHARS: usize = 2000;
/// Relationship numbers per request: a business has a handful of numbers,
/// and a list longer than this is a paste gone wrong.
pub const MAX_RELATIONSHIP_NUMBERS: usize = 20;

/// Where a request stands. A request is open until support decides it; a
/// decision is final (a rejected request can be followed by a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    Open,
    Approved,
    Rejected,
}

impl RequestState {
    pub const ALL: [RequestState; 3] = [
        RequestState::Open,
        RequestState::Approved,
        RequestState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Open => "open",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RequestState::Open => "Open: waiting for support",
            RequestState::Approved => "Approved",
            RequestState::Rejected => "Rejected",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown request state \"{s}\": use open, approved or rejected"))
    }
}

/// What support decided: a decision is one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Approved,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
        }
    }

    pub fn state(self) -> RequestState {
        match self {
            Decision::Approved => RequestState::Approved,
            Decision::Rejected => RequestState::Rejected,
        }
    }
}

impl FromStr for Decision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approved" => Ok(Decision::Approved),
            "rejected" => Ok(Decision::Rejected),
            _ => Err(format!("unknown decision \"{s}\"")),
        }
    }
}

/// The form as a person filled it in.
#[derive(Debug, Clone, Default)]
pub struct EvidenceDraft {
    pub relationship_numbers: String,
    pub recording_url: String,
    pub opted_in_on: String,
    pub note: String,
}

/// A request's evidence, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// E.164, in the order given, without repeats.
    pub relationship_numbers: Vec<String>,
    pub recording_url: String,
    pub opted_in_on: NaiveDate,
    pub note: String,
}

/// The calendar day it is at the location (its IANA time zone; UTC when
/// the zone is unknown).
pub fn local_today(time_zone: &str, now: DateTime<Utc>) -> NaiveDate {
    Zone::named(time_zone).date(now)
}

/// The latest permission date a request may give: the location's today,
/// or UTC's when that is later. Evidence is judged against the UTC day of
/// the opt-out, so a contact in New York who opts out at 8 pm and
/// re-consents at 9 pm (both the next day in UTC) can be given that UTC
/// day; east of UTC the location's own day is ahead and is allowed.
pub fn latest_opt_in_date(time_zone: &str, now: DateTime<Utc>) -> NaiveDate {
    local_today(time_zone, now).max(now.date_naive())
}

impl EvidenceDraft {
    /// Checks every field and reports every problem at once (each with the
    /// field it belongs to), so the form can show them all next to their
    /// fields. Numbers without a country code are read in `region`; the
    /// date may not be after `today` (the location's).
    pub fn validate(&self, region: &str, today: NaiveDate) -> Result<Evidence, Vec<InvalidField>> {
        let mut errors = Vec::new();
        let numbers = parse_numbers(&self.relationship_numbers, region).map_err(|e| errors.push(e));
        let url = check_url(&self.recording_url).map_err(|e| errors.push(e));
        let date = check_date(&self.opted_in_on, today).map_err(|e| errors.push(e));
        let note = self.note.trim().to_string();
        if note.chars().count() > MAX_NOTE_CHARS {
            errors.push(InvalidField::new(
                "note",
                format!("keep the note to {MAX_NOTE_CHARS} characters or fewer"),
            ));
        }
        match (numbers, url, date) {
            (Ok(relationship_numbers), Ok(recording_url), Ok(opted_in_on)) if errors.is_empty() => {
                Ok(Evidence {
                    relationship_numbers,
                    recording_url,
                    opted_in_on,
                    note,
                })
            }
            _ => Err(errors),
        }
    }
}

fn parse_numbers(input: &str, region: &str) -> Result<Vec<String>, InvalidField> {
    const FIELD: &str = "relationship_numbers";
    let mut out: Vec<String> = Vec::new();
    for part in input.split([',', '\n', ';']) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let number = PhoneNumber::parse(part, region).map_err(|e| {
            InvalidField::new(
                FIELD,
                format!("\"{}\" is not a phone number: {}", clip(part), e.message),
            )
        })?;
        let number = number.into_inner();
        if !out.contains(&number) {
            out.push(number);
        }
    }
    if out.is_empty() {
        return Err(InvalidField::new(
            FIELD,
            "give the business number(s) the contact talked to, separated by commas or new lines",
        ));
    }
    if out.len() > MAX_RELATIONSHIP_NUMBERS {
        return Err(InvalidField::new(
            FIELD,
            format!("give at most {MAX_RELATIONSHIP_NUMBERS} numbers"),
        ));
    }
    Ok(out)
}

/// A link a reviewer can open: http or https, with a host, no spaces.
/// Anything else (`javascript:`, `data:`, a bare word) is refused, since
/// support will click it.
fn check_url(input: &str) -> Result<String, InvalidField> {
    const FIELD: &str = "recording_url";
    let url = input.trim();
    if url.is_empty() {
        return Err(InvalidField::new(
            FIELD,
            "give the link to the recording that shows the contact's permission",
        ));
    }
    if url.chars().count() > MAX_URL_CHARS {
        return Err(InvalidField::new(
            FIELD,
            format!("the link is longer than {MAX_URL_CHARS} characters; use a shorter share link"),
        ));
    }
    let lower = url.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if !scheme_ok {
        return Err(InvalidField::new(
            FIELD,
            "the link must start with https:// (or http://)",
        ));
    }
    // `https://trusted.example@elsewhere.example/` opens elsewhere: a link
    // support clicks must show where it goes.
    if authority.contains('@') {
        return Err(InvalidField::new(
            FIELD,
            "give the link without a user name (no @ before the host)",
        ));
    }
    if authority.is_empty() || url.chars().any(hides_text) {
        return Err(InvalidField::new(
            FIELD,
            "this is not a link a browser can open: check it has a host name and no spaces",
        ));
    }
    Ok(url.to_string())
}

/// Characters that make a link read differently from where it goes:
/// spaces, controls, and invisible formatting (right-to-left overrides,
/// zero-width joiners).
fn hides_text(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

fn check_date(input: &str, today: NaiveDate) -> Result<NaiveDate, InvalidField> {
    const FIELD: &str = "opted_in_on";
    let input = input.trim();
    if input.is_empty() {
        return Err(InvalidField::new(
            FIELD,
            "give the date the contact gave permission",
        ));
    }
    let date = NaiveDate::parse_from_str(input, "%Y-%m-%d").map_err(|_| {
        InvalidField::new(
            FIELD,
            format!("\"{}\" is not a date: use YYYY-MM-DD", clip(input)),
        )
    })?;
    if date > today {
        return Err(InvalidField::new(
            FIELD,
            "the date is in the future: give the day the contact gave permission",
        ));
    }
    Ok(date)
}

fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

/// The reasons an approval lifts: the permanent ones. Temporary reasons
/// and `manual` stay (users lift those themselves).
pub fn approval_lifts(reason: Reason) -> bool {
    reason.lifted_by_approval()
}

/// Whether a channel holds anything for support to lift.
pub fn has_something_to_lift(reasons: &[ActiveReason]) -> bool {
    reasons.iter().any(|a| approval_lifts(a.reason))
}

/// Evidence is stale when the contact's permission is dated before the
/// (UTC) day of the newest opt-out on the address (an opt-in on the same
/// day counts), or when that opt-out came after the request was filed: the
/// permission shown predates it, so the opt-out wins either way.
pub fn evidence_is_stale(
    opted_in_on: NaiveDate,
    filed_at: DateTime<Utc>,
    newest_opt_out: Option<DateTime<Utc>>,
) -> bool {
    newest_opt_out.is_some_and(|at| opted_in_on < at.date_naive() || at > filed_at)
}

/// Why stale evidence cannot be approved, in words for the reviewer, with
/// the location's time (`zone`). Evidence is compared with the opt-out's
/// UTC day (see [`evidence_is_stale`]); where that is not the location's
/// day, the words say so.
pub fn stale_explanation(
    opted_in_on: NaiveDate,
    filed_at: DateTime<Utc>,
    newest_opt_out: DateTime<Utc>,
    zone: Zone,
) -> String {
    let at = zone.minutes(newest_opt_out);
    if newest_opt_out > filed_at {
        format!(
            "The contact opted out again on {at}, after this request was filed: the \
             permission it shows came before that opt-out. It cannot be approved; reject it and \
             ask for evidence of an opt-in given after {at}."
        )
    } else {
        let day = newest_opt_out.date_naive();
        let from = if day == zone.date(newest_opt_out) {
            day.to_string()
        } else {
            format!("{day} (the opt-out's date in UTC)")
        };
        format!(
            "The evidence is dated {opted_in_on}, before the newest opt-out on this address \
             ({at}): the contact opted out after giving this permission. It cannot be \
             approved; reject it and ask for evidence of an opt-in given on or after {from}."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    fn today() -> NaiveDate {
        now().date_naive()
    }

    fn draft() -> EvidenceDraft {
        EvidenceDraft {
            relationship_numbers: "+1 415 555 0100, (212) 555-0123\n+14155550100".into(),
            recording_url: "https://videos.example.com/r/42".into(),
            opted_in_on: "2026-11-20".into(),
            note: "  Asked in store.  ".into(),
        }
    }

    fn fields(errors: Vec<InvalidField>) -> Vec<&'static str> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_good_draft_is_kept_in_e164_without_repeats() {
        let e = draft().validate("US", today()).unwrap();
        assert_eq!(e.relationship_numbers, vec!["+14155550100", "+12125550123"]);
        assert_eq!(
            e.opted_in_on,
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
        );
        assert_eq!(e.note, "Asked in store.");
        assert_eq!(e.recording_url, "https://videos.example.com/r/42");
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let bad = EvidenceDraft {
            relationship_numbers: "+1 415 555 0100, not a number".into(),
            recording_url: "javascript:alert(1)".into(),
            opted_in_on: "2026-12-25".into(),
            note: "x".repeat(MAX_NOTE_CHARS + 1),
        };
        assert_eq!(
            fields(bad.validate("US", today()).unwrap_err()),
            vec![
                "relationship_numbers",
                "recording_url",
                "opted_in_on",
                "note"
            ]
        );
    }

    #[test]
    fn links_must_be_http_with_a_host() {
        for bad in [
            "",
            "javascript:alert(1)",
            "JaVaScRiPt://x",
            "data:text/html,hi",
            "ftp://example.com/r",
            "https://",
            "https:///path",
            "https://exa mple.com/",
            "recording.mp4",
            "https://trusted.example@elsewhere.example/r",
            "https://example.com/\u{202E}4pm.exe",
            "https://example.com/a\u{200B}b",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_url(&format!(
            "https://example.com/{}",
            "a".repeat(MAX_URL_CHARS)
        ))
        .is_err());
        for good in [
            "https://example.com/r/1",
            "HTTP://example.com",
            "https://host.example/x?y=1#t@z",
        ] {
            assert!(check_url(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn dates_must_be_real_and_not_after_the_locations_today() {
        assert!(check_date("2026-02-30", today()).is_err());
        assert!(check_date("27/11/2026", today()).is_err());
        assert!(check_date("", today()).is_err());
        assert!(check_date("2026-11-27", today()).is_ok());
        assert!(check_date("2026-11-28", today()).is_err());
    }

    #[test]
    fn today_is_the_locations_own_day_or_utcs() {
        // 20:00 UTC on the 27th is already the 28th in Sydney, still the
        // 27th in New York.
        let late = Utc.with_ymd_and_hms(2026, 11, 27, 20, 0, 0).unwrap();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(local_today("Australia/Sydney", late), day(28));
        assert_eq!(local_today("America/New_York", late), day(27));
        assert_eq!(
            local_today("Not/AZone", late),
            day(27),
            "unknown zones read as UTC"
        );
        let early = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        assert_eq!(local_today("America/New_York", early), day(27));
        assert_eq!(latest_opt_in_date("America/New_York", early), day(28));
        assert_eq!(latest_opt_in_date("Australia/Sydney", late), day(28));
    }

    #[test]
    fn numbers_are_required_and_bounded() {
        assert!(parse_numbers(" , \n ", "US").is_err());
        let many: Vec<String> = (0..=MAX_RELATIONSHIP_NUMBERS)
            .map(|i| format!("+1415555{:04}", 100 + i))
            .collect();
        assert!(parse_numbers(&many.join(","), "US").is_err());
    }

    #[test]
    fn stale_means_dated_before_the_day_of_the_newest_opt_out_or_filed_before_it() {
        let opt_out = Utc.with_ymd_and_hms(2026, 11, 20, 23, 59, 0).unwrap();
        let filed = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert!(evidence_is_stale(day(19), filed, Some(opt_out)));
        assert!(
            !evidence_is_stale(day(20), filed, Some(opt_out)),
            "the same day counts"
        );
        assert!(!evidence_is_stale(day(21), filed, Some(opt_out)));
        assert!(!evidence_is_stale(day(1), filed, None));
        assert!(stale_explanation(day(19), filed, opt_out, Zone::UTC).contains("2026-11-20"));
        // An opt-out after the request was filed wins, whatever its day.
        let later = Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap();
        assert!(evidence_is_stale(day(22), filed, Some(later)));
        assert!(stale_explanation(day(22), filed, later, Zone::UTC)
            .contains("after this request was filed"));
    }

    #[test]
    fn stale_explanations_give_the_location_s_time_and_the_day_the_rule_uses() {
        let ny = Zone::named("America/New_York");
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let filed = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
        // 02:00 UTC on the 21st is 21:00 on the 20th in New York.
        let opt_out = Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap();
        assert_eq!(
            stale_explanation(day(19), filed, opt_out, ny),
            "The evidence is dated 2026-11-19, before the newest opt-out on this address \
             (2026-11-20 21:00 EST): the contact opted out after giving this permission. It \
             cannot be approved; reject it and ask for evidence of an opt-in given on or after \
             2026-11-21 (the opt-out's date in UTC)."
        );
        let same_day = Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0).unwrap();
        assert!(stale_explanation(day(19), filed, same_day, ny).ends_with(
            "(2026-11-20 10:00 EST): the contact opted out after giving this \
                        permission. It cannot be approved; reject it and ask for evidence of an \
                        opt-in given on or after 2026-11-20."
        ));
        let after_filing = Utc.with_ymd_and_hms(2026, 11, 22, 14, 30, 0).unwrap();
        assert_eq!(
            stale_explanation(day(22), filed, after_filing, ny),
            "The contact opted out again on 2026-11-22 09:30 EST, after this request was filed: \
             the permission it shows came before that opt-out. It cannot be approved; reject it \
             and ask for evidence of an opt-in given after 2026-11-22 09:30 EST."
        );
    }

    #[test]
    fn approval_lifts_exactly_the_permanent_reasons() {
        let lifted: Vec<Reason> = Reason::ALL
            .into_iter()
            .filter(|r| approval_lifts(*r))
            .collect();
        assert_eq!(
            lifted,
            vec![
                Reason::SmsOptOut,
                Reason::CarrierBlocked,
                Reason::SmsUnsubscribed,
                Reason::EmailSpamComplaint,
                Reason::ChannelOptOut,
                Reason::ImportedOptOut,
            ]
        );
    }

    #[test]
    fn states_round_trip() {
        for s in RequestState::ALL {
            assert_eq!(s.as_str().parse::<RequestState>().unwrap(), s);
        }
        assert!("closed".parse::<RequestState>().is_err());
        assert_eq!(
            "approved".parse::<Decision>().unwrap().state(),
            RequestState::Approved
        );
    }
}
