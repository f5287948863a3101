use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;

use super::views::{DndView, HistoryView, OptinRequestView};
use super::{ApiError, ApiJson, ApiLocation};
use crate::db::dnd::{self as dnd_store, DndError};
use crate::db::{self, bulk, contacts, inbound};
use crate::domain::dnd::{change_note, Switches};
use crate::domain::{Channel, InvalidField};
use crate::web::AppState;

/// `{"all": bool}` and/or `{"channels": {"email": true, "sms": false}}`:
/// true sets the API's `manual` reason, false lifts what the API may lift.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DndChange {
    all: Option<bool>,
    #[serde(default)]
    channels: BTreeMap<String, bool>,
}

/// `{"inbound": {"sms": bool, "calls": bool}}` (either or both).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundChange {
    sms: Option<bool>,
    calls: Option<bool>,
}

impl InboundChange {
    fn changes(&self) -> Vec<(Channel, bool)> {
        [(Channel::Sms, self.sms), (Channel::Call, self.calls)]
            .into_iter()
            .filter_map(|(c, on)| on.map(|on| (c, on)))
            .collect()
    }
}

/// The body of `PUT /contacts/{id}/dnd`: outbound switches and/or inbound.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DndPut {
    all: Option<bool>,
    #[serde(default)]
    channels: BTreeMap<String, bool>,
    inbound: Option<InboundChange>,
}

impl DndChange {
    fn switches(self) -> Result<Switches, ApiError> {
        let mut switches = Switches {
            all: self.all,
            channels: Vec::with_capacity(self.channels.len()),
        };
        for (name, on) in self.channels {
            let channel: Channel = name
                .parse()
                .map_err(|why: String| ApiError::Invalid(InvalidField::new("channels", why)))?;
            switches.channels.push((channel, on));
        }
        if switches.is_empty() {
            return Err(ApiError::Invalid(InvalidField::new(
                "channels",
                "give \"all\" and/or \"channels\", e.g. {\"channels\": {\"sms\": true}}",
            )));
        }
        Ok(switches)
    }
}

const SOURCE: &str = "automation API";

/// Applies the whole request in one transaction, or none of it: a lift the
/// API may not do is a 403 with the reason, and nothing else is applied.
pub async fn change_dnd(
    state: web::Data<AppState>,
    ApiLocation(location, key): ApiLocation,
    path: web::Path<i64>,
    body: ApiJson<DndPut>,
) -> Result<HttpResponse, ApiError> {
    let contact_id = path.into_inner();
    let DndPut {
        all,
        channels,
        inbound,
    } = body.into_inner();
    let inbound = inbound.unwrap_or_default().changes();
    let outbound = DndChange { all, channels };
    let switches = if inbound.is_empty() || outbound.all.is_some() || !outbound.channels.is_empty()
    {
        outbound.switches().map_err(|e| match e {
            ApiError::Invalid(f) if inbound.is_empty() => ApiError::Invalid(InvalidField::new(
                f.field,
                format!("{} (or \"inbound\": {{\"sms\": true}})", f.message),
            )),
            other => other,
        })?
    } else {
        Switches::default()
    };
    let actor = key.actor();
    let dnd = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let now = Utc::now();
        let applied = inbound::apply_both(
            conn,
            location.id,
            contact_id,
            |start| start.switch(&switches, &actor, now, SOURCE, None),
            &inbound,
            &actor,
        );
        match applied {
            Ok(done) => Ok(done),
            Err(DndError::NotFound) => Err(ApiError::NotFound(format!(
                "no contact {contact_id} in this location"
            ))),
            Err(DndError::Refused(refusal)) => Err(ApiError::Forbidden(format!(
                "{} Nothing in this request was applied.",
                refusal.message
            ))),
            Err(DndError::Db(e)) => Err(e.into()),
        }
    })
    .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "id": contact_id, "dnd": DndView::new(&dnd.0, dnd.1) })))
}

/// `POST /api/v1/dnd/bulk`: one change for many contacts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkChange {
    contact_ids: Vec<i64>,
    all: Option<bool>,
    #[serde(default)]
    channels: BTreeMap<String, bool>,
    #[serde(default)]
    note: String,
}

