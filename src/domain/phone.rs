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

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
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
    fn boundary_lengths() {
        assert!(PhoneNumber::parse("+12345678").is_ok());
        assert!(PhoneNumber::parse("+123456789012345").is_ok());
    }
}
