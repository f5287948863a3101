//! The real binary on its embedded default: first start creates the
//! cluster, migrates and seeds; a restart keeps the data and does not
//! reseed; SIGTERM stops PostgreSQL cleanly.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{csrf_in, location, new_client, run_dir};
use dnd::db::demo;

struct Running {
    child: Child,
    base: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

fn start(data_dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .env_remove("DATABASE_URL")
        .env("DND_DATA_DIR", data_dir)
        .env("DND_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dnd");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("dnd is running at ") {
                let _ = url_tx.send(rest.split_whitespace().next().unwrap().to_string());
            }
        }
    });
    let base = url_rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            let log: Vec<String> = rx.try_iter().collect();
            panic!("dnd did not start: {}", log.join("\n"))
        });
    Running {
        child,
        base,
        stderr: rx,
    }
}

fn stop(mut running: Running) -> Vec<String> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            assert!(status.success(), "dnd exits cleanly on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "dnd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    running.stderr.try_iter().collect()
}

fn postgres_running(data_dir: &Path) -> bool {
    data_dir.join("pgdata/postmaster.pid").exists()
}

/// A generated key file: its text, after checking only its owner may read
/// or write it.
fn key_file(data_dir: &Path, name: &str) -> String {
    let path = data_dir.join(name);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.trim().len(), 128, "{name} holds 64 random bytes in hex");
    key
}

/// Signs a demo user in from a fresh browser; the session cookie it was
/// given (`dnd_session=...`).
async fn sign_in(base: &str, email: &str) -> String {
    let browser = new_client();
    let login = browser
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&login).expect("a CSRF token on /login");
    let r = browser
        .post(format!("{base}/login"))
        .header("Origin", base)
        .form(&[
            ("email", email),
            ("password", demo::PASSWORD),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "sign-in of {email} on {base}");
    assert!(location(&r).starts_with("/locations"));
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("dnd_session="))
        .and_then(|c| c.split(';').next())
        .expect("signing in sets the session cookie")
        .to_string()
}

/// /locations from a client that keeps no cookies, sending only `cookie`:
/// its status, where it redirects, and the page.
async fn locations_with(base: &str, cookie: Option<&str>) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.get(format!("{base}/locations"));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let to = location(&r);
    (status, to, r.text().await.unwrap())
}

