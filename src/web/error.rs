//! The error type of the browser pages, mapped to HTTP in one place.

use actix_session::SessionExt;
use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::auth::CurrentUser;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Also what a user gets for a location or contact that is not theirs,
    /// so they cannot learn that it exists.
    #[error("This page does not exist, or you do not have access to it.")]
    NotFound,
    /// A 404 that says more (a link that expired).
    #[error("{0}")]
    NotFoundWith(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// A value that cannot be used (422), said in words.
    #[error("{0}")]
    Unprocessable(String),
    /// A send the gate refused (DND is on): recorded as blocked.
    #[error("{0}")]
    Conflict(String),
    #[error("sign-in required")]
    NotSignedIn,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

impl From<diesel::result::Error> for PageError {
    fn from(e: diesel::result::Error) -> Self {
        PageError::Db(e.into())
    }
}

impl From<actix_session::SessionGetError> for PageError {
    fn from(e: actix_session::SessionGetError) -> Self {
        PageError::Internal(format!("reading the session: {e}"))
    }
}

impl From<actix_session::SessionInsertError> for PageError {
    fn from(e: actix_session::SessionInsertError) -> Self {
        PageError::Internal(format!("writing the session: {e}"))
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("rendering a page: {e}"))
    }
}

/// The app's error page: what happened, and where to go from there (the
/// navigation when signed in, else a sign-in link; back where the person
/// came from when that was a page of this site).
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    nav: Option<super::pages::Nav>,
    back: Option<String>,
    /// Whether the page knows who is asking (else it offers both ways on).
    known: bool,
}

impl PageError {
    /// The page's title and sentence for this error (the cause of a 5xx
    /// goes to the log only, once, in `error_response`).
    fn words(&self) -> (&'static str, String) {
        match self.status_code() {
            StatusCode::SERVICE_UNAVAILABLE => (
                "Temporarily unavailable",
                "The database is busy or not answering right now. Nothing was changed; please try again in a minute.".to_string(),
            ),
            StatusCode::INTERNAL_SERVER_ERROR => (
                "Something went wrong",
                "Something went wrong on our side, and nothing was changed. Please try again; if it keeps happening, contact support.".to_string(),
            ),
            StatusCode::NOT_FOUND => ("Not found", self.to_string()),
            StatusCode::FORBIDDEN => ("Not allowed", self.to_string()),
            StatusCode::TOO_MANY_REQUESTS => ("Too many attempts", self.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY => ("Not saved", self.to_string()),
            StatusCode::CONFLICT => ("Not sent: Do Not Disturb", self.to_string()),
            _ => ("Request not understood", self.to_string()),
        }
    }
}

fn render_page(status: StatusCode, page: &ErrorPage<'_>) -> HttpResponse {
    let body = page.render().unwrap_or_else(|_| page.message.to_string());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::NotFound | PageError::NotFoundWith(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::NotSignedIn => StatusCode::SEE_OTHER,
            PageError::Db(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Db(_) | PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page without knowing the request; [`with_navigation`] gives
    /// browser pages their navigation and way back.
    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let PageError::NotSignedIn = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                tracing::error!(error = %self, "database unavailable");
            }
            // The cause goes to the log, never to the page.
            StatusCode::INTERNAL_SERVER_ERROR => tracing::error!(error = %self, "request failed"),
            _ => {}
        }
        let (title, message) = self.words();
        render_page(
            status,
            &ErrorPage {
                title,
                message: &message,
                nav: None,
                back: None,
                known: false,
            },
        )
    }
}

/// Paths whose errors are not pages: the API answers JSON, providers get
/// their refusals, probes get theirs.
fn is_browser_path(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path.starts_with("/webhooks/")
        || path.starts_with("/static/")
        || path == "/healthz"
        || path == "/metrics")
}

/// A local path to go back to: the `Referer` when it is a page of this
/// site (same host), other than the page that failed.
fn way_back(req: &HttpRequest) -> Option<String> {
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    let url = url::Url::parse(referer).ok()?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str()?),
        None => url.host_str()?.to_string(),
    };
    if host != req.connection_info().host() {
        return None;
    }
    let back = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let here = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    (back != here && super::pages::session::local_path(&back).is_some()).then_some(back)
}

