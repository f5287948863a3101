use actix_session::Session;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use crate::db::{self, users, DbError};
use crate::password;
use crate::web::auth::{self, CsrfForm, CurrentUser};
use crate::web::error::PageError;
use crate::web::AppState;

#[derive(Template)]
#[template(path = "session/sign_in.html")]
struct SignInPage {
    csrf: String,
    email: String,
    /// The page asked for before signing in, to return to.
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `next` if it is a path of this site (`/locations/3/contacts?q=x`):
/// never another site (`//evil.example`, `https://…`, `/\evil.example`,
/// which browsers read as `//`), nor anything with control characters.
pub fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
        && next.len() <= 2000;
    ok.then_some(next)
}

/// The page to return to after signing in: a [`local_path`] other than
/// the home and the sign-in page itself.
fn return_to(next: &str) -> Option<&str> {
    local_path(next).filter(|n| *n != "/" && !n.starts_with("/login"))
}

/// Where a user lands after signing in: the page they asked for, else a
/// location user's only location's contacts, else the locations.
pub(super) async fn landing(
    state: &AppState,
    user: users::User,
    next: &str,
) -> Result<String, PageError> {
    if let Some(next) = return_to(next) {
        return Ok(next.to_string());
    }
    if user.role() != crate::domain::Role::Location {
        return Ok("/locations".into());
    }
    let first = db::run(&state.pool, move |conn| {
        crate::db::locations::first_visible(conn, &user, 2).map_err(DbError::from)
    })
    .await?;
    Ok(match first.as_slice() {
        [only] => format!("/locations/{}/contacts", only.location.id),
        _ => "/locations".into(),
    })
}

pub async fn show_sign_in(
    state: web::Data<AppState>,
    session: Session,
    query: web::Query<SignInQuery>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, PageError> {
    if let Some(CurrentUser(user)) = user {
        return Ok(redirect(&landing(&state, user, &query.next).await?));
    }
    let page = SignInPage {
        csrf: auth::csrf_token(&session)?,
        email: String::new(),
        next: return_to(&query.next).unwrap_or("").to_string(),
        error: None,
        notice: (query.password == "set").then_some("Your password is set. Sign in with it."),
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
    #[serde(default)]
    next: String,
}

enum Outcome {
    SignedIn(Box<users::User>),
    Refused,
    Deactivated,
}

fn locked() -> PageError {
    PageError::TooManyRequests(format!(
        "Too many failed sign-ins for this email. For your safety, signing in with it is paused \
         for up to {} minutes; try again later or ask an administrator to help.",
        users::FAILURE_WINDOW_MINUTES
    ))
}

pub async fn sign_in(
    state: web::Data<AppState>,
    session: Session,
    req: actix_web::HttpRequest,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<HttpResponse, PageError> {
    let email = form.email.trim().to_lowercase();
    let password = form.password;
    let client = req
        .peer_addr()
        .map(|a| users::client_key(a.ip()))
        .unwrap_or_else(|| "unknown".into());
    // 1. A short database step: the limits, checked and the attempt
    //    recorded atomically.
    let attempt = {
        let email = email.clone();
        db::run(&state.pool, move |conn| {
            users::begin_attempt(conn, &email, &client, Utc::now()).map_err(DbError::from)
        })
        .await?
    };
    let user = match attempt {
        users::Attempt::Proceed(user) => user,
        users::Attempt::EmailLocked => return Err(locked()),
        // Past the client's limit with an email that is nobody's: the same
        // answer as a wrong password, after about the time a check takes,
        // without spending a hash on it.
        users::Attempt::Unknown => {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(150)).await;
            return refused(&session, &form.email, &form.next);
        }
    };
    // 2. The slow hash, off the pool and off the async workers, a few at a
    //    time: a flood of sign-ins waits here, never in front of webhooks.
    //    Unknown emails are checked against a dummy hash, so both failures
    //    take the same time and say the same thing.
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.hashing.clone().acquire_owned(),
    )
    .await
    .map_err(|_| {
        PageError::TooManyRequests(
            "Too many sign-ins at this moment; try again in a few seconds.".into(),
        )
    })?
    .map_err(|_| PageError::Internal("the sign-in queue was closed".into()))?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_string());
    let matches = web::block(move || {
        let _permit = permit;
        password::verify(&password, &hash)
    })
    .await
    .map_err(|e| PageError::Internal(format!("checking a password: {e}")))?;
    // 3. What it means.
    let outcome = match user {
        // A deactivated account cannot sign in (and is told so only with
        // its right password).
        Some(user) if matches && !user.is_active() => Outcome::Deactivated,
        Some(user) if matches => {
            db::run(&state.pool, move |conn| {
                users::clear_failures(conn, &email).map_err(DbError::from)
            })
            .await?;
            Outcome::SignedIn(Box::new(user))
        }
        _ => Outcome::Refused,
    };
    match outcome {
        Outcome::SignedIn(user) => {
            auth::sign_in(&session, &user)?;
            Ok(redirect(&landing(&state, *user, &form.next).await?))
        }
        Outcome::Deactivated => Err(PageError::Forbidden(
            "This account has been deactivated. Ask your agency's administrator if you need \
             access again."
                .into(),
        )),
        Outcome::Refused => refused(&session, &form.email, &form.next),
    }
}

