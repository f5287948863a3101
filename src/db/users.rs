use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use super::schema::{location_memberships, login_failures, users};
use super::DbError;
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub agency_id: Option<i64>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// The role column is constrained by the schema, so an unknown value is
    /// a broken database, not bad input; treat it as the least privileged.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Location)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub agency_id: Option<i64>,
    pub is_admin: bool,
}

pub fn find_by_email(conn: &mut PgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email.trim().to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find(conn: &mut PgConnection, id: i64) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Creates a user and their location memberships in one transaction.
pub fn create(
    conn: &mut PgConnection,
    new: &NewUser<'_>,
    location_ids: &[i64],
) -> Result<User, DbError> {
    conn.transaction(|conn| {
        let user: User = diesel::insert_into(users::table)
            .values(new)
            .returning(User::as_returning())
            .get_result(conn)?;
        for location_id in location_ids {
            diesel::insert_into(location_memberships::table)
                .values((
                    location_memberships::location_id.eq(location_id),
                    location_memberships::user_id.eq(user.id),
                ))
                .execute(conn)?;
        }
        Ok(user)
    })
}

/// How long failed sign-ins are remembered, and how many lock an email out.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
pub const MAX_FAILURES: i64 = 10;

/// Failed sign-ins for this email within the window.
pub fn recent_failures(
    conn: &mut PgConnection,
    email: &str,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    login_failures::table
        .filter(login_failures::email.eq(email))
        .filter(login_failures::attempted_at.gt(now - Duration::minutes(FAILURE_WINDOW_MINUTES)))
        .count()
        .get_result(conn)
}

pub fn record_failure(conn: &mut PgConnection, email: &str, now: DateTime<Utc>) -> QueryResult<()> {
    // Old rows are of no further use; trimming them here keeps the table
    // small without a separate job.
    diesel::delete(login_failures::table)
        .filter(login_failures::attempted_at.lt(now - Duration::minutes(FAILURE_WINDOW_MINUTES)))
        .execute(conn)?;
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::email.eq(email),
            login_failures::attempted_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn clear_failures(conn: &mut PgConnection, email: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.filter(login_failures::email.eq(email))).execute(conn)?;
    Ok(())
}
