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
/// them as the one parser does now, and the DND kept on the old spelling
/// follows the number. Where another contact has the canonical spelling
/// already, neither of the two is left sendable while the other is blocked.
#[test]
fn stored_numbers_are_respelled_once_by_the_upgrade() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let run = |conn: &mut diesel::PgConnection, sql: &str| {
        diesel::sql_query(sql).execute(conn).unwrap();
    };
    let location = "(SELECT id FROM locations ORDER BY id LIMIT 1)";
    let reason = |address: &str, reason: &str| {
        format!(
            "INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
                 actor_kind, actor_label, source)
             VALUES ({location}, '{address}', 'sms', '{reason}', 'permanent', now() - interval '1 day',
                 'provider', 'Twilio', 'legacy')"
        )
    };
    // Legacy: an API-created number whose send failed with 21610, the
    // reason kept on the spelling the old parser gave it.
    run(
        &mut conn,
        &format!(
            "INSERT INTO contacts (location_id, name, phone, whatsapp_id)
             VALUES ({location}, 'Legacy', '+4402079460958', '+4402079460959')"
        ),
    );
    run(&mut conn, &reason("+4402079460958", "sms_unsubscribed"));
    run(
        &mut conn,
        &format!(
            "INSERT INTO address_consent (location_id, address, channel, reason, last_change_at)
             VALUES ({location}, '+4402079460958', 'sms', 'sms_unsubscribed', now() - interval '1 day')"
        ),
    );
    // Twins: the person's STOP made a contact with the canonical number.
    run(
        &mut conn,
        &format!(
            "INSERT INTO contacts (location_id, name, phone)
             VALUES ({location}, 'Taken', '+4930901820'), ({location}, 'Twin', '+49030901820')"
        ),
    );
    run(&mut conn, &reason("+4930901820", "sms_opt_out"));
    // A STOP kept on an old spelling, and a START since on the number as
    // providers spell it: the STOP is not brought back.
    run(
        &mut conn,
        &format!(
            "INSERT INTO contacts (location_id, name, phone)
             VALUES ({location}, 'Started', '+4402079460957')"
        ),
    );
    run(
        &mut conn,
        &format!(
            "INSERT INTO address_consent (location_id, address, channel, reason, last_change_at)
             VALUES ({location}, '+442079460957', 'sms', 'sms_opt_out', now() - interval '1 hour')"
        ),
    );
    run(&mut conn, &reason("+4402079460957", "sms_opt_out"));
    // A reason on an old spelling no contact holds any more.
    run(&mut conn, &reason("+4402079460950", "sms_opt_out"));
    // More legacy numbers than one transaction of the fix takes.
    run(
        &mut conn,
        &format!(
            "INSERT INTO contacts (location_id, name, phone)
             SELECT {location}, 'Bulk ' || n, '+440207946' || lpad(n::text, 4, '0')
             FROM generate_series(1000, 1449) n"
        ),
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM contacts WHERE name = 'Legacy' AND dnd_mask & 1 = 1"
        ),
        1,
        "blocked before the upgrade"
    );

    run(&mut conn, "DELETE FROM data_fixes");
    let done = dnd::db::migrate(&mut conn).unwrap();
    assert_eq!(done, vec!["dnd follows respelled numbers".to_string()]);

    // The legacy contact has the canonical number, and is still blocked.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM contacts WHERE phone = '+442079460958'
             AND whatsapp_id = '+442079460959' AND dnd_mask & 1 = 1"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM address_dnd_reasons
             WHERE address = '+442079460958' AND reason = 'sms_unsubscribed'"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM address_consent
             WHERE address = '+442079460958' AND reason = 'sms_unsubscribed'"
        ),
        1,
        "the clock follows the number"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM address_dnd_reasons WHERE address IN ('+4402079460958', '+4402079460950')"),
        0,
        "nothing stays on spellings no contact holds"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM address_dnd_reasons WHERE address = '+442079460950'"
        ),
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dnd_history h JOIN contacts c ON c.id = h.contact_id
             WHERE c.name = 'Legacy' AND h.action = 'address_changed' AND h.address = '+4402079460958'"),
        1,
        "the contact's history says its number was respelled"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM dnd_history
             WHERE contact_id IS NULL AND action = 'address_changed' AND address = '+442079460958'
               AND source = '+4402079460958' AND reason = 'sms_unsubscribed'"
        ),
        1,
        "the number's history says where its DND came from"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM contacts WHERE name = 'Started'
             AND phone = '+442079460957' AND dnd_mask = 0"
        ),
        1,
        "a STOP older than the START on the number is not brought back"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM dnd_history
             WHERE action = 'stale' AND address = '+442079460957' AND reason = 'sms_opt_out'"
        ),
        1
    );
    // The twin keeps its spelling (a person merges the two), blocked.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM contacts WHERE name = 'Twin'
             AND phone = '+49030901820' AND dnd_mask & 1 = 1"
        ),
        1,
        "the twin of a blocked number is blocked"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM contacts WHERE phone LIKE '+440207946%'"
        ),
        0,
        "every chunk committed"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM contacts WHERE phone LIKE '+44207946%' AND name LIKE 'Bulk %'"),
        450
    );
    assert!(dnd::db::migrate(&mut conn).unwrap().is_empty(), "done once");
}

