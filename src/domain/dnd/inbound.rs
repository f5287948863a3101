//! Inbound DND (DESIGN "Inbound DND"): per contact, for SMS and calls, and
//! apart from outbound DND. Messages from the contact are kept but raise
//! nothing; calls from them are rejected. It never blocks a send.

use chrono::{DateTime, Utc};

use super::{Action, Actor, HistoryEntry, Refusal};
use crate::domain::Channel;

/// A contact's inbound DND switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundDnd {
    pub sms: bool,
    pub calls: bool,
}

impl InboundDnd {
    /// Turns one switch (SMS or calls) on or off: the new switches, and the
    /// history entry when it changed. Only location and agency users and
    /// the automation API change it.
    pub fn switch(
        self,
        channel: Channel,
        on: bool,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<(InboundDnd, Option<HistoryEntry>), Refusal> {
        if !actor.kind.may_switch_all() {
            return Err(Refusal::new(
                "Only location and agency users and the automation API change inbound DND.",
            ));
        }
        let mut next = self;
        let slot = match channel {
            Channel::Sms => &mut next.sms,
            Channel::Call => &mut next.calls,
            other => {
                return Err(Refusal::new(format!(
                    "Inbound DND is for SMS and calls, not {}.",
                    other.label()
                )))
            }
        };
        if *slot == on {
            return Ok((self, None));
        }
        *slot = on;
        Ok((
            next,
            Some(HistoryEntry {
                channel: Some(channel),
                reason: None,
                action: if on {
                    Action::InboundOn
                } else {
                    Action::InboundOff
                },
                actor: actor.clone(),
                at,
                address: None,
                source: None,
                event_at: None,
                detail: None,
            }),
        ))
    }
}

/// What Twilio is told to do with a call: reject it when the caller has
/// inbound call DND, else forward it to the location's number, else say
/// the location's message.
pub fn voice_twiml(reject: bool, forward_to: Option<&str>, message: &str) -> String {
    let inner = if reject {
        "<Reject/>".to_string()
    } else if let Some(number) = forward_to {
        format!("<Dial>{}</Dial>", xml_escape(number))
    } else {
        format!("<Say>{}</Say>", xml_escape(message))
    };
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{inner}</Response>")
}

/// Text inside an XML element or attribute. Characters XML 1.0 does not
/// allow (control characters other than tab and line ends, and the
/// non-characters U+FFFE and U+FFFF) are dropped: one would make the whole
/// document unreadable.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::dnd::ActorKind;

    fn user() -> Actor {
        Actor::new(ActorKind::LocationUser, Some(1), "ana@example.com")
    }

    #[test]
    fn switching_records_a_history_entry_only_when_it_changes() {
        let (on, entry) = InboundDnd::default()
            .switch(Channel::Call, true, &user(), Utc::now())
            .unwrap();
        assert!(on.calls && !on.sms);
        let entry = entry.unwrap();
        assert_eq!(entry.action, Action::InboundOn);
        assert_eq!(entry.channel, Some(Channel::Call));
        assert_eq!(entry.reason, None);
        let (same, none) = on.switch(Channel::Call, true, &user(), Utc::now()).unwrap();
        assert_eq!(same, on);
        assert!(none.is_none());
    }

    #[test]
    fn only_business_users_and_the_api_switch_it_and_only_for_sms_and_calls() {
        for kind in [ActorKind::Support, ActorKind::Contact, ActorKind::Provider] {
            let actor = Actor::new(kind, None, "x");
            assert!(InboundDnd::default()
                .switch(Channel::Sms, true, &actor, Utc::now())
                .is_err());
        }
        assert!(InboundDnd::default()
            .switch(Channel::Email, true, &user(), Utc::now())
            .is_err());
        let api = Actor::new(ActorKind::Api, Some(3), "API key x");
        assert!(InboundDnd::default()
            .switch(Channel::Sms, true, &api, Utc::now())
            .is_ok());
    }

    #[test]
    fn calls_are_rejected_forwarded_or_answered_with_the_message() {
        assert!(voice_twiml(true, Some("+12125550100"), "hi")
            .contains("<Response><Reject/></Response>"));
        assert!(
            voice_twiml(false, Some("+12125550100"), "hi").contains("<Dial>+12125550100</Dial>")
        );
        assert!(
            voice_twiml(false, None, "Tom & Jerry <3").contains("<Say>Tom &amp; Jerry &lt;3</Say>")
        );
    }
}
