//! The reasons a channel can be blocked, as in DESIGN.md's table: what each
//! is, its kind, on which channels it can stand, and who may set or lift it.

use std::fmt;
use std::str::FromStr;

use crate::domain::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Temporary,
    Permanent,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Temporary => "temporary",
            Kind::Permanent => "permanent",
        }
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "temporary" => Ok(Kind::Temporary),
            "permanent" => Ok(Kind::Permanent),
            _ => Err(format!("unknown kind \"{s}\"")),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acts on a contact's DND. The rules look only at the kind; the id and
/// label are kept for the history ("by ana@example.com", "API key Zapier").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorKind {
    LocationUser,
    AgencyUser,
    /// Support staff approving opt-in evidence (the only way they act).
    Support,
    /// The automation API, through a location's API key.
    Api,
    /// The contact themselves: an opt-out or opt-in keyword, a resume.
    Contact,
    /// A provider event: a carrier code, a bounce, a send error.
    Provider,
}

impl ActorKind {
    pub const ALL: [ActorKind; 6] = [
        ActorKind::LocationUser,
        ActorKind::AgencyUser,
        ActorKind::Support,
        ActorKind::Api,
        ActorKind::Contact,
        ActorKind::Provider,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::LocationUser => "location_user",
            ActorKind::AgencyUser => "agency_user",
            ActorKind::Support => "support",
            ActorKind::Api => "api",
            ActorKind::Contact => "contact",
            ActorKind::Provider => "provider",
        }
    }

    /// Location and agency users share every DND right.
    fn is_business_user(self) -> bool {
        matches!(self, ActorKind::LocationUser | ActorKind::AgencyUser)
    }

    /// May turn the all-channels switch on and off.
    pub fn may_switch_all(self) -> bool {
        self.is_business_user() || self == ActorKind::Api
    }
}

impl FromStr for ActorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorKind::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown actor \"{s}\""))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Manual,
    SmsOptOut,
    CarrierBlocked,
    SmsUnsubscribed,
    CarrierUnreachable,
    NumberUnknown,
    NotMobile,
    EmailBounced,
    EmailUnsubscribed,
    EmailSpamComplaint,
    ChannelOptOut,
    /// An address on a suppression list a user imported: an opt-out that
    /// another system recorded.
    ImportedOptOut,
}

