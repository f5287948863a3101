//! New and edited contacts in the browser (location and agency users;
//! support has no such forms). The same rules as the API: every address in
//! its canonical form, one address is one person (a conflict names the
//! field), and an edit never clears an address or a reason; a suppressed
//! address shows its reasons the moment it is given.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::dnd::{actor_for, set_flash};
use super::form::FieldErrors;
use super::session::redirect;
use super::Nav;
use crate::db::contacts::{self, Contact, ContactFields, UpsertError, Upserted};
use crate::db::locations::Location;
use crate::db::users::User;
use crate::db::{self, DbError};
use crate::web::auth::{CsrfForm, VisibleContact, VisibleLocation};
use crate::web::error::PageError;
use crate::web::AppState;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct ContactForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    whatsapp_id: String,
    #[serde(default)]
    facebook_id: String,
}

impl ContactForm {
    fn of(c: &Contact) -> Self {
        ContactForm {
            name: c.name.clone(),
            phone: c.phone.clone().unwrap_or_default(),
            email: c.email.clone().unwrap_or_default(),
            whatsapp_id: c.whatsapp_id.clone().unwrap_or_default(),
            facebook_id: c.facebook_id.clone().unwrap_or_default(),
        }
    }

    fn fields(&self) -> ContactFields {
        let some = |v: &str| Some(v.to_string());
        ContactFields {
            name: some(&self.name),
            phone: some(&self.phone),
            email: some(&self.email),
            facebook_id: some(&self.facebook_id),
            whatsapp_id: some(&self.whatsapp_id),
            gmb_id: None,
        }
    }
}

#[derive(Template)]
#[template(path = "contacts/form.html")]
struct FormPage {
    nav: Nav,
    location: Location,
    /// `None` for a new contact.
    contact: Option<Contact>,
    form: ContactForm,
    errors: FieldErrors,
}

/// Support reads contacts; it has no forms.
fn refuse_support(user: &User) -> Result<(), PageError> {
    if user.role().is_read_only() {
        return Err(PageError::Forbidden(
            "Support reads contacts and does not create or edit them. Nothing was changed.".into(),
        ));
    }
    Ok(())
}

/// A contact of the visible location (404 when there is none).
async fn contact_of(
    state: &AppState,
    location_id: i64,
    contact_id: i64,
) -> Result<Contact, PageError> {
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        contacts::find(conn, location_id, contact_id)
            .map_err(DbError::from)?
            .ok_or(PageError::NotFound)
    })
    .await
}

fn render(page: FormPage, status: StatusCode) -> Result<HttpResponse, PageError> {
    super::html(status, &page)
}

pub async fn new_contact(session: Session, at: VisibleLocation) -> Result<HttpResponse, PageError> {
    refuse_support(&at.user)?;
    let nav = Nav::at(&at, &session)?;
    render(
        FormPage {
            nav,
            location: at.location,
            contact: None,
            form: ContactForm::default(),
            errors: FieldErrors::default(),
        },
        StatusCode::OK,
    )
}

pub async fn edit_contact(
    session: Session,
    VisibleContact { at, contact }: VisibleContact,
) -> Result<HttpResponse, PageError> {
    refuse_support(&at.user)?;
    let nav = Nav::at(&at, &session)?;
    let form = ContactForm::of(&contact);
    render(
        FormPage {
            nav,
            location: at.location,
            contact: Some(contact),
            form,
            errors: FieldErrors::default(),
        },
        StatusCode::OK,
    )
}

/// Creates a contact (a phone or an email is needed, as in the API). An
/// address that already belongs to a contact is a conflict: the form says
/// whose, nothing is merged silently.
pub async fn create_contact(
    state: web::Data<AppState>,
    session: Session,
    CsrfForm(form): CsrfForm<ContactForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    refuse_support(&at.user)?;
    save(state, session, at, None, form).await
}

pub async fn update_contact(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(i64, i64)>,
    CsrfForm(form): CsrfForm<ContactForm>,
    at: VisibleLocation,
) -> Result<HttpResponse, PageError> {
    refuse_support(&at.user)?;
    let (_, contact_id) = path.into_inner();
    save(state, session, at, Some(contact_id), form).await
}

async fn save(
    state: web::Data<AppState>,
    session: Session,
    at: VisibleLocation,
    contact_id: Option<i64>,
    form: ContactForm,
) -> Result<HttpResponse, PageError> {
    let nav = Nav::at(&at, &session)?;
    let actor = actor_for(&at.user);
    let fields = form.fields();
    let location = at.location.clone();
    let location_id = location.id;
    let outcome = db::run(&state.pool, move |conn| -> Result<_, PageError> {
        let input = match fields.validate(&location.default_region) {
            Ok(input) => input,
            Err(errors) => return Ok(Err(FieldErrors(errors))),
        };
        let saved = match contact_id {
            Some(id) => contacts::edit(conn, location.id, id, &input, &actor)
                .map(|c| c.map(|c| (c, false))),
            None => {
                // A new contact: an address someone already has is a
                // conflict here, not a merge.
                let taken = match (&input.phone, &input.email) {
                    (Some(p), _) if contacts::find_by_phone(conn, location.id, p).map_err(DbError::from)?.is_some() => {
                        Some(("phone", "this phone belongs to another contact of this location: search for it and edit that one"))
                    }
                    (_, Some(e)) if contacts::find_by_email(conn, location.id, e).map_err(DbError::from)?.is_some() => {
                        Some(("email", "this email belongs to another contact of this location: search for it and edit that one"))
                    }
                    (None, None) => Some(("phone", "give a phone or an email: contacts are matched on them")),
                    _ => None,
                };
                if let Some((field, message)) = taken {
                    let mut errors = FieldErrors::default();
                    errors.push(field, message);
                    return Ok(Err(errors));
                }
                contacts::upsert(conn, location.id, &input, &actor)
                    .map(|(c, how)| Some((c, how == Upserted::Created)))
            }
        };
        match saved {
            Ok(Some(done)) => Ok(Ok(done)),
            Ok(None) => Err(PageError::NotFound),
            Err(UpsertError::Conflict { field, message }) => {
                let mut errors = FieldErrors::default();
                errors.push(field, message);
                Ok(Err(errors))
            }
            Err(UpsertError::NoKey) => {
                let mut errors = FieldErrors::default();
                errors.push("phone", "give a phone or an email: contacts are matched on them");
                Ok(Err(errors))
            }
            Err(UpsertError::Db(e)) => Err(e.into()),
        }
    })
    .await?;
    match outcome {
        Ok((contact, created)) => {
            let blocked = contact.dnd_status() != crate::domain::dnd::Status::Off;
            set_flash(
                &session,
                format!(
                    "Contact {}.{}",
                    if created { "created" } else { "saved" },
                    if blocked {
                        " Its addresses carry DND: see the reasons below."
                    } else {
                        ""
                    }
                ),
            )?;
            Ok(redirect(&format!(
                "/locations/{location_id}/contacts/{}",
                contact.id
            )))
        }
        Err(errors) => {
            let contact = match contact_id {
                Some(id) => Some(contact_of(&state, location_id, id).await?),
                None => None,
            };
            render(
                FormPage {
                    nav,
                    location: at.location,
                    contact,
                    form,
                    errors,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}
