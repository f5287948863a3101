use actix_session::Session;
use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::compose::{composers, Composer};
use super::dnd::{take_placed_flash, DndPanel, Placed};
use super::Nav;
use crate::db::contact_page::{self, ContactPageReads, ContactReads, Shown};
use crate::db::contacts::{self, Contact, ContactPage as Page, Cursor, ListFilter, Total};
use crate::db::dnd::HistoryRow;
use crate::db::locations::Location;
use crate::db::optin::RequestRecord;
use crate::db::webhooks::Message;
use crate::db::{self, DbError};
use crate::db::{list_page, who};
use crate::domain::dnd::{Action, Status};
use crate::domain::{channel_label, Channel};
use crate::web::auth::{Claim, VisibleLocation, SWITCHER_SIZE};
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

pub const PAGE_SIZE: i64 = 50;
const HISTORY_SHOWN: i64 = 200;
const MESSAGES_SHOWN: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    /// `on`, `partial` or `off`; empty for any.
    #[serde(default)]
    status: String,
    /// A channel the contact is blocked on; empty for any.
    #[serde(default)]
    channel: String,
    /// The id of the last contact of the previous page.
    after: Option<i64>,
    /// The id of the first contact of the next page.
    before: Option<i64>,
    /// The position of the page's first contact in the list, as the pager
    /// link that led here counted it (keyset pages do not know it).
    start: Option<i64>,
}

/// One row of the list.
pub struct ContactRow {
    pub contact: Contact,
    pub status: Status,
    pub blocked: Vec<Channel>,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/list.html")]
pub struct ContactsPage {
    pub nav: Nav,
    pub location: Location,
    pub rows: Vec<ContactRow>,
    pub q: String,
    pub status: String,
    pub channel: String,
    pub next_after: Option<i64>,
    pub prev_before: Option<i64>,
    /// How many contacts the list (with its filter) holds.
    pub total: Total,
    /// The position of the first row in the list (1 for the first page),
    /// when known.
    pub first: Option<i64>,
    /// The location's region and its calling code, for the search hint.
    pub region: String,
    pub calling_code: Option<u16>,
}

impl ContactsPage {
    /// Builds the page from one page of the list (shared with the
    /// benchmark, which renders exactly what users get).
    pub fn new(
        nav: Nav,
        location: Location,
        page: Page,
        q: String,
        status: String,
        channel: String,
    ) -> Self {
        let rows = page.contacts.len() as i64;
        // The first page starts at 1; a last page whose list was counted
        // ends at its total.
        let first = match (page.has_prev, page.has_next, page.total) {
            (false, _, _) => Some(1),
            (true, false, Total::Exact(n)) => Some((n - rows + 1).max(1)),
            _ => None,
        };
        let region = location.default_region.clone();
        ContactsPage {
            total: page.total,
            first,
            calling_code: crate::domain::region::national_rules(&region).map(|(c, _)| c),
            region,
            nav,
            next_after: page
                .has_next
                .then(|| page.contacts.last().map(|c| c.id))
                .flatten(),
            prev_before: page
                .has_prev
                .then(|| page.contacts.first().map(|c| c.id))
                .flatten(),
            location,
            rows: page
                .contacts
                .into_iter()
                .map(|contact| ContactRow {
                    status: contact.dnd_status(),
                    blocked: if contact.dnd_all {
                        Channel::ALL.to_vec()
                    } else {
                        contact.blocked_channels()
                    },
                    contact,
                })
                .collect(),
            q,
            status,
            channel,
        }
    }

    /// The list's position, for pages reached by a pager link (the page
    /// cannot tell it otherwise): kept when it fits what the page knows.
    pub fn starting_at(mut self, start: Option<i64>) -> Self {
        if self.first.is_none() {
            self.first = start.filter(|s| *s > 1);
        }
        self
    }

    /// The query string that keeps the search and filters when paging.
    fn keep(&self) -> String {
        ListFilter::query_string(&self.q, &self.status, &self.channel)
    }

    /// `start=…&` for the next page's link, when this page's position is
    /// known.
    fn next_start(&self) -> String {
        self.first
            .map(|f| format!("start={}&", f + self.rows.len() as i64))
            .unwrap_or_default()
    }

