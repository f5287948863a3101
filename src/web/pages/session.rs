use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use crate::db::{self, users, DbError};
use crate::password;
use crate::web::auth::{self, CsrfForm};
use crate::web::error::PageError;
use crate::web::AppState;

#[derive(Template)]
#[template(path = "session/sign_in.html")]
struct SignInPage {
    csrf: String,
    email: String,
    error: Option<String>,
}

pub async fn show_sign_in(session: Session) -> Result<HttpResponse, PageError> {
    if session.get::<i64>("user_id")?.is_some() {
        return Ok(redirect("/locations"));
    }
    let page = SignInPage {
        csrf: auth::csrf_token(&session)?,
        email: String::new(),
        error: None,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

enum Outcome {
    SignedIn(i64),
    Refused,
    Locked,
}

pub async fn sign_in(
    state: web::Data<AppState>,
    session: Session,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<HttpResponse, PageError> {
    let email = form.email.trim().to_lowercase();
    let password = form.password;
    let outcome = db::run(&state.pool, move |conn| -> Result<Outcome, PageError> {
        let now = Utc::now();
        if users::recent_failures(conn, &email, now).map_err(DbError::from)? >= users::MAX_FAILURES
        {
            return Ok(Outcome::Locked);
        }
        let user = users::find_by_email(conn, &email).map_err(DbError::from)?;
        // Unknown emails are checked against a dummy hash, so both failures
        // take the same time and say the same thing.
        let hash = user
            .as_ref()
            .map(|u| u.password_hash.as_str())
            .unwrap_or_else(|| password::dummy_hash());
        let matches = password::verify(&password, hash);
        match user {
            Some(user) if matches => {
                users::clear_failures(conn, &email).map_err(DbError::from)?;
                Ok(Outcome::SignedIn(user.id))
            }
            _ => {
                users::record_failure(conn, &email, now).map_err(DbError::from)?;
                Ok(Outcome::Refused)
            }
        }
    })
    .await?;
    match outcome {
        Outcome::SignedIn(user_id) => {
            auth::sign_in(&session, user_id)?;
            Ok(redirect("/locations"))
        }
        Outcome::Locked => Err(PageError::TooManyRequests(format!(
            "Too many failed sign-ins for this email. For your safety, signing in with it is paused \
             for up to {} minutes; try again later or ask an administrator to help.",
            users::FAILURE_WINDOW_MINUTES
        ))),
        Outcome::Refused => {
            let page = SignInPage {
                csrf: auth::csrf_token(&session)?,
                email: form.email.trim().to_string(),
                error: Some("The email or password is not right. Please try again.".into()),
            };
            Ok(HttpResponse::Unauthorized()
                .content_type("text/html; charset=utf-8")
                .body(page.render()?))
        }
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

pub async fn sign_out(session: Session, _form: CsrfForm<NoFields>) -> HttpResponse {
    auth::sign_out(&session);
    redirect("/login")
}

pub(super) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}
