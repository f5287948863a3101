//! Who is asking, and where: the signed-in user, the location of the path
//! if they may see it, and the locations they may switch to, in one
//! statement. Every location page starts with these; the contact page
//! reads them in its own statement with the same parts.

use diesel::deserialize::Queryable;
use diesel::dsl::SqlTypeOf;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Record, Text};

use super::locations::{self, Location};
use super::prepared::prepared_statement;
use super::users::User;

/// The SQL types of a struct's columns, in its fields' order.
pub(super) type SqlOf<T> = SqlTypeOf<<T as Selectable<Pg>>::SelectExpression>;
/// The tuple diesel reads a struct from (its fields, in order).
pub(super) type RowOf<T> = <T as Queryable<SqlOf<T>, Pg>>::Row;

/// Each record's columns, in the field order of the struct it becomes
/// (checked against diesel's own select lists by tests).
pub(super) const USER_COLUMNS: &str = "id, email, password_hash, role, agency_id, is_admin, \
     created_at, session_generation, deactivated_at";
pub(super) const LOCATION_COLUMNS: &str =
    "id, agency_id, name, time_zone, created_at, default_region";

/// `v`: the location's id (binds: the location's id, the session's
/// generation) if the user `u` may see it with that session: the rule of
/// [`locations::may_see`], for statements that read the location's data
/// with the user. Every read of that data goes through `v`; the app still
/// decides with `may_see` and the session claim.
pub(super) const VISIBLE_CTE: &str = "v AS (
        SELECT l.id FROM u JOIN locations l ON l.id = ?
        WHERE u.deactivated_at IS NULL AND u.session_generation = ?
          AND (u.role = 'support'
               OR (u.role = 'agency' AND u.agency_id = l.agency_id)
               OR (u.role = 'location' AND EXISTS (
                   SELECT 1 FROM location_memberships m
                   WHERE m.location_id = l.id AND m.user_id = u.id))))";

/// `u` (the user, a CTE the statement defines first) may switch to these
/// locations: as `locations::visible` lists them, one branch per role so
/// each uses its index (only the user's role's branch runs).
pub(super) const SWITCHER_CTE: &str = "switcher AS (
        SELECT l.id, l.name, g.name AS agency
        FROM locations l JOIN agencies g ON g.id = l.agency_id
        WHERE (SELECT role FROM u) = 'location'
          AND l.id IN (SELECT location_id FROM location_memberships
                       WHERE user_id = (SELECT id FROM u))
        UNION ALL
        SELECT l.id, l.name, g.name
        FROM locations l JOIN agencies g ON g.id = l.agency_id
        WHERE l.agency_id = (SELECT agency_id FROM u WHERE role = 'agency')
        UNION ALL
        SELECT l.id, l.name, g.name
        FROM locations l JOIN agencies g ON g.id = l.agency_id
        WHERE (SELECT role FROM u) = 'support')";

/// The columns of [`WhoRow`]; binds: the location's id twice, then how many
/// locations the switcher lists.
pub(super) const WHO_COLUMNS: &str = "(SELECT ROW(@USER) FROM u) AS user_row,
        (SELECT ROW(@LOCATION) FROM locations WHERE id = ?) AS location_row,
        EXISTS (SELECT 1 FROM location_memberships m, u
                WHERE m.location_id = ? AND m.user_id = u.id) AS member,
        ARRAY(SELECT ROW(id, name) FROM switcher ORDER BY agency, name, id LIMIT ?)
            AS switcher";

/// `sql` with the user's and the location's column lists filled in.
pub(super) fn with_columns(sql: &str) -> String {
    sql.replace("@USER", USER_COLUMNS)
        .replace("@LOCATION", LOCATION_COLUMNS)
}

#[derive(QueryableByName)]
pub(super) struct WhoRow {
    #[diesel(sql_type = Nullable<Record<SqlOf<User>>>)]
    user_row: Option<RowOf<User>>,
    #[diesel(sql_type = Nullable<Record<SqlOf<Location>>>)]
    location_row: Option<RowOf<Location>>,
    #[diesel(sql_type = Bool)]
    member: bool,
    #[diesel(sql_type = Array<Record<(BigInt, Text)>>)]
    switcher: Vec<(i64, String)>,
}