    /// `start=…&` for the previous page's link (a full page before this).
    fn prev_start(&self) -> String {
        self.first
            .map(|f| format!("start={}&", (f - PAGE_SIZE).max(1)))
            .unwrap_or_default()
    }

    /// "51–100 of 201", "1–50 of ≈1,000,000", or "50 shown of ≈1,000,000"
    /// when the page does not know where it is.
    fn counted(&self) -> String {
        let rows = self.rows.len() as i64;
        let total = match self.total {
            Total::Exact(n) => grouped(n),
            Total::About(n) => format!("≈{}", grouped(n)),
            // Counted from this page on: with the rows before it, and at
            // least one more when there is a next page.
            Total::AtLeast(n) => {
                let before = self.first.map_or(0, |f| f - 1);
                let shown = before + rows + i64::from(self.next_after.is_some());
                format!("at least {}", grouped((before + n).max(shown)))
            }
        };
        match self.first {
            Some(f) => format!("{}–{} of {total}", grouped(f), grouped(f + rows - 1)),
            None => format!("{rows} shown of {total}"),
        }
    }

    /// Whether the search was a phone number (the hint says how they are
    /// read).
    fn phone_search(&self) -> bool {
        matches!(
            crate::domain::search::Search::parse(&self.q, &self.region),
            Some(crate::domain::search::Search::Phone(_))
        )
    }

    /// The filters besides the search, in words ("with DND status On,
    /// blocked on SMS"), for the empty list.
    fn filters_in_words(&self) -> String {
        let mut parts = Vec::new();
        if let Ok(status) = self.status.parse::<Status>() {
            parts.push(format!("with DND status {}", status.label()));
        }
        if let Ok(channel) = self.channel.parse::<Channel>() {
            parts.push(format!("blocked on {}", channel.label()));
        }
        parts.join(", ")
    }

    fn filtered(&self) -> bool {
        !(self.q.is_empty() && self.status.is_empty() && self.channel.is_empty())
    }

    fn statuses(&self) -> [Status; 3] {
        Status::ALL
    }

    fn channels(&self) -> [Channel; 6] {
        Channel::ALL
    }
}

pub async fn list_contacts(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<ListQuery>,
    path: web::Path<i64>,
    claim: Claim,
) -> Result<ContactsPage, PageError> {
    let location_id = path.into_inner();
    let ListQuery {
        q,
        status,
        channel,
        after,
        before,
        start,
    } = query.into_inner();
    let cursor = match (after, before) {
        (Some(id), _) => Cursor::After(id),
        (None, Some(id)) => Cursor::Before(id),
        (None, None) => Cursor::First,
    };
    // The usual page, the whole location in name order: who and the page
    // in one statement (`db::list_page`). A search or a filter, or a
    // cursor whose contact is gone, is listed by `contacts::list`.
    let whole_location = q.trim().is_empty() && status.is_empty() && channel.is_empty();
    let asked = list_page::ListAsked {
        user_id: claim.user_id(),
        generation: claim.generation(),
        location_id,
        cursor,
        page_size: PAGE_SIZE,
        switcher: SWITCHER_SIZE,
    };
    let estimates = state.pool.estimates();
    let (who, page) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        if whole_location {
            let read = list_page::read(conn, &asked, &estimates)?;
            return Ok((read.who, read.page));
        }
        let who = who::read(
            conn,
            asked.user_id,
            asked.generation,
            location_id,
            SWITCHER_SIZE,
        )
        .map_err(DbError::from)?;
        Ok((who, None))
    })
    .await?;
    let at = claim.visible(&session, who.user, who.location, who.switcher)?;
    let nav = Nav::at(&at, &session)?;
    let location = at.location;
    let page = match page {
        Some(page) => page,
        None => {
            let filter = ListFilter::from_query(&q, &status, &channel)
                .map_err(PageError::BadRequest)?
                .in_region(&location.default_region);
            let estimates = state.pool.estimates();
            db::run(&state.pool, move |conn| -> Result<_, PageError> {
                Ok(contacts::list(
                    conn,
                    location_id,
                    &filter,
                    &cursor,
                    PAGE_SIZE,
                    &estimates,
                )?)
            })
            .await?
        }
    };
    Ok(ContactsPage::new(nav, location, page, q, status, channel).starting_at(start))
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/show.html")]
pub struct ContactPage {
    nav: Nav,
    location: Location,
    contact: Contact,
    dnd: DndPanel,
    history: Vec<HistoryRow>,
    messages: Vec<Message>,
    composers: Vec<Composer>,
    requests: Vec<RequestRecord>,
    /// A notice for the page's top (a contact saved, a request filed).
    flash: Option<String>,
    /// The notice of a DND change, shown (and focused) in the DND card.
    dnd_result: Option<String>,
    /// The notice of a send, shown (and focused) in the composer card.
    send_result: Option<String>,
}

