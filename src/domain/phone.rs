use std::fmt;

use super::InvalidField;

/// A phone number in E.164: `+`, a country code that does not start with 0,
/// and at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts the ways people write international numbers (`+1 (415)
    /// 555-0100`, `+44 20 7946 0958`, a leading `00` for `+`) and keeps only
    /// `+` and the digits. A number without its country code is refused
    /// rather than guessed, since a wrong guess would put DND on a stranger.
    pub fn parse(input: &str) -> Result<Self, InvalidField> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(InvalidField::new("phone", "is empty"));
        }
        let (has_plus, rest) = if let Some(rest) = trimmed.strip_prefix('+') {
            (true, rest)
        } else if let Some(rest) = trimmed.strip_prefix("00") {
            (true, rest)
        } else {
            (false, trimmed)
        };
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(InvalidField::new(
                        "phone",
                        format!("\"{trimmed}\" contains '{c}'; use digits, spaces, dashes or parentheses only"),
                    ))
                }
            }
        }
        if !has_plus {
            return Err(InvalidField::new(
                "phone",
                format!("\"{trimmed}\" has no country code; write it in international form, e.g. +14155550100"),
            ));
        }
        if digits.starts_with('0') {
            return Err(InvalidField::new(
                "phone",
                format!("\"{trimmed}\": a country code never starts with 0"),
            ));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(InvalidField::new(
                "phone",
                format!(
                    "\"{trimmed}\" has {} digits; an international number has 8 to 15",
                    digits.len()
                ),
            ));
        }
        Ok(Self(format!("+{digits}")))
    }

    /// Parses a number as a carrier or provider reports it, with
    /// libphonenumber's rules: international form, or national form in the
    /// location's region (`US`, `GB`, ...). The number must be a possible
    /// number for its country; the result is E.164.
    pub fn parse_in_region(input: &str, region: &str) -> Result<Self, InvalidField> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(InvalidField::new("phone", "is empty"));
        }
        // A number in international form is parsed without a region (the
        // crate would otherwise apply the region's national prefix rules).
        let region_id = if trimmed.starts_with('+') {
            None
        } else {
            region.parse::<phonenumber::country::Id>().ok()
        };
        let parsed = phonenumber::parse(region_id, trimmed).map_err(|e| {
            InvalidField::new(
                "phone",
                format!("\"{trimmed}\" is not a phone number ({e})"),
            )
        })?;
        if !phonenumber::is_viable(trimmed) || !parsed.is_valid() && !possible(&parsed) {
            return Err(InvalidField::new(
                "phone",
                format!("\"{trimmed}\" is not a possible number in its country"),
            ));
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        // Same shape check as `parse`, so both constructors agree.
        Self::parse(&e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Length-plausible for its country (fictional 555-01xx numbers are not
/// "valid" to libphonenumber, but they are real-looking test numbers).
fn possible(number: &phonenumber::PhoneNumber) -> bool {
    let national = number.national().value().to_string();
    (4..=14).contains(&national.len())
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plus_and_digits() {
        let p = PhoneNumber::parse(" +1 (415) 555-0100 ").unwrap();
        assert_eq!(p.as_str(), "+14155550100");
        assert_eq!(
            PhoneNumber::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn double_zero_means_plus() {
        assert_eq!(
            PhoneNumber::parse("0049 30 901820").unwrap().as_str(),
            "+4930901820"
        );
    }

    #[test]
    fn refuses_numbers_without_country_code() {
        let err = PhoneNumber::parse("415-555-0100").unwrap_err();
        assert_eq!(err.field, "phone");
        assert!(err.message.contains("country code"), "{}", err.message);
    }

    #[test]
    fn refuses_letters_and_bad_lengths() {
        assert!(PhoneNumber::parse("+1 415 CALL NOW").is_err());
        assert!(PhoneNumber::parse("+1234567").is_err());
        assert!(PhoneNumber::parse("+1234567890123456").is_err());
        assert!(PhoneNumber::parse("+0123456789").is_err());
        assert!(PhoneNumber::parse("").is_err());
        assert!(PhoneNumber::parse("+").is_err());
    }

    #[test]
    fn national_numbers_use_the_location_region() {
        assert_eq!(
            PhoneNumber::parse_in_region("(415) 555-0100", "US")
                .unwrap()
                .as_str(),
            "+14155550100"
        );
        assert_eq!(
            PhoneNumber::parse_in_region("020 7946 0958", "GB")
                .unwrap()
                .as_str(),
            "+442079460958"
        );
        // International form wins over the region.
        assert_eq!(
            PhoneNumber::parse_in_region("+33 1 42 68 53 00", "US")
                .unwrap()
                .as_str(),
            "+33142685300"
        );
        assert_eq!(
            PhoneNumber::parse_in_region("+12125550100", "US")
                .unwrap()
                .as_str(),
            "+12125550100"
        );
        assert!(PhoneNumber::parse_in_region("hello", "US").is_err());
        assert!(PhoneNumber::parse_in_region("12", "US").is_err());
        assert!(PhoneNumber::parse_in_region("", "US").is_err());
    }

    #[test]
    fn boundary_lengths() {
        assert!(PhoneNumber::parse("+12345678").is_ok());
        assert!(PhoneNumber::parse("+123456789012345").is_ok());
    }
}
