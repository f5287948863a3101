//! A DND change for many contacts at once, from the contact list: the
//! contacts its filters match, or the rows ticked on it.

use actix_session::Session;
use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;

use super::dnd::actor_for;
use super::Nav;
use crate::db::bulk::{self, BulkOutcome};
use crate::db::contacts::{self, ListFilter};
use crate::db::locations::Location;
use crate::db::{self};
use crate::domain::dnd::{change_note, Reason, Switches};
use crate::domain::Channel;
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

/// The form, read from its fields (ticked rows repeat `contact_ids`).
#[derive(Debug, Default)]
struct BulkForm {
    target: String,
    turn: String,
    note: String,
    q: String,
    status: String,
    channel: String,
    /// `ticked` (the rows ticked) or `list` (what the filters match);
    /// without it, the ticked rows if any, else the list.
    scope: String,
    contact_ids: Vec<i64>,
}

impl BulkForm {
    fn read(fields: Vec<(String, String)>) -> Result<Self, PageError> {
        let mut form = BulkForm::default();
        for (key, value) in fields {
            match key.as_str() {
                "target" => form.target = value,
                "turn" => form.turn = value,
                "note" => form.note = value,
                "q" => form.q = value,
                "status" => form.status = value,
                "channel" => form.channel = value,
                "scope" => form.scope = value,
                "contact_ids" => form.contact_ids.push(value.trim().parse().map_err(|_| {
                    PageError::BadRequest(format!("\"{value}\" is not a contact id"))
                })?),
                _ => {}
            }
        }
        Ok(form)
    }

    fn switches(&self) -> Result<Switches, PageError> {
        let on = match self.turn.as_str() {
            "on" => true,
            "off" => false,
            other => {
                return Err(PageError::Unprocessable(format!(
                    "\"{other}\" is not a switch position: choose on or off"
                )))
            }
        };
        Ok(match self.target.as_str() {
            "all" => Switches {
                all: Some(on),
                channels: Vec::new(),
            },
            other => Switches {
                all: None,
                channels: vec![(
                    other
                        .parse::<Channel>()
                        .map_err(|e| PageError::Unprocessable(format!("Target: {e}")))?,
                    on,
                )],
            },
        })
    }

    fn filter(&self) -> Result<ListFilter, PageError> {
        ListFilter::from_query(&self.q, &self.status, &self.channel)
            .map_err(PageError::Unprocessable)
    }

    /// Where the list was, to go back to it.
    fn list_url(&self, location_id: i64) -> String {
        let keep = ListFilter::query_string(&self.q, &self.status, &self.channel);
        format!("/locations/{location_id}/contacts?{keep}")
            .trim_end_matches(['?', '&'])
            .to_string()
    }
}

/// One line of "skipped": how many, and why in words.
pub struct SkipLine {
    pub count: usize,
    pub what: String,
    pub message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/bulk_result.html")]
pub struct BulkResultPage {
    nav: Nav,
    location: Location,
    what: String,
    note: String,
    outcome: BulkOutcome,
    skipped: Vec<SkipLine>,
    still_blocked: Vec<SkipLine>,
    back: String,
}

/// `POST /locations/{id}/contacts/bulk-dnd`: applies one change to the
/// ticked contacts, or to every contact the list's filters match, and shows
/// what it did.
pub async fn bulk_dnd(
    state: web::Data<AppState>,
    session: Session,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
    at: VisibleLocation,
) -> Result<BulkResultPage, PageError> {
    if at.user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support does not change DND from the contact list; permanent DND is lifted by \
             approving opt-in evidence. Nothing was changed."
                .into(),
        ));
    }
    let form = BulkForm::read(fields)?;
    let switches = form.switches()?;
    let note =
        change_note(&form.note).map_err(|e| PageError::Unprocessable(format!("Note: {e}")))?;
    let filter = form.filter()?;
    let nav = Nav::at(&at, &session)?;
    let actor = actor_for(&at.user);
    let location = at.location;
    let location_id = location.id;
    let ticked = match form.scope.as_str() {
        "ticked" if form.contact_ids.is_empty() => return Err(PageError::Unprocessable(
            "Tick at least one contact, or choose every contact of the list. Nothing was changed."
                .into(),
        )),
        "list" => Vec::new(),
        "ticked" | "" => form.contact_ids.clone(),
        other => {
            return Err(PageError::Unprocessable(format!(
                "\"{other}\" is not a choice of contacts: use the ticked rows or the whole list. \
                 Nothing was changed."
            )))
        }
    };
    let history_note = note.clone();
    let outcome = db::run_wide(&state.pool, bulk::CONNECTIONS, move |mut conns| -> Result<_, PageError> {
        let ids = if ticked.is_empty() {
            contacts::matching_ids(conns[0], location_id, &filter, bulk::MAX_CONTACTS as i64)?
        } else {
            ticked
        };
        if ids.len() > bulk::MAX_CONTACTS {
            return Err(PageError::Unprocessable(format!(
                "This list has more than {} contacts; narrow the search first. Nothing was changed.",
                bulk::MAX_CONTACTS
            )));
        }
        let now = Utc::now();
        Ok(bulk::apply_on(conns, location_id, &ids, |start| {
            start.switch(&switches, &actor, now, "bulk change", Some(&history_note))
        })?)
    })
    .await?;
    let what = match form.target.as_str() {
        "all" => "DND on all channels".to_string(),
        other => format!(
            "{} DND",
            other.parse::<Channel>().map(|c| c.label()).unwrap_or(other)
        ),
    };
    let what = format!("{what} turned {}", form.turn);
    let lines = |counted: Vec<(String, usize, String)>| -> Vec<SkipLine> {
        counted
            .into_iter()
            .map(|(code, count, message)| SkipLine {
                count,
                what: describe(&code),
                message: why(&code).unwrap_or(message),
            })
            .collect()
    };
    let skipped = lines(outcome.skipped_by_reason());
    let still_blocked = lines(outcome.still_blocked_by_reason());
    Ok(BulkResultPage {
        nav,
        back: form.list_url(location_id),
        location,
        what,
        note,
        outcome,
        skipped,
        still_blocked,
    })
}

/// Who may lift the reasons of a code, the same for every contact counted
/// under it (`None` for a code that is not a list of reasons).
fn why(code: &str) -> Option<String> {
    let rules: Option<Vec<String>> = code
        .split(',')
        .map(|c| {
            c.parse::<Reason>()
                .ok()
                .map(|r| format!("{}: {}", r.label(), r.lift_rule()))
        })
        .collect();
    rules.map(|r| format!("{}.", r.join("; ")))
}

/// A skip code in words: the reasons that stay, by their labels.
fn describe(code: &str) -> String {
    match code {
        "not_found" => "No longer in this location".to_string(),
        "not_allowed" => "Not yours to change".to_string(),
        codes => codes
            .split(',')
            .map(|c| c.parse::<Reason>().map(|r| r.label()).unwrap_or(c))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
