//! The JSON shapes of the API, kept apart from the database models so the
//! schema can change without breaking clients.

use chrono::{DateTime, Utc};
use serde::Serialize;

use std::collections::BTreeMap;

use crate::db::contacts::Contact;
use crate::db::dnd::HistoryRow;
use crate::db::optin::RequestRecord;
use crate::domain::dnd::{ActiveReason, DndState, InboundDnd};
use crate::domain::Channel;

#[derive(Debug, Serialize)]
pub struct ContactView {
    pub id: i64,
    pub location_id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub facebook_id: Option<String>,
    pub whatsapp_id: Option<String>,
    pub gmb_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Present where one contact is shown in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnd: Option<DndView>,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        ContactView {
            id: c.id,
            location_id: c.location_id,
            name: c.name,
            phone: c.phone,
            email: c.email,
            facebook_id: c.facebook_id,
            whatsapp_id: c.whatsapp_id,
            gmb_id: c.gmb_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
            dnd: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ContactList {
    pub contacts: Vec<ContactView>,
}

/// A contact's DND: `{"status", "all", "channels": {"sms": {"blocked",
/// "reasons": [...]}, ...}}`, every channel listed.
#[derive(Debug, Serialize)]
pub struct DndView {
    pub status: &'static str,
    pub all: bool,
    pub channels: BTreeMap<&'static str, ChannelDndView>,
    /// Inbound DND: messages from the contact muted, calls rejected.
    pub inbound: InboundView,
}

#[derive(Debug, Serialize)]
pub struct InboundView {
    pub sms: bool,
    pub calls: bool,
}

#[derive(Debug, Serialize)]
pub struct ChannelDndView {
    pub blocked: bool,
    pub reasons: Vec<ReasonView>,
}

#[derive(Debug, Serialize)]
pub struct ReasonView {
    pub reason: &'static str,
    pub kind: &'static str,
    pub since: DateTime<Utc>,
    pub liftable_by: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl From<&ActiveReason> for ReasonView {
    fn from(a: &ActiveReason) -> Self {
        ReasonView {
            reason: a.reason.as_str(),
            kind: a.reason.kind().as_str(),
            since: a.since,
            liftable_by: a.reason.lifted_by().iter().map(|k| k.as_str()).collect(),
            address: a.address.clone(),
        }
    }
}

impl DndView {
    pub fn new(state: &DndState, inbound: InboundDnd) -> Self {
        DndView {
            inbound: InboundView {
                sms: inbound.sms,
                calls: inbound.calls,
            },
            status: state.status().as_str(),
            all: state.all,
            channels: Channel::ALL
                .into_iter()
                .map(|c| {
                    (
                        c.as_str(),
                        ChannelDndView {
                            blocked: state.is_blocked(c),
                            reasons: state.reasons(c).iter().map(ReasonView::from).collect(),
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub id: i64,
    /// `null` for the all-channels switch.
    pub channel: Option<String>,
    pub reason: Option<String>,
    pub kind: Option<String>,
    pub action: String,
    pub actor: ActorView,
    pub address: Option<String>,
    pub source: Option<String>,
    pub at: DateTime<Utc>,
    /// When the provider says a consent event happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_at: Option<DateTime<Utc>>,
    /// Why a late event was ignored; where an old address's reasons stay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ActorView {
    pub kind: String,
    pub id: Option<i64>,
    pub label: String,
}

impl From<HistoryRow> for HistoryView {
    fn from(h: HistoryRow) -> Self {
        HistoryView {
            id: h.id,
            channel: h.channel.map(|c| c.as_str().to_string()),
            reason: h.reason.map(|r| r.as_str().to_string()),
            kind: h.kind.map(|k| k.as_str().to_string()),
            action: h.action.as_str().to_string(),
            actor: ActorView {
                kind: h.actor_kind.as_str().to_string(),
                id: h.actor_id,
                label: h.actor_label,
            },
            address: h.address,
            source: h.source,
            at: h.at,
            event_at: h.event_at,
            detail: h.detail,
        }
    }
}

/// An opt-in evidence request as automations see it.
#[derive(Debug, Serialize)]
pub struct OptinRequestView {
    pub id: i64,
    pub channel: &'static str,
    /// `open`, `approved` or `rejected`.
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Support's note (the reason, for a rejection).
    pub decision_note: Option<String>,
}

impl From<&RequestRecord> for OptinRequestView {
    fn from(r: &RequestRecord) -> Self {
        OptinRequestView {
            id: r.request.id,
            channel: r.request.channel.as_str(),
            state: r.state().as_str(),
            created_at: r.request.created_at,
            decided_at: r.decision.as_ref().map(|d| d.decided_at),
            decision_note: r
                .decision
                .as_ref()
                .map(|d| d.note.clone())
                .filter(|n| !n.is_empty()),
        }
    }
}
