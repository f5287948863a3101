use actix_web::{web, HttpResponse};

use super::AppState;
use crate::db::{self, DbError};

/// 200 when the database answers, 503 otherwise (for load balancers).
pub async fn check_health(state: web::Data<AppState>) -> HttpResponse {
    match db::run::<_, DbError, _>(&state.pool, db::ping).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "error": "the database is not answering"}))
        }
    }
}