/// What was found: the user (`None`: no such user), the location only if
/// that user may see it ([`locations::may_see`] decides), and then the
/// locations they may switch to, (id, name), as `locations::first_visible`
/// lists them.
pub struct Who {
    pub user: Option<User>,
    pub location: Option<Location>,
    pub switcher: Vec<(i64, String)>,
}

impl WhoRow {
    /// `generation`: the session's. A deactivated user, or a session from
    /// before their last sign-out or password change, gets no location
    /// (the caller signs it out; this only makes sure nothing is handed
    /// on even if a caller forgot to).
    pub(super) fn decide(self, generation: Option<i32>) -> QueryResult<Who> {
        let user = self.user_row.map(build::<User>).transpose()?;
        let location = self.location_row.map(build::<Location>).transpose()?;
        let location = match (&user, location) {
            (Some(user), Some(l))
                if user.is_active()
                    && generation == Some(user.session_generation)
                    && locations::may_see(user, &l, self.member) =>
            {
                Some(l)
            }
            _ => None,
        };
        Ok(Who {
            switcher: if location.is_some() {
                self.switcher
            } else {
                Vec::new()
            },
            user,
            location,
        })
    }
}

/// A struct from its record.
pub(super) fn build<T>(row: RowOf<T>) -> QueryResult<T>
where
    T: Selectable<Pg> + Queryable<SqlOf<T>, Pg>,
    <T as Selectable<Pg>>::SelectExpression: Expression,
{
    T::build(row).map_err(diesel::result::Error::DeserializationError)
}

struct WhoStatement {
    user_id: i64,
    location_id: i64,
    switcher: i64,
}

const WHO_SQL: &str = "WITH u AS (SELECT * FROM users WHERE id = ?), @SWITCHER SELECT @WHO";

fn who_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        with_columns(
            &WHO_SQL
                .replace("@SWITCHER", SWITCHER_CTE)
                .replace("@WHO", WHO_COLUMNS),
        )
    })
}

prepared_statement!(
    WhoStatement -> diesel::sql_types::Untyped,
    who_sql(),
    |s| [
        BigInt => &s.user_id,
        BigInt => &s.location_id,
        BigInt => &s.location_id,
        BigInt => &s.switcher,
    ]
);

/// The user, the location if they may see it with a session of
/// `generation`, and their switcher's first `switcher` locations, in one
/// round trip.
pub fn read(
    conn: &mut PgConnection,
    user_id: i64,
    generation: Option<i32>,
    location_id: i64,
    switcher: i64,
) -> QueryResult<Who> {
    WhoStatement {
        user_id,
        location_id,
        switcher,
    }
    .get_result::<WhoRow>(conn)?
    .decide(generation)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::db::schema::{locations, users};

    /// The column names diesel selects for a query, in order.
    pub fn diesel_columns<Q: diesel::query_builder::QueryFragment<Pg>>(query: Q) -> Vec<String> {
        let sql = diesel::debug_query::<Pg, _>(&query).to_string();
        let list = sql
            .strip_prefix("SELECT ")
            .and_then(|s| s.split(" FROM ").next())
            .unwrap_or_default()
            .to_string();
        list.split(", ")
            .map(|c| {
                c.rsplit('.')
                    .next()
                    .unwrap_or(c)
                    .trim_matches('"')
                    .to_string()
            })
            .collect()
    }

    /// The names in one of our column lists.
    pub fn ours(list: &str) -> Vec<String> {
        list.split(',')
            .map(|c| {
                let c = c.trim();
                c.rsplit('.').next().unwrap_or(c).to_string()
            })
            .collect()
    }

    #[test]
    fn the_user_and_location_records_list_their_structs_columns_in_order() {
        assert_eq!(
            ours(USER_COLUMNS),
            diesel_columns(users::table.select(User::as_select()))
        );
        assert_eq!(
            ours(LOCATION_COLUMNS),
            diesel_columns(locations::table.select(Location::as_select()))
        );
        assert!(!who_sql().contains('@'), "{}", who_sql());
    }
}
