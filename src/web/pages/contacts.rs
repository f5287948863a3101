use actix_session::Session;
use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Nav;
use crate::db::contacts::{self, Contact, Cursor};
use crate::db::integrations::{self, Integration};
use crate::db::locations::{self, Location};
use crate::db::{self, DbError};
use crate::web::auth::CurrentUser;
use crate::web::error::PageError;
use crate::web::AppState;

const PAGE_SIZE: i64 = 50;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    /// The id of the last contact of the previous page.
    after: Option<i64>,
    /// The id of the first contact of the next page.
    before: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/list.html")]
pub struct ContactsPage {
    nav: Nav,
    location: Location,
    contacts: Vec<Contact>,
    q: String,
    next_after: Option<i64>,
    prev_before: Option<i64>,
}

impl ContactsPage {
    /// The query string that keeps the search when paging.
    fn search_param(&self) -> String {
        if self.q.is_empty() {
            String::new()
        } else {
            format!("q={}&", urlencoding::encode(&self.q))
        }
    }
}

pub async fn list_contacts(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<i64>,
    query: web::Query<ListQuery>,
    CurrentUser(user): CurrentUser,
) -> Result<ContactsPage, PageError> {
    let location_id = path.into_inner();
    let nav = Nav::new(&user, &session)?;
    let ListQuery { q, after, before } = query.into_inner();
    let search = q.clone();
    let (location, page) = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let location = locations::find_visible(conn, &user, location_id)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)?;
        // The cursor is a contact id of this location; one that is gone
        // (deleted since the link was made) starts over at the first page.
        let anchor_exists = |id: i64, conn: &mut diesel::PgConnection| {
            contacts::find(conn, location.id, id)
                .map(|c| c.is_some())
                .map_err(DbError::from)
        };
        let cursor = match (after, before) {
            (Some(id), _) if anchor_exists(id, conn)? => Cursor::After(id),
            (None, Some(id)) if anchor_exists(id, conn)? => Cursor::Before(id),
            _ => Cursor::First,
        };
        let page = contacts::list(conn, location.id, Some(&search), &cursor, PAGE_SIZE)?;
        Ok((location, page))
    })
    .await?;
    Ok(ContactsPage {
        nav,
        next_after: page
            .has_next
            .then(|| page.contacts.last().map(|c| c.id))
            .flatten(),
        prev_before: page
            .has_prev
            .then(|| page.contacts.first().map(|c| c.id))
            .flatten(),
        location,
        contacts: page.contacts,
        q,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/show.html")]
pub struct ContactPage {
    nav: Nav,
    location: Location,
    contact: Contact,
    integrations: Vec<Integration>,
}

pub async fn show_contact(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    CurrentUser(user): CurrentUser,
) -> Result<ContactPage, PageError> {
    let (location_id, contact_id) = path.into_inner();
    let nav = Nav::new(&user, &session)?;
    let (location, contact, integrations) =
        db::run(&state.pool, move |conn| -> Result<_, PageError> {
            let location = locations::find_visible(conn, &user, location_id)
                .map_err(DbError::from)?
                .ok_or(PageError::NotFound)?;
            let contact = contacts::find(conn, location.id, contact_id)
                .map_err(DbError::from)?
                .ok_or(PageError::NotFound)?;
            let integrations = integrations::list(conn, location.id).map_err(DbError::from)?;
            Ok((location, contact, integrations))
        })
        .await?;
    Ok(ContactPage {
        nav,
        location,
        contact,
        integrations,
    })
}
