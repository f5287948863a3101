//! Walks DESIGN.md's table: every reason × every actor × set and lift.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
}

fn actor(kind: ActorKind) -> Actor {
    Actor::new(kind, Some(1), kind.as_str())
}

fn channel_of(reason: Reason) -> Channel {
    reason.channels()[0]
}

/// The table of DESIGN.md, as (reason, kind, who sets, who lifts).
fn design_table() -> Vec<(Reason, Kind, Vec<ActorKind>, Vec<ActorKind>)> {
    use ActorKind::*;
    vec![
        (
            Reason::Manual,
            Kind::Temporary,
            vec![LocationUser, AgencyUser, Api],
            vec![LocationUser, AgencyUser, Api],
        ),
        (
            Reason::SmsOptOut,
            Kind::Permanent,
            vec![Contact, Provider],
            vec![Contact, Support],
        ),
        (
            Reason::CarrierBlocked,
            Kind::Permanent,
            vec![Contact, Provider],
            vec![Contact, Support],
        ),
        (
            Reason::SmsUnsubscribed,
            Kind::Permanent,
            vec![Contact, Provider],
            vec![Contact, Support],
        ),
        (
            Reason::CarrierUnreachable,
            Kind::Temporary,
            vec![Contact, Provider],
            vec![LocationUser, AgencyUser],
        ),
        (
            Reason::NumberUnknown,
            Kind::Temporary,
            vec![Contact, Provider],
            vec![LocationUser, AgencyUser],
        ),
        (
            Reason::NotMobile,
            Kind::Temporary,
            vec![Contact, Provider],
            vec![LocationUser, AgencyUser],
        ),
        (
            Reason::EmailBounced,
            Kind::Temporary,
            vec![Contact, Provider],
            vec![LocationUser, AgencyUser],
        ),
        (
            Reason::EmailUnsubscribed,
            Kind::Temporary,
            vec![Contact, Provider],
            vec![LocationUser, AgencyUser],
        ),
        (
            Reason::EmailSpamComplaint,
            Kind::Permanent,
            vec![Contact, Provider],
            vec![Support],
        ),
        (
            Reason::ChannelOptOut,
            Kind::Permanent,
            vec![Contact, Provider],
            vec![Contact, Support],
        ),
        (
            Reason::ImportedOptOut,
            Kind::Permanent,
            vec![LocationUser, AgencyUser, Api],
            vec![Contact, Support],
        ),
    ]
}

#[test]
fn the_table_covers_every_reason() {
    let table = design_table();
    assert_eq!(table.len(), Reason::ALL.len());
    for reason in Reason::ALL {
        assert!(table.iter().any(|(r, ..)| *r == reason), "{reason}");
        assert_eq!(reason.as_str().parse::<Reason>().unwrap(), reason);
    }
}

#[test]
fn every_reason_by_every_actor_set_then_lift() {
    for (reason, kind, setters, lifters) in design_table() {
        assert_eq!(reason.kind(), kind, "{reason}");
        let channel = channel_of(reason);
        for who in ActorKind::ALL {
            let set = DndState::default().set(channel, reason, &actor(who), at(20), None, None);
            assert_eq!(
                set.is_ok(),
                setters.contains(&who),
                "{reason} set by {who:?}"
            );
            if let Err(refusal) = set {
                assert!(!refusal.message.is_empty());
            }
        }
        // Stored by its rightful setter, then lifted by each actor.
        let setter = actor(setters[0]);
        let state = DndState::default()
            .set(
                channel,
                reason,
                &setter,
                at(20),
                Some("+14155550100".into()),
                Some("SM1".into()),
            )
            .unwrap()
            .state;
        assert!(state.is_blocked(channel));
        for who in ActorKind::ALL {
            let confirmed = Confirmation {
                suppression_removed: true,
            };
            let lift = state.lift(channel, &actor(who), at(21), confirmed);
            let may = lifters.contains(&who);
            assert_eq!(lift.is_ok(), may, "{reason} lifted by {who:?}");
            match lift {
                Ok(t) => {
                    assert!(!t.state.is_blocked(channel), "{reason} by {who:?}");
                    assert_eq!(t.entries.len(), 1);
                    assert_eq!(t.entries[0].action, Action::Lifted);
                    assert_eq!(t.entries[0].reason, Some(reason));
                    assert_eq!(t.entries[0].address.as_deref(), Some("+14155550100"));
                }
                Err(refusal) => {
                    // The refusal names the reason, since when, and who can
                    // lift it (not its kind: "temporary" read as if it
                    // expired).
                    assert_eq!(refusal.remaining.len(), 1);
                    assert!(
                        !refusal.message.to_lowercase().contains(kind.as_str()),
                        "{}",
                        refusal.message
                    );
                    assert!(
                        refusal.message.contains("2026-11-20"),
                        "{}",
                        refusal.message
                    );
                    assert!(
                        refusal.message.contains(reason.lift_rule()),
                        "{}",
                        refusal.message
                    );
                }
            }
        }
    }
}

