//! Consent events: what a person or a provider says about one address on
//! one channel (an opt-out keyword, a resume, a bounce, a carrier code),
//! applied to the reasons kept on that address. Providers retry for hours
//! and deliver out of order, so each event carries the provider's time, and
//! each reason on an address keeps the time of the last consent change
//! about it: an event older than that changes nothing. A late "resume"
//! never lifts a newer "stop", a late "stop" never re-sets DND after a
//! newer opt-in. The clock is per reason because signals about different
//! reasons are independent: a spam complaint from 10:00 arriving after a
//! bounce from 10:05 (or after a user lifted the bounce) is still the
//! person's complaint, and must be kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Action, Actor, DndState, HistoryEntry, Reason, Refusal, Transition};
use crate::domain::local_time::Zone;
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

/// When consent about each reason on one address and channel last changed
/// (the provider's time of the event, or when a user lifted the reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clocks(BTreeMap<Reason, DateTime<Utc>>);

impl Clocks {
    pub fn of(&self, reason: Reason) -> Option<DateTime<Utc>> {
        self.0.get(&reason).copied()
    }

    /// Moves a reason's clock forward to `at` (never back).
    pub fn advance(&mut self, reason: Reason, at: DateTime<Utc>) {
        let clock = self.0.entry(reason).or_insert(at);
        *clock = (*clock).max(at);
    }

    pub fn iter(&self) -> impl Iterator<Item = (Reason, DateTime<Utc>)> + '_ {
        self.0.iter().map(|(r, t)| (*r, *t))
    }
}

