//! What distributing the schema by `location_id` (Citus) needs, read from
//! the catalog of a migrated database, and the calls in docs/SCALING.md
//! kept in step with it.
//!
//! Every table of the public schema is one of three kinds:
//!
//! - a reference table (copied whole to every node): named in [`REFERENCE`];
//! - a coordinator-local table (a plain table on the coordinator, never
//!   joined with tenant data): named in [`COORDINATOR_LOCAL`];
//! - a tenant table (distributed by `location_id`, all in one colocation
//!   group): every other table.
//!
//! A table a new migration adds is a tenant table unless it is listed, so
//! it must keep the rules below or the test names it and says why.

use std::collections::{BTreeMap, BTreeSet};

use diesel::sql_types::{Array, Bool, Text};
use diesel::{PgConnection, RunQueryDsl};

use crate::common::TestDb;

/// Global data, small and read everywhere, written rarely: replicated to
/// every node so any shard may join it.
///
/// - `agencies`, `users`: not any one location's.
/// - `locations`: the tenants themselves. Its key `id` *is* the
///   distribution value, but it cannot be distributed by it: its unique key
///   `(agency_id, name)` does not include `id`, reference tables
///   (`location_memberships`) point at it, and nearly every request reads it
///   with `agencies` (access checks, the location switcher, the agency
///   overview, support's lists across locations).
/// - `location_memberships`: who may work in which location, read by user
///   on every request of a location user (`WHERE user_id = ...`, which would
///   reach every shard if it were distributed); written only by admins.
/// - `password_links`: one-time links of users, keyed by user, not location.
const REFERENCE: &[&str] = &[
    "agencies",
    "locations",
    "users",
    "location_memberships",
    "password_links",
];

/// Global data written often and read only by itself (never joined with a
/// tenant or reference table), kept as plain tables on the coordinator,
/// where the application's sessions are:
///
/// - `login_failures`: every sign-in attempt writes a row (by email and
///   client address, not by location; many users have no location);
///   replicated, each would be a two-phase commit on every node. Its
///   statements take advisory locks in the same session, which only
///   serialise on the node that runs them: the coordinator.
/// - `mailgun_seen_tokens`: the replay cache of Mailgun signature tokens,
///   global on purpose (a token honoured for one location is a replay for
///   every location sharing the signing key), written once per Mailgun
///   webhook: the same reasoning.
/// - `data_fixes`: bookkeeping of `dnd migrate`, like diesel's own
///   `__diesel_schema_migrations` (which is left out here).
const COORDINATOR_LOCAL: &[&str] = &["data_fixes", "login_failures", "mailgun_seen_tokens"];

/// diesel's record of the migrations applied: a plain table on the
/// coordinator, where `dnd migrate` runs (not in the lists: not ours).
const DIESEL_MIGRATIONS: &str = "__diesel_schema_migrations";

/// The distribution column of every tenant table.
const TENANT_KEY: &str = "location_id";

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    generated: bool,
}

#[derive(diesel::QueryableByName)]
struct UniqueIndex {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    /// The key columns (not INCLUDE ones); an expression is "".
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
}

#[derive(diesel::QueryableByName, Debug)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    from_table: String,
    #[diesel(sql_type = Array<Text>)]
    from_columns: Vec<String>,
    #[diesel(sql_type = Text)]
    to_table: String,
    #[diesel(sql_type = Array<Text>)]
    to_columns: Vec<String>,
    /// pg_constraint.confdeltype / confupdtype: a, r, c, n, d.
    #[diesel(sql_type = Text)]
    on_delete: String,
    #[diesel(sql_type = Text)]
    on_update: String,
}

#[derive(diesel::QueryableByName)]
struct Trigger {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    trigger_name: String,
}

/// The tables of the public schema (diesel's bookkeeping left out).
fn tables(conn: &mut PgConnection) -> BTreeSet<String> {
    diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND c.relname <> $1",
    )
    .bind::<Text, _>(DIESEL_MIGRATIONS)
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

