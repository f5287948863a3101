//! The DND panel of the contact page and the form that changes it.

use actix_session::Session;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;

use super::session::redirect;
use crate::db::dnd::{self as dnd_store, DndError};
use crate::db::integrations::Integration;
use crate::db::optin::RequestRecord;
use crate::db::users::User;
use crate::db::{self};
use crate::domain::dnd::{
    channel_state, locked_note, switch_label, ActiveReason, Actor, ActorKind, Confirmation,
    DndState, Reason, Status, Transition,
};
use crate::domain::local_time::Zone;
use crate::domain::optin::{has_something_to_lift, RequestState};
use crate::domain::{Channel, IntegrationStatus, Role};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

const FLASH: &str = "flash";
/// Where on the next page the notice goes, when it belongs to one card
/// (see [`Placed`]); absent for the page's top.
const FLASH_PLACE: &str = "flash_place";

/// The DND actor a signed-in user is.
pub fn actor_for(user: &User) -> Actor {
    let kind = match user.role() {
        Role::Location => ActorKind::LocationUser,
        Role::Agency => ActorKind::AgencyUser,
        Role::Support => ActorKind::Support,
    };
    Actor::new(kind, Some(user.id), user.email.clone())
}

/// One active reason as the page shows it.
pub struct ReasonView {
    pub label: &'static str,
    /// `temporary` or `permanent`: only the marker's colour (pages say who
    /// can lift it instead).
    pub kind: &'static str,
    /// "location or agency users can lift", "only the contact (START) or
    /// support can lift".
    pub who_lifts: &'static str,
    /// In the location's time zone.
    pub since: crate::web::clock::LocalTime,
    pub by: String,
    pub address: Option<String>,
}

impl ReasonView {
    pub fn new(a: &ActiveReason, zone: Zone) -> Self {
        ReasonView {
            label: a.reason.label(),
            kind: a.reason.kind().as_str(),
            who_lifts: a.reason.who_lifts(),
            since: crate::web::clock::Clock::new(zone).time(a.since),
            by: match a.actor.kind {
                ActorKind::Contact => "the contact".to_string(),
                ActorKind::Provider => format!("provider event ({})", a.actor.label),
                ActorKind::Api => format!("automation API ({})", a.actor.label),
                _ => a.actor.label.clone(),
            },
            address: a.address.clone(),
        }
    }
}

/// One channel's row of the panel.
pub struct ChannelView {
    pub channel: &'static str,
    pub label: &'static str,
    /// What the switch does: "Block SMS".
    pub switch_label: String,
    /// The channel holds reasons of its own.
    pub on: bool,
    /// Blocked, by its own reasons or by the all-channels switch: what the
    /// switch shows (`aria-checked`).
    pub blocked: bool,
    /// The state in words: "Blocked", "Allowed", "Blocked (All channels)".
    pub state: String,
    /// While the all-channels switch is on, the channel's switch is locked
    /// on; this says so and what the channel's own DND will do once it is
    /// off.
    pub locked_by_all: Option<String>,
    /// The switch acts (else it is shown `aria-disabled`, focusable, with
    /// [`Self::described_by`] saying why).
    pub can_act: bool,
    /// Under All channels with its own DND off: offer to turn its own DND
    /// on, so it stays blocked once All is turned off.
    pub can_keep_blocked: bool,
    /// The ids of the elements that explain a locked switch.
    pub described_by: String,
    pub reasons: Vec<ReasonView>,
    /// Offered as a switch (its integration is connected).
    pub offered: bool,
    /// The user may flip the switch.
    pub can_change: bool,
    /// Why the switch is disabled, and what can be done.
    pub why_disabled: Vec<String>,
    /// Turning it off asks to confirm the suppression list was cleaned.
    pub needs_confirmation: bool,
    /// Reasons that will stay in force after the user's lift.
    pub stays: Vec<String>,
    /// For a channel not offered: why its DND is only shown.
    pub read_only_note: Option<String>,
    /// The channel holds a permanent reason the user can ask support to
    /// lift with opt-in evidence.
    pub can_request: bool,
    /// The request already waiting for support on this channel.
    pub open_request: Option<i64>,
}

pub struct DndPanel {
    pub status: Status,
    pub all: bool,
    pub can_switch_all: bool,
    pub channels: Vec<ChannelView>,
    pub read_only_note: Option<&'static str>,
}

