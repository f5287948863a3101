//! The DND state of one contact and the only ways it changes. Pure: the
//! time and the actor are passed in, and every change comes back as the new
//! state plus the history entries that record it, so the database layer
//! writes exactly what the rules decided.

mod codes;
mod consent;
mod gate;
mod inbound;
mod keywords;
mod reason;
mod wording;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use codes::{mailgun_event_reason, twilio_error_reason, whatsapp_error_reason, MailgunEvent};
pub use consent::{Clocks, ConsentEvent, Effect};
pub use gate::{decide_blocks, Block, Decision, Origin};
pub use inbound::{voice_twiml, xml_escape, InboundDnd};
pub use keywords::{match_keyword, KeywordMatch, Keywords};
pub use reason::{ActorKind, Kind, Reason};
pub use wording::{channel_state, locked_note, switch_label};

use crate::domain::local_time::Zone;
use crate::domain::Channel;

/// Who acted, for the rules (the kind) and for the history (id and label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user, API key or evidence request id, when there is one.
    pub id: Option<i64>,
    /// How pages name it: an email, "API key Zapier", "Twilio".
    pub label: String,
}

impl Actor {
    pub fn new(kind: ActorKind, id: Option<i64>, label: impl Into<String>) -> Self {
        Actor {
            kind,
            id,
            label: label.into(),
        }
    }
}

/// One active reason on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveReason {
    pub reason: Reason,
    pub since: DateTime<Utc>,
    pub actor: Actor,
    /// The phone or email a provider event concerned.
    pub address: Option<String>,
    /// The event that set it (a message SID, an event id, a keyword).
    pub source: Option<String>,
}

impl ActiveReason {
    /// "the contact replied with an opt-out keyword (STOP) on 2026-11-20;
    /// only a START reply from the contact or support can lift it". Who can
    /// lift it, not its kind: "temporary" read as if it expired.
    /// The date is the location's (`zone`); a UTC date says so.
    pub fn explain(&self, zone: Zone) -> String {
        let event = match self.reason {
            Reason::Manual => format!("turned on by {}", self.actor.label),
            other => other.event().to_string(),
        };
        // The date names its zone: the same text may be read far from the
        // location (the API, a refusal built without one says UTC).
        format!(
            "{} on {} ({}); {}",
            event,
            zone.date(self.since),
            zone.abbreviation(self.since),
            self.reason.lift_rule()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The all-channels switch is on, or every channel is blocked.
    On,
    /// Some channels are blocked.
    Partial,
    Off,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::On, Status::Partial, Status::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::On => "on",
            Status::Partial => "partial",
            Status::Off => "off",
        }
    }

    /// The code stored in `contacts.dnd_status` (a generated column whose
    /// formula a test compares with [`DndState::status`]).
    pub fn code(self) -> i16 {
        match self {
            Status::On => 2,
            Status::Partial => 1,
            Status::Off => 0,
        }
    }

    pub fn from_code(code: i16) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The status of a contact whose switch is `all` and whose blocked
    /// channels are the bits of `mask`.
    pub fn of(all: bool, mask: i16) -> Status {
        if all || mask & Channel::FULL_MASK == Channel::FULL_MASK {
            Status::On
        } else if mask & Channel::FULL_MASK != 0 {
            Status::Partial
        } else {
            Status::Off
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::On => "On",
            Status::Partial => "Partial",
            Status::Off => "Off",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status \"{s}\": use on, partial or off"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Set,
    Lifted,
    /// The same reason arrived again (a provider retry, a second STOP): it
    /// changes nothing but the history.
    Repeated,
    /// A consent event older than the last consent change applied to its
    /// address (a provider's late retry): recorded, changes nothing.
    Stale,
    /// The contact's address on the channel changed: the reasons of the old
    /// address stay on it, those of the new one apply.
    AddressChanged,
    /// Inbound DND turned on for SMS or calls (no reason: it is the
    /// contact's switch, apart from outbound DND).
    InboundOn,
    InboundOff,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Set,
        Action::Lifted,
        Action::Repeated,
        Action::Stale,
        Action::AddressChanged,
        Action::InboundOn,
        Action::InboundOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Set => "set",
            Action::Lifted => "lifted",
            Action::Repeated => "repeated",
            Action::Stale => "stale",
            Action::AddressChanged => "address_changed",
            Action::InboundOn => "inbound_on",
            Action::InboundOff => "inbound_off",
        }
    }

    /// How the history says it.
    pub fn label(self) -> &'static str {
        match self {
            Action::Set => "turned on",
            Action::Lifted => "lifted",
            Action::Repeated => "received again",
            Action::Stale => "ignored (late event)",
            Action::AddressChanged => "address changed",
            Action::InboundOn => "inbound DND turned on",
            Action::InboundOff => "inbound DND turned off",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action \"{s}\""))
    }
}

