//! The agency's own pages: its users (admins manage them). Only agency
//! users reach them; everyone else gets a 404, as for anything not theirs.

pub mod overview;
pub mod users;

use crate::db::users::User;
use crate::domain::Role;
use crate::web::error::PageError;

/// The agency the user works for, if they are an agency user.
fn agency_of(user: &User) -> Result<i64, PageError> {
    match (user.role(), user.agency_id) {
        (Role::Agency, Some(agency)) => Ok(agency),
        _ => Err(PageError::NotFound),
    }
}

/// Managing users is for the agency's admins; a change by anyone else is
/// refused outright.
fn admin_of(user: &User) -> Result<i64, PageError> {
    match (user.role(), user.agency_id, user.is_admin) {
        (Role::Agency, Some(agency), true) => Ok(agency),
        _ => Err(PageError::Forbidden(
            "Only the agency's administrators manage users. Nothing was changed.".into(),
        )),
    }
}
