//! `/api/v1/webhook-subscriptions`: where a location's DND changes are
//! sent (`contact.dnd_updated`, signed with the subscription's secret).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiLocation};
use crate::db::{self, subscriptions};
use crate::domain::InvalidField;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    url: String,
}

/// A location keeps at most this many subscriptions.
const MAX_SUBSCRIPTIONS: usize = 10;

/// Subscribes a URL: answers its id and its signing secret (shown once).
pub async fn create(
    state: web::Data<AppState>,
    ApiLocation(location, key): ApiLocation,
    body: ApiJson<NewSubscription>,
) -> Result<HttpResponse, ApiError> {
    let url = body.into_inner().url.trim().to_string();
    if url.chars().count() > 2000 {
        return Err(InvalidField::new("url", "is longer than 2,000 characters").into());
    }
    let checked = state
        .hosts
        .check_webhook(&url)
        .map_err(|e| InvalidField::new("url", e.0))?;
    let created_by = key.actor().label;
    let url = checked.to_string();
    let (subscription, secret) = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        if subscriptions::list(conn, location.id)?.len() >= MAX_SUBSCRIPTIONS {
            return Err(InvalidField::new(
                "url",
                format!(
                    "this location already has {MAX_SUBSCRIPTIONS} subscriptions; delete one first"
                ),
            )
            .into());
        }
        Ok(subscriptions::create(conn, location.id, &url, &created_by)?)
    })
    .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": subscription.id,
        "url": subscription.url,
        "secret": secret,
        "created_at": subscription.created_at,
    })))
}

pub async fn list(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
) -> Result<HttpResponse, ApiError> {
    let found = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        Ok(subscriptions::list(conn, location.id)?)
    })
    .await?;
    let items: Vec<serde_json::Value> = found
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "url": s.url,
                "created_by": s.created_by,
                "created_at": s.created_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "webhook_subscriptions": items })))
}

pub async fn delete(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let deleted = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        Ok(subscriptions::delete(conn, location.id, id)?)
    })
    .await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "no webhook subscription {id} in this location"
        )))
    }
}