/// One row of the append-only history. `channel` and `reason` are `None` for
/// the all-channels switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub channel: Option<Channel>,
    pub reason: Option<Reason>,
    pub action: Action,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub address: Option<String>,
    pub source: Option<String>,
    /// When the provider says the event happened (consent events only).
    pub event_at: Option<DateTime<Utc>>,
    /// A sentence for the history (why an event was stale, where the
    /// reasons of a changed address stay).
    pub detail: Option<String>,
}

/// A change the rules allowed: the state to store and the history to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: DndState,
    pub entries: Vec<HistoryEntry>,
    /// Reasons left in force on the channel acted on (lifting what one may
    /// lift leaves the others), so the caller can say which and why.
    pub remaining: Vec<ActiveReason>,
}

impl Transition {
    /// [`DndState::locate`], for the state and the history entries alike.
    pub fn locate(&mut self, address_of: impl Fn(Channel) -> Option<String>) {
        self.state.locate(&address_of);
        for e in &mut self.entries {
            if let (Some(channel), Some(reason), None) = (e.channel, e.reason, &e.address) {
                if reason.is_address_keyed() {
                    e.address = address_of(channel);
                }
            }
        }
    }
}

/// The note every bulk change carries into its history rows: required,
/// one paragraph at most.
pub fn change_note(note: &str) -> Result<String, String> {
    let note = note.trim();
    if note.is_empty() {
        return Err("say why (the note goes into each contact's history)".into());
    }
    if note.chars().count() > 500 {
        return Err("keep the note to 500 characters".into());
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err("the note contains control characters".into());
    }
    Ok(note.to_string())
}

/// Why a change was refused, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub message: String,
    /// The reasons that stay in force (empty when the refusal is about
    /// setting).
    pub remaining: Vec<ActiveReason>,
}

impl Refusal {
    fn new(message: impl Into<String>) -> Self {
        Refusal {
            message: message.into(),
            remaining: Vec::new(),
        }
    }

    /// A short name for why, for counting refusals of a bulk change: the
    /// reasons that stay, by name (`sms_opt_out`, `email_bounced,manual`),
    /// or `not_allowed` when the refusal is about who may set.
    pub fn code(&self) -> String {
        reason_code(&self.remaining).unwrap_or_else(|| "not_allowed".to_string())
    }
}

/// The names of these reasons, sorted, comma-separated (`None` if none).
pub fn reason_code(reasons: &[ActiveReason]) -> Option<String> {
    let mut names: Vec<&str> = reasons.iter().map(|a| a.reason.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    (!names.is_empty()).then(|| names.join(","))
}

/// A change of switches by a person or the API: the all-channels switch
/// and/or channels turned on (the `manual` reason) or off (lifting what
/// the actor may lift).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    pub all: Option<bool>,
    pub channels: Vec<(Channel, bool)>,
}

impl Switches {
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.channels.is_empty()
    }
}

/// What the user confirmed along with a lift.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// For email bounces and unsubscribes: the address was removed from the
    /// provider's suppression list and re-validated.
    pub suppression_removed: bool,
}

/// A contact's DND: the all-channels switch and the active reasons per
/// channel. A channel is blocked while any reason is active on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DndState {
    pub all: bool,
    channels: BTreeMap<Channel, Vec<ActiveReason>>,
}

impl DndState {
    /// Rebuilds a state from stored rows.
    pub fn from_parts(
        all: bool,
        reasons: impl IntoIterator<Item = (Channel, ActiveReason)>,
    ) -> Self {
        let mut state = DndState {
            all,
            channels: BTreeMap::new(),
        };
        for (channel, active) in reasons {
            state.insert(channel, active);
        }
        state
    }

    fn insert(&mut self, channel: Channel, active: ActiveReason) {
        let list = self.channels.entry(channel).or_default();
        if !list.iter().any(|a| a.reason == active.reason) {
            list.push(active);
            list.sort_by_key(|a| a.reason);
        }
    }