#[actix_web::test]
async fn first_start_seeds_a_restart_keeps_the_data_and_does_not_reseed() {
    let data_dir = run_dir("embedded");
    let client = reqwest::Client::new();

    let first = start(&data_dir);
    assert!(postgres_running(&data_dir));
    let health = client
        .get(format!("{}/healthz", first.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Change a demo contact and add one through the API.
    let r = client
        .post(format!("{}/api/v1/contacts", first.base))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .json(&json!({"phone": "+12125550100", "name": "Renamed Before Restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .post(format!("{}/api/v1/contacts", first.base))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .json(&json!({"email": "kept@example.com", "name": "Kept Across Restarts"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // The generated keys are the owner's alone, and a demo user's session
    // is taken across the restart.
    let session_key = key_file(&data_dir, "session.key");
    let secret_key = key_file(&data_dir, "secret.key");
    let cookie = sign_in(&first.base, demo::LOCATION_USER).await;
    let (status, _, page) = locations_with(&first.base, Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(page.contains(demo::DOWNTOWN), "{page}");
    let log = stop(first);
    assert!(
        log.iter().any(|l| l.contains("seeded the demo tenant")),
        "{log:?}"
    );
    assert!(
        !postgres_running(&data_dir),
        "PostgreSQL was stopped with dnd"
    );

    let second = start(&data_dir);
    let found: serde_json::Value = client
        .get(format!(
            "{}/api/v1/contacts?email=kept@example.com",
            second.base
        ))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["contacts"][0]["name"], "Kept Across Restarts");
    let renamed: serde_json::Value = client
        .get(format!(
            "{}/api/v1/contacts?phone=%2B12125550100",
            second.base
        ))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        renamed["contacts"][0]["name"], "Renamed Before Restart",
        "the demo tenant was not reseeded over the change"
    );
    // The same keys, still the owner's alone.
    assert_eq!(key_file(&data_dir, "session.key"), session_key);
    assert_eq!(key_file(&data_dir, "secret.key"), secret_key);
    // The session from before the restart is still signed in (its cookie
    // decrypts with the kept key), while no cookie is sent to sign-in.
    let (status, to, page) = locations_with(&second.base, Some(&cookie)).await;
    assert_eq!(
        status, 200,
        "the session cookie from before the restart ({to})"
    );
    assert!(page.contains(demo::DOWNTOWN), "{page}");
    let (status, to, _) = locations_with(&second.base, None).await;
    assert_eq!((status, to.as_str()), (303, "/login?next=%2Flocations"));
    // And demo users sign in afresh.
    let again = sign_in(&second.base, demo::AGENCY_USER).await;
    assert_eq!(locations_with(&second.base, Some(&again)).await.0, 200);
    let log = stop(second);
    assert!(
        !log.iter().any(|l| l.contains("seeded the demo tenant")),
        "{log:?}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A failed start: not a success, no panic, and one line saying why.
fn assert_explained(out: &Output, why: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let said = stderr
        .lines()
        .find(|l| l.starts_with("dnd: "))
        .unwrap_or_else(|| panic!("no \"dnd: \" line saying why: {stderr}"));
    for word in why {
        assert!(said.contains(word), "{word:?} in {said:?}");
    }
}

#[test]
fn a_database_url_that_cannot_be_reached_is_explained() {
    // `dnd migrate` with a bad DATABASE_URL fails with a message, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_explained(&out, &["could not connect to the database"]);
}

/// `dnd migrate` on the embedded default where no PostgreSQL binaries can
/// be found: PATH is an empty directory and, in a mount namespace of its
/// own, so is /usr/lib/postgresql (the machine's install is untouched).
/// None when this user may not make a mount namespace.
fn migrate_without_postgres(data_dir: &Path) -> Option<Output> {
    let namespace: &[&str] = if nix::unistd::geteuid().is_root() {
        &["--mount"]
    } else {
        &["--user", "--map-root-user", "--mount"]
    };
    let allowed = Command::new("unshare")
        .args(namespace)
        .args(["--", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        return None;
    }
    let empty = data_dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let hide = r#"if [ -d /usr/lib/postgresql ]; then
                      mount --bind "$1" /usr/lib/postgresql || exit 97
                  fi
                  PATH="$1" exec "$2" migrate"#;
    let out = Command::new("unshare")
        .args(namespace)
        .args(["--", "/bin/sh", "-c", hide, "sh"])
        .arg(&empty)
        .arg(env!("CARGO_BIN_EXE_dnd"))
        .env_remove("DATABASE_URL")
        .env("DND_DATA_DIR", data_dir)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(97),
        "/usr/lib/postgresql could not be hidden: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

#[test]
fn missing_postgres_binaries_are_explained() {
    let data_dir = run_dir("no-postgres");
    let Some(out) = migrate_without_postgres(&data_dir) else {
        eprintln!("skipping: this user may not make a mount namespace to hide PostgreSQL in");
        return;
    };
    assert_explained(
        &out,
        &[
            "No PostgreSQL server binaries were found",
            "apt-get install postgresql",
            "DATABASE_URL",
        ],
    );
    assert!(
        !data_dir.join("pgdata").exists(),
        "no cluster was started on"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn a_data_dir_that_cannot_be_created_is_explained() {
    // DND_DATA_DIR under a regular file: no user, root included, can make it.
    let file = run_dir("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let data_dir = file.join("var");
    let shown = data_dir.display().to_string();
    let migrate = |keys: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnd"));
        cmd.arg("migrate")
            .env_remove("DATABASE_URL")
            .env_remove("DND_SECRET_KEY")
            .env_remove("DND_SESSION_KEY")
            .env("DND_DATA_DIR", &data_dir);
        if keys {
            cmd.env("DND_SECRET_KEY", "ab".repeat(32))
                .env("DND_SESSION_KEY", "cd".repeat(64));
        }
        cmd.output().unwrap()
    };
    // First the generated secret key has nowhere to go...
    assert_explained(
        &migrate(false),
        &[&format!("{shown}/secret.key"), "Not a directory"],
    );
    // ...and with the keys given, the cluster has nowhere to go.
    assert_explained(&migrate(true), &[&shown, "Not a directory"]);
    assert!(file.is_file(), "the file in the way is left alone");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn help_explains_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "demo", "create-user"] {
        assert!(text.contains(word), "{word} in --help:\n{text}");
    }
}

#[test]
fn as_root_a_data_dir_closed_to_postgres_falls_back_to_var_lib_dnd() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: only root hands the cluster to the postgres user");
        return;
    }
    let closed = run_dir("closed");
    std::fs::create_dir_all(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("DND_DATA_DIR", closed.join("var"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fallback directory"), "{stderr}");
    let cluster = stderr
        .split("cluster=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default();
    assert!(cluster.starts_with("/var/lib/dnd/cluster-"), "{cluster}");
    assert!(Path::new(&cluster).join("pgdata/PG_VERSION").exists());
    assert!(
        !Path::new(&cluster).join("pgdata/postmaster.pid").exists(),
        "stopped after migrate"
    );
    let _ = std::fs::remove_dir_all(cluster);
    let _ = std::fs::remove_dir_all(&closed);
}
