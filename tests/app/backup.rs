//! The backup and the database privileges of docs/OPERATIONS.md, proven
//! with the commands it shows: the socket read from `postmaster.pid`,
//! `pg_dump --format=custom`, `createdb -T template0`, `pg_restore
//! --single-transaction --no-owner`, all as the superuser `postgres` over
//! the cluster's unix socket (as root, the cluster runs as the `postgres`
//! user and these run as root, as an operator's would).

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use diesel::sql_types::Text;
use diesel::RunQueryDsl;
use serde_json::{json, Value};

use crate::common::{database_url, new_client, run_dir, test_actor, test_config, TestDb};
use dnd::db::cluster::server_program;
use dnd::db::contacts::{self, ContactInput};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::{Channel, EmailAddress, PhoneNumber};

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The socket directory as docs/OPERATIONS.md finds it: line 5 of the
/// data directory's `postmaster.pid`.
fn socket_dir(db: &TestDb) -> String {
    let data: Setting = diesel::sql_query("SELECT current_setting('data_directory') AS value")
        .get_result(&mut db.conn())
        .unwrap();
    let pid_file = Path::new(&data.value).join("postmaster.pid");
    let text = std::fs::read_to_string(&pid_file).unwrap();
    let socket = text.lines().nth(4).unwrap().trim().to_string();
    // The same directory the application's URL names.
    let url = database_url("postgres");
    let host = url
        .split("host=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap();
    assert_eq!(socket, urlencoding::decode(host).unwrap(), "{url}");
    socket
}

/// Runs one of the server's programs with `-h SOCKET -p 5432 -U postgres`
/// and the arguments; panics with its output if it fails.
fn run(program: &str, socket: &str, args: &[&str]) {
    let path = server_program(program).unwrap();
    let out = Command::new(&path)
        .args(["-h", socket, "-p", "5432", "-U", "postgres"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the dump file however the test ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[actix_web::test]
async fn a_custom_format_dump_restores_into_an_empty_database_with_dnd_and_history() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let location = dnd::db::locations::find_by_name(&mut conn, demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    // A contact with DND on: a STOP on its number (kept on the address),
    // and the all-channels switch from the API.
    let (contact, upserted) = contacts::upsert(
        &mut conn,
        location,
        &ContactInput {
            name: Some("Backed Up".into()),
            phone: Some(PhoneNumber::parse_international("+13125550177").unwrap()),
            email: Some(EmailAddress::parse("backed.up@example.com").unwrap()),
            ..Default::default()
        },
        &test_actor(),
    )
    .unwrap();
    assert!(matches!(upserted, contacts::Upserted::Created));
    let contact = contact.id;
    let provider = Actor::new(ActorKind::Provider, None, "Twilio");
    store::apply(&mut conn, location, contact, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &provider,
            Utc::now(),
            None,
            Some("SMbackup".into()),
        )
    })
    .unwrap();
    let api = Actor::new(ActorKind::Api, None, "backup test");
    store::apply(&mut conn, location, contact, |s| {
        s.switch_all(true, &api, Utc::now())
    })
    .unwrap();
    let state = store::load_state(&mut conn, location, contact)
        .unwrap()
        .unwrap();
    assert!(state.all && state.is_blocked(Channel::Sms));
    let history = store::history(&mut conn, location, contact, 100).unwrap();
    assert_eq!(history.len(), 2);

    // docs/OPERATIONS.md, "Backups".
    let socket = socket_dir(&db);
    let dump = TempFile(run_dir("backup").with_extension("dump"));
    let dump_path = dump.0.to_str().unwrap();
    run(
        "pg_dump",
        &socket,
        &["--format=custom", &format!("--file={dump_path}"), &db.name],
    );
    let restored_name = format!("{}_restored", db.name);
    let restored = TestDb {
        url: database_url(&restored_name),
        name: restored_name.clone(),
    };
    run("createdb", &socket, &["-T", "template0", &restored_name]);
    run(
        "pg_restore",
        &socket,
        &[
            &format!("--dbname={restored_name}"),
            "--single-transaction",
            "--no-owner",
            dump_path,
        ],
    );
    // The original goes: nothing below can read it by mistake.
    drop(conn);
    db.drop_now();

    // The same contact, DND and history, read by the application's queries.
    let mut conn = restored.conn();
    assert_eq!(
        store::load_state(&mut conn, location, contact)
            .unwrap()
            .unwrap(),
        state
    );
    let again = store::history(&mut conn, location, contact, 100).unwrap();
    assert_eq!(
        again
            .iter()
            .map(|h| (h.id, h.action, h.channel, h.reason, h.at))
            .collect::<Vec<_>>(),
        history
            .iter()
            .map(|h| (h.id, h.action, h.channel, h.reason, h.at))
            .collect::<Vec<_>>()
    );
    assert!(
        dnd::db::migrate(&mut conn).unwrap().is_empty(),
        "up to date"
    );

    // The application on the restored database: reads, the gate, writes
    // through the triggers, new rows after the restored sequences.
    let app = dnd::Application::build(&test_config(), restored.pool()).expect("build the app");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = new_client();
    let key = demo::API_KEY_DOWNTOWN;
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let send = |method: reqwest::Method, path: &str, body: Value| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
    };

    let (status, found) = get(format!("/api/v1/contacts/{contact}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["name"], "Backed Up");
    assert_eq!(found["dnd"]["status"], "on");
    assert_eq!(found["dnd"]["all"], true);
    assert_eq!(
        found["dnd"]["channels"]["sms"]["reasons"][0]["reason"],
        "sms_opt_out"
    );
    assert_eq!(
        found["dnd"]["channels"]["sms"]["reasons"][0]["address"],
        "+13125550177"
    );
    let (_, listed) = get(format!("/api/v1/contacts/{contact}/dnd/history")).await;
    assert_eq!(listed["history"].as_array().unwrap().len(), 2, "{listed}");

    let r = send(
        reqwest::Method::POST,
        "/api/v1/messages",
        json!({"contact_id": contact, "channel": "sms", "body": "after the restore"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let blocked: Value = r.json().await.unwrap();
    assert_eq!(blocked["error"], "dnd_active", "{blocked}");

    let r = send(
        reqwest::Method::PUT,
        &format!("/api/v1/contacts/{contact}/dnd"),
        json!({"all": false}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, now) = get(format!("/api/v1/contacts/{contact}")).await;
    assert_eq!(now["dnd"]["status"], "partial", "the STOP stays: {now}");
    let (_, listed) = get(format!("/api/v1/contacts/{contact}/dnd/history")).await;
    assert_eq!(listed["history"].as_array().unwrap().len(), 3);

    let r = send(
        reqwest::Method::POST,
        "/api/v1/contacts",
        json!({"name": "After Restore", "phone": "+13125550178"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created["id"].as_i64().unwrap() > contact, "{created}");
    drop(restored);
}

/// docs/OPERATIONS.md: the database role needs no superuser, only to own
/// its database (pg_trgm is a trusted extension; PostgreSQL 15 gives the
/// public schema to the database's owner).
#[test]
fn migrations_need_only_the_owner_of_the_database() {
    struct Role(String);
    impl Drop for Role {
        fn drop(&mut self) {
            if let Ok(mut conn) = dnd::db::connect(&database_url("postgres")) {
                let _ =
                    diesel::sql_query(format!("DROP ROLE IF EXISTS {}", self.0)).execute(&mut conn);
            }
        }
    }
    let role = Role(format!("dnd_owner_{}", std::process::id()));
    let name = format!("{}_owned", role.0);
    let mut admin = dnd::db::connect(&database_url("postgres")).unwrap();
    diesel::sql_query(format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
        role.0
    ))
    .execute(&mut admin)
    .unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name} OWNER {}", role.0))
        .execute(&mut admin)
        .unwrap();
    // Dropped before the role (declared after it).
    let db = TestDb {
        url: database_url(&name),
        name,
    };
    let as_owner = db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://{}@", role.0),
        1,
    );
    assert_ne!(as_owner, db.url);
    let mut conn = dnd::db::connect(&as_owner).unwrap();
    let applied = dnd::db::migrate(&mut conn).unwrap();
    assert!(applied.len() >= 24, "{applied:?}");
    assert_eq!(
        dnd::db::demo::seed(&mut conn).unwrap(),
        dnd::db::demo::Seeded::Now
    );
    let owner: Setting = diesel::sql_query(
        "SELECT tableowner::text AS value FROM pg_tables WHERE tablename = 'contacts'",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(owner.value, role.0);
    drop(conn);
    drop(db);
}