/// An event applied to an address: the transition (possibly `stale` or
/// `repeated` history entries only) and the address's clocks after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub transition: Transition,
    pub clocks: Clocks,
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

    /// The reasons it is about: the one it sets, or every reason the
    /// person's opt-in lifts on its channel.
    pub fn concerns(&self, reason: Reason) -> bool {
        match self.effect {
            Effect::Set(set) => set == reason,
            Effect::OptIn => reason.lifted_by_opt_in() && reason.channels().contains(&self.channel),
        }
    }

    /// Older than the last consent change about `reason`. On a tie an
    /// opt-out still applies and an opt-in does not: when two events claim
    /// the same instant, keeping the person out is the safe mistake.
    pub fn is_stale_for(&self, reason: Reason, clocks: &Clocks) -> bool {
        match clocks.of(reason) {
            None => false,
            Some(last) => {
                self.occurred_at < last
                    || (self.occurred_at == last && self.effect == Effect::OptIn)
            }
        }
    }

    fn stale_entry(&self, reason: Reason, clocks: &Clocks, zone: Zone) -> HistoryEntry {
        let detail = format!(
            "the event happened at {}, before the last consent change about \"{}\" on this address ({}); it changes nothing",
            zone.seconds(self.occurred_at),
            reason.label(),
            clocks
                .of(reason)
                .map(|t| zone.seconds(t))
                .unwrap_or_default(),
        );
        self.entry(Action::Stale, reason, Some(detail))
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
    /// the reasons kept on that address, `clocks` their last changes).
    /// Per reason it concerns, an event older than that reason's last
    /// change changes nothing and is recorded as stale; an opt-in with
    /// nothing it may lift changes nothing and leaves no entry. Every
    /// reason the event concerns has its clock moved to the event: it is
    /// the person's latest word about it. Times in the history's words are
    /// the location's (`zone`).
    pub fn apply_consent(
        &self,
        e: &ConsentEvent,
        clocks: &Clocks,
        zone: Zone,
    ) -> Result<Applied, Refusal> {
        let mut transition = match e.effect {
            Effect::Set(reason) if e.is_stale_for(reason, clocks) => {
                return Ok(Applied {
                    transition: Transition {
                        state: self.clone(),
                        entries: vec![e.stale_entry(reason, clocks, zone)],
                        remaining: self.reasons(e.channel).to_vec(),
                    },
                    clocks: clocks.clone(),
                });
            }
            Effect::Set(reason) => self.set(
                e.channel,
                reason,
                &e.actor,
                e.occurred_at,
                Some(e.address.clone()),
                Some(e.source.clone()),
            )?,
            Effect::OptIn => {
                let mut lifted = self
                    .lift_only(
                        e.channel,
                        &e.actor,
                        e.occurred_at,
                        Some(e.source.clone()),
                        |r| e.concerns(r) && !e.is_stale_for(r, clocks),
                    )
                    // Nothing it may lift: nothing to do.
                    .unwrap_or_else(|refusal| Transition {
                        state: self.clone(),
                        entries: Vec::new(),
                        remaining: refusal.remaining,
                    });
                // What a newer opt-out keeps in place, the history says.
                lifted.entries.extend(
                    self.reasons(e.channel)
                        .iter()
                        .filter(|a| e.concerns(a.reason) && e.is_stale_for(a.reason, clocks))
                        .map(|a| e.stale_entry(a.reason, clocks, zone)),
                );
                lifted
            }
        };
        // The history says when we learned of it, and when it happened.
        for entry in &mut transition.entries {
            entry.at = e.received_at;
            entry.event_at = Some(e.occurred_at);
            entry.address = Some(e.address.clone());
        }
        let mut after = clocks.clone();
        for reason in Reason::ALL.into_iter().filter(|r| e.concerns(*r)) {
            after.advance(reason, e.occurred_at);
        }
        Ok(Applied {
            transition,
            clocks: after,
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
        let mut clocks = Clocks::default();
        let mut actions = Vec::new();
        for e in events {
            let applied = state.apply_consent(e, &clocks, Zone::UTC).unwrap();
            actions.extend(applied.transition.entries.iter().map(|h| h.action));
            state = applied.transition.state;
            clocks = applied.clocks;
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
    fn a_late_complaint_is_kept_after_a_newer_bounce() {
        // Mailgun delivers a complaint from 10:00 after a bounce from 10:05:
        // different reasons, each the person's (or their server's) word.
        let (state, actions) = deliver(&[
            event(Channel::Email, Effect::Set(Reason::EmailBounced), 5),
            event(Channel::Email, Effect::Set(Reason::EmailSpamComplaint), 0),
        ]);
        let held: Vec<Reason> = state
            .reasons(Channel::Email)
            .iter()
            .map(|a| a.reason)
            .collect();
        assert!(held.contains(&Reason::EmailSpamComplaint), "{held:?}");
        assert_eq!(actions, vec![Action::Set, Action::Set]);
    }

    #[test]
    fn the_history_and_the_reasons_give_the_location_s_time() {
        let ny = Zone::named("America/New_York");
        let mut clocks = Clocks::default();
        clocks.advance(Reason::EmailBounced, t(30));
        let bounce = event(Channel::Email, Effect::Set(Reason::EmailBounced), 20);
        let applied = DndState::default()
            .apply_consent(&bounce, &clocks, ny)
            .unwrap();
        assert_eq!(
            applied.transition.entries[0].detail.as_deref(),
            Some(
                "the event happened at 2026-11-20 05:20:00 EST, before the last consent change \
                 about \"Email bounced or suppressed\" on this address (2026-11-20 05:30:00 EST); it changes \
                 nothing"
            )
        );
        // 02:00 UTC on the 21st is still the 20th in New York.
        let late = ConsentEvent::new(
            Channel::Sms,
            "+12125550100".into(),
            Effect::Set(Reason::SmsOptOut),
            Actor::new(ActorKind::Contact, None, "+12125550100"),
            Some(Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap()),
            Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap(),
            "SM1".into(),
        );
        let state = DndState::default()
            .apply_consent(&late, &Clocks::default(), ny)
            .unwrap()
            .transition
            .state;
        let reason = &state.reasons(Channel::Sms)[0];
        assert!(
            reason.explain(ny).contains(" on 2026-11-20 (EST); "),
            "{}",
            reason.explain(ny)
        );
        assert!(
            reason.explain(Zone::UTC).contains(" on 2026-11-21 (UTC); "),
            "{}",
            reason.explain(Zone::UTC)
        );
    }

    #[test]
    fn a_users_lift_makes_only_that_reason_older() {
        // A user lifted the bounce at 10:30; a complaint from 10:10 arrives.
        let mut clocks = Clocks::default();
        clocks.advance(Reason::EmailBounced, t(30));
        let complaint = event(Channel::Email, Effect::Set(Reason::EmailSpamComplaint), 10);
        let applied = DndState::default()
            .apply_consent(&complaint, &clocks, Zone::UTC)
            .unwrap();
        assert!(applied.transition.state.is_blocked(Channel::Email));
        // A bounce from before the lift is stale.
        let bounce = event(Channel::Email, Effect::Set(Reason::EmailBounced), 20);
        let applied = DndState::default()
            .apply_consent(&bounce, &clocks, Zone::UTC)
            .unwrap();
        assert!(!applied.transition.state.is_blocked(Channel::Email));
        assert_eq!(applied.transition.entries[0].action, Action::Stale);
    }

    #[test]
    fn an_opt_in_lifts_only_what_it_is_newer_than() {
        // STOP at 1, the carrier's "unsubscribed" at 20, a START from 10
        // arriving last: the START lifts the STOP, not the newer code.
        let (state, actions) = deliver(&[
            event(Channel::Sms, Effect::Set(Reason::SmsOptOut), 1),
            event(Channel::Sms, Effect::Set(Reason::SmsUnsubscribed), 20),
            event(Channel::Sms, Effect::OptIn, 10),
        ]);
        let left: Vec<Reason> = state
            .reasons(Channel::Sms)
            .iter()
            .map(|a| a.reason)
            .collect();
        assert_eq!(left, vec![Reason::SmsUnsubscribed]);
        assert_eq!(
            actions,
            vec![Action::Set, Action::Set, Action::Lifted, Action::Stale]
        );
    }

    #[test]
    fn an_opt_in_moves_the_clock_of_every_reason_it_lifts() {
        // START at 10 with nothing set; a carrier code from 5 arrives late.
        let (state, actions) = deliver(&[
            event(Channel::Sms, Effect::OptIn, 10),
            event(Channel::Sms, Effect::Set(Reason::CarrierBlocked), 5),
        ]);
        assert!(!state.is_blocked(Channel::Sms));
        assert_eq!(actions, vec![Action::Stale]);
        // A temporary reason is not the opt-in's business.
        let (state, _) = deliver(&[
            event(Channel::Sms, Effect::OptIn, 10),
            event(Channel::Sms, Effect::Set(Reason::CarrierUnreachable), 5),
        ]);
        assert!(state.is_blocked(Channel::Sms));
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
        let applied = DndState::default()
            .apply_consent(&stop, &Clocks::default(), Zone::UTC)
            .unwrap();
        let entry = &applied.transition.entries[0];
        assert_eq!(entry.event_at, Some(t(7)));
        assert_eq!(entry.at, t(59));
        assert_eq!(entry.address.as_deref(), Some("+12125550100"));
        assert_eq!(applied.clocks.of(Reason::SmsOptOut), Some(t(7)));
        // The reason is in force since the person's act.
        assert_eq!(
            applied.transition.state.reasons(Channel::Sms)[0].since,
            t(7)
        );
    }
}
