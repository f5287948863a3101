//! Who is asking: the signed-in user (an extractor, so a handler cannot
//! forget to ask) and CSRF protection for every state-changing form.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::{Duration, Utc};
use serde::de::DeserializeOwned;

use super::error::PageError;
use super::AppState;
use crate::db::{self, users, DbError};

const USER_ID: &str = "user_id";
const SIGNED_IN_AT: &str = "signed_in_at";
const GENERATION: &str = "generation";
const CSRF: &str = "csrf";
/// The form field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrf_token";
/// Cookie sessions cannot be revoked server-side, so they also expire.
const SESSION_HOURS: i64 = 12;

/// The signed-in user, loaded fresh from the database on every request (a
/// changed role or a deleted user takes effect at once).
pub struct CurrentUser(pub users::User);

impl FromRequest for CurrentUser {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| PageError::Internal("app state missing".into()))?;
            let claim = SessionClaim::read(&session)?;
            let user = db::run(&state.pool, move |conn| {
                users::find(conn, claim.id).map_err(DbError::from)
            })
            .await?;
            claim.accept(&session, user).map(CurrentUser)
        })
    }
}

/// Who the session cookie says is signed in, before the database is asked.
#[derive(Clone, Copy)]
struct SessionClaim {
    id: i64,
    generation: Option<i32>,
}

impl SessionClaim {
    /// The claim of a fresh session; signed out otherwise.
    fn read(session: &Session) -> Result<Self, PageError> {
        let Some(id) = session.get::<i64>(USER_ID)? else {
            return Err(PageError::NotSignedIn);
        };
        let fresh = session.get::<i64>(SIGNED_IN_AT)?.is_some_and(|at| {
            Utc::now().timestamp() - at < Duration::hours(SESSION_HOURS).num_seconds()
        });
        if !fresh {
            session.purge();
            return Err(PageError::NotSignedIn);
        }
        Ok(SessionClaim {
            id,
            generation: session.get::<i32>(GENERATION)?,
        })
    }

    /// The user as stored now. A deactivated user, or a cookie issued
    /// before the last sign-out, password change or deactivation, is
    /// signed out.
    fn accept(
        self,
        session: &Session,
        user: Option<users::User>,
    ) -> Result<users::User, PageError> {
        match user {
            Some(user) if self.holds_for(&user) => Ok(user),
            _ => {
                session.purge();
                Err(PageError::NotSignedIn)
            }
        }
    }

    /// Whether the cookie still speaks for this (stored) user.
    fn holds_for(&self, user: &users::User) -> bool {
        user.is_active() && self.generation == Some(user.session_generation)
    }
}

/// How many locations the navigation's switcher lists (support may see
/// thousands; the locations page lists them all).
pub(crate) const SWITCHER_SIZE: i64 = 200;

/// The signed-in user and the location of the path's `location_id`, if
/// they may see it (404 otherwise, the same as no such location), loaded
/// together; with the locations they may switch to. Handlers of location
/// pages take this instead of repeating the visibility check.
pub struct VisibleLocation {
    pub user: users::User,
    pub location: crate::db::locations::Location,
    /// (id, name) of the locations the user may see, for the switcher.
    pub switcher: Vec<(i64, String)>,
}

impl FromRequest for VisibleLocation {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let id = req
            .match_info()
            .get("location_id")
            .and_then(|v| v.parse::<i64>().ok());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| PageError::Internal("app state missing".into()))?;
            let claim = SessionClaim::read(&session)?;
            // The user, the location and the switcher in one statement:
            // every location page starts here.
            let (user, found) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
                let Some(id) = id else {
                    let user = users::find(conn, claim.id).map_err(DbError::from)?;
                    return Ok((user, None));
                };
                let who = crate::db::who::read(conn, claim.id, claim.generation, id, SWITCHER_SIZE)
                    .map_err(DbError::from)?;
                Ok((who.user, who.location.map(|l| (l, who.switcher))))
            })
            .await?;
            // A session to be signed out learns nothing of locations.
            let user = claim.accept(&session, user)?;
            let (location, switcher) = found.ok_or(PageError::NotFound)?;
            Ok(VisibleLocation {
                user,
                location,
                switcher,
            })
        })
    }
}

