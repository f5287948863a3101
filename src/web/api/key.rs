use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::ApiError;
use crate::db::locations::Location;
use crate::db::{self, api_keys, DbError};
use crate::domain::dnd::{Actor, ActorKind};
use crate::web::limits::Refused;
use crate::web::AppState;

/// The location whose API key authenticated the request. Every API query is
/// scoped by this location's id.
pub struct ApiLocation(pub Location, pub ApiKeyActor);

/// The key itself, which is the actor of the DND changes it makes.
pub struct ApiKeyActor {
    pub key_id: i64,
    pub key_name: String,
}

impl ApiKeyActor {
    pub fn actor(&self) -> Actor {
        Actor::new(
            ActorKind::Api,
            Some(self.key_id),
            format!("API key {}", self.key_name),
        )
    }
}

impl FromRequest for ApiLocation {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let request = req.clone();
        let key = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|k| k.trim().to_string());
        Box::pin(async move {
            let Some(key) = key.filter(|k| !k.is_empty()) else {
                return Err(ApiError::Unauthorized(
                    "send the location's API key as `Authorization: Bearer <key>`".into(),
                ));
            };
            let state = state.ok_or_else(|| ApiError::Db(DbError::Cancelled))?;
            let location = db::run(&state.pool, move |conn| {
                api_keys::authenticate(conn, &key).map_err(DbError::from)
            })
            .await?;
            let owner = location.ok_or_else(|| {
                ApiError::Unauthorized("the API key is not valid or was revoked".into())
            })?;
            // The key's limits; the permit is kept with the request, so it
            // is given back when the request is answered.
            let permit = state
                .key_limits
                .admit(owner.key_id, std::time::Instant::now())
                .map_err(|refused| match refused {
                    Refused::Rate { retry_after } => ApiError::TooManyRequests {
                        message: format!(
                            "This API key is sending faster than its limit; retry in {retry_after} s."
                        ),
                        retry_after,
                    },
                    Refused::InFlight => ApiError::TooManyRequests {
                        message: "This API key has too many requests in flight; wait for some \
                                  to finish."
                            .into(),
                        retry_after: 1,
                    },
                })?;
            request.extensions_mut().insert(permit);
            Ok(ApiLocation(
                owner.location,
                ApiKeyActor {
                    key_id: owner.key_id,
                    key_name: owner.key_name,
                },
            ))
        })
    }
}
