//! Hand-written statements that diesel still prepares once per connection.
//!
//! Some writes are one statement of several data-modifying CTEs (one round
//! trip instead of five), which diesel's query builder cannot express.
//! `diesel::sql_query` can, but it is never cached as a prepared statement,
//! so PostgreSQL would parse and plan it on every call. A type declared with
//! [`prepared_statement!`] has a static query id instead: diesel caches its
//! prepared statement by type, like any query built with the DSL.

/// Declares how a struct is written as SQL: the text with a `?` for each
/// bind (in order; they become `$1`, `$2`, ...), and the binds, each with
/// its SQL type. `-> SqlType` makes it a query that returns rows.
///
/// ```ignore
/// prepared_statement!(Touch, "UPDATE t SET at = now() WHERE id = ?", |s| [BigInt => &s.id]);
/// ```
macro_rules! prepared_statement {
    ($name:ident $(-> $rows:ty)?, $sql:expr, |$s:ident| [$($ty:ty => $value:expr),* $(,)?]) => {
        impl diesel::query_builder::QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for $name {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
            ) -> diesel::QueryResult<()> {
                let $s = self;
                let mut parts = $sql.split('?');
                out.push_sql(parts.next().unwrap_or_default());
                $(
                    out.push_bind_param::<$ty, _>($value)?;
                    let next = parts.next();
                    debug_assert!(next.is_some(), "more binds than ? in {}", stringify!($name));
                    out.push_sql(next.unwrap_or_default());
                )*
                debug_assert!(parts.next().is_none(), "more ? than binds in {}", stringify!($name));
                Ok(())
            }
        }

        $(impl diesel::query_builder::Query for $name {
            type SqlType = $rows;
        })?

        impl diesel::RunQueryDsl<diesel::pg::PgConnection> for $name {}
    };
}

pub(crate) use prepared_statement;

/// `sql` with each `?` in order made `$1`, `$2`, ... (the placeholders of
/// a `diesel::sql_query`'s binds).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    for (n, part) in sql.split('?').enumerate() {
        if n > 0 {
            out.push_str(&format!("${n}"));
        }
        out.push_str(part);
    }
    out
}

/// A `diesel::sql_query` built at run time that diesel keeps prepared all
/// the same, keyed by its text: only for text that holds no values (they
/// are binds) and comes in few variants, and for statements whose best
/// plan does not depend on the values bound (PostgreSQL may keep one
/// generic plan after five executions; it plans again when ANALYZE
/// updates the tables' statistics).
///
/// Its rows are read by column name ([`Kept::new`]), or by position as the
/// SQL types `ST` ([`Kept::as_rows_of`]): by name, diesel searches the
/// row's column names for every field of every row, which for a page of
/// rows costs more than decoding them.
pub struct Kept<Q, ST = diesel::sql_types::Untyped>(Q, std::marker::PhantomData<ST>);

impl<Q> Kept<Q> {
    pub fn new(query: Q) -> Self {
        Kept(query, std::marker::PhantomData)
    }
}

impl<Q, ST> Kept<Q, ST> {
    pub fn as_rows_of(query: Q) -> Self {
        Kept(query, std::marker::PhantomData)
    }
}

impl<Q, ST> diesel::query_builder::QueryId for Kept<Q, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>, ST>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for Kept<Q, ST>
{
    fn walk_ast<'b>(
        &'b self,
        out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _: &diesel::pg::Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, ST> diesel::query_builder::Query for Kept<Q, ST> {
    type SqlType = ST;
}

impl<Q, ST> diesel::RunQueryDsl<diesel::pg::PgConnection> for Kept<Q, ST> {}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{BigInt, Text};

    struct Example {
        id: i64,
        name: String,
    }

    prepared_statement!(
        Example -> BigInt,
        "SELECT id FROM t WHERE id = ? AND name = ?",
        |s| [BigInt => &s.id, Text => &s.name]
    );

    #[test]
    fn question_marks_are_numbered_in_order() {
        assert_eq!(super::numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(super::numbered("no binds"), "no binds");
    }

    #[test]
    fn binds_become_numbered_placeholders() {
        let q = Example {
            id: 1,
            name: "x".into(),
        };
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT id FROM t WHERE id = $1 AND name = $2"),
            "{sql}"
        );
    }
}
