//! The error type of the browser pages, mapped to HTTP in one place.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

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

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
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

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let PageError::NotSignedIn = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        let (title, message) = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                tracing::error!(error = %self, "database unavailable");
                (
                    "Temporarily unavailable",
                    "The database is busy or not answering right now. Nothing was changed; please try again in a minute.".to_string(),
                )
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                // The cause goes to the log, never to the page.
                tracing::error!(error = %self, "request failed");
                (
                    "Something went wrong",
                    "Something went wrong on our side, and nothing was changed. Please try again; if it keeps happening, contact support.".to_string(),
                )
            }
            StatusCode::NOT_FOUND => ("Not found", self.to_string()),
            StatusCode::FORBIDDEN => ("Not allowed", self.to_string()),
            StatusCode::TOO_MANY_REQUESTS => ("Too many attempts", self.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY => ("Not saved", self.to_string()),
            StatusCode::CONFLICT => ("Not sent: Do Not Disturb", self.to_string()),
            _ => ("Request not understood", self.to_string()),
        };
        let body = ErrorPage {
            title,
            message: &message,
        }
        .render()
        .unwrap_or_else(|_| message.clone());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}
