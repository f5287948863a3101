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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_round_trips() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert!("telegram".parse::<Channel>().is_err());
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