const SMS: &[Channel] = &[Channel::Sms];
const EMAIL: &[Channel] = &[Channel::Email];
const MESSENGERS: &[Channel] = &[Channel::Facebook, Channel::Whatsapp];
const SUPPRESSION_LISTS: &[Channel] = &[Channel::Sms, Channel::Email, Channel::Whatsapp];

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Manual,
        Reason::SmsOptOut,
        Reason::CarrierBlocked,
        Reason::SmsUnsubscribed,
        Reason::CarrierUnreachable,
        Reason::NumberUnknown,
        Reason::NotMobile,
        Reason::EmailBounced,
        Reason::EmailUnsubscribed,
        Reason::EmailSpamComplaint,
        Reason::ChannelOptOut,
        Reason::ImportedOptOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::SmsOptOut => "sms_opt_out",
            Reason::CarrierBlocked => "carrier_blocked",
            Reason::SmsUnsubscribed => "sms_unsubscribed",
            Reason::CarrierUnreachable => "carrier_unreachable",
            Reason::NumberUnknown => "number_unknown",
            Reason::NotMobile => "not_mobile",
            Reason::EmailBounced => "email_bounced",
            Reason::EmailUnsubscribed => "email_unsubscribed",
            Reason::EmailSpamComplaint => "email_spam_complaint",
            Reason::ChannelOptOut => "channel_opt_out",
            Reason::ImportedOptOut => "imported_opt_out",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Reason::Manual
            | Reason::CarrierUnreachable
            | Reason::NumberUnknown
            | Reason::NotMobile
            | Reason::EmailBounced
            | Reason::EmailUnsubscribed => Kind::Temporary,
            Reason::SmsOptOut
            | Reason::CarrierBlocked
            | Reason::SmsUnsubscribed
            | Reason::EmailSpamComplaint
            | Reason::ChannelOptOut
            | Reason::ImportedOptOut => Kind::Permanent,
        }
    }

    /// The channels this reason can stand on.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Reason::Manual => &Channel::ALL,
            Reason::SmsOptOut
            | Reason::CarrierBlocked
            | Reason::SmsUnsubscribed
            | Reason::CarrierUnreachable
            | Reason::NumberUnknown
            | Reason::NotMobile => SMS,
            Reason::EmailBounced | Reason::EmailUnsubscribed | Reason::EmailSpamComplaint => EMAIL,
            Reason::ChannelOptOut => MESSENGERS,
            Reason::ImportedOptOut => SUPPRESSION_LISTS,
        }
    }

    /// A short label for pages.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Manual => "Turned on by hand",
            Reason::SmsOptOut => "Opted out by SMS",
            Reason::CarrierBlocked => "Carrier: does not want SMS",
            Reason::SmsUnsubscribed => "Unsubscribed from SMS",
            Reason::CarrierUnreachable => "Carrier: unreachable or filtered",
            Reason::NumberUnknown => "Number inactive or unknown",
            Reason::NotMobile => "Cannot receive SMS (landline)",
            Reason::EmailBounced => "Email bounced or suppressed",
            Reason::EmailUnsubscribed => "Unsubscribed from email",
            Reason::EmailSpamComplaint => "Marked an email as spam",
            Reason::ChannelOptOut => "Opted out on this channel",
            Reason::ImportedOptOut => "On an imported suppression list",
        }
    }

    /// What happened, as a sentence fragment ("the contact replied STOP").
    pub fn event(self) -> &'static str {
        match self {
            Reason::Manual => "a user or the automation API turned DND on",
            Reason::SmsOptOut => "the contact replied with an opt-out keyword (STOP)",
            Reason::CarrierBlocked => {
                "the carrier reported that the contact does not want SMS (Twilio 30004)"
            }
            Reason::SmsUnsubscribed => {
                "Twilio refused to send because the recipient unsubscribed (21610)"
            }
            Reason::CarrierUnreachable => {
                "the carrier reported the number unreachable or filtered (Twilio 30003)"
            }
            Reason::NumberUnknown => {
                "the carrier reported the number inactive or non-existent (Twilio 30005)"
            }
            Reason::NotMobile => {
                "the number cannot receive SMS, e.g. a landline (Twilio 30006/21614)"
            }
            Reason::EmailBounced => {
                "the email bounced permanently or is on the provider's suppression list"
            }
            Reason::EmailUnsubscribed => "the contact unsubscribed from email",
            Reason::EmailSpamComplaint => "the contact marked an email as spam",
            Reason::ChannelOptOut => "the contact opted out on this channel",
            Reason::ImportedOptOut => {
                "the address is on a suppression list imported from another system"
            }
        }
    }

    /// Who may lift it, in words.
    pub fn lift_rule(self) -> &'static str {
        match self {
            Reason::Manual => "a location or agency user, or the automation API, can turn it off",
            Reason::SmsOptOut | Reason::CarrierBlocked | Reason::SmsUnsubscribed => {
                "only a START reply from the contact or support can lift it"
            }
            Reason::CarrierUnreachable | Reason::NumberUnknown | Reason::NotMobile => {
                "a location or agency user can turn it off from the contact record"
            }
            Reason::EmailBounced | Reason::EmailUnsubscribed => {
                "a location or agency user can turn it off after removing the address from the \
                 provider's suppression list and re-validating it"
            }
            Reason::EmailSpamComplaint => {
                "never from the contact record: only support, after approving evidence of a fresh opt-in"
            }
            Reason::ChannelOptOut => {
                "only the contact's own resume on this channel or support can lift it"
            }
            Reason::ImportedOptOut => {
                "only the contact's own opt-in on this channel or support can lift it"
            }
        }
    }

    /// Who can lift it, in a few words for the marker next to the reason
    /// (pages say this instead of the kind: "temporary" read as if it
    /// expired, and none of them does). Not "staff": support are staff
    /// too, of the platform.
    pub fn who_lifts(self) -> &'static str {
        match self {
            Reason::Manual => "location or agency users, or the API, can lift",
            Reason::CarrierUnreachable | Reason::NumberUnknown | Reason::NotMobile => {
                "location or agency users can lift"
            }
            Reason::EmailBounced | Reason::EmailUnsubscribed => {
                "location or agency users can lift after clearing the suppression list"
            }
            Reason::SmsOptOut | Reason::CarrierBlocked | Reason::SmsUnsubscribed => {
                "only the contact (START) or support can lift"
            }
            Reason::EmailSpamComplaint => "only support can lift",
            Reason::ChannelOptOut => "only the contact (resume) or support can lift",
            Reason::ImportedOptOut => "only the contact's opt-in or support can lift",
        }
    }

    /// What a user who cannot lift it can do about it.
    pub fn next_step(self) -> &'static str {
        match self {
            Reason::Manual => "Turn it off here if the contact asked to hear from you again.",
            Reason::SmsOptOut | Reason::CarrierBlocked | Reason::SmsUnsubscribed => {
                "Ask support to review opt-in evidence, or wait for the contact to reply START."
            }
            Reason::CarrierUnreachable | Reason::NumberUnknown | Reason::NotMobile => {
                "Check the number with the contact, then turn it off here."
            }
            Reason::EmailBounced | Reason::EmailUnsubscribed => {
                "Remove the address from the provider's suppression list and re-validate it, then turn it off here."
            }
            Reason::EmailSpamComplaint => "Ask support to review evidence of a fresh opt-in.",
            Reason::ChannelOptOut => {
                "Ask support to review opt-in evidence, or wait for the contact to resume."
            }
            Reason::ImportedOptOut => {
                "Ask support to review opt-in evidence, or wait for the contact to opt in."
            }
        }
    }

    /// Who may set it.
    pub fn may_set(self, actor: ActorKind) -> bool {
        match self {
            Reason::Manual | Reason::ImportedOptOut => {
                actor.is_business_user() || actor == ActorKind::Api
            }
            _ => matches!(actor, ActorKind::Contact | ActorKind::Provider),
        }
    }

    /// Who may lift it (the email confirmation is checked separately).
    pub fn may_lift(self, actor: ActorKind) -> bool {
        self.lifted_by().contains(&actor)
    }

    /// The actors that may lift it, in the order the API lists them.
    pub fn lifted_by(self) -> &'static [ActorKind] {
        use ActorKind::*;
        match self {
            Reason::Manual => &[LocationUser, AgencyUser, Api],
            Reason::SmsOptOut | Reason::CarrierBlocked | Reason::SmsUnsubscribed => {
                &[Contact, Support]
            }
            Reason::CarrierUnreachable
            | Reason::NumberUnknown
            | Reason::NotMobile
            | Reason::EmailBounced
            | Reason::EmailUnsubscribed => &[LocationUser, AgencyUser],
            Reason::EmailSpamComplaint => &[Support],
            Reason::ChannelOptOut | Reason::ImportedOptOut => &[Contact, Support],
        }
    }

    /// Kept against the address it concerns (the person's number, email or
    /// id) rather than on the contact row: every reason that comes from the
    /// person's own act or a provider. `manual` stays on the contact.
    pub fn is_address_keyed(self) -> bool {
        self != Reason::Manual
    }

    /// Lifting it needs the user to confirm the address was removed from the
    /// provider's suppression list and re-validated.
    pub fn needs_suppression_confirmation(self) -> bool {
        matches!(self, Reason::EmailBounced | Reason::EmailUnsubscribed)
    }

    /// What the contact's own opt-in on the channel (START, a resume)
    /// lifts: the reasons the contact may lift. On SMS these are the
    /// permanent ones; temporary carrier reasons stay.
    pub fn lifted_by_opt_in(self) -> bool {
        self.may_lift(ActorKind::Contact)
    }

    /// What support's approval of opt-in evidence lifts: the permanent
    /// reasons (all of which support may lift). Temporary reasons and
    /// `manual` stay; users lift those themselves.
    pub fn lifted_by_approval(self) -> bool {
        self.kind() == Kind::Permanent && self.may_lift(ActorKind::Support)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown reason \"{s}\""))
    }
}