fn tenant_key_columns(conn: &mut PgConnection) -> BTreeMap<String, Column> {
    diesel::sql_query(
        "SELECT c.relname::text AS table_name, format_type(a.atttypid, a.atttypmod) AS type_name,
                a.attnotnull AS not_null, a.attgenerated <> '' AS generated
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND a.attname = $1 AND NOT a.attisdropped",
    )
    .bind::<Text, _>(TENANT_KEY)
    .load::<Column>(conn)
    .unwrap()
    .into_iter()
    .map(|c| (c.table_name.clone(), c))
    .collect()
}

/// Every unique index (primary keys and UNIQUE constraints have one) and
/// every exclusion constraint's index.
fn unique_indexes(conn: &mut PgConnection) -> Vec<UniqueIndex> {
    diesel::sql_query(
        "SELECT c.relname::text AS table_name, ic.relname::text AS index_name,
                ARRAY(SELECT coalesce(a.attname::text, '')
                      FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY
                           AS k (attnum, ord)
                      LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      ORDER BY k.ord) AS columns
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND (i.indisunique OR i.indisexclusion)
         ORDER BY 1, 2",
    )
    .load(conn)
    .unwrap()
}

fn foreign_keys(conn: &mut PgConnection) -> Vec<ForeignKey> {
    diesel::sql_query(
        "SELECT con.conname::text AS name,
                c.relname::text AS from_table,
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k (attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                      ORDER BY k.ord) AS from_columns,
                f.relname::text AS to_table,
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k (attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
                      ORDER BY k.ord) AS to_columns,
                con.confdeltype::text AS on_delete,
                con.confupdtype::text AS on_update
         FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_class f ON f.oid = con.confrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND con.contype = 'f'
         ORDER BY 2, 1",
    )
    .load(conn)
    .unwrap()
}

fn triggers(conn: &mut PgConnection) -> Vec<Trigger> {
    diesel::sql_query(
        "SELECT c.relname::text AS table_name, t.tgname::text AS trigger_name
         FROM pg_trigger t
         JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND NOT t.tgisinternal
         ORDER BY 1, 2",
    )
    .load(conn)
    .unwrap()
}