/// The id of the panel's read-only note, which every locked switch points
/// at for a read-only user.
pub const READ_ONLY_ID: &str = "dnd-read-only";

impl DndPanel {
    pub fn status_label(&self) -> &'static str {
        self.status.label()
    }

    /// The all-channels switch's state in words.
    pub fn all_state(&self) -> &'static str {
        if self.all {
            "Blocked"
        } else {
            "Off"
        }
    }

    /// The id of the note that explains a locked switch to a read-only
    /// user; empty for users whose switches act.
    pub fn read_only_id(&self) -> &'static str {
        if self.read_only_note.is_some() {
            READ_ONLY_ID
        } else {
            ""
        }
    }

    pub fn status_class(&self) -> &'static str {
        self.status.as_str()
    }

    /// Builds what the page offers from the state, the location's
    /// integrations and who is looking. The rules themselves stay in the
    /// domain: this only asks them. Times are the location's (`zone`).
    pub fn build(state: &DndState, integrations: &[Integration], user: &User, zone: Zone) -> Self {
        let actor = actor_for(user).kind;
        let read_only = user.role().is_read_only();
        let channels = Channel::ALL
            .into_iter()
            .filter_map(|channel| {
                let status = integrations
                    .iter()
                    .find(|i| i.channel == channel)
                    .map(|i| i.status);
                let reasons = state.reasons(channel);
                let on = !reasons.is_empty();
                let offered = status == Some(IntegrationStatus::Connected);
                if !offered && !on {
                    return None;
                }
                let read_only_note = (!offered).then(|| match status {
                    Some(IntegrationStatus::Disconnected) => {
                        format!("Kept while {} is disconnected.", channel.label())
                    }
                    Some(IntegrationStatus::Error) => format!(
                        "Kept while the {} integration is in error.",
                        channel.label()
                    ),
                    _ => format!(
                        "Kept: this location has no {} integration.",
                        channel.label()
                    ),
                });
                let liftable: Vec<&ActiveReason> = reasons
                    .iter()
                    .filter(|a| a.reason.may_lift(actor))
                    .collect();
                let kept: Vec<&ActiveReason> = reasons
                    .iter()
                    .filter(|a| !a.reason.may_lift(actor))
                    .collect();
                let can_change = offered && !read_only && (!on || !liftable.is_empty());
                let why_disabled: Vec<String> =
                    if offered && on && liftable.is_empty() && !read_only {
                        kept.iter()
                            .map(|a| {
                                format!(
                                    "{}. {}",
                                    capitalised(&a.explain(zone)),
                                    a.reason.next_step()
                                )
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                let name = channel.as_str();
                let locked_by_all = state.all.then(|| locked_note(channel, on));
                let can_act = can_change && !state.all;
                // Under All the switch is locked, but the channel's own DND
                // can still be turned on first, so turning All off later
                // leaves no moment when the channel is allowed.
                let can_keep_blocked = state.all && !on && can_change;
                let mut explained: Vec<String> = Vec::new();
                if !can_act {
                    if read_only {
                        explained.push(READ_ONLY_ID.to_string());
                    }
                    if locked_by_all.is_some() {
                        explained.push(format!("locked-{name}"));
                    }
                    explained.extend((0..why_disabled.len()).map(|i| format!("why-{name}-{i}")));
                }
                Some(ChannelView {
                    channel: name,
                    label: channel.label(),
                    switch_label: switch_label(channel),
                    on,
                    blocked: on || state.all,
                    state: channel_state(on, state.all).to_string(),
                    locked_by_all,
                    can_act,
                    can_keep_blocked,
                    described_by: explained.join(" "),
                    reasons: reasons.iter().map(|a| ReasonView::new(a, zone)).collect(),
                    offered,
                    can_change,
                    why_disabled,
                    needs_confirmation: liftable
                        .iter()
                        .any(|a| a.reason.needs_suppression_confirmation()),
                    stays: if liftable.is_empty() {
                        Vec::new()
                    } else {
                        kept.iter().map(|a| a.reason.label().to_string()).collect()
                    },
                    read_only_note,
                    can_request: !read_only && has_something_to_lift(reasons),
                    open_request: None,
                })
            })
            .collect();
        DndPanel {
            status: state.status(),
            all: state.all,
            can_switch_all: !read_only && actor.may_switch_all(),
            channels,
            read_only_note: read_only.then_some(
                "Support sees DND read-only here; permanent DND is lifted by approving opt-in evidence.",
            ),
        }
    }
}

impl DndPanel {
    /// Marks the channels with a request waiting for support (the page
    /// links to it instead of offering a second one).
    pub fn with_requests(mut self, requests: &[RequestRecord]) -> Self {
        for ch in &mut self.channels {
            ch.open_request = requests
                .iter()
                .find(|r| {
                    r.request.channel.as_str() == ch.channel && r.state() == RequestState::Open
                })
                .map(|r| r.request.id);
        }
        self
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Leaves a one-time notice for the next page, shown at its top.
pub fn set_flash(session: &Session, message: String) -> Result<(), PageError> {
    session.remove(FLASH_PLACE);
    session.insert(FLASH, message)?;
    Ok(())
}

/// The cards of the contact page a notice can be shown in, next to what
/// changed, instead of the page's top (out of view after the redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// The DND card: `#dnd-result`.
    Dnd,
    /// The "Send a message" card: `#send-result`.
    Send,
}

impl Placed {
    fn as_str(self) -> &'static str {
        match self {
            Placed::Dnd => "dnd",
            Placed::Send => "send",
        }
    }

    /// The element the notice is shown in, which the redirect's fragment
    /// names so the browser moves focus to it.
    pub fn fragment(self) -> &'static str {
        match self {
            Placed::Dnd => "dnd-result",
            Placed::Send => "send-result",
        }
    }
}

/// Leaves a one-time notice for the card of the next page that `place`
/// names.
pub fn set_flash_in(session: &Session, place: Placed, message: String) -> Result<(), PageError> {
    session.insert(FLASH, message)?;
    session.insert(FLASH_PLACE, place.as_str())?;
    Ok(())
}

/// Takes the one-time notice left by the last change, if any, wherever it
/// was placed.
pub fn take_flash(session: &Session) -> Option<String> {
    take_placed_flash(session).map(|(_, message)| message)
}

/// Takes the one-time notice and the card it belongs to (`None`: the
/// page's top).
pub fn take_placed_flash(session: &Session) -> Option<(Option<Placed>, String)> {
    let flash = session.get::<String>(FLASH).ok().flatten();
    let place = session.get::<String>(FLASH_PLACE).ok().flatten();
    // Removing marks the session changed (a new cookie on the response):
    // only when there is something to remove, not on every page view.
    if place.is_some() {
        session.remove(FLASH_PLACE);
    }
    if flash.is_some() {
        session.remove(FLASH);
    }
    let place = place.and_then(|p| {
        [Placed::Dnd, Placed::Send]
            .into_iter()
            .find(|k| k.as_str() == p)
    });
    flash.map(|message| (place, message))
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    /// `all` or a channel.
    target: String,
    /// `on` or `off`.
    turn: String,
    /// The email suppression confirmation checkbox.
    #[serde(default)]
    confirm_suppression_removed: Option<String>,
}

#[derive(Clone, Copy)]
enum Target {
    All,
    Channel(Channel),
    /// Inbound DND for SMS or calls.
    Inbound(Channel),
}

/// Turns a channel (or all channels) on or off for the signed-in user. The
/// server checks every rule: a change the user may not make is a 403 with
/// the reason, and nothing is written.
pub async fn change_dnd(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    CsrfForm(form): CsrfForm<ChangeForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    let (location_id, contact_id) = path.into_inner();
    let target = match form.target.as_str() {
        "all" => Target::All,
        "inbound_sms" => Target::Inbound(Channel::Sms),
        "inbound_calls" => Target::Inbound(Channel::Call),
        other => Target::Channel(other.parse().map_err(PageError::BadRequest)?),
    };
    let on = match form.turn.as_str() {
        "on" => true,
        "off" => false,
        other => {
            return Err(PageError::BadRequest(format!(
                "\"{other}\" is not a switch position: use on or off"
            )))
        }
    };
    let confirmation = Confirmation {
        suppression_removed: form.confirm_suppression_removed.is_some(),
    };
    if at.user.role().is_read_only() {
        // Checked before the location, but support sees every location, so
        // this reveals nothing.
        return Err(PageError::Forbidden(
            "Support does not change DND from the contact record; permanent DND is lifted by \
             approving opt-in evidence. Nothing was changed."
                .into(),
        ));
    }
    let actor = actor_for(&at.user);
    let location = at.location;
    let zone = location.zone();
    let result = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let now = Utc::now();
        // Outbound DND goes through the rules of reasons; inbound is a
        // switch of its own (no transition to tell about).
        let channel = match target {
            Target::Inbound(channel) => {
                let switched = crate::db::inbound::switch(
                    conn,
                    location.id,
                    contact_id,
                    &[(channel, on)],
                    &actor,
                );
                return match switched {
                    Ok(_) => Ok(Ok(None)),
                    Err(DndError::NotFound) => Err(PageError::NotFound),
                    Err(DndError::Refused(refusal)) => Ok(Err(refusal)),
                    Err(DndError::Db(e)) => Err(e.into()),
                };
            }
            Target::All => None,
            Target::Channel(channel) => Some(channel),
        };
        let applied = dnd_store::apply(conn, location.id, contact_id, |state| match channel {
            None => state.switch_all(on, &actor, now),
            Some(channel) if on => state.set(
                channel,
                Reason::Manual,
                &actor,
                now,
                None,
                Some("contact page".into()),
            ),
            Some(channel) => state.lift(channel, &actor, now, confirmation),
        });
        match applied {
            Ok(t) => Ok(Ok(Some(t))),
            Err(DndError::NotFound) => Err(PageError::NotFound),
            Err(DndError::Refused(refusal)) => Ok(Err(refusal)),
            Err(DndError::Db(e)) => Err(e.into()),
        }
    })
    .await?;
    match result {
        Ok(transition) => {
            let message = match (&transition, target) {
                (Some(t), _) => notice(&target, on, t, zone),
                (None, Target::Inbound(Channel::Sms)) if on => {
                    "Inbound SMS muted: messages from this contact are kept without notifying anyone.".to_string()
                }
                (None, Target::Inbound(Channel::Sms)) => "Inbound SMS no longer muted.".to_string(),
                (None, _) if on => "Inbound calls from this contact are now rejected.".to_string(),
                (None, _) => "Inbound calls from this contact are accepted again.".to_string(),
            };
            set_flash_in(&session, Placed::Dnd, message)?;
            Ok(redirect(&format!(
                "/locations/{location_id}/contacts/{contact_id}#{}",
                Placed::Dnd.fragment()
            )))
        }
        Err(refusal) => Err(PageError::Forbidden(format!(
            "{} Nothing was changed.",
            refusal.message
        ))),
    }
}