#[test]
fn reasons_stand_only_on_their_channels() {
    let provider = actor(ActorKind::Provider);
    assert!(DndState::default()
        .set(
            Channel::Email,
            Reason::SmsOptOut,
            &provider,
            at(1),
            None,
            None
        )
        .is_err());
    assert!(DndState::default()
        .set(
            Channel::Sms,
            Reason::EmailBounced,
            &provider,
            at(1),
            None,
            None
        )
        .is_err());
    assert!(DndState::default()
        .set(
            Channel::Whatsapp,
            Reason::ChannelOptOut,
            &provider,
            at(1),
            None,
            None
        )
        .is_ok());
    for channel in Channel::ALL {
        assert!(DndState::default()
            .set(
                channel,
                Reason::Manual,
                &actor(ActorKind::Api),
                at(1),
                None,
                None
            )
            .is_ok());
    }
}

#[test]
fn the_permanent_sms_refusal_reads_as_a_person_would_say_it() {
    let state = DndState::default()
        .set(
            Channel::Sms,
            Reason::SmsOptOut,
            &actor(ActorKind::Contact),
            at(20),
            None,
            None,
        )
        .unwrap()
        .state;
    let refusal = state
        .lift(
            Channel::Sms,
            &actor(ActorKind::LocationUser),
            at(21),
            Confirmation::default(),
        )
        .unwrap_err();
    assert_eq!(
        refusal.message,
        "SMS DND stays on. The contact replied with an opt-out keyword (STOP) on 2026-11-20 \
         (UTC); only a START reply from the contact or support can lift it"
    );
}

#[test]
fn email_bounces_need_the_suppression_confirmation() {
    let state = DndState::default()
        .set(
            Channel::Email,
            Reason::EmailBounced,
            &actor(ActorKind::Provider),
            at(20),
            None,
            None,
        )
        .unwrap()
        .state;
    let user = actor(ActorKind::AgencyUser);
    let refusal = state
        .lift(Channel::Email, &user, at(21), Confirmation::default())
        .unwrap_err();
    assert!(
        refusal.message.contains("suppression list"),
        "{}",
        refusal.message
    );
    let lifted = state
        .lift(
            Channel::Email,
            &user,
            at(21),
            Confirmation {
                suppression_removed: true,
            },
        )
        .unwrap();
    assert!(!lifted.state.is_blocked(Channel::Email));
}

#[test]
fn several_reasons_on_one_channel_lift_separately() {
    let provider = actor(ActorKind::Provider);
    let user = actor(ActorKind::LocationUser);
    let state = DndState::default()
        .set(
            Channel::Email,
            Reason::EmailBounced,
            &provider,
            at(10),
            None,
            None,
        )
        .unwrap()
        .state
        .set(
            Channel::Email,
            Reason::EmailSpamComplaint,
            &provider,
            at(11),
            None,
            None,
        )
        .unwrap()
        .state
        .set(Channel::Email, Reason::Manual, &user, at(12), None, None)
        .unwrap()
        .state;
    assert_eq!(state.reasons(Channel::Email).len(), 3);
    let t = state
        .lift(
            Channel::Email,
            &user,
            at(13),
            Confirmation {
                suppression_removed: true,
            },
        )
        .unwrap();
    // The user lifts the bounce and the manual reason; the complaint stays.
    assert_eq!(t.entries.len(), 2);
    assert!(t.state.is_blocked(Channel::Email));
    assert_eq!(t.remaining.len(), 1);
    assert_eq!(t.remaining[0].reason, Reason::EmailSpamComplaint);
    // And now the user can lift nothing more.
    let refusal = t
        .state
        .lift(Channel::Email, &user, at(14), Confirmation::default())
        .unwrap_err();
    assert!(refusal.message.contains("support"), "{}", refusal.message);
    // Support can.
    let t = t
        .state
        .lift(
            Channel::Email,
            &actor(ActorKind::Support),
            at(15),
            Confirmation::default(),
        )
        .unwrap();
    assert!(!t.state.is_blocked(Channel::Email));
}

