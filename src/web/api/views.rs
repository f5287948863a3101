//! The JSON shapes of the API, kept apart from the database models so the
//! schema can change without breaking clients.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::contacts::Contact;

#[derive(Debug, Serialize)]
pub struct ContactView {
    pub id: i64,
    pub location_id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub facebook_id: Option<String>,
    pub whatsapp_id: Option<String>,
    pub gmb_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        ContactView {
            id: c.id,
            location_id: c.location_id,
            name: c.name,
            phone: c.phone,
            email: c.email,
            facebook_id: c.facebook_id,
            whatsapp_id: c.whatsapp_id,
            gmb_id: c.gmb_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ContactList {
    pub contacts: Vec<ContactView>,
}