/// The functions our migrations made (an extension's, such as pg_trgm's,
/// left out), as `create_distributed_function` names them.
fn functions(conn: &mut PgConnection) -> BTreeSet<String> {
    diesel::sql_query(
        "SELECT p.oid::regprocedure::text AS name FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                             AND d.deptype = 'e')",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reference,
    Local,
    Tenant,
}

fn kind_of(table: &str) -> Kind {
    if REFERENCE.contains(&table) {
        Kind::Reference
    } else if COORDINATOR_LOCAL.contains(&table) || table == DIESEL_MIGRATIONS {
        Kind::Local
    } else {
        Kind::Tenant
    }
}

/// The classification and the tenant tables, with every rule checked:
/// the problems found, each naming its table.
struct Schema {
    tables: BTreeSet<String>,
    tenants: BTreeSet<String>,
    foreign_keys: Vec<ForeignKey>,
    functions: BTreeSet<String>,
    problems: Vec<String>,
}

fn check(conn: &mut PgConnection) -> Schema {
    let tables = tables(conn);
    let keys = tenant_key_columns(conn);
    let mut problems = Vec::new();

    for listed in REFERENCE.iter().chain(COORDINATOR_LOCAL) {
        if !tables.contains(*listed) {
            problems.push(format!(
                "{listed} is listed in tests/app/schema.rs but no such table exists: take it out"
            ));
        }
    }
    for table in REFERENCE {
        if COORDINATOR_LOCAL.contains(table) {
            problems.push(format!("{table} is listed both as reference and as local"));
        }
    }

    let tenants: BTreeSet<String> = tables
        .iter()
        .filter(|t| kind_of(t) == Kind::Tenant)
        .cloned()
        .collect();
    let fix = "or, if it is global data, add it to REFERENCE or COORDINATOR_LOCAL in \
               tests/app/schema.rs and to docs/SCALING.md";
    for table in &tenants {
        match keys.get(table) {
            None => problems.push(format!(
                "{table} is a tenant table (in neither list) without a {TENANT_KEY} column: \
                 it cannot be distributed by location; add {TENANT_KEY} BIGINT NOT NULL \
                 REFERENCES locations (id), {fix}"
            )),
            Some(c) => {
                if c.type_name != "bigint" {
                    problems.push(format!(
                        "{table}.{TENANT_KEY} is {}, not bigint: colocated tables need one \
                         distribution column type",
                        c.type_name
                    ));
                }
                if !c.not_null {
                    problems.push(format!(
                        "{table}.{TENANT_KEY} may be NULL: a row without a location has no shard"
                    ));
                }
                if c.generated {
                    problems.push(format!(
                        "{table}.{TENANT_KEY} is a generated column: Citus cannot distribute by it"
                    ));
                }
            }
        }
    }

    for index in unique_indexes(conn) {
        if kind_of(&index.table_name) != Kind::Tenant {
            continue;
        }
        if !index.columns.iter().any(|c| c == TENANT_KEY) {
            problems.push(format!(
                "{}: the unique key {} ({}) does not include {TENANT_KEY}; on a distributed \
                 table every primary key, unique constraint, unique index and exclusion \
                 constraint must (Citus refuses it otherwise), {fix}",
                index.table_name,
                index.index_name,
                index.columns.join(", ")
            ));
        }
    }

    let foreign_keys = foreign_keys(conn);
    for fk in &foreign_keys {
        let what = format!(
            "{}: foreign key {} ({}) -> {} ({})",
            fk.from_table,
            fk.name,
            fk.from_columns.join(", "),
            fk.to_table,
            fk.to_columns.join(", ")
        );
        match (kind_of(&fk.from_table), kind_of(&fk.to_table)) {
            (Kind::Tenant, Kind::Tenant) => {
                let from = fk.from_columns.iter().position(|c| c == TENANT_KEY);
                let to = fk.to_columns.iter().position(|c| c == TENANT_KEY);
                if from.is_none() || from != to {
                    problems.push(format!(
                        "{what}: between two tenant tables a foreign key must pair \
                         {TENANT_KEY} with {TENANT_KEY} (both rows on one shard)"
                    ));
                }
            }
            (Kind::Tenant, Kind::Reference) => {}
            (Kind::Tenant, Kind::Local) => problems.push(format!(
                "{what}: a tenant table may only reference tenant or reference tables"
            )),
            (Kind::Reference, Kind::Reference) => {}
            (Kind::Reference, _) => problems.push(format!(
                "{what}: a reference table may only reference reference tables"
            )),
            (Kind::Local, _) => problems.push(format!(
                "{what}: coordinator-local tables have no foreign keys (one to a reference \
                 table would turn it into a Citus local table: say so in docs/SCALING.md)"
            )),
        }
        if kind_of(&fk.from_table) == Kind::Tenant
            && fk.from_columns.iter().any(|c| c == TENANT_KEY)
        {
            // Citus: no action may rewrite the distribution column.
            if matches!(fk.on_delete.as_str(), "n" | "d")
                || matches!(fk.on_update.as_str(), "n" | "d" | "c")
            {
                problems.push(format!(
                    "{what}: ON DELETE SET NULL/DEFAULT and ON UPDATE CASCADE/SET NULL/DEFAULT \
                     would rewrite {TENANT_KEY}; Citus refuses them"
                ));
            }
        }
    }
    for t in triggers(conn) {
        if kind_of(&t.table_name) != Kind::Tenant {
            problems.push(format!(
                "{}: trigger {} on a {} table; docs/SCALING.md says triggers are only on \
                 tenant tables (on a reference table it would fire on every copy)",
                t.table_name,
                t.trigger_name,
                if kind_of(&t.table_name) == Kind::Reference {
                    "reference"
                } else {
                    "coordinator-local"
                }
            ));
        }
    }

    Schema {
        functions: functions(conn),
        tables,
        tenants,
        foreign_keys,
        problems,
    }
}

#[test]
fn every_table_can_be_distributed_by_location_or_is_listed_as_global() {
    let db = TestDb::new();
    let schema = check(&mut db.conn());
    assert!(
        schema.problems.is_empty(),
        "the schema can no longer be distributed by {TENANT_KEY}:\n- {}",
        schema.problems.join("\n- ")
    );
    // The tables that hold a location's data, as classified today (a guard
    // against the classification drifting silently: a new table shows up
    // here, and in docs/SCALING.md).
    assert!(schema.tenants.contains("contacts"));
    assert!(schema.tenants.contains("dnd_history"));
    assert_eq!(
        schema.tables.len(),
        schema.tenants.len() + REFERENCE.len() + COORDINATOR_LOCAL.len()
    );
}

/// The calls of docs/SCALING.md, read from its text.
struct Calls {
    /// `create_reference_table('t')`, in order.
    reference: Vec<String>,
    /// `create_distributed_table('t', 'column', colocate_with => 'u')`, in
    /// order: (table, column, colocated with).
    distributed: Vec<(String, String, Option<String>)>,
    /// `create_distributed_function('f(args)')`.
    functions: BTreeSet<String>,
    /// The line `-- coordinator-local: a, b, c`.
    local: BTreeSet<String>,
    /// Whether the first reference call comes before the first
    /// distributed one.
    reference_first: bool,
}

/// The single-quoted arguments of each call of `name(` in the text.
fn call_arguments(text: &str, name: &str) -> Vec<Vec<String>> {
    let opening = format!("{name}(");
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&opening) {
        rest = &rest[at + opening.len()..];
        let mut args = Vec::new();
        let mut depth = 1;
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '\'' => {
                    let mut literal = String::new();
                    for (_, c) in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                        literal.push(c);
                    }
                    args.push(literal);
                }
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inside = &rest[..end];
        rest = &rest[end..];
        if args.is_empty() {
            // The name in prose, e.g. "create_reference_table(...)".
            continue;
        }
        if inside.contains("colocate_with") && args.len() < 3 {
            panic!("docs/SCALING.md: cannot read the call {name}({inside})");
        }
        calls.push(args);
    }
    calls
}