/// Where a signed-out visitor asking for `req` is sent: the sign-in page,
/// which returns them there afterwards (a page they can open again: GET
/// only).
fn sign_in_for(req: &HttpRequest) -> String {
    let asked = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    if req.method() == actix_web::http::Method::GET && asked != "/" && asked != "/login" {
        format!("/login?next={}", urlencoding::encode(&asked))
    } else {
        "/login".to_string()
    }
}

/// Every error a browser page answers becomes the app's own page, with the
/// navigation of whoever is signed in (or a sign-in link) and a way back:
/// a [`PageError`] from a handler or an extractor, and the empty answers
/// the router gives itself (a method the path does not take). A visitor
/// who must sign in is sent to sign in and then back.
pub async fn with_navigation(res: ServiceResponse) -> ServiceResponse<BoxBody> {
    use actix_web::body::MessageBody;
    if !is_browser_path(res.request().path()) {
        return res.map_into_boxed_body();
    }
    let status = res.status();
    let words = match res.response().error().and_then(|e| e.as_error::<PageError>()) {
        Some(PageError::NotSignedIn) => {
            let to = sign_in_for(res.request());
            return res.into_response(
                HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, to))
                    .finish(),
            );
        }
        Some(e) => e.words(),
        None if (status.is_client_error() || status.is_server_error())
            && matches!(
                res.response().body().size(),
                actix_web::body::BodySize::None | actix_web::body::BodySize::Sized(0)
            ) =>
        {
            match status {
                StatusCode::NOT_FOUND => ("Not found", PageError::NotFound.to_string()),
                StatusCode::METHOD_NOT_ALLOWED => (
                    "Not found",
                    "This address is not a page: it only takes a form sent from a page of this site. Nothing was changed.".to_string(),
                ),
                s if s.is_server_error() => PageError::Internal(String::new()).words(),
                _ => PageError::BadRequest(
                    "This request could not be understood. Nothing was changed.".into(),
                )
                .words(),
            }
        }
        None => return res.map_into_boxed_body(),
    };
    let (title, message) = words;
    let req = res.request().clone();
    let nav = match CurrentUser::from_request(&req, &mut actix_web::dev::Payload::None).await {
        Ok(CurrentUser(user)) => super::pages::Nav::new(&user, &req.get_session()).ok(),
        Err(_) => None,
    };
    let page = ErrorPage {
        title,
        message: &message,
        known: true,
        back: way_back(&req),
        nav,
    };
    let mut fresh = render_page(status, &page);
    // What the first answer said besides its body (Retry-After, Allow…).
    for (name, value) in res.response().headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    res.into_response(fresh)
}

/// Parameters after the `?` a page cannot read (`after=abc`): the app's
/// page, not the framework's sentence.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    req: &HttpRequest,
) -> actix_web::Error {
    if !is_browser_path(req.path()) {
        return actix_web::error::ErrorBadRequest(format!(
            "The query string could not be read: {err}"
        ));
    }
    PageError::BadRequest(
        "This link is not right: a parameter after the “?” is not what this page expects. Nothing was changed; go back and follow a link of the page, or start again from your locations.".into(),
    )
    .into()
}

/// A path segment that is not what the route takes (`/locations/abc`): no
/// such page.
pub fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    if !is_browser_path(req.path()) {
        return actix_web::error::ErrorNotFound(format!("No such resource: {err}"));
    }
    PageError::NotFound.into()
}

/// A form body that cannot be read as the form.
pub fn form_error(err: actix_web::error::UrlencodedError, req: &HttpRequest) -> actix_web::Error {
    if !is_browser_path(req.path()) {
        return actix_web::error::ErrorBadRequest(format!("The form could not be read: {err}"));
    }
    PageError::BadRequest(
        "The form could not be read, so nothing was changed. Open the page again and resubmit it."
            .into(),
    )
    .into()
}

/// A path no route serves: the app's 404 page for browsers, a plain 404
/// for providers (the API's scope answers its own).
pub async fn no_such_route(req: HttpRequest) -> Result<HttpResponse, PageError> {
    if !is_browser_path(req.path()) {
        return Ok(HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("No such route."));
    }
    Err(PageError::NotFound)
}
