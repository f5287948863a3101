//! The API's JSON body: read whole (up to the API's limit), refused with a
//! 400 that says why when it is not JSON of the expected shape, and with a
//! 422 naming the field when a string holds a NUL character (PostgreSQL
//! stores no NUL in text: it would otherwise fail as a 500 deep inside).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// The largest JSON body (room for a 100,000-recipient bulk send).
pub const LIMIT: usize = 4 * 1024 * 1024;

pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::BadRequest(
                    "Send a JSON body with Content-Type: application/json.".into(),
                ));
            }
            let body = body.await.map_err(|e| {
                ApiError::BadRequest(format!(
                    "The JSON body could not be read (at most {} MiB): {e}",
                    LIMIT / 1024 / 1024
                ))
            })?;
            let value: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::BadRequest(format!("The JSON body could not be read: {e}"))
            })?;
            if let Some(field) = nul_in(&value, "") {
                return Err(ApiError::InvalidAt {
                    field: if field.is_empty() {
                        "body".into()
                    } else {
                        field
                    },
                    message: "contains a NUL character (\\u0000), which no field accepts".into(),
                });
            }
            let parsed = serde_json::from_value(value).map_err(|e| {
                ApiError::BadRequest(format!("The JSON body could not be read: {e}"))
            })?;
            Ok(ApiJson(parsed))
        })
    }
}

/// The path of the first string (key or value) holding a NUL character.
fn nul_in(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_in(v, &here)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::nul_in;
    use serde_json::json;

    #[test]
    fn the_path_to_a_nul_is_named() {
        assert_eq!(
            nul_in(&json!({"a": "ok", "b": ["x", "y\u{0}"]}), ""),
            Some("b[1]".into())
        );
        assert_eq!(
            nul_in(&json!({"c": {"d": "\u{0}"}}), ""),
            Some("c.d".into())
        );
        assert_eq!(nul_in(&json!({"ok": [1, "two"]}), ""), None);
    }
}
