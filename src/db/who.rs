//! Who is asking, and where: the signed-in user, the location of the path
//! if they may see it, and the locations they may switch to, in one
//! statement. Every location page starts with these; the contact page
//! reads them in its own statement with the same parts.

use diesel::deserialize::Queryable;
use diesel::dsl::SqlTypeOf;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Record, Text};

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

/// `w`: one row, who is asking and where. The user `u` (no row at all if
/// there is no such user), the location of the path `l` as a record (NULL
/// if there is no such location), whether the user is one of its members,
/// what the switcher needs of the user, and `visible`: whether the user
/// may see the location with the session's generation, the rule of
/// [`locations::may_see`] for statements that read the location's data
/// with the user (every such read requires `w.visible`; the app still
/// decides with `may_see` and the session claim). Binds: the session's
/// generation, the location's id, the user's id.
///
/// One join of three rows by their keys: the same reads written as CTEs
/// (the user, then the location it may see, then the location again and
/// the membership again for the columns) cost PostgreSQL more to set up
/// and run than the two statements they replaced.
pub(super) const WHO_FROM: &str = "(SELECT ROW(@USER_U) AS user_row,
        CASE WHEN l.id IS NOT NULL THEN ROW(@LOCATION_L) END AS location_row,
        m.user_id IS NOT NULL AS member,
        u.id AS user_id, u.role, u.agency_id,
        (u.deactivated_at IS NULL AND u.session_generation = ? AND l.id IS NOT NULL
         AND (u.role = 'support'
              OR (u.role = 'agency' AND u.agency_id = l.agency_id)
              OR (u.role = 'location' AND m.user_id IS NOT NULL))) AS visible
      FROM users u
      LEFT JOIN locations l ON l.id = ?
      LEFT JOIN location_memberships m ON m.location_id = l.id AND m.user_id = u.id
      WHERE u.id = ?) w";

/// The locations `w`'s user may switch to, (id, name), as
/// `locations::visible` lists them: one branch per role so each uses its
/// index (only the user's role's branch runs). Bind: how many.
pub(super) const SWITCHER: &str = "ARRAY(SELECT ROW(s.id, s.name) FROM (
        SELECT l.id, l.name, g.name AS agency
        FROM locations l JOIN agencies g ON g.id = l.agency_id
        WHERE w.role = 'location'
          AND l.id IN (SELECT location_id FROM location_memberships
                       WHERE user_id = w.user_id)
        UNION ALL
        SELECT l.id, l.name, g.name
        FROM locations l JOIN agencies g ON g.id = l.agency_id
        WHERE w.role = 'agency' AND l.agency_id = w.agency_id
        UNION ALL
        SELECT l.id, l.name, g.name
        FROM locations l JOIN agencies g ON g.id = l.agency_id
        WHERE w.role = 'support') s
      ORDER BY s.agency, s.name, s.id LIMIT ?)";

/// A column list with each name taken from `table` (`a, b` → `t.a, t.b`).
pub(super) fn prefixed(list: &str, table: &str) -> String {
    list.split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sql` with `@WHO_FROM` and `@SWITCHER` filled in.
pub(super) fn with_who(sql: &str) -> String {
    sql.replace("@WHO_FROM", WHO_FROM)
        .replace("@SWITCHER", SWITCHER)
        .replace("@USER_U", &prefixed(USER_COLUMNS, "u"))
        .replace("@LOCATION_L", &prefixed(LOCATION_COLUMNS, "l"))
}

#[derive(QueryableByName)]
pub(super) struct WhoRow {
    #[diesel(sql_type = Nullable<Record<SqlOf<User>>>)]
    pub(super) user_row: Option<RowOf<User>>,
    #[diesel(sql_type = Nullable<Record<SqlOf<Location>>>)]
    pub(super) location_row: Option<RowOf<Location>>,
    #[diesel(sql_type = Bool)]
    pub(super) member: bool,
    #[diesel(sql_type = Nullable<Bool>)]
    pub(super) visible: Option<bool>,
    #[diesel(sql_type = Array<Record<(BigInt, Text)>>)]
    pub(super) switcher: Vec<(i64, String)>,
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
    /// What `w` found (`None`: no such user). `generation`: the session's.
    /// A deactivated user, or a session from before their last sign-out or
    /// password change, gets no location (the caller signs it out; this
    /// only makes sure nothing is handed on even if a caller forgot to).
    pub(super) fn decide(found: Option<Self>, generation: Option<i32>) -> QueryResult<Who> {
        let Some(found) = found else {
            return Ok(Who {
                user: None,
                location: None,
                switcher: Vec::new(),
            });
        };
        let user = found.user_row.map(build::<User>).transpose()?;
        let location = found.location_row.map(build::<Location>).transpose()?;
        let location = match (&user, location) {
            (Some(user), Some(l))
                if user.is_active()
                    && generation == Some(user.session_generation)
                    && locations::may_see(user, &l, found.member) =>
            {
                Some(l)
            }
            _ => None,
        };
        debug_assert_eq!(
            found.visible.unwrap_or(false),
            location.is_some(),
            "the statement's w.visible disagrees with may_see"
        );
        Ok(Who {
            switcher: if location.is_some() {
                found.switcher
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
    generation: Option<i32>,
    location_id: i64,
    switcher: i64,
}

const WHO_SQL: &str =
    "SELECT w.user_row, w.location_row, w.member, w.visible, @SWITCHER AS switcher
    FROM @WHO_FROM";

fn who_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| with_who(WHO_SQL))
}

prepared_statement!(
    WhoStatement -> diesel::sql_types::Untyped,
    who_sql(),
    |s| [
        BigInt => &s.switcher,
        Nullable<Integer> => &s.generation,
        BigInt => &s.location_id,
        BigInt => &s.user_id,
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
    WhoRow::decide(
        WhoStatement {
            user_id,
            generation,
            location_id,
            switcher,
        }
        .get_result::<WhoRow>(conn)
        .optional()?,
        generation,
    )
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
        assert_eq!(
            prefixed(LOCATION_COLUMNS, "l"),
            "l.id, l.agency_id, l.name, l.time_zone, l.created_at, l.default_region"
        );
    }
}
