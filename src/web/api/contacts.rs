use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::views::{ContactList, ContactView, DndView};
use super::{ApiError, ApiJson, ApiLocation};
use crate::db;
use crate::db::contacts::{self, given, ContactFields, ContactInput, Upserted};
use crate::db::dnd as dnd_store;
use crate::domain::{EmailAddress, InvalidField, PhoneNumber};
use crate::web::AppState;

/// A contact as clients send it. Absent fields are left as stored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    facebook_id: Option<String>,
    whatsapp_id: Option<String>,
    gmb_id: Option<String>,
}

impl ContactBody {
    /// Every address in its canonical form (see [`ContactFields::validate`]);
    /// the first bad field answers.
    fn validate(self, region: &str) -> Result<ContactInput, InvalidField> {
        ContactFields {
            name: self.name,
            phone: self.phone,
            email: self.email,
            facebook_id: self.facebook_id,
            whatsapp_id: self.whatsapp_id,
            gmb_id: self.gmb_id,
        }
        .validate(region)
        .map_err(|mut errors| errors.remove(0))
    }
}

/// Creates the contact, or updates the one with the same phone (else email):
/// 201 when created, 200 when updated.
pub async fn upsert_contact(
    state: web::Data<AppState>,
    ApiLocation(location, key): ApiLocation,
    body: ApiJson<ContactBody>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner().validate(&location.default_region)?;
    let actor = key.actor();
    let (contact, outcome) = db::run(&state.pool, move |conn| {
        contacts::upsert(conn, location.id, &input, &actor).map_err(ApiError::from)
    })
    .await?;
    let mut response = match outcome {
        Upserted::Created => HttpResponse::Created(),
        Upserted::Updated => HttpResponse::Ok(),
    };
    Ok(response.json(ContactView::from(contact)))
}

pub async fn show_contact(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let contact_id = path.into_inner();
    let (contact, dnd) = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let contact = contacts::find(conn, location.id, contact_id)?.ok_or_else(|| {
            ApiError::NotFound(format!("no contact {contact_id} in this location"))
        })?;
        let dnd = dnd_store::load_state(conn, location.id, contact_id)?.unwrap_or_default();
        Ok((contact, dnd))
    })
    .await?;
    let inbound = contact.inbound();
    let mut view = ContactView::from(contact);
    view.dnd = Some(DndView::new(&dnd, inbound));
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize)]
pub struct FindQuery {
    phone: Option<String>,
    email: Option<String>,
}

/// Finds contacts by exact phone or email: `{"contacts": [...]}`, empty when
/// none matches.
pub async fn find_contacts(
    state: web::Data<AppState>,
    ApiLocation(location, _): ApiLocation,
    query: web::Query<FindQuery>,
) -> Result<HttpResponse, ApiError> {
    let FindQuery { phone, email } = query.into_inner();
    let phone = given(phone)
        .map(|p| PhoneNumber::parse(&p, &location.default_region))
        .transpose()?;
    let email = given(email).map(|e| EmailAddress::parse(&e)).transpose()?;
    if phone.is_none() && email.is_none() {
        return Err(ApiError::BadRequest(
            "give ?phone=+14155550100 or ?email=name@example.com".into(),
        ));
    }
    let found = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let mut found = Vec::new();
        if let Some(phone) = &phone {
            found.extend(contacts::find_by_phone(conn, location.id, phone)?);
        }
        if let Some(email) = &email {
            if let Some(c) = contacts::find_by_email(conn, location.id, email)? {
                if !found.iter().any(|f: &contacts::Contact| f.id == c.id) {
                    found.push(c);
                }
            }
        }
        Ok(found)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ContactList {
        contacts: found.into_iter().map(ContactView::from).collect(),
    }))
}
