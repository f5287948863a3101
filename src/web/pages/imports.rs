//! `/locations/{id}/imports`: upload a CSV file, see what it would do (with
//! the rows that have errors), confirm, and follow its progress. The file
//! waits in its `imports` row between the preview and the confirmation;
//! the import itself runs after the confirming request has answered, and
//! its page refreshes itself while it runs (no JavaScript needed).

use actix_multipart::Multipart;
use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use futures_util::StreamExt;

use super::dnd::actor_for;
use super::session::redirect;
use super::Nav;
use crate::db::imports::{
    self, ErrorView, ImportKind, ImportRecord, ImportRun, NewImport, ParsedFile,
};
use crate::db::locations::Location;
use crate::db::{self};
use crate::domain::import::MAX_BYTES;
use crate::web::auth::{check_form, CsrfForm, VisibleLocation, CSRF_FIELD};
use crate::web::clock::Clocked;
use crate::web::error::PageError;
use crate::web::AppState;

/// Past imports listed on the page.
const LISTED: i64 = 20;

/// Row errors shown on a page (all of them are in the API's answer).
const ERRORS_SHOWN: usize = 500;

#[derive(Template, WebTemplate)]
#[template(path = "imports/index.html")]
pub struct ImportsPage {
    nav: Nav,
    location: Location,
    imports: Vec<ImportRecord>,
    can_import: bool,
    error: Option<String>,
    kind: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "imports/show.html")]
pub struct ImportPage {
    nav: Nav,
    location: Location,
    import: ImportRecord,
    errors: Vec<ErrorView>,
    more_errors: usize,
    can_import: bool,
}

impl ImportPage {
    fn what(&self) -> String {
        describe(&self.import)
    }
}

impl ImportsPage {
    fn what(&self, i: &ImportRecord) -> String {
        describe(i)
    }
}

/// "Contacts" or "SMS suppression list".
fn describe(i: &ImportRecord) -> String {
    match i.channel.as_deref() {
        None => "Contacts".to_string(),
        Some(c) => format!(
            "{} suppression list",
            c.parse::<crate::domain::Channel>()
                .map(|c| c.label())
                .unwrap_or(c)
        ),
    }
}

/// The kinds of file the form offers, as (value, label).
const KINDS: [(&str, &str); 4] = [
    (
        "contacts",
        "Contacts (name, phone, email, whatsapp_id, facebook_id, dnd_*)",
    ),
    ("suppressions:sms", "SMS suppression list (address, note)"),
    (
        "suppressions:email",
        "Email suppression list (address, note)",
    ),
    (
        "suppressions:whatsapp",
        "WhatsApp suppression list (address, note)",
    ),
];

impl ImportsPage {
    fn kinds(&self) -> [(&'static str, &'static str); 4] {
        KINDS
    }
}

fn kind_of(value: &str) -> Result<ImportKind, String> {
    match value.split_once(':') {
        None if value == "contacts" => Ok(ImportKind::Contacts),
        Some(("suppressions", channel)) => ImportKind::suppressions(channel).map_err(|e| e.message),
        _ => Err(format!(
            "\"{value}\" is not a kind of file this page imports"
        )),
    }
}

pub async fn list_imports(
    state: web::Data<AppState>,
    session: Session,
    at: VisibleLocation,
) -> Result<ImportsPage, PageError> {
    page(&state, &session, at, None, "contacts".into()).await
}

async fn page(
    state: &AppState,
    session: &Session,
    at: VisibleLocation,
    error: Option<String>,
    kind: String,
) -> Result<ImportsPage, PageError> {
    let nav = Nav::at(&at, session)?;
    let location_id = at.location.id;
    let imports = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        Ok(imports::for_location(conn, location_id, LISTED)?)
    })
    .await?;
    Ok(ImportsPage {
        nav,
        can_import: !at.user.role().is_read_only(),
        location: at.location,
        imports,
        error,
        kind,
    })
}

