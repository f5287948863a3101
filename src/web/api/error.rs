use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

use crate::db::contacts::UpsertError;
use crate::db::DbError;
use crate::domain::InvalidField;

/// The error type of the API, answered as `{"error": "...", "field": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(#[from] InvalidField),
    /// A value that belongs to another record (answered with its field).
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    /// Past the key's rate or its requests in flight: try again after
    /// `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// A value refused where the field is only known at run time (a path
    /// into the JSON body, such as `contact_ids[3]`).
    #[error("{field}: {message}")]
    InvalidAt { field: String, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::Db(e.into())
    }
}

impl From<UpsertError> for ApiError {
    fn from(e: UpsertError) -> Self {
        match e {
            UpsertError::NoKey => ApiError::Invalid(InvalidField::new(
                "phone",
                "give a phone or an email: the contact is matched on them",
            )),
            UpsertError::Conflict { field, message } => ApiError::Conflict { field, message },
            UpsertError::Db(e) => ApiError::Db(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) | ApiError::InvalidAt { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Db(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = match self {
            ApiError::Invalid(invalid) => serde_json::json!({
                "error": invalid.to_string(),
                "field": invalid.field,
            }),
            ApiError::Conflict { field, message } => serde_json::json!({
                "error": message,
                "field": field,
            }),
            ApiError::InvalidAt { field, .. } => serde_json::json!({
                "error": self.to_string(),
                "field": field,
            }),
            ApiError::Db(e) => {
                tracing::error!(error = %e, "API request failed");
                let message = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the database is busy or not answering; nothing was changed, retry later"
                } else {
                    "internal error; nothing was changed"
                };
                serde_json::json!({ "error": message })
            }
            other => serde_json::json!({ "error": other.to_string() }),
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::TooManyRequests { retry_after, .. } = self {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        response.json(body)
    }
}