/// Who the session cookie says is signed in, not yet checked against the
/// database: for a page that reads the user in the same statement as its
/// own data (one round trip), then decides with [`Claim::visible`] exactly
/// as [`VisibleLocation`] does.
#[derive(Clone, Copy)]
pub struct Claim(SessionClaim);

impl FromRequest for Claim {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(SessionClaim::read(&req.get_session()).map(Claim))
    }
}

impl Claim {
    pub fn user_id(&self) -> i64 {
        self.0.id
    }

    pub fn generation(&self) -> Option<i32> {
        self.0.generation
    }

    /// The user as read (`None`: no such user), and the location if they
    /// may see it: a cookie that no longer speaks for the user signs out,
    /// a location they may not see is 404 (the same as none).
    pub fn visible(
        self,
        session: &Session,
        user: Option<users::User>,
        location: Option<crate::db::locations::Location>,
        switcher: Vec<(i64, String)>,
    ) -> Result<VisibleLocation, PageError> {
        let user = self.0.accept(session, user)?;
        let location = location.ok_or(PageError::NotFound)?;
        Ok(VisibleLocation {
            user,
            location,
            switcher,
        })
    }
}

/// A contact of a location the user may see (the path's `location_id` and
/// `contact_id`; 404 when either is not theirs), with that location.
pub struct VisibleContact {
    pub at: VisibleLocation,
    pub contact: crate::db::contacts::Contact,
}

impl FromRequest for VisibleContact {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let at = VisibleLocation::from_request(req, payload);
        let id = req
            .match_info()
            .get("contact_id")
            .and_then(|v| v.parse::<i64>().ok());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let at = at.await?;
            let state = state.ok_or_else(|| PageError::Internal("app state missing".into()))?;
            let id = id.ok_or(PageError::NotFound)?;
            let location_id = at.location.id;
            let contact = db::run(&state.pool, move |conn| {
                crate::db::contacts::find(conn, location_id, id).map_err(DbError::from)
            })
            .await?
            .ok_or(PageError::NotFound)?;
            Ok(VisibleContact { at, contact })
        })
    }
}

/// Starts a signed-in session: a new cookie (no fixation of a session made
/// before sign-in) and a new CSRF token.
pub fn sign_in(session: &Session, user: &users::User) -> Result<(), PageError> {
    session.renew();
    session.insert(USER_ID, user.id)?;
    session.insert(GENERATION, user.session_generation)?;
    session.insert(SIGNED_IN_AT, Utc::now().timestamp())?;
    session.insert(CSRF, new_token())?;
    Ok(())
}

/// The signed-in user's id, as the cookie says (not checked: for signing
/// out).
pub fn session_user_id(session: &Session) -> Option<i64> {
    session.get::<i64>(USER_ID).ok().flatten()
}

pub fn sign_out(session: &Session) {
    session.purge();
}

/// The session's CSRF token, created on first use (the sign-in form needs
/// one before anyone is signed in).
pub fn csrf_token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session.get::<String>(CSRF)? {
        return Ok(token);
    }
    let token = new_token();
    session.insert(CSRF, &token)?;
    Ok(token)
}

fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The origin this site is reached at: `DND_PUBLIC_URL` when set, else the
/// scheme and host the request came to.
fn expected_origin(req: &HttpRequest, state: Option<&web::Data<AppState>>) -> String {
    if let Some(url) = state.and_then(|s| s.public_url.clone()) {
        // Keep scheme://host[:port], drop any path.
        let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
        let end = url[after_scheme..]
            .find('/')
            .map(|i| after_scheme + i)
            .unwrap_or(url.len());
        return url[..end].to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The session's CSRF token against the one a form sent.
fn check_token(session: &Session, sent: &str) -> Result<(), PageError> {
    let expected = session.get::<String>(CSRF)?.unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        return Err(PageError::Forbidden(
            "This form has expired or did not come from this site, so nothing was \
             changed. Reload the page and try again."
                .into(),
        ));
    }
    Ok(())
}

/// The checks [`CsrfForm`] makes, for a form read another way (a file
/// upload): sent from a page of this site, with the session's token.
pub fn check_form(req: &HttpRequest, sent_token: &str) -> Result<(), PageError> {
    check_origin(req)?;
    check_token(&req.get_session(), sent_token)
}

/// The request must come from a page of this site: `Origin` when the browser
/// sends it, else `Referer`; neither is refused.
fn check_origin(req: &HttpRequest) -> Result<(), PageError> {
    let state = req.app_data::<web::Data<AppState>>();
    let expected = expected_origin(req, state);
    let refused = || {
        PageError::Forbidden(
            "This form was not sent from a page of this site, so it was refused and nothing was \
             changed. Open the page again and resubmit."
                .into(),
        )
    };
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        return if origin.as_bytes() == expected.as_bytes() {
            Ok(())
        } else {
            Err(refused())
        };
    }
    if let Some(referer) = req
        .headers()
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
    {
        let same = referer == expected
            || referer
                .strip_prefix(expected.as_str())
                .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'));
        return if same { Ok(()) } else { Err(refused()) };
    }
    Err(refused())
}

/// A form whose origin and CSRF token were checked before anything reads
/// it. Use it for every POST of the browser pages.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let origin = check_origin(req);
        let session = req.get_session();
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            origin?;
            let body = body
                .await
                .map_err(|e| PageError::BadRequest(format!("The form could not be read: {e}")))?;
            // The token is checked before the form is interpreted, so a
            // forged request is refused (403) even when it is also malformed.
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| PageError::BadRequest(format!("The form could not be read: {e}")))?;
            let sent = fields
                .iter()
                .find(|(k, _)| k == CSRF_FIELD)
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            check_token(&session, sent)?;
            // A value that is not UTF-8 once decoded would be read with
            // U+FFFD in place of its bytes, and stored so: refused instead.
            if let Some(field) = not_utf8(&body) {
                return Err(PageError::BadRequest(format!(
                    "The field \"{field}\" is not UTF-8 text; send the form again from the page. \
                     Nothing was changed."
                )));
            }
            // PostgreSQL stores no NUL in text: refused here, naming the
            // field, rather than failing as a 500 when written.
            if let Some((field, _)) = fields
                .iter()
                .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            {
                return Err(PageError::BadRequest(format!(
                    "The field \"{}\" contains a NUL character; remove it and send the form again. \
                     Nothing was changed.",
                    field.replace('\0', "")
                )));
            }
            let form: T = serde_urlencoded::from_bytes(&body)
                .map_err(|e| PageError::BadRequest(format!("The form is incomplete: {e}")))?;
            Ok(CsrfForm(form))
        })
    }
}

/// The first field of a form body whose name or value is not UTF-8 once
/// percent-decoded (named as far as it can be read).
fn not_utf8(body: &[u8]) -> Option<String> {
    body.split(|b| *b == b'&').find_map(|pair| {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let name = urlencoding::decode_binary(kv.next().unwrap_or_default());
        let value = urlencoding::decode_binary(kv.next().unwrap_or_default());
        (std::str::from_utf8(&name).is_err() || std::str::from_utf8(&value).is_err())
            .then(|| String::from_utf8_lossy(&name).replace(['+', '\0'], " "))
    })
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, not_utf8};

    #[test]
    fn form_fields_must_be_utf8_once_decoded() {
        assert_eq!(not_utf8(b"a=1&name=Jos%C3%A9+L&b="), None);
        assert_eq!(not_utf8(b"a=1&name=Jos%E9"), Some("name".into()));
        assert_eq!(not_utf8(b"a=1&full+name=Jos\xe9"), Some("full name".into()));
        assert_eq!(not_utf8(b"%FF=x").as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