#[test]
fn a_repeated_reason_changes_nothing_but_the_history() {
    let contact = actor(ActorKind::Contact);
    let first = DndState::default()
        .set(
            Channel::Sms,
            Reason::SmsOptOut,
            &contact,
            at(10),
            None,
            Some("SM1".into()),
        )
        .unwrap();
    let again = first
        .state
        .set(
            Channel::Sms,
            Reason::SmsOptOut,
            &contact,
            at(11),
            None,
            Some("SM2".into()),
        )
        .unwrap();
    assert_eq!(again.state, first.state, "not duplicated, since unchanged");
    assert_eq!(again.entries[0].action, Action::Repeated);
    assert_eq!(again.state.reasons(Channel::Sms)[0].since, at(10));
    // A temporary code after a permanent one never downgrades it.
    let t = again
        .state
        .set(
            Channel::Sms,
            Reason::CarrierUnreachable,
            &actor(ActorKind::Provider),
            at(12),
            None,
            None,
        )
        .unwrap();
    let user_lift = t
        .state
        .lift(
            Channel::Sms,
            &actor(ActorKind::LocationUser),
            at(13),
            Confirmation::default(),
        )
        .unwrap();
    assert!(
        user_lift.state.is_blocked(Channel::Sms),
        "the opt-out stays"
    );
    assert_eq!(user_lift.remaining[0].reason, Reason::SmsOptOut);
}

#[test]
fn an_opt_in_lifts_the_permanent_sms_reasons_only() {
    let contact = actor(ActorKind::Contact);
    let provider = actor(ActorKind::Provider);
    let user = actor(ActorKind::LocationUser);
    let state = DndState::default()
        .set(Channel::Sms, Reason::SmsOptOut, &contact, at(1), None, None)
        .unwrap()
        .state
        .set(
            Channel::Sms,
            Reason::CarrierBlocked,
            &provider,
            at(2),
            None,
            None,
        )
        .unwrap()
        .state
        .set(
            Channel::Sms,
            Reason::NumberUnknown,
            &provider,
            at(3),
            None,
            None,
        )
        .unwrap()
        .state
        .set(Channel::Email, Reason::Manual, &user, at(4), None, None)
        .unwrap()
        .state
        .switch_all(true, &user, at(5))
        .unwrap()
        .state;
    let t = state
        .lift_only(
            Channel::Sms,
            &contact,
            at(6),
            Some("START".into()),
            Reason::lifted_by_opt_in,
        )
        .unwrap();
    assert_eq!(t.entries.len(), 2);
    let left: Vec<Reason> = t
        .state
        .reasons(Channel::Sms)
        .iter()
        .map(|a| a.reason)
        .collect();
    assert_eq!(
        left,
        vec![Reason::NumberUnknown],
        "the temporary carrier reason stays"
    );
    assert!(
        t.state.is_blocked(Channel::Email),
        "other channels untouched"
    );
    assert!(t.state.all, "the all-channels switch untouched");
}

#[test]
fn lifting_nothing_is_a_quiet_no_op() {
    let t = DndState::default()
        .lift(
            Channel::Sms,
            &actor(ActorKind::LocationUser),
            at(1),
            Confirmation::default(),
        )
        .unwrap();
    assert!(t.entries.is_empty());
}

#[test]
fn the_all_channels_switch_is_for_users_and_the_api() {
    for who in ActorKind::ALL {
        let result = DndState::default().switch_all(true, &actor(who), at(1));
        let allowed = matches!(
            who,
            ActorKind::LocationUser | ActorKind::AgencyUser | ActorKind::Api
        );
        assert_eq!(result.is_ok(), allowed, "{who:?}");
    }
    let user = actor(ActorKind::AgencyUser);
    let on = DndState::default().switch_all(true, &user, at(1)).unwrap();
    assert_eq!(on.state.status(), Status::On);
    for c in Channel::ALL {
        assert!(on.state.is_blocked(c), "blocks every channel, {c}");
    }
    // Lifting a channel never touches the switch, nor other channels.
    let with_sms = on
        .state
        .set(Channel::Sms, Reason::Manual, &user, at(2), None, None)
        .unwrap()
        .state;
    let lifted = with_sms
        .lift(Channel::Sms, &user, at(3), Confirmation::default())
        .unwrap();
    assert!(lifted.state.all);
    let off = lifted.state.switch_all(false, &user, at(4)).unwrap();
    assert_eq!(off.state.status(), Status::Off);
    assert_eq!(off.entries[0].channel, None);
    // Switching to the state it is in writes nothing.
    assert!(off
        .state
        .switch_all(false, &user, at(5))
        .unwrap()
        .entries
        .is_empty());
}

