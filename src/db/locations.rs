use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{agencies, location_memberships, locations};
use super::users::User;
use crate::domain::local_time::Zone;
use crate::domain::Role;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = locations)]
pub struct Location {
    pub id: i64,
    pub agency_id: i64,
    pub name: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
    /// ISO 3166 region for numbers written without a country code.
    pub default_region: String,
}

impl Location {
    /// Its time zone, in which pages show times and reason texts dates.
    pub fn zone(&self) -> Zone {
        Zone::named(&self.time_zone)
    }
}

/// The time zone of a location (UTC for an unknown one).
pub fn zone_of(conn: &mut PgConnection, id: i64) -> QueryResult<Zone> {
    let name: Option<String> = locations::table
        .find(id)
        .select(locations::time_zone)
        .first(conn)
        .optional()?;
    Ok(name.map_or(Zone::UTC, |n| Zone::named(&n)))
}

/// The time zones of some locations, in one query.
pub fn zones_of(
    conn: &mut PgConnection,
    ids: &[i64],
) -> QueryResult<std::collections::HashMap<i64, Zone>> {
    Ok(locations::table
        .filter(locations::id.eq_any(ids))
        .select((locations::id, locations::time_zone))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .map(|(id, name)| (id, Zone::named(&name)))
        .collect())
}

/// A location with its agency's name, for lists.
#[derive(Debug, Clone)]
pub struct LocationSummary {
    pub location: Location,
    pub agency_name: String,
}

/// The locations a user may work in, ordered by agency then name:
/// location users their memberships, agency users their agency's, support
/// all of them. Every page that reaches tenant data goes through
/// [`find_visible`], which applies the same rule to one location.
pub fn list_visible(conn: &mut PgConnection, user: &User) -> QueryResult<Vec<LocationSummary>> {
    visible(conn, user, None)
}

/// The first `limit` of [`list_visible`] (support may see thousands; the
/// navigation's switcher needs a few).
pub fn first_visible(
    conn: &mut PgConnection,
    user: &User,
    limit: i64,
) -> QueryResult<Vec<LocationSummary>> {
    visible(conn, user, Some(limit))
}

fn visible(
    conn: &mut PgConnection,
    user: &User,
    limit: Option<i64>,
) -> QueryResult<Vec<LocationSummary>> {
    let mut query = locations::table
        .inner_join(agencies::table)
        .select((Location::as_select(), agencies::name))
        .order_by((agencies::name, locations::name, locations::id))
        .into_boxed();
    query = match user.role() {
        Role::Support => query,
        Role::Agency => query.filter(locations::agency_id.nullable().eq(user.agency_id)),
        Role::Location => query.filter(
            locations::id.eq_any(
                location_memberships::table
                    .filter(location_memberships::user_id.eq(user.id))
                    .select(location_memberships::location_id),
            ),
        ),
    };
    if let Some(limit) = limit {
        query = query.limit(limit);
    }
    Ok(query
        .load::<(Location, String)>(conn)?
        .into_iter()
        .map(|(location, agency_name)| LocationSummary {
            location,
            agency_name,
        })
        .collect())
}

/// One location, if the user may see it; `None` both when it does not exist
/// and when it is not theirs, so the two cannot be told apart.
pub fn find_visible(
    conn: &mut PgConnection,
    user: &User,
    id: i64,
) -> QueryResult<Option<Location>> {
    // The location and the user's membership of it in one statement.
    let found: Option<(Location, Option<i64>)> = locations::table
        .left_join(
            location_memberships::table.on(location_memberships::location_id
                .eq(locations::id)
                .and(location_memberships::user_id.eq(user.id))),
        )
        .filter(locations::id.eq(id))
        .select((
            Location::as_select(),
            location_memberships::user_id.nullable(),
        ))
        .first(conn)
        .optional()?;
    Ok(found.and_then(|(location, member)| {
        may_see(user, &location, member.is_some()).then_some(location)
    }))
}

/// Whether `user` may see `location` (`member`: they are one of its users).
pub fn may_see(user: &User, location: &Location, member: bool) -> bool {
    match user.role() {
        Role::Support => true,
        Role::Agency => user.agency_id == Some(location.agency_id),
        Role::Location => member,
    }
}

/// A user and, if they may see it, a location, in one statement. `None`
/// when there is no such user. (Pages read both with their switcher in
/// `db::who`; `bench-pages` replays this as one of a page's reads one by
/// one.)
pub fn user_and_visible(
    conn: &mut PgConnection,
    user_id: i64,
    location_id: i64,
) -> QueryResult<Option<(User, Option<Location>)>> {
    use super::schema::users;
    let found: Option<(User, Option<Location>, Option<i64>)> = users::table
        .left_join(locations::table.on(locations::id.eq(location_id)))
        .left_join(
            location_memberships::table.on(location_memberships::location_id
                .eq(locations::id)
                .and(location_memberships::user_id.eq(users::id))),
        )
        .filter(users::id.eq(user_id))
        .select((
            User::as_select(),
            Option::<Location>::as_select(),
            location_memberships::user_id.nullable(),
        ))
        .first(conn)
        .optional()?;
    Ok(found.map(|(user, location, member)| {
        let visible = location.filter(|l| may_see(&user, l, member.is_some()));
        (user, visible)
    }))
}

pub fn find(conn: &mut PgConnection, id: i64) -> QueryResult<Option<Location>> {
    locations::table
        .find(id)
        .select(Location::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_name(conn: &mut PgConnection, name: &str) -> QueryResult<Option<Location>> {
    locations::table
        .filter(locations::name.eq(name))
        .select(Location::as_select())
        .order_by(locations::id)
        .first(conn)
        .optional()
}

pub fn create_agency(conn: &mut PgConnection, name: &str) -> QueryResult<i64> {
    diesel::insert_into(agencies::table)
        .values(agencies::name.eq(name))
        .returning(agencies::id)
        .get_result(conn)
}

pub fn find_agency_by_name(conn: &mut PgConnection, name: &str) -> QueryResult<Option<i64>> {
    agencies::table
        .filter(agencies::name.eq(name))
        .select(agencies::id)
        .order_by(agencies::id)
        .first(conn)
        .optional()
}

pub fn create(
    conn: &mut PgConnection,
    agency_id: i64,
    name: &str,
    time_zone: &str,
) -> QueryResult<Location> {
    diesel::insert_into(locations::table)
        .values((
            locations::agency_id.eq(agency_id),
            locations::name.eq(name),
            locations::time_zone.eq(time_zone),
            // Numbers its people type without a country code are read in
            // the country of its time zone, until someone sets another.
            locations::default_region.eq(crate::domain::region::default_region_for(time_zone)),
        ))
        .returning(Location::as_returning())
        .get_result(conn)
}

/// An agency's locations, by name.
pub fn for_agency(conn: &mut PgConnection, agency_id: i64) -> QueryResult<Vec<Location>> {
    locations::table
        .filter(locations::agency_id.eq(agency_id))
        .order_by((locations::name, locations::id))
        .select(Location::as_select())
        .load(conn)
}

/// Sets the region numbers without a country code are read in (an ISO
/// 3166 code checked by `domain::region::parse_region`).
pub fn set_region(conn: &mut PgConnection, id: i64, region: &str) -> QueryResult<usize> {
    diesel::update(locations::table.find(id))
        .set(locations::default_region.eq(region))
        .execute(conn)
}

pub fn rename(conn: &mut PgConnection, id: i64, name: &str) -> QueryResult<usize> {
    diesel::update(locations::table.find(id))
        .set(locations::name.eq(name))
        .execute(conn)
}
