//! The real binary on its embedded default: first start creates the
//! cluster, migrates and seeds; a restart keeps the data and does not
//! reseed; SIGTERM stops PostgreSQL cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::run_dir;
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
    // Demo users can sign in on the restarted server (sessions key kept too).
    let session_key = std::fs::read_to_string(data_dir.join("session.key")).unwrap();
    assert_eq!(session_key.trim().len(), 128);
    let log = stop(second);
    assert!(
        !log.iter().any(|l| l.contains("seeded the demo tenant")),
        "{log:?}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn an_unreachable_data_dir_or_missing_postgres_is_explained() {
    // `dnd migrate` with a bad DATABASE_URL fails with a message, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_dnd"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not connect to the database"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
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
    use std::os::unix::fs::PermissionsExt;
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
