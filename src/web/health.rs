use actix_web::{web, HttpResponse};

use super::AppState;
use crate::db;

/// How long a load balancer waits at most for an answer.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_millis(900);

/// 200 when the database answers, 503 otherwise (for load balancers),
/// always within a second, even while the pool waits for a database that
/// is down.
pub async fn check_health(state: web::Data<AppState>) -> HttpResponse {
    match db::ping_within(&state.pool, ANSWER_WITHIN).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "error": "the database is not answering"}))
        }
    }
}
