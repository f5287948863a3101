//! Consent events: what a person or a provider says about one address on
//! one channel (an opt-out keyword, a resume, a bounce, a carrier code),
//! applied to the reasons kept on that address. Providers retry for hours
//! and deliver out of order, so each event carries the provider's time, and
//! one older than the last consent change applied to its address changes
//! nothing: a late "resume" never lifts a newer "stop", a late "stop" never
//! re-sets DND after a newer opt-in.

use chrono::{DateTime, Utc};

use super::{Action, Actor, DndState, HistoryEntry, Reason, Refusal, Transition};
use crate::domain::Channel;

/// What a consent event does on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Sets this reason (an opt-out keyword, a carrier code, a bounce).
    Set(Reason),
    /// The person's own opt-in on the channel (START, a resume): lifts what
    /// the contact may lift there, and nothing else.
    OptIn,
}

/// One event about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub channel: Channel,
    /// The canonical address (E.164 phone, normalised email, id).
    pub address: String,
    pub effect: Effect,
    pub actor: Actor,
    /// When the provider says it happened (Meta and Mailgun timestamps;
    /// for Twilio inbound SMS, when it was received). Never later than
    /// `received_at`: a provider clock ahead of ours must not make every
    /// later event look stale.
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The event that carried it (a message SID and its text, an event id).
    pub source: String,
}

/// An event applied to an address: the transition (possibly a `stale` or
/// `repeated` history entry only) and the address's new "last consent
/// change" time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub transition: Transition,
    pub last_change: Option<DateTime<Utc>>,
}

impl ConsentEvent {
    /// The provider's time, never later than when it reached us.
    pub fn new(
        channel: Channel,
        address: String,
        effect: Effect,
        actor: Actor,
        occurred_at: Option<DateTime<Utc>>,
        received_at: DateTime<Utc>,
        source: String,
    ) -> Self {
        ConsentEvent {
            channel,
            address,
            effect,
            actor,
            occurred_at: occurred_at.map_or(received_at, |t| t.min(received_at)),
            received_at,
            source,
        }
    }

    /// Older than the last consent change of its address. On a tie an
    /// opt-out still applies and an opt-in does not: when two events claim
    /// the same instant, keeping the person out is the safe mistake.
    pub fn is_stale(&self, last_change: Option<DateTime<Utc>>) -> bool {
        match last_change {
            None => false,
            Some(last) => {
                self.occurred_at < last
                    || (self.occurred_at == last && self.effect == Effect::OptIn)
            }
        }
    }

    /// The reason the history names for it (for an opt-in, the reason it
    /// is about on its channel).
    fn named_reason(&self) -> Reason {
        match self.effect {
            Effect::Set(reason) => reason,
            Effect::OptIn if self.channel == Channel::Sms => Reason::SmsOptOut,
            Effect::OptIn => Reason::ChannelOptOut,
        }
    }

    fn entry(&self, action: Action, reason: Reason, detail: Option<String>) -> HistoryEntry {
        HistoryEntry {
            channel: Some(self.channel),
            reason: Some(reason),
            action,
            actor: self.actor.clone(),
            at: self.received_at,
            address: Some(self.address.clone()),
            source: Some(self.source.clone()),
            event_at: Some(self.occurred_at),
            detail,
        }
    }
}

