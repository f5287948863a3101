//! Provider codes and events that mean DND, and those that are only
//! recorded.

use super::Reason;

/// Twilio error codes (status callbacks and send API errors).
pub fn twilio_error_reason(code: u32) -> Option<Reason> {
    match code {
        30003 => Some(Reason::CarrierUnreachable),
        30004 => Some(Reason::CarrierBlocked),
        30005 => Some(Reason::NumberUnknown),
        30006 | 21614 => Some(Reason::NotMobile),
        21610 => Some(Reason::SmsUnsubscribed),
        // 30007 (filtered: a content problem), 30008 (unknown) and the rest
        // say nothing about the contact's wishes: recorded only.
        _ => None,
    }
}

/// WhatsApp send errors: 63014 (the user blocked the business) and 131050
/// (the user stopped marketing messages).
pub fn whatsapp_error_reason(code: u32) -> Option<Reason> {
    match code {
        63014 | 131050 => Some(Reason::ChannelOptOut),
        _ => None,
    }
}

/// The parts of a Mailgun event that decide DND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailgunEvent<'a> {
    pub event: &'a str,
    pub severity: Option<&'a str>,
    pub reason: Option<&'a str>,
}

pub fn mailgun_event_reason(e: MailgunEvent<'_>) -> Option<Reason> {
    match e.event {
        "failed" if e.severity == Some("permanent") => match e.reason {
            Some(
                "bounce"
                | "generic"
                | "suppress-bounce"
                | "suppress-unsubscribe"
                | "suppress-complaint",
            ) => Some(Reason::EmailBounced),
            _ => None,
        },
        "unsubscribed" => Some(Reason::EmailUnsubscribed),
        "complained" => Some(Reason::EmailSpamComplaint),
        // Temporary failures, deliveries, opens, clicks: recorded only.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_codes_map_as_the_design_says() {
        assert_eq!(twilio_error_reason(30003), Some(Reason::CarrierUnreachable));
        assert_eq!(twilio_error_reason(30004), Some(Reason::CarrierBlocked));
        assert_eq!(twilio_error_reason(30005), Some(Reason::NumberUnknown));
        assert_eq!(twilio_error_reason(30006), Some(Reason::NotMobile));
        assert_eq!(twilio_error_reason(21614), Some(Reason::NotMobile));
        assert_eq!(twilio_error_reason(21610), Some(Reason::SmsUnsubscribed));
        for recorded_only in [30007, 30008, 30001, 0, 11200] {
            assert_eq!(twilio_error_reason(recorded_only), None, "{recorded_only}");
        }
    }

    #[test]
    fn whatsapp_codes() {
        assert_eq!(whatsapp_error_reason(63014), Some(Reason::ChannelOptOut));
        assert_eq!(whatsapp_error_reason(131050), Some(Reason::ChannelOptOut));
        assert_eq!(whatsapp_error_reason(131026), None);
    }

    #[test]
    fn mailgun_permanent_failures_with_listed_reasons_bounce() {
        for reason in [
            "bounce",
            "generic",
            "suppress-bounce",
            "suppress-unsubscribe",
            "suppress-complaint",
        ] {
            let e = MailgunEvent {
                event: "failed",
                severity: Some("permanent"),
                reason: Some(reason),
            };
            assert_eq!(
                mailgun_event_reason(e),
                Some(Reason::EmailBounced),
                "{reason}"
            );
        }
        let other = MailgunEvent {
            event: "failed",
            severity: Some("permanent"),
            reason: Some("old"),
        };
        assert_eq!(mailgun_event_reason(other), None);
    }

    #[test]
    fn mailgun_temporary_failures_and_other_events_are_recorded_only() {
        let temporary = MailgunEvent {
            event: "failed",
            severity: Some("temporary"),
            reason: Some("bounce"),
        };
        assert_eq!(mailgun_event_reason(temporary), None);
        for event in ["delivered", "opened", "clicked", "accepted"] {
            let e = MailgunEvent {
                event,
                severity: None,
                reason: None,
            };
            assert_eq!(mailgun_event_reason(e), None, "{event}");
        }
        let unsub = MailgunEvent {
            event: "unsubscribed",
            severity: None,
            reason: None,
        };
        assert_eq!(mailgun_event_reason(unsub), Some(Reason::EmailUnsubscribed));
        let spam = MailgunEvent {
            event: "complained",
            severity: None,
            reason: None,
        };
        assert_eq!(mailgun_event_reason(spam), Some(Reason::EmailSpamComplaint));
    }
}