/// `POST /locations/{id}/imports` (multipart): keeps the file, previews
/// it (a dry run) and shows the preview. A file refused as a whole comes
/// back to the form with why (422), and nothing is kept.
pub async fn upload(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    at: VisibleLocation,
    mut form: Multipart,
) -> Result<HttpResponse, PageError> {
    let mut token = String::new();
    let mut kind = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut too_large = false;
    while let Some(field) = form.next().await {
        let mut field = field
            .map_err(|e| PageError::BadRequest(format!("The upload could not be read: {e}")))?;
        let name = field.name().unwrap_or("").to_string();
        let file_name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .unwrap_or("")
            .to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk
                .map_err(|e| PageError::BadRequest(format!("The upload could not be read: {e}")))?;
            if bytes.len() + chunk.len() > MAX_BYTES {
                too_large = true;
            } else if !too_large {
                bytes.extend_from_slice(&chunk);
            }
        }
        match name.as_str() {
            CSRF_FIELD => token = String::from_utf8_lossy(&bytes).into_owned(),
            "kind" => kind = String::from_utf8_lossy(&bytes).into_owned(),
            "file" => file = Some((file_name, bytes)),
            _ => {}
        }
    }
    // The token is checked before anything in the form is looked at.
    check_form(&req, &token)?;
    if at.user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support does not import into a location. Nothing was imported.".into(),
        ));
    }
    let checked = (|| -> Result<_, String> {
        let parsed_kind = kind_of(&kind)?;
        if too_large {
            return Err(format!(
                "The file is larger than {} MiB; split it and import each part. Nothing was imported.",
                MAX_BYTES / 1024 / 1024
            ));
        }
        let (file_name, bytes) = match file {
            Some((name, bytes)) if !bytes.is_empty() => (name, bytes),
            _ => return Err("Choose a CSV file to import.".into()),
        };
        let parsed = ParsedFile::read(parsed_kind, &bytes)
            .map_err(|e| format!("{} Nothing was imported.", e.0))?;
        Ok((parsed_kind, file_name, bytes, parsed))
    })();
    let (parsed_kind, file_name, bytes, parsed) = match checked {
        Ok(ready) => ready,
        Err(why) => {
            let page = page(&state, &session, at, Some(why), kind).await?;
            return page_with_status(page, 422);
        }
    };
    let actor = actor_for(&at.user);
    let location = at.location.clone();
    let id = db::run_wide(&state.pool, 1, move |mut conns| -> Result<_, PageError> {
        let conn: &mut diesel::PgConnection = conns.remove(0);
        let record = imports::create(
            conn,
            &NewImport {
                location_id: location.id,
                kind: parsed_kind.as_str(),
                channel: parsed_kind.channel(),
                file_name: &file_name.chars().take(200).collect::<String>(),
                file: Some(&bytes),
                actor: &actor,
                state: "preview",
                rows_total: parsed.rows(),
            },
        )?;
        let run = ImportRun {
            location_id: location.id,
            region: &location.default_region,
            actor: &actor,
            source: record.source(),
            dry_run: true,
        };
        let preview = imports::import(conn, &run, parsed, &|_, _| {})?;
        imports::record_preview(conn, location.id, record.id, &preview)?;
        Ok(record.id)
    })
    .await?;
    Ok(redirect(&format!(
        "/locations/{}/imports/{id}",
        at.location.id
    )))
}

fn page_with_status(page: ImportsPage, status: u16) -> Result<HttpResponse, PageError> {
    let html = page
        .render()
        .map_err(|e| PageError::Internal(format!("rendering a page: {e}")))?;
    Ok(HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY),
    )
    .content_type("text/html; charset=utf-8")
    .body(html))
}

/// `GET /locations/{id}/imports/{import_id}`: the preview, the progress,
/// or what it did.
pub async fn show_import(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    at: VisibleLocation,
) -> Result<ImportPage, PageError> {
    let (_, import_id) = path.into_inner();
    let nav = Nav::at(&at, &session)?;
    let location_id = at.location.id;
    let import = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        imports::find(conn, location_id, import_id)?.ok_or(PageError::NotFound)
    })
    .await?;
    let mut errors = import.errors();
    let more_errors = errors.len().saturating_sub(ERRORS_SHOWN);
    errors.truncate(ERRORS_SHOWN);
    Ok(ImportPage {
        nav,
        can_import: !at.user.role().is_read_only(),
        location: at.location,
        import,
        errors,
        more_errors,
    })
}

#[derive(serde::Deserialize)]
pub struct ConfirmForm {}