/// Applies one change to up to 100,000 contacts of the key's location.
/// Each contact gets all of it or none (a lift the API may not do skips
/// that contact, with the reason); contacts of other locations are
/// `not_found`.
pub async fn bulk_dnd(
    state: web::Data<AppState>,
    ApiLocation(location, key): ApiLocation,
    body: ApiJson<BulkChange>,
) -> Result<HttpResponse, ApiError> {
    let BulkChange {
        contact_ids,
        all,
        channels,
        note,
    } = body.into_inner();
    let switches = DndChange { all, channels }.switches()?;
    let note = change_note(&note).map_err(|e| ApiError::Invalid(InvalidField::new("note", e)))?;
    if contact_ids.is_empty() || contact_ids.len() > bulk::MAX_CONTACTS {
        return Err(ApiError::Invalid(InvalidField::new(
            "contact_ids",
            format!(
                "give between 1 and {} contact ids (got {})",
                bulk::MAX_CONTACTS,
                contact_ids.len()
            ),
        )));
    }
    let actor = key.actor();
    let outcome = db::run_wide(
        &state.pool,
        bulk::CONNECTIONS,
        move |conns| -> Result<_, ApiError> {
            let now = Utc::now();
            Ok(bulk::apply_on(conns, location.id, &contact_ids, |start| {
                start.switch(&switches, &actor, now, SOURCE, Some(&note))
            })?)
        },
    )
    .await?;
    let list = |items: &[bulk::Skipped]| -> Vec<serde_json::Value> {
        items
            .iter()
            .map(|s| {
                serde_json::json!({
                    "contact_id": s.contact_id,
                    "reason": s.reason,
                    "message": s.message,
                })
            })
            .collect()
    };
    let mut body = serde_json::json!({
        "changed": outcome.changed,
        "unchanged": outcome.unchanged,
        "skipped": list(&outcome.skipped),
        "still_blocked": list(&outcome.still_blocked),
    });
    // Stopped part-way: what is counted was committed; 503 so a client
    // retries (the contacts done count as unchanged the second time).
    Ok(match &outcome.interrupted {
        Some(why) => {
            body["error"] = why.clone().into();
            HttpResponse::ServiceUnavailable().json(body)
        }
        None => HttpResponse::Ok().json(body),
    })
}

/// A contact's DND history, newest first.
pub async fn list_history(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let contact_id = path.into_inner();
    let rows = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        contacts::find(conn, location.id, contact_id)?.ok_or_else(|| {
            ApiError::NotFound(format!("no contact {contact_id} in this location"))
        })?;
        Ok(dnd_store::history(conn, location.id, contact_id, 1000)?)
    })
    .await?;
    let history: Vec<HistoryView> = rows.into_iter().map(HistoryView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "history": history })))
}

/// A contact's opt-in evidence requests, newest first, for automations that
/// wait on support's decision.
pub async fn list_optin_requests(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let contact_id = path.into_inner();
    let records = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        contacts::find(conn, location.id, contact_id)?.ok_or_else(|| {
            ApiError::NotFound(format!("no contact {contact_id} in this location"))
        })?;
        Ok(crate::db::optin::for_contact(
            conn,
            location.id,
            contact_id,
        )?)
    })
    .await?;
    let requests: Vec<OptinRequestView> = records.iter().map(OptinRequestView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "optin_requests": requests })))
}

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    channel: String,
}

/// The gate's answer without sending: may a message (or a call) reach this
/// contact on this channel now? For dialers and external automations.
pub async fn check_dnd(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    path: web::Path<i64>,
    query: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    let contact_id = path.into_inner();
    let channel: Channel = query
        .channel
        .parse()
        .map_err(|e: String| ApiError::Invalid(InvalidField::new("channel", e)))?;
    let (address, decision) = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        Ok(crate::db::outbound::check(
            conn,
            location.id,
            contact_id,
            channel,
        )?)
    })
    .await?;
    let mut body = serde_json::json!({
        "allowed": decision.is_allowed() && address.is_some(),
        "reasons": decision.block_names(),
        "channel": channel.as_str(),
        "address": address,
    });
    match (&decision, &address) {
        (crate::domain::dnd::Decision::Unreadable(why), _) => body["error"] = why.clone().into(),
        (_, None) => {
            body["error"] = format!("the contact has no {} address", channel.label()).into()
        }
        _ => {}
    }
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The location's DND as CSV, streamed: every active reason now, or the
/// history between `from` and `to` (dates, UTC, `to` inclusive).
pub async fn export_csv(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let export = crate::web::export::Export::from_query(query.from.as_deref(), query.to.as_deref())
        .map_err(|(field, e)| ApiError::Invalid(InvalidField::new(field, e)))?;
    Ok(crate::web::export::respond(
        state.pool.clone(),
        location.id,
        export,
        "dnd-export.csv",
    ))
}
