//! `POST /api/v1/imports/contacts` and `/api/v1/imports/suppressions`:
//! CSV files imported in one request, answered with what they did (or, with
//! `?dry_run=true`, what they would do).

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;

use super::{ApiError, ApiLocation};
use crate::db::imports::{self, ImportKind, ImportOutcome, ImportRun, NewImport, ParsedFile};
use crate::db::{self};
use crate::domain::import::MAX_BYTES;
use crate::domain::InvalidField;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
    channel: Option<String>,
}

pub async fn import_contacts(
    state: web::Data<AppState>,
    at: ApiLocation,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    run(state, at, req, ImportKind::Contacts, query.dry_run, payload).await
}

pub async fn import_suppressions(
    state: web::Data<AppState>,
    at: ApiLocation,
    req: HttpRequest,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let channel = query.channel.as_deref().ok_or_else(|| {
        InvalidField::new(
            "channel",
            "say which channel the list is for: ?channel=sms, email or whatsapp",
        )
    })?;
    let kind = ImportKind::suppressions(channel)?;
    run(state, at, req, kind, query.dry_run, payload).await
}

async fn run(
    state: web::Data<AppState>,
    ApiLocation(location, key): ApiLocation,
    req: HttpRequest,
    kind: ImportKind,
    dry_run: bool,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !["text/csv", "application/csv", "text/plain"]
        .iter()
        .any(|t| content_type.starts_with(t))
    {
        return Err(ApiError::Invalid(InvalidField::new(
            "file",
            "send the CSV file itself as the body, with Content-Type: text/csv",
        )));
    }
    let bytes = read_capped(payload).await?;
    let file = ParsedFile::read(kind, &bytes).map_err(|e| InvalidField::new("file", e.0))?;
    let actor = key.actor();
    // One large job at a time (see `db::run_wide`).
    let outcome = db::run_wide(&state.pool, 1, move |mut conns| -> Result<_, ApiError> {
        let conn: &mut diesel::PgConnection = conns.remove(0);
        let mut run = ImportRun {
            location_id: location.id,
            region: &location.default_region,
            actor: &actor,
            source: "dry run".into(),
            dry_run,
        };
        if dry_run {
            let outcome = imports::import(conn, &run, file, &|_, _| {})?;
            return Ok((None, outcome));
        }
        let record = imports::create(
            conn,
            &NewImport {
                location_id: location.id,
                kind: kind.as_str(),
                channel: kind.channel(),
                file_name: "",
                file: None,
                actor: &actor,
                state: "running",
                rows_total: file.rows(),
            },
        )?;
        run.source = record.source();
        let result = imports::import(conn, &run, file, &|_, _| {});
        imports::finish(conn, location.id, record.id, &imports::as_finished(&result))?;
        Ok((Some(record.id), result?))
    })
    .await?;
    let mut answer = body(outcome.0, &outcome.1, dry_run);
    // Stopped part-way: what is counted was committed; 503 so a client
    // runs it again (rows already imported then count as unchanged).
    Ok(match &outcome.1.interrupted {
        Some(why) => {
            answer["error"] = why.clone().into();
            HttpResponse::ServiceUnavailable().json(answer)
        }
        None => HttpResponse::Ok().json(answer),
    })
}

fn body(import_id: Option<i64>, o: &ImportOutcome, dry_run: bool) -> serde_json::Value {
    serde_json::json!({
        "import_id": import_id,
        "dry_run": dry_run,
        "rows": o.rows,
        "created": o.created,
        "updated": o.updated,
        "unchanged": o.unchanged,
        "errors": o.errors,
    })
}

/// The body, up to the import limit: one byte more is a 422 naming the
/// limit (the rest is read and dropped, up to a bound, so the client gets
/// the answer instead of a reset connection).
async fn read_capped(mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("The body could not be read: {e}")))?;
        seen += chunk.len();
        if seen <= MAX_BYTES {
            body.extend_from_slice(&chunk);
        } else if seen > 4 * MAX_BYTES {
            break;
        }
    }
    if seen > MAX_BYTES {
        return Err(ApiError::Invalid(InvalidField::new(
            "file",
            format!(
                "The file is larger than {} MiB; split it and import each part. Nothing was imported.",
                MAX_BYTES / 1024 / 1024
            ),
        )));
    }
    Ok(body)
}