impl DndState {
    /// Applies a consent event to the state of its address (`self` holds
    /// the reasons kept on that address). A stale event changes nothing and
    /// is recorded as such; an opt-in with nothing it may lift changes
    /// nothing and leaves no entry. Any event that is not stale, whatever
    /// it changed, is the person's latest word: it moves the address's
    /// last consent change forward.
    pub fn apply_consent(
        &self,
        e: &ConsentEvent,
        last_change: Option<DateTime<Utc>>,
    ) -> Result<Applied, Refusal> {
        if e.is_stale(last_change) {
            let detail = format!(
                "the event happened at {}, before the last consent change on this address ({}); it changes nothing",
                e.occurred_at.format("%Y-%m-%d %H:%M:%S UTC"),
                last_change
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default(),
            );
            return Ok(Applied {
                transition: Transition {
                    state: self.clone(),
                    entries: vec![e.entry(Action::Stale, e.named_reason(), Some(detail))],
                    remaining: self.reasons(e.channel).to_vec(),
                },
                last_change,
            });
        }
        let mut transition = match e.effect {
            Effect::Set(reason) => self.set(
                e.channel,
                reason,
                &e.actor,
                e.occurred_at,
                Some(e.address.clone()),
                Some(e.source.clone()),
            )?,
            Effect::OptIn => self
                .lift_only(
                    e.channel,
                    &e.actor,
                    e.occurred_at,
                    Some(e.source.clone()),
                    Reason::lifted_by_opt_in,
                )
                // Only reasons the contact may not lift: nothing to do.
                .unwrap_or_else(|refusal| Transition {
                    state: self.clone(),
                    entries: Vec::new(),
                    remaining: refusal.remaining,
                }),
        };
        // The history says when we learned of it, and when it happened.
        for entry in &mut transition.entries {
            entry.at = e.received_at;
            entry.event_at = Some(e.occurred_at);
            entry.address = Some(e.address.clone());
        }
        Ok(Applied {
            transition,
            last_change: Some(last_change.map_or(e.occurred_at, |t| t.max(e.occurred_at))),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::dnd::ActorKind;

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 10, minute, 0).unwrap()
    }

    fn event(channel: Channel, effect: Effect, minute: u32) -> ConsentEvent {
        ConsentEvent::new(
            channel,
            "+12125550100".into(),
            effect,
            Actor::new(ActorKind::Contact, None, "+12125550100"),
            Some(t(minute)),
            t(59),
            format!("event at {minute}"),
        )
    }

    /// Applies events in the order given, as the address store does.
    fn deliver(events: &[ConsentEvent]) -> (DndState, Vec<Action>) {
        let mut state = DndState::default();
        let mut clock = None;
        let mut actions = Vec::new();
        for e in events {
            let applied = state.apply_consent(e, clock).unwrap();
            actions.extend(applied.transition.entries.iter().map(|h| h.action));
            state = applied.transition.state;
            clock = applied.last_change;
        }
        (state, actions)
    }

    #[test]
    fn a_late_resume_never_lifts_a_newer_stop() {
        let stop = event(Channel::Whatsapp, Effect::Set(Reason::ChannelOptOut), 10);
        let resume = event(Channel::Whatsapp, Effect::OptIn, 5);
        let (state, actions) = deliver(&[stop, resume]);
        assert!(state.is_blocked(Channel::Whatsapp));
        assert_eq!(actions, vec![Action::Set, Action::Stale]);
    }

    #[test]
    fn a_late_stop_never_re_sets_after_a_newer_opt_in() {
        let stop = event(Channel::Sms, Effect::Set(Reason::SmsOptOut), 5);
        let start = event(Channel::Sms, Effect::OptIn, 10);
        let (state, actions) = deliver(&[start.clone(), stop.clone()]);
        assert!(!state.is_blocked(Channel::Sms));
        assert_eq!(actions, vec![Action::Stale]);
        // In their own order, the START wins as well.
        let (state, actions) = deliver(&[stop, start]);
        assert!(!state.is_blocked(Channel::Sms));
        assert_eq!(actions, vec![Action::Set, Action::Lifted]);
    }

    #[test]
    fn a_repeated_stop_is_the_latest_word_too() {
        // STOP at 1, STOP again at 20, a START from 10 arriving last: the
        // person's last word was the second STOP.
        let (state, actions) = deliver(&[
            event(Channel::Sms, Effect::Set(Reason::SmsOptOut), 1),
            event(Channel::Sms, Effect::Set(Reason::SmsOptOut), 20),
            event(Channel::Sms, Effect::OptIn, 10),
        ]);
        assert!(state.is_blocked(Channel::Sms));
        assert_eq!(actions, vec![Action::Set, Action::Repeated, Action::Stale]);
    }

    #[test]
    fn on_a_tie_the_opt_out_wins() {
        let stop = event(Channel::Whatsapp, Effect::Set(Reason::ChannelOptOut), 10);
        let resume = event(Channel::Whatsapp, Effect::OptIn, 10);
        assert!(deliver(&[stop.clone(), resume.clone()])
            .0
            .is_blocked(Channel::Whatsapp));
        assert!(deliver(&[resume, stop]).0.is_blocked(Channel::Whatsapp));
    }

    #[test]
    fn a_provider_clock_ahead_of_ours_is_read_as_now() {
        let ahead = ConsentEvent::new(
            Channel::Sms,
            "+12125550100".into(),
            Effect::Set(Reason::SmsOptOut),
            Actor::new(ActorKind::Contact, None, "c"),
            Some(t(59) + chrono::Duration::days(30)),
            t(59),
            "s".into(),
        );
        assert_eq!(ahead.occurred_at, t(59));
    }

    #[test]
    fn an_opt_in_leaves_temporary_carrier_reasons() {
        let (state, _) = deliver(&[
            event(Channel::Sms, Effect::Set(Reason::CarrierUnreachable), 1),
            event(Channel::Sms, Effect::Set(Reason::SmsOptOut), 2),
            event(Channel::Sms, Effect::OptIn, 3),
        ]);
        let left: Vec<Reason> = state
            .reasons(Channel::Sms)
            .iter()
            .map(|a| a.reason)
            .collect();
        assert_eq!(left, vec![Reason::CarrierUnreachable]);
    }

    #[test]
    fn entries_carry_the_provider_time_and_the_address() {
        let stop = event(Channel::Sms, Effect::Set(Reason::SmsOptOut), 7);
        let applied = DndState::default().apply_consent(&stop, None).unwrap();
        let entry = &applied.transition.entries[0];
        assert_eq!(entry.event_at, Some(t(7)));
        assert_eq!(entry.at, t(59));
        assert_eq!(entry.address.as_deref(), Some("+12125550100"));
        assert_eq!(applied.last_change, Some(t(7)));
        // The reason is in force since the person's act.
        assert_eq!(
            applied.transition.state.reasons(Channel::Sms)[0].since,
            t(7)
        );
    }
}
