//! The addresses a contact is reached at, one per channel, and the
//! canonical form of each: consent is kept against these strings, so a
//! number or an id must be spelled one way whatever path it came in by.

use super::{Channel, InvalidField, PhoneNumber};

/// A contact's addresses, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Addresses<'a> {
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub facebook_id: Option<&'a str>,
    pub gmb_id: Option<&'a str>,
    pub whatsapp_id: Option<&'a str>,
}

impl<'a> Addresses<'a> {
    /// Where a message on this channel goes: calls and SMS to the phone,
    /// WhatsApp to the WhatsApp id, or to the phone when there is none (a
    /// WhatsApp id is a number in E.164, so both are one kind of string).
    /// The database's `dnd_contact_address()` must agree: a test compares
    /// them.
    pub fn on(&self, channel: Channel) -> Option<&'a str> {
        match channel {
            Channel::Sms | Channel::Call => self.phone,
            Channel::Email => self.email,
            Channel::Facebook => self.facebook_id,
            Channel::Gmb => self.gmb_id,
            Channel::Whatsapp => self.whatsapp_id.or(self.phone),
        }
    }
}

/// An address as a log line may show it: enough to tell two apart, not
/// enough to contact the person (`+1212•••••00`, `a•••@example.com`).
pub fn masked(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    if let Some(at) = address.find('@') {
        let first: String = address.chars().take(1).collect();
        return format!("{first}•••{}", &address[at..]);
    }
    if chars.len() <= 6 {
        return "•••".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "•".repeat(chars.len() - 6))
}

/// The spellings under which consent about an address stored on a channel
/// may be kept: the address itself and, for a number stored before every
/// path used one parser (`+4402079460958`), the number as providers send it
/// (`+442079460958`). The gate reads both, so a message addressed long ago
/// still meets the person's STOP.
pub fn kept_spellings(channel: Channel, address: &str) -> Vec<String> {
    let mut spellings = vec![address.to_string()];
    let canonical = canonical_spelling(channel, address);
    if canonical != address {
        spellings.push(canonical);
    }
    spellings
}

/// Where consent about an address is kept: for a number, as providers send
/// it (a message queued long ago may carry an old spelling, and what its
/// send error says about the person must reach their number); any other
/// address as it is.
pub fn canonical_spelling(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Sms | Channel::Call | Channel::Whatsapp => {
            PhoneNumber::parse_international(address)
                .map(PhoneNumber::into_inner)
                .unwrap_or_else(|_| address.to_string())
        }
        _ => address.to_string(),
    }
}

/// A WhatsApp id: Meta sends the number without its `+` (`16505551234`),
/// people write it as a phone number. Stored in E.164, like phones.
pub fn whatsapp_id(input: &str, region: &str) -> Result<String, InvalidField> {
    let trimmed = input.trim();
    let parsed = if trimmed.chars().all(|c| c.is_ascii_digit()) {
        PhoneNumber::parse_international(trimmed)
    } else {
        PhoneNumber::parse(trimmed, region)
    };
    parsed.map(PhoneNumber::into_inner).map_err(|e| {
        InvalidField::new(
            "whatsapp_id",
            format!("is not a WhatsApp number: {}", e.message),
        )
    })
}

/// A page-scoped Messenger id or a Google Business Messages id: opaque,
/// but one spelling (no surrounding spaces, no inner spaces or control
/// characters, at most 200 characters).
pub fn platform_id(field: &'static str, input: &str) -> Result<String, InvalidField> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(InvalidField::new(field, "is empty"));
    }
    if trimmed.chars().count() > 200 {
        return Err(InvalidField::new(field, "is longer than 200 characters"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidField::new(
            field,
            "contains a space or a control character",
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_addresses_are_masked() {
        assert_eq!(masked("+12125550100"), "+121••••••00");
        assert_eq!(masked("ana.lopez@example.com"), "a•••@example.com");
        assert_eq!(masked("12345"), "•••");
        assert!(!masked("7001234567890123").contains("12345678"));
    }

    #[test]
    fn whatsapp_falls_back_to_the_phone() {
        let a = Addresses {
            phone: Some("+12125550100"),
            ..Default::default()
        };
        assert_eq!(a.on(Channel::Whatsapp), Some("+12125550100"));
        let b = Addresses {
            whatsapp_id: Some("+442079460958"),
            ..a
        };
        assert_eq!(b.on(Channel::Whatsapp), Some("+442079460958"));
        assert_eq!(b.on(Channel::Sms), Some("+12125550100"));
        assert_eq!(b.on(Channel::Email), None);
    }

    #[test]
    fn a_legacy_number_is_also_read_as_providers_spell_it() {
        assert_eq!(
            kept_spellings(Channel::Sms, "+4402079460958"),
            vec!["+4402079460958", "+442079460958"]
        );
        assert_eq!(
            kept_spellings(Channel::Whatsapp, "+442079460958"),
            vec!["+442079460958"]
        );
        // Ids on other channels are opaque, even when they are digits.
        assert_eq!(
            kept_spellings(Channel::Facebook, "4402079460958"),
            vec!["4402079460958"]
        );
    }

    #[test]
    fn whatsapp_ids_are_e164() {
        assert_eq!(whatsapp_id("16505551234", "US").unwrap(), "+16505551234");
        assert_eq!(
            whatsapp_id("+1 650 555 1234", "GB").unwrap(),
            "+16505551234"
        );
        assert_eq!(whatsapp_id("(650) 555-1234", "US").unwrap(), "+16505551234");
        assert_eq!(whatsapp_id("wa-me", "US").unwrap_err().field, "whatsapp_id");
    }

    #[test]
    fn platform_ids_have_one_spelling() {
        assert_eq!(platform_id("facebook_id", " PSID-42 ").unwrap(), "PSID-42");
        assert!(platform_id("facebook_id", "PSID 42").is_err());
        assert!(platform_id("facebook_id", "").is_err());
        assert!(platform_id("gmb_id", &"x".repeat(201)).is_err());
    }
}
