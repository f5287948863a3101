use std::fmt;
use std::str::FromStr;

/// A way of reaching a contact; DND is kept per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Call,
    Email,
    /// Facebook Messenger.
    Facebook,
    /// Google Business Messages: shut down by Google in 2024, kept as a
    /// legacy channel so the wishes recorded on it are not lost.
    Gmb,
    Whatsapp,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Sms,
        Channel::Call,
        Channel::Email,
        Channel::Facebook,
        Channel::Gmb,
        Channel::Whatsapp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Call => "call",
            Channel::Email => "email",
            Channel::Facebook => "facebook",
            Channel::Gmb => "gmb",
            Channel::Whatsapp => "whatsapp",
        }
    }

    /// The bit of this channel in a contact's stored DND mask (the contact
    /// list filters on it). The database's `dnd_channel_bit()` must agree:
    /// a test compares them.
    pub fn bit(self) -> i16 {
        match self {
            Channel::Sms => 1,
            Channel::Call => 2,
            Channel::Email => 4,
            Channel::Facebook => 8,
            Channel::Gmb => 16,
            Channel::Whatsapp => 32,
        }
    }

    /// The channels whose bits are set in a mask, in display order.
    pub fn in_mask(mask: i16) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| mask & c.bit() != 0)
            .collect()
    }

    /// The mask with every channel's bit.
    pub const FULL_MASK: i16 = 63;

    /// How every page names the channel: tables, markers, headings,
    /// notices. (`as_str` is for URLs, forms, CSV and the API.)
    pub fn label(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Call => "Calls",
            Channel::Email => "Email",
            Channel::Facebook => "Facebook Messenger",
            Channel::Gmb => "Google Business Messages",
            Channel::Whatsapp => "WhatsApp",
        }
    }
}

/// The label of a channel stored as text (a message's channel): its
/// [`Channel::label`], or the text itself when this binary does not know it.
pub fn channel_label(stored: &str) -> &str {
    stored.parse::<Channel>().map_or(stored, |c| c.label())
}

/// A provider an integration goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Twilio,
    Mailgun,
    Meta,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Twilio, Provider::Mailgun, Provider::Meta];

    /// As stored in `integrations.provider` and used in webhook URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Mailgun => "mailgun",
            Provider::Meta => "meta",
        }
    }

    /// How pages name it.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Twilio => "Twilio",
            Provider::Mailgun => "Mailgun",
            Provider::Meta => "Meta",
        }
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provider \"{s}\": use twilio, mailgun or meta"))
    }
}

/// The label of a provider stored as text (`integrations.provider`): its
/// [`Provider::label`], or the text itself when this binary does not know it.
pub fn provider_label(stored: &str) -> &str {
    stored.parse::<Provider>().map_or(stored, |p| p.label())
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!("unknown channel \"{s}\": use sms, call, email, facebook, gmb or whatsapp")
            })
    }
}

/// Whether a location's integration for a channel works right now. Only
/// what the contact page offers depends on it, never the DND state itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationStatus {
    Connected,
    Disconnected,
    Error,
}

impl IntegrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Connected => "connected",
            IntegrationStatus::Disconnected => "disconnected",
            IntegrationStatus::Error => "error",
        }
    }
}

impl FromStr for IntegrationStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "connected" => Ok(IntegrationStatus::Connected),
            "disconnected" => Ok(IntegrationStatus::Disconnected),
            "error" => Ok(IntegrationStatus::Error),
            _ => Err(format!("unknown integration status \"{s}\"")),
        }
    }
}

/// How an integration hands messages over. No default and no fallback: a
/// transport this binary does not know fails the message, it never goes
/// out some other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Recorded as sent without leaving the machine (the demo's default).
    Log,
    Twilio,
    Mailgun,
    /// Meta's Graph API: WhatsApp Cloud API and Messenger Send API.
    Meta,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Log => "log",
            TransportKind::Twilio => "twilio",
            TransportKind::Mailgun => "mailgun",
            TransportKind::Meta => "meta",
        }
    }
}

impl FromStr for TransportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "log" => Ok(TransportKind::Log),
            "twilio" => Ok(TransportKind::Twilio),
            "mailgun" => Ok(TransportKind::Mailgun),
            "meta" => Ok(TransportKind::Meta),
            _ => Err(format!(
                "unknown transport \"{s}\": use log, twilio, mailgun or meta"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct_and_fill_the_full_mask() {
        let all = Channel::ALL.iter().fold(0, |m, c| {
            assert_eq!(m & c.bit(), 0, "{c}");
            m | c.bit()
        });
        assert_eq!(all, Channel::FULL_MASK);
        assert_eq!(
            Channel::in_mask(1 | 32),
            vec![Channel::Sms, Channel::Whatsapp]
        );
    }

    #[test]
    fn every_channel_round_trips() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert!("telegram".parse::<Channel>().is_err());
    }

    #[test]
    fn every_channel_and_provider_has_one_label() {
        let labels: Vec<&str> = Channel::ALL.into_iter().map(Channel::label).collect();
        assert_eq!(
            labels,
            [
                "SMS",
                "Calls",
                "Email",
                "Facebook Messenger",
                "Google Business Messages",
                "WhatsApp"
            ]
        );
        assert_eq!(channel_label("sms"), "SMS");
        assert_eq!(channel_label("gmb"), "Google Business Messages");
        assert_eq!(channel_label("telegram"), "telegram");
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
        }
        assert_eq!(provider_label("twilio"), "Twilio");
        assert_eq!(provider_label("mailgun"), "Mailgun");
        assert_eq!(provider_label("meta"), "Meta");
        assert_eq!(provider_label("log"), "log");
    }

    #[test]
    fn integration_status_round_trips() {
        for s in [
            IntegrationStatus::Connected,
            IntegrationStatus::Disconnected,
            IntegrationStatus::Error,
        ] {
            assert_eq!(s.as_str().parse::<IntegrationStatus>().unwrap(), s);
        }
    }
}
