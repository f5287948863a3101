use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{spawn_app, TestDb};
use dnd::db::demo;

fn create_user(db: &TestDb, args: &[&str], password: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("create-user")
        .args(args)
        .env("DATABASE_URL", &db.url)
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
