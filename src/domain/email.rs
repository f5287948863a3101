use std::fmt;

use super::InvalidField;

/// An email address, trimmed and lower-cased so that one mailbox is one
/// contact (providers report addresses in whatever case they were sent to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, InvalidField> {
        let normalised = input.trim().to_lowercase();
        let invalid = |why: &str| InvalidField::new("email", format!("\"{}\" {why}", input.trim()));
        if normalised.is_empty() {
            return Err(InvalidField::new("email", "is empty"));
        }
        if normalised.len() > 254 {
            return Err(invalid("is longer than 254 characters"));
        }
        if normalised
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("contains a space"));
        }
        let Some((local, domain)) = normalised.rsplit_once('@') else {
            return Err(invalid("has no @"));
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(invalid("has no valid part before the @"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || l.contains(['<', '>', ',', ';', '(', ')', '[', ']', '"', '\\'])
            })
        {
            return Err(invalid(
                "has no valid domain after the @ (e.g. example.com)",
            ));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let e = EmailAddress::parse("  Ana.Lopez@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ana.lopez@example.com");
    }

    #[test]
    fn refuses_what_cannot_be_delivered() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana lopez@example.com",
            "ana@exa mple.com",
            "ana@.com",
            "ana@example..com",
            "a@b@c.com",
        ] {
            let err = EmailAddress::parse(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
    }

    #[test]
    fn accepts_plus_addressing_and_subdomains() {
        assert!(EmailAddress::parse("ana+dnd@mail.example.co.uk").is_ok());
    }
}