/// The sign-in page again, saying the email or password is not right (the
/// same whichever it was).
fn refused(session: &Session, email: &str, next: &str) -> Result<HttpResponse, PageError> {
    let page = SignInPage {
        csrf: auth::csrf_token(session)?,
        email: email.trim().to_string(),
        next: return_to(next).unwrap_or("").to_string(),
        error: Some("The email or password is not right. Please try again.".into()),
        notice: None,
    };
    Ok(HttpResponse::Unauthorized()
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

#[derive(Deserialize)]
pub struct NoFields {}

/// Signs out everywhere: the user's session generation moves on, so every
/// cookie issued before (another browser, a copied cookie) is signed out
/// too.
pub async fn sign_out(
    state: web::Data<AppState>,
    session: Session,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, PageError> {
    if let Some(id) = auth::session_user_id(&session) {
        db::run(&state.pool, move |conn| {
            users::end_sessions(conn, id).map_err(DbError::from)
        })
        .await?;
    }
    auth::sign_out(&session);
    Ok(redirect("/login"))
}

pub(super) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_a_path_of_this_site_is_returned_to() {
        assert_eq!(
            local_path("/locations/3/contacts?q=a"),
            Some("/locations/3/contacts?q=a")
        );
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/x\\y",
            "evil.example",
            "/a\nb",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}

#[derive(Template)]
#[template(path = "session/set_password.html")]
struct SetPasswordPage {
    csrf: String,
    token: String,
    email: String,
    error: Option<String>,
}

fn link_gone() -> PageError {
    PageError::NotFoundWith(
        "This password link has expired, was already used, or was replaced by a newer one. Ask \
         your agency's administrator for a new link."
            .into(),
    )
}

/// The one-time link's page: choose a password.
pub async fn show_set_password(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let token = path.into_inner();
    let lookup = token.clone();
    let user = db::run(&state.pool, move |conn| {
        users::link_user(conn, &lookup, Utc::now()).map_err(DbError::from)
    })
    .await?
    .ok_or_else(link_gone)?;
    let page = SetPasswordPage {
        csrf: auth::csrf_token(&session)?,
        token,
        email: user.email,
        error: None,
    };
    // The page's form carries the link's token.
    super::html_no_store(actix_web::http::StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// Sets the password (at least 12 characters), once per link; every
/// earlier session of the user ends.
pub async fn set_password(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<SetPasswordForm>,
) -> Result<HttpResponse, PageError> {
    let token = path.into_inner();
    let problem = if form.password.chars().count() < password::MIN_LENGTH {
        Some(format!(
            "Choose a password of at least {} characters.",
            password::MIN_LENGTH
        ))
    } else if form.password != form.confirm {
        Some("The two passwords differ: type the same password twice.".to_string())
    } else {
        None
    };
    if let Some(error) = problem {
        let lookup = token.clone();
        let user = db::run(&state.pool, move |conn| {
            users::link_user(conn, &lookup, Utc::now()).map_err(DbError::from)
        })
        .await?
        .ok_or_else(link_gone)?;
        let page = SetPasswordPage {
            csrf: auth::csrf_token(&session)?,
            token,
            email: user.email,
            error: Some(error),
        };
        return super::html(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let chosen = form.password;
    let set = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let hash = password::hash(&chosen).map_err(|e| PageError::Internal(e.to_string()))?;
        let user =
            users::set_password_by_link(conn, &token, &hash, Utc::now()).map_err(DbError::from)?;
        if let Some(user) = &user {
            users::clear_failures(conn, &user.email).map_err(DbError::from)?;
        }
        Ok(user)
    })
    .await?;
    set.ok_or_else(link_gone)?;
    auth::sign_out(&session);
    Ok(redirect("/login?password=set"))
}
