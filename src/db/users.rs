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
    /// Bumped by a sign-out, a new password or a deactivation: cookies
    /// carrying an older one are no longer signed in.
    pub session_generation: i32,
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl User {
    /// The role column is constrained by the schema, so an unknown value is
    /// a broken database, not bad input; treat it as the least privileged.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Location)
    }

    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
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
/// Failed sign-ins one client address may make in the window, whatever the
/// emails (an office behind one address has room for its people's typos).
pub const MAX_CLIENT_FAILURES: i64 = 50;

/// The client a sign-in is counted against: its IPv4 address, or its IPv6
/// /64 (one subscriber usually holds a whole /64).
pub fn client_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// What a sign-in attempt may do.
#[derive(Debug)]
pub enum Attempt {
    /// Go on and check the password; the attempt is recorded as a failure
    /// until [`clear_failures`] says otherwise.
    Proceed(Option<User>),
    /// Too many failures for this email.
    EmailLocked,
    /// Too many failures from this client, and the email is nobody's: no
    /// password is checked (a flood of made-up emails costs no hashing),
    /// and nothing is recorded. Emails of real accounts still go on,
    /// under their own limit, so one client's flood (or a shared proxy's)
    /// locks no real user out.
    Unknown,
}

/// Starts a sign-in atomically: under the email's and the client's locks
/// (one order), counts their recent failures, and if both are under their
/// limits records this attempt as one before the password is checked, so
/// parallel tries cannot all slip under the limit.
pub fn begin_attempt(
    conn: &mut PgConnection,
    email: &str,
    client: &str,
    now: DateTime<Utc>,
) -> QueryResult<Attempt> {
    conn.transaction(|conn| {
        let since = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
        diesel::sql_query(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (
                 SELECT DISTINCT hashtextextended(x, 7) AS k
                 FROM unnest(ARRAY['login-email:' || $1, 'login-client:' || $2]) AS x ORDER BY 1) l",
        )
        .bind::<diesel::sql_types::Text, _>(email)
        .bind::<diesel::sql_types::Text, _>(client)
        .execute(conn)?;
        let by_email: i64 = login_failures::table
            .filter(login_failures::email.eq(email))
            .filter(login_failures::attempted_at.gt(since))
            .count()
            .get_result(conn)?;
        if by_email >= MAX_FAILURES {
            return Ok(Attempt::EmailLocked);
        }
        let by_client: i64 = login_failures::table
            .filter(login_failures::client.eq(client))
            .filter(login_failures::attempted_at.gt(since))
            .count()
            .get_result(conn)?;
        let user = find_by_email(conn, email)?;
        if by_client >= MAX_CLIENT_FAILURES && user.is_none() {
            return Ok(Attempt::Unknown);
        }
        // Old rows go a few at a time, skipping any another sign-in is
        // deleting: no sign-in ever waits on another's clean-up.
        diesel::sql_query(
            "DELETE FROM login_failures WHERE id IN (
                 SELECT id FROM login_failures WHERE attempted_at < $1
                 LIMIT 100 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(since)
        .execute(conn)?;
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::email.eq(email),
                login_failures::client.eq(client),
                login_failures::attempted_at.eq(now),
            ))
            .execute(conn)?;
        Ok(Attempt::Proceed(user))
    })
}

pub fn clear_failures(conn: &mut PgConnection, email: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.filter(login_failures::email.eq(email))).execute(conn)?;
    Ok(())
}

/// Ends every session of the user (each cookie carries the generation it
/// was issued under).
pub fn end_sessions(conn: &mut PgConnection, user_id: i64) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::session_generation.eq(users::session_generation + 1))
        .execute(conn)?;
    Ok(())
}

/// How long a one-time password link works.
pub const LINK_HOURS: i64 = 72;

/// A user of an agency with the locations they work in, for the admin list.
#[derive(Debug, Clone)]
pub struct AgencyUser {
    pub user: User,
    pub location_names: Vec<String>,
    /// A password link was made and not used yet (the user has not set a
    /// password, or a reset is pending).
    pub link_pending: bool,
}