/// "Calls are", "SMS is".
fn is(channel: Channel) -> &'static str {
    if channel == Channel::Call {
        "are"
    } else {
        "is"
    }
}

/// What the page says after a change.
fn notice(target: &Target, on: bool, t: &Transition, zone: Zone) -> String {
    let what = match target {
        Target::All => "DND on all channels".to_string(),
        Target::Channel(c) => format!("{} DND", c.label()),
        Target::Inbound(c) => format!("Inbound {} DND", c.label()),
    };
    if t.entries.is_empty() {
        return format!("{what} was already {}.", if on { "on" } else { "off" });
    }
    let then = match (target, on) {
        (Target::All, true) => "Every channel is blocked.".to_string(),
        (Target::All, false) => "Each channel follows its own DND again.".to_string(),
        (Target::Channel(c), true) => format!("{} {} blocked.", c.label(), is(*c)),
        (Target::Channel(c), false) if t.state.all => {
            format!("{} {} still blocked by All channels.", c.label(), is(*c))
        }
        (Target::Channel(c), false) => format!("{} {} allowed.", c.label(), is(*c)),
        (Target::Inbound(_), _) => String::new(),
    };
    let done = format!("{what} turned {}. {then}", if on { "on" } else { "off" })
        .trim_end()
        .to_string();
    if !on && !t.remaining.is_empty() {
        let stays: Vec<String> = t
            .remaining
            .iter()
            .map(|a| capitalised(&a.explain(zone)))
            .collect();
        format!(
            "Lifted what you may lift; the channel stays blocked. {}.",
            stays.join(". ")
        )
    } else {
        done
    }
}
