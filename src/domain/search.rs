//! What a search of the contact list means: a phone number (or part of
//! one), read the way people write it, or words of a name or an email.

use super::region::national_rules;
use super::PhoneNumber;

/// Digits at the end of a number that are enough to match on: fewer would
/// match a tenth, a hundredth… of a large location, which is no search.
pub const MIN_SUFFIX_DIGITS: usize = 4;

/// One way a phone search can match a stored (E.164) number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneReading {
    /// The number starts with this (`+1212555`).
    Prefix(String),
    /// The number ends with these digits (`5550196`).
    Suffix(String),
}

/// A search of the contact list, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// Digits (with the usual `+ - ( ) .` and spaces): a number matches
    /// any of the readings.
    Phone(Vec<PhoneReading>),
    /// Anything else: every word starts a word of the name (in any
    /// order), or the whole text is part of the email.
    Text { words: Vec<String>, whole: String },
}

impl Search {
    /// `term` as typed; numbers without a country code are read in
    /// `region` (the location's). `None` for a blank search.
    pub fn parse(term: &str, region: &str) -> Option<Search> {
        let term = term.trim();
        if term.is_empty() {
            return None;
        }
        let digits: String = term.chars().filter(char::is_ascii_digit).collect();
        let looks_like_phone = !digits.is_empty()
            && term
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        if !looks_like_phone {
            let whole = term.to_lowercase();
            return Some(Search::Text {
                words: whole.split_whitespace().map(str::to_string).collect(),
                whole,
            });
        }
        Some(Search::Phone(phone_readings(term, &digits, region)))
    }
}

/// The ways `term` (whose digits are `digits`) can be part of a number:
/// with `+`, the start of an international number; without, the start of a
/// national number of `region` (its trunk prefix dropped: `(020) 7946` in
/// `GB` is `+44207946…`), or the whole number if it is one, and, from
/// [`MIN_SUFFIX_DIGITS`] digits on, the end of any number (`555-0196`,
/// `0196`).
fn phone_readings(term: &str, digits: &str, region: &str) -> Vec<PhoneReading> {
    let mut readings = Vec::new();
    let mut add = |r: PhoneReading| {
        if !readings.contains(&r) {
            readings.push(r);
        }
    };
    if term.starts_with('+') {
        add(PhoneReading::Prefix(format!("+{digits}")));
    } else {
        match national_rules(region) {
            Some((code, trunk)) => {
                let national = trunk
                    .as_deref()
                    .and_then(|t| digits.strip_prefix(t))
                    .unwrap_or(digits);
                if !national.is_empty() {
                    add(PhoneReading::Prefix(format!("+{code}{national}")));
                }
                // A whole number libphonenumber reads differently (an
                // international dialling prefix, `011 44 …`).
                if let Ok(number) = PhoneNumber::parse(term, region) {
                    add(PhoneReading::Prefix(number.into_inner()));
                }
            }
            // No region to read it in: an international number without
            // its `+`.
            None => add(PhoneReading::Prefix(format!("+{digits}"))),
        }
    }
    // A `+` says the number starts here; without one it may be its end.
    if !term.starts_with('+') && digits.len() >= MIN_SUFFIX_DIGITS {
        add(PhoneReading::Suffix(digits.to_string()));
    }
    readings
}

#[cfg(test)]
mod tests {
    use super::PhoneReading::{Prefix, Suffix};
    use super::*;

    fn phone(term: &str, region: &str) -> Vec<PhoneReading> {
        match Search::parse(term, region) {
            Some(Search::Phone(r)) => r,
            other => panic!("{term} is not a phone search: {other:?}"),
        }
    }

    #[test]
    fn numbers_are_read_as_people_write_them() {
        let full = vec![Prefix("+12125550196".into()), Suffix("2125550196".into())];
        assert_eq!(phone("212 555 0196", "US"), full);
        assert_eq!(phone("(212) 555-0196", "US"), full);
        assert_eq!(
            phone("1-212-555-0196", "US"),
            vec![Prefix("+12125550196".into()), Suffix("12125550196".into())]
        );
        assert_eq!(
            phone("555-0196", "US"),
            vec![Prefix("+15550196".into()), Suffix("5550196".into())]
        );
        assert_eq!(
            phone("0196", "US"),
            vec![Prefix("+10196".into()), Suffix("0196".into())]
        );
        assert_eq!(phone("212", "US"), vec![Prefix("+1212".into())]);
        assert_eq!(phone("+1 212 555", "US"), vec![Prefix("+1212555".into())]);
        assert_eq!(
            phone("020 7946", "GB"),
            vec![Prefix("+44207946".into()), Suffix("0207946".into())]
        );
        assert_eq!(
            phone("4155", ""),
            vec![Prefix("+4155".into()), Suffix("4155".into())]
        );
    }

    #[test]
    fn other_searches_are_words() {
        assert_eq!(
            Search::parse("  Brown  Aaliyah ", "US"),
            Some(Search::Text {
                words: vec!["brown".into(), "aaliyah".into()],
                whole: "brown  aaliyah".into()
            })
        );
        assert_eq!(Search::parse("   ", "US"), None);
        assert!(matches!(
            Search::parse("@example.com", "US"),
            Some(Search::Text { .. })
        ));
    }
}