/// The agency's users (location and agency roles), by email.
pub fn list_agency(conn: &mut PgConnection, agency_id: i64) -> QueryResult<Vec<AgencyUser>> {
    use super::schema::{locations, password_links};
    let people: Vec<User> = users::table
        .filter(users::agency_id.eq(agency_id))
        .filter(users::role.ne(Role::Support.as_str()))
        .order_by(users::email)
        .select(User::as_select())
        .load(conn)?;
    let ids: Vec<i64> = people.iter().map(|u| u.id).collect();
    let memberships: Vec<(i64, String)> = location_memberships::table
        .inner_join(locations::table)
        .filter(location_memberships::user_id.eq_any(&ids))
        .order_by(locations::name)
        .select((location_memberships::user_id, locations::name))
        .load(conn)?;
    let pending: Vec<i64> = password_links::table
        .filter(password_links::user_id.eq_any(&ids))
        .filter(password_links::ended_at.is_null())
        .filter(password_links::expires_at.gt(Utc::now()))
        .select(password_links::user_id)
        .load(conn)?;
    Ok(people
        .into_iter()
        .map(|user| AgencyUser {
            location_names: memberships
                .iter()
                .filter(|(id, _)| *id == user.id)
                .map(|(_, n)| n.clone())
                .collect(),
            link_pending: pending.contains(&user.id),
            user,
        })
        .collect())
}

/// A new random token for a password link (shown once) and the hash kept.
fn new_link_token() -> (String, String) {
    use rand::RngCore;
    use sha2::Digest;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    (token, hash)
}

fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Makes a one-time password link for the user, ending any earlier one;
/// returns the token (only its hash is stored).
pub fn new_password_link(
    conn: &mut PgConnection,
    user_id: i64,
    created_by: i64,
    now: DateTime<Utc>,
) -> QueryResult<String> {
    use super::schema::password_links;
    conn.transaction(|conn| {
        diesel::update(
            password_links::table
                .filter(password_links::user_id.eq(user_id))
                .filter(password_links::ended_at.is_null()),
        )
        .set(password_links::ended_at.eq(now))
        .execute(conn)?;
        let (token, hash) = new_link_token();
        diesel::insert_into(password_links::table)
            .values((
                password_links::user_id.eq(user_id),
                password_links::token_sha256.eq(hash),
                password_links::created_by.eq(created_by),
                password_links::created_at.eq(now),
                password_links::expires_at.eq(now + Duration::hours(LINK_HOURS)),
            ))
            .execute(conn)?;
        Ok(token)
    })
}

/// The user a password link is for, while it works (not used, not
/// replaced, not expired, the user not deactivated).
pub fn link_user(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<User>> {
    use super::schema::password_links;
    let user: Option<User> = password_links::table
        .inner_join(users::table.on(users::id.eq(password_links::user_id)))
        .filter(password_links::token_sha256.eq(token_hash(token)))
        .filter(password_links::ended_at.is_null())
        .filter(password_links::expires_at.gt(now))
        .filter(users::deactivated_at.is_null())
        .select(User::as_select())
        .first(conn)
        .optional()?;
    Ok(user)
}

/// Sets the password through a link, once: the link ends, and every
/// session the user had ends with it. `None` when the link no longer works.
pub fn set_password_by_link(
    conn: &mut PgConnection,
    token: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<User>> {
    use super::schema::password_links;
    conn.transaction(|conn| {
        // Ending the link is the claim: of two uses at once, one ends it.
        let user_id: Option<i64> = diesel::update(
            password_links::table
                .filter(password_links::token_sha256.eq(token_hash(token)))
                .filter(password_links::ended_at.is_null())
                .filter(password_links::expires_at.gt(now)),
        )
        .set(password_links::ended_at.eq(now))
        .returning(password_links::user_id)
        .get_result(conn)
        .optional()?;
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        let user: Option<User> = diesel::update(
            users::table
                .find(user_id)
                .filter(users::deactivated_at.is_null()),
        )
        .set((
            users::password_hash.eq(password_hash),
            users::session_generation.eq(users::session_generation + 1),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .optional()?;
        Ok(user)
    })
}

/// Deactivates a user: they cannot sign in, their sessions end, and their
/// password links stop working.
pub fn deactivate(conn: &mut PgConnection, user_id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    use super::schema::password_links;
    conn.transaction(|conn| {
        diesel::update(users::table.find(user_id))
            .set((
                users::deactivated_at.eq(now),
                users::session_generation.eq(users::session_generation + 1),
            ))
            .execute(conn)?;
        diesel::update(
            password_links::table
                .filter(password_links::user_id.eq(user_id))
                .filter(password_links::ended_at.is_null()),
        )
        .set(password_links::ended_at.eq(now))
        .execute(conn)?;
        Ok(())
    })
}