fn scaling_calls() -> Calls {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SCALING.md");
    let text = std::fs::read_to_string(path).expect("docs/SCALING.md");
    let reference = call_arguments(&text, "create_reference_table")
        .into_iter()
        .map(|a| a[0].clone())
        .collect();
    let distributed = call_arguments(&text, "create_distributed_table")
        .into_iter()
        .map(|a| (a[0].clone(), a[1].clone(), a.get(2).cloned()))
        .collect();
    let functions = call_arguments(&text, "create_distributed_function")
        .into_iter()
        .map(|a| a[0].clone())
        .collect();
    let local = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-- coordinator-local:"))
        .flat_map(|l| l.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let reference_first =
        text.find("create_reference_table(") < text.find("create_distributed_table(");
    Calls {
        reference,
        distributed,
        functions,
        local,
        reference_first,
    }
}

#[test]
fn docs_scaling_names_every_table_once_in_a_working_order() {
    let db = TestDb::new();
    let schema = check(&mut db.conn());
    let calls = scaling_calls();
    let mut problems = Vec::new();

    let reference: BTreeSet<String> = calls.reference.iter().cloned().collect();
    let listed: BTreeSet<String> = REFERENCE.iter().map(|t| t.to_string()).collect();
    if reference != listed || reference.len() != calls.reference.len() {
        problems.push(format!(
            "create_reference_table calls {:?}, but the reference tables are {listed:?}",
            calls.reference
        ));
    }
    let local: BTreeSet<String> = COORDINATOR_LOCAL.iter().map(|t| t.to_string()).collect();
    if calls.local != local {
        problems.push(format!(
            "the `-- coordinator-local:` line names {:?}, but the coordinator-local tables are \
             {local:?}",
            calls.local
        ));
    }
    let distributed: BTreeSet<String> = calls.distributed.iter().map(|d| d.0.clone()).collect();
    for table in schema.tenants.difference(&distributed) {
        problems.push(format!(
            "{table} is a tenant table with no create_distributed_table call (or, if it is \
             global, add it to a list in tests/app/schema.rs and its call here)"
        ));
    }
    for table in distributed.difference(&schema.tenants) {
        problems.push(format!(
            "create_distributed_table('{table}', ...): {table} is not a tenant table"
        ));
    }
    if distributed.len() != calls.distributed.len() {
        problems.push("a table has two create_distributed_table calls".into());
    }
    // One colocation group: the first distributed table's.
    if let Some((first, _, _)) = calls.distributed.first() {
        for (i, (table, column, colocate)) in calls.distributed.iter().enumerate() {
            if column != TENANT_KEY {
                problems.push(format!(
                    "{table} is distributed by {column}, not {TENANT_KEY}"
                ));
            }
            let expected = (i > 0).then(|| first.clone());
            if colocate != &expected {
                problems.push(format!(
                    "{table}: colocate_with {colocate:?}, expected {expected:?} (one group)"
                ));
            }
        }
    }
    // A table is made a Citus table after every table it references.
    let position = |table: &str| -> Option<usize> {
        calls.reference.iter().position(|t| t == table).or_else(|| {
            calls
                .distributed
                .iter()
                .position(|d| d.0 == table)
                .map(|p| p + calls.reference.len())
        })
    };
    if !calls.reference_first {
        problems.push("the reference tables must be created before the distributed ones".into());
    }
    for fk in &schema.foreign_keys {
        if let (Some(from), Some(to)) = (position(&fk.from_table), position(&fk.to_table)) {
            if to > from && fk.from_table != fk.to_table {
                problems.push(format!(
                    "{} is made a Citus table before {}, which its foreign key {} references",
                    fk.from_table, fk.to_table, fk.name
                ));
            }
        }
    }
    if calls.functions != schema.functions {
        problems.push(format!(
            "create_distributed_function calls: missing {:?}, no such function {:?}",
            schema
                .functions
                .difference(&calls.functions)
                .collect::<Vec<_>>(),
            calls
                .functions
                .difference(&schema.functions)
                .collect::<Vec<_>>()
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/SCALING.md is out of step with the schema:\n- {}",
        problems.join("\n- ")
    );
}

/// The rules catch what they are meant to: a table in neither list that
/// breaks each of them is named, with the rule.
#[test]
fn a_table_that_breaks_distribution_is_named() {
    use diesel::connection::SimpleConnection;
    let db = TestDb::new();
    let mut conn = db.conn();
    conn.batch_execute(
        "CREATE TABLE notes_without_tenant (id BIGSERIAL PRIMARY KEY, body TEXT);
         CREATE UNIQUE INDEX contacts_id_location_key ON contacts (id, location_id);
         CREATE TABLE notes_global_key (
             location_id BIGINT REFERENCES locations (id),
             id BIGSERIAL NOT NULL,
             contact_id BIGINT NOT NULL,
             UNIQUE (id, location_id),
             UNIQUE (id),
             CONSTRAINT notes_crossed FOREIGN KEY (location_id, contact_id)
                 REFERENCES contacts (id, location_id));
         CREATE UNIQUE INDEX notes_global_key_contact ON notes_global_key (contact_id);
         CREATE TRIGGER users_touched BEFORE UPDATE ON users
             FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();",
    )
    .unwrap();
    let problems = check(&mut conn).problems;
    let found = |text: &str| problems.iter().any(|p| p.contains(text));
    let all = problems.join("\n");
    for expected in [
        "notes_without_tenant is a tenant table (in neither list) without a location_id column",
        "notes_without_tenant: the unique key notes_without_tenant_pkey (id) does not include",
        "notes_global_key.location_id may be NULL",
        "notes_global_key: the unique key notes_global_key_id_key (id) does not include location_id",
        "notes_global_key: the unique key notes_global_key_contact (contact_id) does not include",
        "notes_global_key: foreign key notes_crossed (location_id, contact_id) -> contacts (id, \
         location_id): between two tenant tables a foreign key must pair location_id with \
         location_id",
        "users: trigger users_touched on a reference table",
    ] {
        assert!(found(expected), "missing {expected:?} in:\n{all}");
    }
    // A key that includes the location in any position is fine.
    assert!(!found("contacts_id_location_key"), "{all}");
    assert!(!found("notes_global_key_id_location_id_key"), "{all}");
    assert_eq!(problems.len(), 7, "{all}");
}