impl ContactPage {
    /// The inbound DND switches: form target, label, state, state in words.
    fn inbound_switches(&self) -> [(&'static str, &'static str, bool, &'static str); 2] {
        let sms = self.contact.inbound_sms_dnd;
        let calls = self.contact.inbound_calls_dnd;
        [
            (
                "inbound_sms",
                "Mute inbound SMS",
                sms,
                if sms { "Muted" } else { "Not muted" },
            ),
            (
                "inbound_calls",
                "Reject inbound calls",
                calls,
                if calls { "Rejected" } else { "Accepted" },
            ),
        ]
    }
}

/// One line of the contact's timeline: a message (inbound or outbound,
/// with its status and any blocking reasons) or a DND change.
pub struct TimelineRow {
    pub at: chrono::DateTime<chrono::Utc>,
    pub channel: String,
    pub what: String,
    pub text: String,
    pub status: String,
    pub status_class: String,
    pub detail: String,
}

impl ContactPage {
    /// Messages and DND changes together, newest first.
    fn timeline(&self) -> Vec<TimelineRow> {
        let mut rows: Vec<TimelineRow> = self
            .messages
            .iter()
            .map(|m| {
                let who = if m.direction == "inbound" {
                    m.from_address.as_deref().map(|f| format!(" from {f}"))
                } else {
                    m.to_address.as_deref().map(|t| format!(" to {t}"))
                };
                let mut detail = Vec::new();
                if let Some(code) = m.error_code {
                    detail.push(format!("error {code}"));
                }
                if !m.blocked_reasons.is_empty() {
                    detail.push(m.blocked_labels());
                }
                if let Some(origin) = &m.origin {
                    detail.push(origin.clone());
                }
                if m.muted {
                    detail.push("muted: inbound SMS DND is on, no one was notified".to_string());
                }
                TimelineRow {
                    at: m.created_at,
                    channel: channel_label(&m.channel).to_string(),
                    what: format!("{}{}", m.direction, who.unwrap_or_default()),
                    text: match &m.subject {
                        Some(subject) if !subject.is_empty() => format!("{subject}: {}", m.body),
                        _ => m.body.clone(),
                    },
                    status: if m.muted {
                        "muted".to_string()
                    } else {
                        m.status.clone()
                    },
                    status_class: if m.muted {
                        "msg-muted".to_string()
                    } else {
                        format!("msg-{}", m.status)
                    },
                    detail: detail.join(" · "),
                }
            })
            .collect();
        rows.extend(self.history.iter().map(|h| TimelineRow {
            at: h.at,
            channel: h.channel_label().to_string(),
            what: "DND".to_string(),
            text: match &h.address {
                Some(address) => {
                    format!("{} — {} on {address}", h.action_label(), h.reason_label())
                }
                None => format!("{} — {}", h.action_label(), h.reason_label()),
            },
            // The column's heading is "Status or who can lift": a DND
            // change says who can lift what it put in force (not its kind:
            // "temporary" read as if it expired).
            status: match (h.reason, h.action) {
                (_, Action::Stale | Action::AddressChanged | Action::Lifted) => {
                    h.action.label().to_string()
                }
                (_, Action::InboundOn | Action::InboundOff) => "inbound".into(),
                (Some(reason), _) => reason.who_lifts().to_string(),
                (None, _) => "all-channels switch".into(),
            },
            status_class: "msg-dnd".to_string(),
            detail: h.actor_label.clone(),
        }));
        rows.sort_by_key(|r| std::cmp::Reverse(r.at));
        rows
    }
}

pub async fn show_contact(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    claim: Claim,
) -> Result<ContactPage, PageError> {
    let (location_id, contact_id) = path.into_inner();
    // The user, the location, the switcher and the whole page in one
    // statement (see `db::contact_page`), then the same checks as
    // `VisibleLocation`.
    let reads = read_page(
        &state,
        claim.user_id(),
        claim.generation(),
        location_id,
        contact_id,
    )
    .await?;
    let at = claim.visible(&session, reads.user, reads.location, reads.switcher)?;
    let contact = reads.contact.ok_or(PageError::NotFound)?;
    render_contact_page(&session, at, contact, None)
}

/// A message the composer refused, shown again as typed, with why next to
/// the field it is about.
pub struct ComposeDraft {
    pub channel: Channel,
    pub subject: String,
    pub body: String,
    /// `body` or `subject`.
    pub field: &'static str,
    pub error: String,
}

/// The contact's page; with a refused message, its composer as typed.
pub(super) async fn contact_page(
    state: &AppState,
    session: &Session,
    contact_id: i64,
    at: VisibleLocation,
    draft: Option<ComposeDraft>,
) -> Result<ContactPage, PageError> {
    let reads = read_page(
        state,
        at.user.id,
        Some(at.user.session_generation),
        at.location.id,
        contact_id,
    )
    .await?;
    let contact = reads.contact.ok_or(PageError::NotFound)?;
    render_contact_page(session, at, contact, draft)
}

async fn read_page(
    state: &AppState,
    user_id: i64,
    generation: Option<i32>,
    location_id: i64,
    contact_id: i64,
) -> Result<ContactPageReads, PageError> {
    let shown = Shown {
        switcher: SWITCHER_SIZE,
        history: HISTORY_SHOWN,
        messages: MESSAGES_SHOWN,
    };
    Ok(db::run(&state.pool, move |conn| {
        contact_page::read(conn, user_id, generation, location_id, contact_id, &shown)
            .map_err(DbError::from)
    })
    .await?)
}

/// The page from what was read (no I/O).
fn render_contact_page(
    session: &Session,
    at: VisibleLocation,
    reads: ContactReads,
    draft: Option<ComposeDraft>,
) -> Result<ContactPage, PageError> {
    let nav = Nav::at(&at, session)?;
    let (flash, dnd_result, send_result) = match take_placed_flash(session) {
        Some((Some(Placed::Dnd), message)) => (None, Some(message), None),
        Some((Some(Placed::Send), message)) => (None, None, Some(message)),
        Some((None, message)) => (Some(message), None, None),
        None => (None, None, None),
    };
    let VisibleLocation { user, location, .. } = at;
    let ContactReads {
        contact,
        integrations,
        state,
        history,
        requests,
        messages,
    } = reads;
    let dnd =
        DndPanel::build(&state, &integrations, &user, location.zone()).with_requests(&requests);
    let mut composers = composers(
        &state,
        &integrations,
        user.role().is_read_only(),
        location.zone(),
    );
    if let Some(draft) = draft {
        if let Some(c) = composers
            .iter_mut()
            .find(|c| c.channel == draft.channel.as_str())
        {
            c.subject_text = draft.subject;
            c.body_text = draft.body;
            c.error = Some((draft.field, draft.error));
            c.count();
        }
    }
    Ok(ContactPage {
        nav,
        location,
        contact,
        dnd,
        history,
        messages,
        composers,
        requests,
        flash,
        dnd_result,
        send_result,
    })
}

/// `1234567` as `1,234,567`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The location's DND as CSV (every role that sees the location).
pub async fn export_csv(
    state: web::Data<AppState>,
    query: web::Query<ExportQuery>,
    at: VisibleLocation,
) -> Result<actix_web::HttpResponse, PageError> {
    let export = crate::web::export::Export::from_query(query.from.as_deref(), query.to.as_deref())
        .map_err(|(field, e)| {
            PageError::Unprocessable(format!("{field}: {e}. Nothing was exported."))
        })?;
    let file = format!("dnd-{}.csv", at.location.id);
    Ok(crate::web::export::respond(
        state.pool.clone(),
        at.location.id,
        export,
        &file,
    ))
}