#[test]
fn status_is_on_partial_or_off() {
    let user = actor(ActorKind::LocationUser);
    let mut state = DndState::default();
    assert_eq!(state.status(), Status::Off);
    assert_eq!(state.channel_mask(), 0);
    for (i, channel) in Channel::ALL.into_iter().enumerate() {
        state = state
            .set(channel, Reason::Manual, &user, at(1), None, None)
            .unwrap()
            .state;
        let expected = if i + 1 == Channel::ALL.len() {
            Status::On
        } else {
            Status::Partial
        };
        assert_eq!(state.status(), expected, "after {channel}");
    }
    assert_eq!(state.channel_mask(), 0b11_1111);
    for s in Status::ALL {
        assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
    }
}

/// One random step of a contact's life.
#[derive(Debug, Clone)]
enum Step {
    Set(Channel, Reason, ActorKind),
    Lift(Channel, ActorKind, bool),
    All(bool, ActorKind),
    OptIn,
}

fn step() -> impl Strategy<Value = Step> {
    let channel = prop::sample::select(Channel::ALL.to_vec());
    let reason = prop::sample::select(Reason::ALL.to_vec());
    let who = prop::sample::select(ActorKind::ALL.to_vec());
    prop_oneof![
        (channel.clone(), reason, who.clone()).prop_map(|(c, r, a)| Step::Set(c, r, a)),
        (channel, who.clone(), any::<bool>()).prop_map(|(c, a, k)| Step::Lift(c, a, k)),
        (any::<bool>(), who).prop_map(|(on, a)| Step::All(on, a)),
        Just(Step::OptIn),
    ]
}

/// The rules written out again from DESIGN's table, apart from the code
/// under test: which channels a reason belongs to, who sets it, who lifts
/// it, and what needs the suppression confirmation.
mod model {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn business(a: ActorKind) -> bool {
        matches!(a, ActorKind::LocationUser | ActorKind::AgencyUser)
    }

    pub fn channels(r: Reason) -> Vec<Channel> {
        use Channel::*;
        match r.as_str() {
            "manual" => Channel::ALL.to_vec(),
            "sms_opt_out"
            | "carrier_blocked"
            | "sms_unsubscribed"
            | "carrier_unreachable"
            | "number_unknown"
            | "not_mobile" => vec![Sms],
            "email_bounced" | "email_unsubscribed" | "email_spam_complaint" => vec![Email],
            "channel_opt_out" => vec![Whatsapp, Facebook],
            "imported_opt_out" => vec![Sms, Email, Whatsapp],
            other => panic!("a reason the model does not know: {other}"),
        }
    }

    pub fn may_set(r: Reason, a: ActorKind) -> bool {
        match r.as_str() {
            "manual" | "imported_opt_out" => business(a) || a == ActorKind::Api,
            _ => matches!(a, ActorKind::Contact | ActorKind::Provider),
        }
    }

    pub fn may_lift(r: Reason, a: ActorKind) -> bool {
        match r.as_str() {
            "manual" => business(a) || a == ActorKind::Api,
            "sms_opt_out" | "carrier_blocked" | "sms_unsubscribed" | "channel_opt_out"
            | "imported_opt_out" => matches!(a, ActorKind::Contact | ActorKind::Support),
            "carrier_unreachable"
            | "number_unknown"
            | "not_mobile"
            | "email_bounced"
            | "email_unsubscribed" => business(a),
            "email_spam_complaint" => a == ActorKind::Support,
            other => panic!("a reason the model does not know: {other}"),
        }
    }

    pub fn needs_confirmation(r: Reason) -> bool {
        matches!(r.as_str(), "email_bounced" | "email_unsubscribed")
    }

    /// A contact as the model keeps it.
    #[derive(Default)]
    pub struct Contact {
        pub all: bool,
        pub reasons: BTreeMap<Channel, BTreeSet<&'static str>>,
    }

    impl Contact {
        pub fn apply(&mut self, s: &Step) {
            match s {
                Step::Set(c, r, a) => {
                    if channels(*r).contains(c) && may_set(*r, *a) {
                        self.reasons.entry(*c).or_default().insert(r.as_str());
                    }
                }
                Step::Lift(c, a, confirmed) => {
                    let held = self.reasons.entry(*c).or_default();
                    held.retain(|name| {
                        let r: Reason = name.parse().expect("a known reason");
                        !(may_lift(r, *a) && (!needs_confirmation(r) || *confirmed))
                    });
                }
                Step::All(on, a) => {
                    if business(*a) || *a == ActorKind::Api {
                        self.all = *on;
                    }
                }
                // The contact's own opt-in on SMS lifts what the contact may
                // lift there.
                Step::OptIn => {
                    let held = self.reasons.entry(Channel::Sms).or_default();
                    held.retain(|name| {
                        let r: Reason = name.parse().expect("a known reason");
                        !may_lift(r, ActorKind::Contact)
                    });
                }
            }
        }

