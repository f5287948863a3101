//! The outbound gate: may a message go to this contact on this channel?
//! "On" blocks every message, manual or automated; "Partial" blocks the
//! active channels only. Origin is part of the question because older
//! systems let manual messages through: this one never does.

use super::{DndState, Reason};
use crate::domain::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Sent by a person from the contact page.
    Manual,
    /// Sent by the automation API, a workflow or a bulk send.
    Automated,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Manual => "manual",
            Origin::Automated => "automated",
        }
    }
}

impl std::str::FromStr for Origin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manual" => Ok(Origin::Manual),
            "automated" => Ok(Origin::Automated),
            _ => Err(format!("unknown origin \"{s}\"")),
        }
    }
}

/// Why a message may not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Block {
    /// The contact's "All channels" switch.
    AllChannels,
    Reason(Reason),
}

impl Block {
    pub fn as_str(self) -> &'static str {
        match self {
            Block::AllChannels => "all_channels",
            Block::Reason(r) => r.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Block> {
        match s {
            "all_channels" => Some(Block::AllChannels),
            other => other.parse().ok().map(Block::Reason),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Every reason that blocks it, the switch first.
    Blocked(Vec<Block>),
    /// The contact's DND could not be read (a stored value this version
    /// does not know): the gate fails closed, and says why.
    Unreadable(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// The blocks as stored on a blocked message (empty otherwise).
    pub fn block_names(&self) -> Vec<String> {
        match self {
            Decision::Blocked(blocks) => blocks.iter().map(|b| b.as_str().to_string()).collect(),
            Decision::Allowed | Decision::Unreadable(_) => Vec::new(),
        }
    }

    /// The status a message decided this way is recorded with.
    pub fn message_status(&self) -> &'static str {
        match self {
            Decision::Allowed => "queued",
            Decision::Blocked(_) => "blocked",
            Decision::Unreadable(_) => "failed",
        }
    }
}

/// The gate's rule, the only copy of it: a message on a channel is blocked
/// by the all-channels switch and by every reason active on that channel,
/// the contact's own and its address's alike, whatever its origin ("On"
/// blocks manual messages too). The blocks come back in one order (the
/// switch first, then reasons in the order of [`Reason`]), duplicates
/// removed, so every path names them alike.
pub fn decide_blocks(
    all_channels: bool,
    reasons: impl IntoIterator<Item = Reason>,
    _origin: Origin,
) -> Decision {
    let mut blocks: Vec<Block> = Vec::new();
    if all_channels {
        blocks.push(Block::AllChannels);
    }
    blocks.extend(reasons.into_iter().map(Block::Reason));
    if blocks.is_empty() {
        Decision::Allowed
    } else {
        blocks.sort();
        blocks.dedup();
        Decision::Blocked(blocks)
    }
}

impl DndState {
    /// The decision for a contact whose whole state is loaded.
    pub fn decide(&self, channel: Channel, origin: Origin) -> Decision {
        decide_blocks(
            self.all,
            self.reasons(channel).iter().map(|a| a.reason),
            origin,
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::dnd::{Actor, ActorKind, Status};

    fn user() -> Actor {
        Actor::new(ActorKind::LocationUser, Some(1), "u")
    }

    /// A state of each status: off, partial (SMS and email), on by the
    /// switch, on by every channel.
    fn states() -> Vec<(Status, DndState)> {
        let off = DndState::default();
        let partial = off
            .set(
                Channel::Sms,
                Reason::Manual,
                &user(),
                Utc::now(),
                None,
                None,
            )
            .unwrap()
            .state
            .set(
                Channel::Email,
                Reason::Manual,
                &user(),
                Utc::now(),
                None,
                None,
            )
            .unwrap()
            .state;
        let switched = off.switch_all(true, &user(), Utc::now()).unwrap().state;
        let mut every = off.clone();
        for c in Channel::ALL {
            every = every
                .set(c, Reason::Manual, &user(), Utc::now(), None, None)
                .unwrap()
                .state;
        }
        vec![
            (Status::Off, off),
            (Status::Partial, partial),
            (Status::On, switched),
            (Status::On, every),
        ]
    }

    #[test]
    fn every_status_origin_and_channel_is_decided_as_the_design_says() {
        for (status, state) in states() {
            assert_eq!(state.status(), status);
            for origin in [Origin::Manual, Origin::Automated] {
                for channel in Channel::ALL {
                    let decision = state.decide(channel, origin);
                    let expected_blocked = match status {
                        Status::Off => false,
                        // On blocks manual and automated messages alike.
                        Status::On => true,
                        Status::Partial => matches!(channel, Channel::Sms | Channel::Email),
                    };
                    assert_eq!(
                        !decision.is_allowed(),
                        expected_blocked,
                        "{status:?} {origin:?} {channel}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_blocked_decision_names_every_reason() {
        let state = DndState::default()
            .set(
                Channel::Sms,
                Reason::SmsOptOut,
                &Actor::new(ActorKind::Contact, None, "c"),
                Utc::now(),
                None,
                None,
            )
            .unwrap()
            .state
            .switch_all(true, &user(), Utc::now())
            .unwrap()
            .state;
        assert_eq!(
            state.decide(Channel::Sms, Origin::Manual),
            Decision::Blocked(vec![Block::AllChannels, Block::Reason(Reason::SmsOptOut)])
        );
        for b in [Block::AllChannels, Block::Reason(Reason::CarrierBlocked)] {
            assert_eq!(Block::parse(b.as_str()), Some(b));
        }
    }
}
