use diesel::RunQueryDsl;

use crate::common::TestDb;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn table_count(conn: &mut diesel::PgConnection) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .get_result::<Count>(conn)
    .unwrap()
    .n
}

#[test]
fn migrations_go_up_down_and_up_again() {
    let db = TestDb::empty();
    let mut conn = db.conn();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    let applied = dnd::db::migrate(&mut conn).unwrap();
    assert_eq!(
        applied.len(),
        migrations,
        "every migration applies on an empty database"
    );
    let tables = table_count(&mut conn);
    assert!(tables >= 8, "the schema has its tables, found {tables}");

    dnd::db::revert_all(&mut conn).unwrap();
    assert_eq!(
        table_count(&mut conn),
        0,
        "every down.sql undoes its up.sql"
    );

    let again = dnd::db::migrate(&mut conn).unwrap();
    assert_eq!(again.len(), migrations);
    assert_eq!(table_count(&mut conn), tables);
    // And the demo tenant seeds onto the re-created schema.
    assert_eq!(
        dnd::db::demo::seed(&mut conn).unwrap(),
        dnd::db::demo::Seeded::Now
    );
    assert_eq!(
        dnd::db::demo::seed(&mut conn).unwrap(),
        dnd::db::demo::Seeded::Already
    );
}

#[test]
fn the_schema_refuses_what_the_app_would_never_write() {
    let db = TestDb::new();
    let mut conn = db.conn();
    // A phone that is not E.164 and a duplicate email per location.
    let bad_phone = diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone) SELECT id, 'X', '555-0100' FROM locations LIMIT 1",
    )
    .execute(&mut conn);
    assert!(bad_phone.is_err());
    let duplicate = diesel::sql_query(
        "INSERT INTO contacts (location_id, name, email) \
         SELECT location_id, 'Copy', email FROM contacts WHERE email IS NOT NULL LIMIT 1",
    )
    .execute(&mut conn);
    assert!(duplicate.is_err(), "email is unique per location");
}
