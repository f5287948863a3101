use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{spawn_app, TestDb};
use dnd::db::demo;

fn create_user(db: &TestDb, args: &[&str], password: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("create-user")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("DND_SECRET_KEY", crate::common::TEST_SECRET_KEY)
        .env("DND_DATA_DIR", crate::common::run_dir("cli-data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[actix_web::test]
async fn create_user_makes_a_user_who_can_sign_in() {
    let app = spawn_app().await;
    let (ok, out) = create_user(
        &app.db,
        &[
            "--email",
            "Front.Desk@Harbor.example",
            "--role",
            "location",
            "--location",
            demo::HARBOR,
        ],
        "a long enough password",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Created location user front.desk@harbor.example"),
        "{out}"
    );
    let r = app
        .sign_in("front.desk@harbor.example", "a long enough password")
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text("/locations").await;
    assert!(html.contains(demo::HARBOR) && !html.contains(demo::DOWNTOWN));
}

#[actix_web::test]
async fn create_user_refuses_bad_requests_with_a_reason() {
    let app = spawn_app().await;
    for (args, password, expected) in [
        (
            vec!["--email", "a@b.example", "--role", "boss"],
            "a long enough password",
            "unknown role",
        ),
        (
            vec!["--email", "a@b.example", "--role", "agency"],
            "a long enough password",
            "needs --agency",
        ),
        (
            vec!["--email", "a@b.example", "--role", "location"],
            "a long enough password",
            "at least one --location",
        ),
        (
            vec![
                "--email",
                "a@b.example",
                "--role",
                "location",
                "--location",
                "Nowhere",
            ],
            "a long enough password",
            "no location \"Nowhere\"",
        ),
        (
            vec!["--email", "a@b.example", "--role", "support"],
            "short",
            "at least 12 characters",
        ),
        (
            vec![
                "--email",
                demo::AGENCY_USER,
                "--role",
                "agency",
                "--agency",
                demo::AGENCY,
            ],
            "a long enough password",
            "exists already",
        ),
    ] {
        let (ok, out) = create_user(&app.db, &args, password);
        assert!(!ok, "{args:?} should fail");
        assert!(out.contains(expected), "{args:?}: {out}");
    }
}

/// What the integrations table holds in a column, as stored.
fn raw(db: &TestDb, column: &str) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    diesel::sql_query(format!(
        "SELECT {column} AS v FROM integrations WHERE {column} IS NOT NULL ORDER BY location_id, id"
    ))
    .load::<V>(&mut db.conn())
    .unwrap()
    .into_iter()
    .map(|r| r.v)
    .collect()
}

#[actix_web::test]
async fn provider_secrets_are_encrypted_at_rest_and_the_key_rotates() {
    let app = spawn_app().await;
    let secrets = raw(&app.db, "secret");
    assert!(!secrets.is_empty());
    for stored in &secrets {
        assert!(stored.starts_with("v1:"), "{stored}");
        for plain in [
            demo::TWILIO_AUTH_TOKEN,
            demo::MAILGUN_SIGNING_KEY,
            demo::META_APP_SECRET,
        ] {
            assert!(!stored.contains(plain));
        }
    }
    assert!(raw(&app.db, "verify_token")
        .iter()
        .all(|v| v.starts_with("v1:")));
    // Set through the settings form: encrypted too.
    app.sign_in_as(demo::AGENCY_USER).await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let csrf = app.csrf_from("/locations").await;
    let r = app
        .post_form(
            &format!("/locations/{downtown}/settings/integrations/email/transport"),
            &[
                ("csrf_token", csrf.as_str()),
                ("transport", "mailgun"),
                ("sender", "hello@mg.example"),
                ("api_key", "key-plain-to-encrypt"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let keys = raw(&app.db, "api_key");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("v1:") && !keys[0].contains("key-plain-to-encrypt"));
    // Read back through the app: the webhook still verifies (the secret opens).
    let (code, _) = crate::webhooks::twilio_post(
        &app,
        downtown,
        "sms",
        &crate::webhooks::inbound("SMENCRYPTED1", "+12125550100", "HELP"),
    )
    .await;
    assert_eq!(code, 200);

    // Rotation: every value re-encrypted, readable with the new key only.
    let new_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let out = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("rotate-secret-key")
        .env("DATABASE_URL", &app.db.url)
        .env("DND_SECRET_KEY", crate::common::TEST_SECRET_KEY)
        .env("DND_NEW_SECRET_KEY", new_key)
        .env("DND_DATA_DIR", crate::common::run_dir("cli-rotate"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Re-encrypted"), "{said}");
    let rotated = raw(&app.db, "secret");
    assert_ne!(rotated, secrets);
    let new = dnd::secrets::SecretKey::from_bytes(&hex::decode(new_key).unwrap());
    let old =
        dnd::secrets::SecretKey::from_bytes(&hex::decode(crate::common::TEST_SECRET_KEY).unwrap());
    let opened: Vec<String> = rotated
        .iter()
        .map(|v| new.open("integrations.secret", v).unwrap())
        .collect();
    assert!(opened.contains(&demo::TWILIO_AUTH_TOKEN.to_string()));
    assert!(rotated
        .iter()
        .all(|v| old.open("integrations.secret", v).is_err()));
    // Without a new key the command refuses and changes nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("rotate-secret-key")
        .env("DATABASE_URL", &app.db.url)
        .env("DND_SECRET_KEY", new_key)
        .env("DND_DATA_DIR", crate::common::run_dir("cli-rotate"))
        .env_remove("DND_NEW_SECRET_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(raw(&app.db, "secret"), rotated);
}
