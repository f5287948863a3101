//! How the contact page's DND switches read: what each does and the state
//! in words, the all-channels switch included.

use crate::domain::Channel;

/// What a channel's switch does: "Block SMS", "Block email".
pub fn switch_label(channel: Channel) -> String {
    match channel {
        Channel::Email => "Block email".to_string(),
        Channel::Call => "Block calls".to_string(),
        Channel::Sms | Channel::Whatsapp | Channel::Facebook | Channel::Gmb => {
            format!("Block {}", channel.label())
        }
    }
}

/// A channel's state in words. Its own DND (`own`) and the all-channels
/// switch (`all`) both block it, and the words say which: the channel's own
/// DND decides once the all-channels switch is off.
pub fn channel_state(own: bool, all: bool) -> &'static str {
    match (own, all) {
        (false, false) => "Allowed",
        (true, false) => "Blocked",
        (false, true) => "Blocked (All channels)",
        (true, true) => "Blocked (its own DND and All channels)",
    }
}

/// Why a channel's switch is locked while the all-channels switch is on,
/// and what the channel's own DND (`own`) does once that is off.
pub fn locked_note(channel: Channel, own: bool) -> String {
    let label = channel.label();
    let is = if channel == Channel::Call {
        "are"
    } else {
        "is"
    };
    if own {
        format!(
            "Blocked by All channels. Its own DND is on too, so {label} {is} still blocked \
             when All channels is turned off."
        )
    } else {
        format!(
            "Blocked by All channels. Its own DND is off, so {label} {is} allowed again when \
             All channels is turned off."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_say_what_they_do() {
        assert_eq!(switch_label(Channel::Sms), "Block SMS");
        assert_eq!(switch_label(Channel::Email), "Block email");
        assert_eq!(switch_label(Channel::Call), "Block calls");
        assert_eq!(switch_label(Channel::Whatsapp), "Block WhatsApp");
    }

    #[test]
    fn the_state_says_which_switch_blocks() {
        assert_eq!(channel_state(false, false), "Allowed");
        assert_eq!(channel_state(true, false), "Blocked");
        assert_eq!(channel_state(false, true), "Blocked (All channels)");
        assert_eq!(
            channel_state(true, true),
            "Blocked (its own DND and All channels)"
        );
        assert!(locked_note(Channel::Sms, false).contains("SMS is allowed again"));
        assert!(locked_note(Channel::Sms, true).contains("SMS is still blocked"));
        assert!(locked_note(Channel::Call, false).contains("Calls are allowed again"));
    }
}