        pub fn blocked(&self, c: Channel) -> bool {
            self.all || self.reasons.get(&c).is_some_and(|r| !r.is_empty())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every step, the rules and the model agree on each channel: which
    /// reasons hold it and whether it is blocked. A lift the rules refuse
    /// must be one the model can do nothing with either.
    #[test]
    fn the_rules_agree_with_an_independent_model(steps in prop::collection::vec(step(), 1..60)) {
        let mut state = DndState::default();
        let mut model = model::Contact::default();
        for (i, s) in steps.into_iter().enumerate() {
            let when = at(1) + chrono::Duration::minutes(i as i64);
            let result = match &s {
                Step::Set(c, r, a) => state.set(*c, *r, &actor(*a), when, None, None),
                Step::Lift(c, a, confirmed) => state.lift(*c, &actor(*a), when, Confirmation { suppression_removed: *confirmed }),
                Step::All(on, a) => state.switch_all(*on, &actor(*a), when),
                Step::OptIn => state.lift_only(Channel::Sms, &actor(ActorKind::Contact), when, None, Reason::lifted_by_opt_in),
            };
            model.apply(&s);
            if let Ok(t) = result {
                state = t.state;
            }
            prop_assert_eq!(state.all, model.all, "after {:?}", s);
            for c in Channel::ALL {
                let mut held: Vec<&str> = state.reasons(c).iter().map(|a| a.reason.as_str()).collect();
                held.sort_unstable();
                let expected: Vec<&str> = model.reasons.get(&c).map(|r| r.iter().copied().collect()).unwrap_or_default();
                prop_assert_eq!(&held, &expected, "{} after {:?}", c, s);
                prop_assert_eq!(state.is_blocked(c), model.blocked(c), "{} after {:?}", c, s);
            }
        }
    }

    #[test]
    fn no_channel_is_ever_unblocked_while_a_reason_is_active(steps in prop::collection::vec(step(), 1..60)) {
        let mut state = DndState::default();
        let mut history: Vec<HistoryEntry> = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            let when = at(1) + chrono::Duration::minutes(i as i64);
            let result = match s {
                Step::Set(c, r, a) => state.set(c, r, &actor(a), when, None, None),
                Step::Lift(c, a, confirmed) => state.lift(c, &actor(a), when, Confirmation { suppression_removed: confirmed }),
                Step::All(on, a) => state.switch_all(on, &actor(a), when),
                Step::OptIn => state.lift_only(Channel::Sms, &actor(ActorKind::Contact), when, None, Reason::lifted_by_opt_in),
            };
            if let Ok(t) = result {
                history.extend(t.entries);
                state = t.state;
            }
            for c in Channel::ALL {
                for active in state.reasons(c) {
                    prop_assert!(state.is_blocked(c), "{c} unblocked with {:?}", active.reason);
                    prop_assert!(active.reason.channels().contains(&c));
                }
            }
            let status = state.status();
            let any = Channel::ALL.iter().any(|c| state.has_reasons(*c));
            prop_assert_eq!(status == Status::Off, !state.all && !any);
        }
        // The history alone rebuilds the same state.
        prop_assert_eq!(DndState::replay(&history), state);
    }
}

/// The marker pages show next to a reason names exactly who may lift it,
/// as the rules decide.
#[test]
fn who_lifts_says_what_the_rules_allow() {
    for reason in Reason::ALL {
        let words = reason.who_lifts();
        // Support are staff too: "staff" would read as them.
        assert!(!words.contains("staff"), "{reason}: {words}");
        assert_eq!(
            words.starts_with("location or agency users"),
            reason.may_lift(ActorKind::LocationUser) && reason.may_lift(ActorKind::AgencyUser),
            "{reason}: {words}"
        );
        assert_eq!(
            words.starts_with("only"),
            !reason.may_lift(ActorKind::LocationUser),
            "{reason}: {words}"
        );
        assert_eq!(
            words.contains("support"),
            reason.may_lift(ActorKind::Support),
            "{reason}: {words}"
        );
        assert_eq!(
            words.contains("contact"),
            reason.may_lift(ActorKind::Contact),
            "{reason}: {words}"
        );
        assert_eq!(
            words.contains("API"),
            reason.may_lift(ActorKind::Api),
            "{reason}: {words}"
        );
        assert!(!words.contains("temporary") && !words.contains("permanent"));
    }
}
