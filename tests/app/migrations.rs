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
        migrations + 1,
        "every migration applies on an empty database, then the data fix"
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
    assert_eq!(again.len(), migrations + 1);
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

/// Numbers stored by the old hand-written parser keep a trunk prefix
/// (+44 0 20...) the STOP of that person never carries: the upgrade spells
/// them as the one parser does now, unless that spelling is taken.
#[test]
fn stored_numbers_are_respelled_once_by_the_upgrade() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone, whatsapp_id)
         SELECT id, 'Legacy', '+4402079460958', '+4402079460959' FROM locations ORDER BY id LIMIT 1;
         ",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone)
         SELECT id, 'Taken', '+4930901820' FROM locations ORDER BY id LIMIT 1",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone)
         SELECT id, 'Twin', '+49030901820' FROM locations ORDER BY id LIMIT 1",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("DELETE FROM data_fixes")
        .execute(&mut conn)
        .unwrap();
    let done = dnd::db::migrate(&mut conn).unwrap();
    assert_eq!(done, vec!["canonical phone spellings".to_string()]);
    let count = |sql: &str| {
        diesel::sql_query(sql)
            .get_result::<Count>(&mut db.conn())
            .unwrap()
            .n
    };
    assert_eq!(
        count("SELECT count(*) AS n FROM contacts WHERE phone = '+442079460958' AND whatsapp_id = '+442079460959'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) AS n FROM contacts WHERE phone = '+49030901820'"),
        1,
        "the canonical spelling is another contact's: left for a person to merge"
    );
    assert!(dnd::db::migrate(&mut conn).unwrap().is_empty(), "done once");
}