/// `POST /locations/{id}/imports/{import_id}/confirm`: runs a previewed
/// import, once (a second confirmation finds it no longer waiting), after
/// this request has answered; its page shows the progress.
pub async fn confirm(
    state: web::Data<AppState>,
    path: web::Path<(i64, i64)>,
    CsrfForm(_): CsrfForm<ConfirmForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    let (_, import_id) = path.into_inner();
    if at.user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support does not import into a location. Nothing was imported.".into(),
        ));
    }
    let location = at.location.clone();
    let location_id = location.id;
    let (kind, file) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let record = imports::find(conn, location_id, import_id)?.ok_or(PageError::NotFound)?;
        let kind = match record.channel.as_deref() {
            None => ImportKind::Contacts,
            Some(c) => ImportKind::suppressions(c).map_err(|e| PageError::Internal(e.message))?,
        };
        let file = imports::file_of(conn, location_id, import_id)?;
        match file {
            Some(file) if imports::start(conn, location_id, import_id)? => Ok((kind, file)),
            _ => Err(PageError::Conflict(
                "This import is no longer waiting for confirmation: it has run or is running."
                    .into(),
            )),
        }
    })
    .await?;
    let job = ConfirmedImport {
        pool: state.pool.clone(),
        location,
        import_id,
        kind,
        file: std::sync::Arc::new(file),
        actor: actor_for(&at.user),
    };
    actix_web::rt::spawn(job.run());
    Ok(redirect(&format!(
        "/locations/{location_id}/imports/{import_id}"
    )))
}

/// A confirmed import, run after the request that confirmed it.
struct ConfirmedImport {
    pool: crate::db::DbPool,
    location: Location,
    import_id: i64,
    kind: ImportKind,
    file: std::sync::Arc<Vec<u8>>,
    actor: crate::domain::dnd::Actor,
}

impl ConfirmedImport {
    /// How long a confirmed import waits for another large job (a bulk
    /// change, another import) to finish before it gives up.
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    async fn run(self) {
        let started = std::time::Instant::now();
        let ran = loop {
            match self.attempt().await {
                Err(JobError::Busy) if started.elapsed() < Self::PATIENCE => {
                    actix_web::rt::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                other => break other,
            }
        };
        let (location_id, import_id) = (self.location.id, self.import_id);
        if let Err(e) = ran {
            let e = match e {
                JobError::Busy => "other large jobs kept the database busy".to_string(),
                JobError::Other(e) => e,
            };
            tracing::error!(import_id, "an import could not be run or finished: {e}");
            // Said on its page rather than left "running" for ever.
            let why = Err(format!(
                "The import could not run to its end ({e}). Upload the file again."
            ));
            let marked = db::run(&self.pool, move |conn| -> Result<(), JobError> {
                imports::finish(conn, location_id, import_id, &why)
                    .map_err(|e| JobError::Other(e.to_string()))
            })
            .await;
            if let Err(JobError::Other(e)) = marked {
                tracing::error!(import_id, "an import's failure could not be recorded: {e}");
            }
        }
    }

    async fn attempt(&self) -> Result<(), JobError> {
        let (location, import_id, kind) = (self.location.clone(), self.import_id, self.kind);
        let (file, actor) = (self.file.clone(), self.actor.clone());
        db::run_wide(&self.pool, 1, move |mut conns| -> Result<(), JobError> {
            let conn: &mut diesel::PgConnection = conns.remove(0);
            let result = match ParsedFile::read(kind, &file) {
                Err(e) => Err(e.0),
                Ok(parsed) => {
                    let run = ImportRun {
                        location_id: location.id,
                        region: &location.default_region,
                        actor: &actor,
                        source: format!("import #{import_id}"),
                        dry_run: false,
                    };
                    let result = imports::import(conn, &run, parsed, &|conn, done| {
                        // Progress is shown, not needed: a failed write of
                        // it must not stop the import.
                        let _ = imports::record_progress(conn, location.id, import_id, done);
                    });
                    imports::as_finished(&result)
                }
            };
            imports::finish(conn, location.id, import_id, &result)
                .map_err(|e| JobError::Other(e.to_string()))
        })
        .await
    }
}

/// Why a background import did not finish.
enum JobError {
    /// Another large job held the database's large-job slot.
    Busy,
    Other(String),
}

impl From<crate::db::DbError> for JobError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Busy(_) => JobError::Busy,
            other => JobError::Other(other.to_string()),
        }
    }
}