    pub fn reasons(&self, channel: Channel) -> &[ActiveReason] {
        self.channels
            .get(&channel)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every active reason, channel by channel.
    pub fn all_reasons(&self) -> impl Iterator<Item = (Channel, &ActiveReason)> {
        self.channels
            .iter()
            .flat_map(|(c, list)| list.iter().map(move |a| (*c, a)))
    }

    /// Whether the channel holds a reason of its own (the all-channels switch
    /// aside).
    pub fn has_reasons(&self, channel: Channel) -> bool {
        !self.reasons(channel).is_empty()
    }

    /// Whether an outbound message on this channel must be stopped.
    pub fn is_blocked(&self, channel: Channel) -> bool {
        self.all || self.has_reasons(channel)
    }

    pub fn status(&self) -> Status {
        let active = Channel::ALL
            .iter()
            .filter(|c| self.has_reasons(**c))
            .count();
        if self.all || active == Channel::ALL.len() {
            Status::On
        } else if active > 0 {
            Status::Partial
        } else {
            Status::Off
        }
    }

    /// Bit i set when `Channel::ALL[i]` holds a reason (stored on the contact
    /// so the list can filter without reading the reasons).
    pub fn channel_mask(&self) -> i16 {
        Channel::ALL
            .iter()
            .enumerate()
            .filter(|(_, c)| self.has_reasons(**c))
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    /// Sets a reason on a channel. The same reason arriving again changes
    /// nothing but the history.
    pub fn set(
        &self,
        channel: Channel,
        reason: Reason,
        actor: &Actor,
        at: DateTime<Utc>,
        address: Option<String>,
        source: Option<String>,
    ) -> Result<Transition, Refusal> {
        if !reason.channels().contains(&channel) {
            return Err(Refusal::new(format!(
                "{} cannot be set on {}",
                reason.label(),
                channel.label()
            )));
        }
        if !reason.may_set(actor.kind) {
            return Err(Refusal::new(match reason {
                Reason::Manual => {
                    "Only location and agency users and the automation API turn DND on by hand."
                        .to_string()
                }
                Reason::ImportedOptOut => {
                    "Only location and agency users and the automation API import suppression lists."
                        .to_string()
                }
                _ => format!(
                    "\"{}\" is set only by the contact or a provider event.",
                    reason.label()
                ),
            }));
        }
        let repeated = self.reasons(channel).iter().any(|a| a.reason == reason);
        let mut state = self.clone();
        if !repeated {
            state.insert(
                channel,
                ActiveReason {
                    reason,
                    since: at,
                    actor: actor.clone(),
                    address: address.clone(),
                    source: source.clone(),
                },
            );
        }
        let remaining = state.reasons(channel).to_vec();
        Ok(Transition {
            state,
            entries: vec![HistoryEntry {
                channel: Some(channel),
                reason: Some(reason),
                action: if repeated {
                    Action::Repeated
                } else {
                    Action::Set
                },
                actor: actor.clone(),
                at,
                address,
                source,
                event_at: None,
                detail: None,
            }],
            remaining,
        })
    }

    /// Lifts what the actor may lift on one channel; the other reasons stay
    /// in force. Refused when reasons are active and none of them may be
    /// lifted by this actor (the refusal names each and why).
    pub fn lift(
        &self,
        channel: Channel,
        actor: &Actor,
        at: DateTime<Utc>,
        confirmation: Confirmation,
    ) -> Result<Transition, Refusal> {
        self.lift_matching(channel, actor, at, confirmation, None, |_| true)
    }

    /// Lifts only the reasons `which` accepts (an opt-in keyword lifts the
    /// permanent SMS reasons and nothing else), under the same rules.
    pub fn lift_only(
        &self,
        channel: Channel,
        actor: &Actor,
        at: DateTime<Utc>,
        source: Option<String>,
        which: impl Fn(Reason) -> bool,
    ) -> Result<Transition, Refusal> {
        self.lift_matching(channel, actor, at, Confirmation::default(), source, which)
    }

    fn lift_matching(
        &self,
        channel: Channel,
        actor: &Actor,
        at: DateTime<Utc>,
        confirmation: Confirmation,
        source: Option<String>,
        which: impl Fn(Reason) -> bool,
    ) -> Result<Transition, Refusal> {
        let current = self.reasons(channel);
        let (liftable, kept): (Vec<&ActiveReason>, Vec<&ActiveReason>) =
            current.iter().partition(|a| {
                which(a.reason)
                    && a.reason.may_lift(actor.kind)
                    && (!a.reason.needs_suppression_confirmation()
                        || confirmation.suppression_removed)
            });
        if liftable.is_empty() {
            if current.is_empty() {
                return Ok(Transition {
                    state: self.clone(),
                    entries: Vec::new(),
                    remaining: Vec::new(),
                });
            }
            let kept: Vec<ActiveReason> = kept.into_iter().cloned().collect();
            let needs_confirmation = kept.iter().any(|a| {
                which(a.reason)
                    && a.reason.may_lift(actor.kind)
                    && a.reason.needs_suppression_confirmation()
            });
            let message = if needs_confirmation {
                format!(
                    "{} DND stays on: first confirm that the address was removed from the \
                     provider's suppression list and re-validated.",
                    channel.label()
                )
            } else {
                // No location here: the dates are UTC's, and say so.
                let why: Vec<String> = kept.iter().map(|a| a.explain(Zone::UTC)).collect();
                format!(
                    "{} DND stays on. {}",
                    channel.label(),
                    capitalise(&why.join(". "))
                )
            };
            return Err(Refusal {
                message,
                remaining: kept,
            });
        }
        let mut state = self.clone();
        let lifted: Vec<Reason> = liftable.iter().map(|a| a.reason).collect();
        let list = state.channels.entry(channel).or_default();
        list.retain(|a| !lifted.contains(&a.reason));
        if list.is_empty() {
            state.channels.remove(&channel);
        }
        let entries = liftable
            .into_iter()
            .map(|a| HistoryEntry {
                channel: Some(channel),
                reason: Some(a.reason),
                action: Action::Lifted,
                actor: actor.clone(),
                at,
                address: a.address.clone(),
                source: source.clone(),
                event_at: None,
                detail: None,
            })
            .collect();
        Ok(Transition {
            remaining: state.reasons(channel).to_vec(),
            state,
            entries,
        })
    }

    /// Applies every switch of `switches`, all or none: one refused lift
    /// refuses the whole change. `source` names where the change was made
    /// (the reason's source), `detail` is a note for each history row.
    pub fn switch(
        &self,
        switches: &Switches,
        actor: &Actor,
        at: DateTime<Utc>,
        source: &str,
        detail: Option<&str>,
    ) -> Result<Transition, Refusal> {
        let mut state = self.clone();
        let mut entries = Vec::new();
        let mut remaining = Vec::new();
        if let Some(on) = switches.all {
            let t = state.switch_all(on, actor, at)?;
            entries.extend(t.entries);
            state = t.state;
        }
        for (channel, on) in &switches.channels {
            let t = if *on {
                state.set(
                    *channel,
                    Reason::Manual,
                    actor,
                    at,
                    None,
                    Some(source.to_string()),
                )?
            } else {
                let t = state.lift(*channel, actor, at, Confirmation::default())?;
                // What a lift leaves in force (a set's "remaining" is
                // what it just set).
                remaining.extend(t.remaining.iter().cloned());
                t
            };
            entries.extend(t.entries);
            state = t.state;
        }
        if let Some(note) = detail {
            for e in &mut entries {
                e.detail = Some(note.to_string());
            }
        }
        Ok(Transition {
            state,
            entries,
            remaining,
        })
    }

    /// Turns the all-channels switch on or off. Only location and agency
    /// users and the automation API may; the per-channel reasons are not
    /// touched either way.
    pub fn switch_all(
        &self,
        on: bool,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Transition, Refusal> {
        if !actor.kind.may_switch_all() {
            return Err(Refusal::new(
                "Only location and agency users and the automation API switch DND on all channels.",
            ));
        }
        let mut state = self.clone();
        let entries = if self.all == on {
            Vec::new()
        } else {
            state.all = on;
            vec![HistoryEntry {
                channel: None,
                reason: None,
                action: if on { Action::Set } else { Action::Lifted },
                actor: actor.clone(),
                at,
                address: None,
                source: None,
                event_at: None,
                detail: None,
            }]
        };
        Ok(Transition {
            state,
            entries,
            remaining: Vec::new(),
        })
    }

    /// Puts every reason that is kept by address, and names none yet, on
    /// the address `address_of` gives for its channel (a contact's address
    /// there; `None` leaves it on the contact).
    pub fn locate(&mut self, address_of: impl Fn(Channel) -> Option<String>) {
        for (channel, list) in self.channels.iter_mut() {
            for a in list.iter_mut() {
                if a.address.is_none() && a.reason.is_address_keyed() {
                    a.address = address_of(*channel);
                }
            }
        }
    }

    /// Rebuilds the state from its history alone, oldest entry first.
    pub fn replay<'a>(entries: impl IntoIterator<Item = &'a HistoryEntry>) -> DndState {
        let mut state = DndState::default();
        for e in entries {
            match (e.channel, e.reason, e.action) {
                (None, _, Action::Set) => state.all = true,
                (None, _, Action::Lifted) => state.all = false,
                (Some(channel), Some(reason), Action::Set) => state.insert(
                    channel,
                    ActiveReason {
                        reason,
                        since: e.event_at.unwrap_or(e.at),
                        actor: e.actor.clone(),
                        address: e.address.clone(),
                        source: e.source.clone(),
                    },
                ),
                (Some(channel), Some(reason), Action::Lifted) => {
                    if let Some(list) = state.channels.get_mut(&channel) {
                        list.retain(|a| a.reason != reason);
                        if list.is_empty() {
                            state.channels.remove(&channel);
                        }
                    }
                }
                _ => {}
            }
        }
        state
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