/// A message queued to a number in its old spelling meets the DND kept
/// under the spelling providers send.
#[test]
fn the_gate_reads_an_old_spelling_as_the_number() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone)
         SELECT id, 'Now', '+442079460958' FROM locations ORDER BY id LIMIT 1",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
             actor_kind, actor_label, source)
         SELECT id, '+442079460958', 'sms', 'sms_opt_out', 'permanent', now(), 'contact',
             '+442079460958', 'STOP' FROM locations ORDER BY id LIMIT 1",
    )
    .execute(&mut conn)
    .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Ids {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        location_id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let c: Ids = diesel::sql_query("SELECT location_id, id FROM contacts WHERE name = 'Now'")
        .get_result(&mut conn)
        .unwrap();
    let state = dnd::db::dnd::gate_state(
        &mut conn,
        c.location_id,
        c.id,
        dnd::domain::Channel::Sms,
        "+4402079460958",
    )
    .unwrap()
    .unwrap();
    assert!(state.is_blocked(dnd::domain::Channel::Sms));
}

fn count(conn: &mut diesel::PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

/// An upgrade over data the version before consent-by-address wrote: a
/// contact blocked by a reason recorded on a number it no longer has stays
/// blocked (DND on before an upgrade is kept), and a message the old
/// dispatcher had in flight is settled as `unknown`, never sent again.
#[test]
fn the_consent_upgrade_keeps_dnd_and_settles_messages_in_flight() {
    use diesel_migrations::MigrationHarness;
    let db = TestDb::empty();
    let mut conn = db.conn();
    for _ in 0..8 {
        conn.run_next_migration(dnd::db::MIGRATIONS).unwrap();
    }
    diesel::sql_query(
        "WITH a AS (INSERT INTO agencies (name) VALUES ('Old') RETURNING id),
              l AS (INSERT INTO locations (agency_id, name) SELECT id, 'Old Town' FROM a RETURNING id),
              c AS (INSERT INTO contacts (location_id, name, phone)
                    SELECT id, 'Moved', '+13125550100' FROM l RETURNING location_id, id),
              r AS (INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind,
                        address, set_at, actor_kind, actor_label, source)
                    SELECT location_id, id, 'sms', 'sms_opt_out', 'permanent', '+13125550199',
                        now() - interval '30 days', 'contact', '+13125550199', 'STOP'
                    FROM c RETURNING 1)
         INSERT INTO messages (location_id, contact_id, channel, direction, origin, body,
                               to_address, status, updated_at)
         SELECT location_id, id, 'sms', 'outbound', 'manual', 'in flight', '+13125550100',
                'sending', now() - interval '1 hour'
         FROM c",
    )
    .execute(&mut conn)
    .unwrap();
    dnd::db::migrate(&mut conn).unwrap();

    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM contacts WHERE name = 'Moved' AND dnd_mask & 1 = 1"
        ),
        1,
        "still blocked on SMS"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM address_dnd_reasons
             WHERE address = '+13125550199' AND reason = 'sms_opt_out'"
        ),
        1,
        "the STOP is kept on the number it came from"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM address_dnd_reasons
             WHERE address = '+13125550100' AND reason = 'sms_opt_out'
               AND source = 'kept from +13125550199 by the upgrade'"
        ),
        1,
        "and on the number the contact has now, where the person's START lifts it"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM contact_dnd_reasons"),
        0,
        "nothing provider-set is left on the contact row"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM dnd_history
             WHERE action = 'address_changed' AND address = '+13125550199'
               AND source = '+13125550100' AND detail LIKE '%before the upgrade%'"
        ),
        1,
        "the history says why"
    );
    let settled =
        dnd::db::outbound::reconcile_stuck(&mut conn, chrono::Duration::minutes(10)).unwrap();
    assert_eq!((settled.requeued, settled.unknown), (0, 1));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM messages WHERE status = 'unknown'"
        ),
        1
    );
}

#[test]
fn secrets_stored_in_clear_are_encrypted_by_the_upgrade() {
    let db = TestDb::new();
    let mut conn = db.conn();
    diesel::sql_query(
        "UPDATE integrations SET secret = 'plain-old-token', api_key = 'plain-old-key' WHERE channel = 'sms'",
    )
    .execute(&mut conn)
    .unwrap();
    let done = dnd::db::migrate(&mut conn).unwrap();
    assert!(done.iter().any(|d| d.starts_with("encrypted")), "{done:?}");
    let plain = count(
        &mut conn,
        "SELECT count(*) AS n FROM integrations WHERE secret NOT LIKE 'v1:%' OR api_key NOT LIKE 'v1:%'",
    );
    assert_eq!(plain, 0);
    let location = dnd::db::locations::find_by_name(&mut conn, dnd::db::demo::DOWNTOWN)
        .unwrap()
        .unwrap();
    let sms = dnd::db::integrations::find(&mut conn, location.id, dnd::domain::Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(sms.secret.as_deref(), Some("plain-old-token"));
    assert_eq!(sms.api_key.as_deref(), Some("plain-old-key"));
    // Once done, a second start finds nothing to do.
    assert!(dnd::db::migrate(&mut conn).unwrap().is_empty());
}
