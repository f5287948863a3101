//! Faults: the real `dnd` binary (or the app in-process) while PostgreSQL
//! stops, crashes or holds a lock, while the server is killed mid-load, and
//! with two servers on one database. Each test is bounded in time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use crate::common::{run_dir, TestDb, TEST_SECRET_KEY};
use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::{self, demo};
use dnd::webhooks::signatures::twilio_signature;

/// A `dnd` process and what it printed to stderr so far.
struct Dnd {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Dnd {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for the process to end; its exit status.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dnd did not exit within {within:?}; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dnd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dnd serve` with the tests' keys and `env` on top.
fn start_dnd(env: &[(&str, String)], args: &[&str]) -> Dnd {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dnd"));
    cmd.env_remove("DATABASE_URL")
        .env("DND_SECRET_KEY", TEST_SECRET_KEY)
        .env("DND_SESSION_KEY", "0123456789abcdef".repeat(8))
        .env("DND_ALLOW_PRIVATE_URLS", "true")
        .env("DND_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start dnd");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("dnd is running at ") {
                let _ = url_tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let base = url_rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("dnd did not start: {}", log.lock().unwrap().join("\n")));
    Dnd { child, base, log }
}

/// A port free right now, for a server that must come back on the same
/// address (signed webhooks name the URL).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A Twilio inbound SMS, signed the way Twilio signs it.
async fn post_sms(
    client: &reqwest::Client,
    base: &str,
    location_id: i64,
    sid: &str,
    from: &str,
    body: &str,
) -> Result<u16, reqwest::Error> {
    let path = format!("/webhooks/twilio/{location_id}/sms");
    let url = format!("{base}{path}");
    let params = crate::webhooks::form(&crate::webhooks::inbound(sid, from, body));
    let signature = twilio_signature(&url, &params, demo::TWILIO_AUTH_TOKEN);
    let r = client
        .post(url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// The app in this process on `test_db`, its pool (and so its lock
/// timeout) waiting `timeout`; its base URL.
fn serve_in_process(test_db: &TestDb, timeout: Duration) -> String {
    let pool = db::build_pool(&test_db.url, 4, timeout).unwrap();
    let app = dnd::Application::build(&crate::common::test_config(), pool).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    base
}

/// The location's SMS goes out through the Twilio at `base`.
fn send_sms_through(test_db: &TestDb, location_id: i64, base: &str) {
    dnd::db::integrations::set_transport(
        &mut test_db.conn(),
        location_id,
        dnd::domain::Channel::Sms,
        dnd::domain::TransportKind::Twilio,
        Some(base),
        None,
        Some("+12125559999"),
    )
    .unwrap();
}

fn location_id(url: &str, name: &str) -> i64 {
    let mut conn = db::connect(url).unwrap();
    db::locations::find_by_name(&mut conn, name)
        .unwrap()
        .unwrap()
        .id
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(url: &str, sql: &str) -> i64 {
    let mut conn = db::connect(url).unwrap();
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

/// Holds `FOR UPDATE` on a contact row from another connection until the
/// returned sender is dropped or sent to.
fn hold_contact_lock(url: &str, contact_id: i64) -> std::sync::mpsc::Sender<()> {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut conn = db::connect(&url).unwrap();
        conn.transaction(|conn| -> diesel::QueryResult<()> {
            diesel::sql_query(format!(
                "SELECT id FROM contacts WHERE id = {contact_id} FOR UPDATE"
            ))
            .execute(conn)?;
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
            Ok(())
        })
        .unwrap();
    });
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    release_tx
}

/// Waits until some backend waits on a lock (the request really queued
/// behind the held one).
async fn wait_for_lock_waiter(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(
        url,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
    ) == 0
    {
        assert!(Instant::now() < deadline, "no request waited on the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn first_contact(url: &str, location_id: i64) -> i64 {
    count(
        url,
        &format!("SELECT min(id) AS n FROM contacts WHERE location_id = {location_id}"),
    )
}

#[actix_web::test]
async fn a_held_row_lock_answers_503_after_the_timeout_without_starving_the_pool() {
    let test_db = TestDb::new();
    let base = serve_in_process(&test_db, Duration::from_secs(1));
    let downtown = location_id(&test_db.url, demo::DOWNTOWN);
    let contact = first_contact(&test_db.url, downtown);
    let release = hold_contact_lock(&test_db.url, contact);

    // Three times the pool's size at once, all for the locked contact.
    let client = client();
    let started = Instant::now();
    let requests = (0..12).map(|_| {
        let client = client.clone();
        let url = format!("{base}/api/v1/contacts/{contact}/dnd");
        async move {
            let r = client
                .put(url)
                .bearer_auth(demo::API_KEY_DOWNTOWN)
                .json(&json!({"channels": {"sms": true}}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let took = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert!(body.contains("nothing was changed"), "{body}");
    }
    assert!(
        took < Duration::from_secs(8),
        "12 requests behind one lock took {took:?}: they piled up"
    );
    // The pool is not stuck: other work goes on while the lock is held.
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let other = first_contact(&test_db.url, downtown) + 1;
    let r = client
        .put(format!("{base}/api/v1/contacts/{other}/dnd"))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .json(&json!({"channels": {"sms": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());

    // Nothing was changed, and once the lock goes the change goes through.
    assert_eq!(
        count(
            &test_db.url,
            &format!("SELECT count(*) AS n FROM dnd_history WHERE contact_id = {contact} AND location_id = {downtown}")
        ),
        0
    );
    drop(release);
    let r = client
        .put(format!("{base}/api/v1/contacts/{contact}/dnd"))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .json(&json!({"channels": {"sms": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// What the load loop saw: (status or 0 for a refused connection, time).
type Seen = Arc<Mutex<Vec<(Instant, &'static str, u16, Duration)>>>;

/// Keeps sending an API read, a signed STOP and a health check, each in a
/// loop of its own, until `stop` is set.
fn keep_loading(
    base: String,
    location_id: i64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Seen, Vec<tokio::task::JoinHandle<()>>) {
    use std::sync::atomic::Ordering;
    let seen: Seen = Arc::default();
    let mut tasks = Vec::new();
    for kind in ["api", "webhook", "healthz"] {
        let (base, stop, seen) = (base.clone(), stop.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let began = Instant::now();
                let status = match kind {
                    "api" => client
                        .get(format!("{base}/api/v1/contacts?phone=%2B12125550196"))
                        .bearer_auth(demo::API_KEY_DOWNTOWN)
                        .send()
                        .await
                        .map(|r| r.status().as_u16()),
                    "webhook" => {
                        post_sms(
                            &client,
                            &base,
                            location_id,
                            &format!("SMload{n:08}"),
                            &format!("+1212556{:04}", n % 10_000),
                            "STOP",
                        )
                        .await
                    }
                    _ => client
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .map(|r| r.status().as_u16()),
                };
                seen.lock()
                    .unwrap()
                    .push((began, kind, status.unwrap_or(0), began.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    (seen, tasks)
}

#[actix_web::test]
async fn postgres_stopped_under_load_answers_503_and_the_pool_recovers_within_5_s() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = run_dir("faults-pg-restart");
    let options = ClusterOptions {
        dir: dir.clone(),
        durable: false,
    };
    let mut cluster = EmbeddedCluster::start(&options).unwrap();
    cluster.ensure_database("dnd").unwrap();
    let url = cluster.url("dnd");
    let dnd = start_dnd(
        &[
            ("DATABASE_URL", url.clone()),
            ("DND_DATA_DIR", dir.join("app").display().to_string()),
            // Well above the health check's own second, so a check that
            // waited for the pool shows.
            ("DND_POOL_TIMEOUT_SECS", "3".into()),
        ],
        &["serve", "--demo"],
    );
    let downtown = location_id(&url, demo::DOWNTOWN);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, tasks) = keep_loading(dnd.base.clone(), downtown, stop.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;

    let down_at = Instant::now();
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut cluster = EmbeddedCluster::start(&options).unwrap();
    let back_at = Instant::now();
    // Every kind of request answers 200 again, within 5 s of PostgreSQL
    // being back.
    let recovered = loop {
        let all_ok = ["api", "webhook", "healthz"].iter().all(|kind| {
            seen.lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(at, k, _, _)| k == kind && *at > back_at)
                .is_some_and(|(_, _, status, _)| *status == 200)
        });
        if all_ok {
            break back_at.elapsed();
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(5),
            "not recovered 5 s after PostgreSQL came back: {:?}; dnd's log:\n{}",
            seen.lock()
                .unwrap()
                .iter()
                .filter(|(at, ..)| *at > back_at)
                .map(|(_, k, s, _)| format!("{k}={s}"))
                .collect::<Vec<_>>(),
            dnd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let during: Vec<_> = seen
        .iter()
        .filter(|(at, ..)| *at > down_at && *at < back_at)
        .collect();
    assert!(
        during.iter().filter(|(_, k, ..)| *k == "healthz").count() >= 2,
        "{during:?}"
    );
    for (_, kind, status, took) in &seen {
        assert!(
            [200, 503].contains(status),
            "{kind} answered {status} (200 or 503 expected); dnd's log:\n{}",
            dnd.log_text()
        );
        // The check gives up after 900 ms; the rest is room for a machine
        // busy running other tests.
        if *kind == "healthz" {
            assert!(
                *took < Duration::from_millis(1500),
                "/healthz took {took:?}"
            );
        }
    }
    assert!(during.iter().any(|(_, _, status, _)| *status == 503));
    assert!(!dnd.log_text().contains("panicked"), "{}", dnd.log_text());
    eprintln!("recovered {recovered:?} after PostgreSQL was back");
    drop(dnd);
    cluster.stop();
}

/// The postmaster's pid, from its pid file.
fn postmaster_pid(pgdata: &Path) -> Pid {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).unwrap();
    Pid::from_raw(text.lines().next().unwrap().trim().parse().unwrap())
}

async fn wait_healthy(base: &str, within: Duration) -> Duration {
    let client = client();
    let began = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status().as_u16() == 200 {
                return began.elapsed();
            }
        }
        assert!(began.elapsed() < within, "not healthy within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The embedded cluster's data directory, for a `DND_DATA_DIR`.
fn embedded_pgdata(data_dir: &Path) -> PathBuf {
    let pgdata = std::fs::canonicalize(data_dir).unwrap().join("pgdata");
    assert!(
        pgdata.join("postmaster.pid").exists(),
        "the cluster is not in {} (a fallback directory?)",
        pgdata.display()
    );
    pgdata
}

#[actix_web::test]
async fn a_killed_embedded_postgres_is_restarted_and_dnd_gives_up_only_when_it_cannot_be() {
    let data_dir = run_dir("faults-supervise");
    let mut dnd = start_dnd(&[("DND_DATA_DIR", data_dir.display().to_string())], &[]);
    let pgdata = embedded_pgdata(&data_dir);
    let before = postmaster_pid(&pgdata);
    kill(before, Signal::SIGKILL).unwrap();
    // Noticed, restarted (crash recovery), served again: no restart of dnd.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = wait_healthy(&dnd.base, Duration::from_secs(20)).await;
    assert_ne!(postmaster_pid(&pgdata), before);
    // The supervisor says so once its own check connects (a moment after
    // the pool may have).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dnd.log_text().contains("running again") {
        assert!(Instant::now() < deadline, "{}", dnd.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dnd.log_text().contains("stopped unexpectedly"));
    let r = client()
        .get(format!("{}/api/v1/contacts?phone=%2B12125550196", dnd.base))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eprintln!("healthy again {took:?} after the kill was noticed");

    // Now it cannot start (its data directory closed to it): dnd stops
    // trying after a few attempts and exits non-zero with the cause.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgdata, std::fs::Permissions::from_mode(0o000)).unwrap();
    kill(postmaster_pid_or_wait(&pgdata), Signal::SIGKILL).ok();
    let status = dnd.wait_exit(Duration::from_secs(60));
    std::fs::set_permissions(&pgdata, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!status.success(), "{status}");
    let log = dnd.log_text();
    assert!(log.contains("did not start"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// The pid file cannot be read once the directory is closed: the pid from
/// before closing it.
fn postmaster_pid_or_wait(pgdata: &Path) -> Pid {
    let pids = std::process::Command::new("pgrep")
        .args(["-f", &format!("postgres -D {}", pgdata.display())])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&pids.stdout);
    let pid = text
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .min()
        .expect("the postmaster runs");
    Pid::from_raw(pid)
}

#[actix_web::test]
async fn sigterm_lets_the_request_in_flight_finish_and_stops_postgres_cleanly() {
    let data_dir = run_dir("faults-sigterm");
    let mut dnd = start_dnd(&[("DND_DATA_DIR", data_dir.display().to_string())], &[]);
    let pgdata = embedded_pgdata(&data_dir);
    let socket = std::fs::canonicalize(&data_dir).unwrap().join("pgsock");
    let url = format!(
        "postgres://postgres@/dnd?host={}&port=5432",
        urlencoding::encode(&socket.display().to_string())
    );
    let downtown = location_id(&url, demo::DOWNTOWN);
    let contact = first_contact(&url, downtown);
    let release = hold_contact_lock(&url, contact);
    let request = {
        let url = format!("{}/api/v1/contacts/{contact}/dnd", dnd.base);
        tokio::spawn(async move {
            let r = client()
                .put(url)
                .bearer_auth(demo::API_KEY_DOWNTOWN)
                .json(&json!({"channels": {"sms": true}}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            eprintln!("in flight: {status} {}", r.text().await.unwrap_or_default());
            status
        })
    };
    wait_for_lock_waiter(&url).await;
    kill(dnd.pid(), Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // New connections are no longer taken…
    assert!(client()
        .get(format!("{}/healthz", dnd.base))
        .send()
        .await
        .is_err());
    // …but the one in flight finishes once the lock is gone.
    drop(release);
    assert_eq!(request.await.unwrap(), 200);
    let status = dnd.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}: {}", dnd.log_text());
    assert!(!pgdata.join("postmaster.pid").exists());
    let pg_log = std::fs::read_to_string(data_dir.join("postgres.log")).unwrap();
    assert!(pg_log.contains("database system is shut down"), "{pg_log}");
    assert!(!pg_log.contains("was interrupted"), "{pg_log}");
}

/// Sends every STOP until it is acknowledged (2xx), as Twilio does with
/// anything else, at `base()` (which changes when the server restarts).
async fn send_until_acknowledged(
    base: String,
    location_id: i64,
    events: Vec<(String, String)>,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let client = client();
    for (sid, from) in events {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match post_sms(&client, &base, location_id, &sid, &from, "STOP").await {
                Ok(s) if (200..300).contains(&s) => break,
                _ => {
                    assert!(Instant::now() < deadline, "{sid} never acknowledged");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        acked.lock().unwrap().push(sid);
    }
}

#[actix_web::test]
async fn sigkill_under_2000_signed_webhooks_loses_none_and_applies_none_twice() {
    let test_db = TestDb::new();
    let port = free_port();
    let env = [
        ("DATABASE_URL", test_db.url.clone()),
        (
            "DND_DATA_DIR",
            run_dir("faults-sigkill").display().to_string(),
        ),
        ("DND_BIND", format!("127.0.0.1:{port}")),
    ];
    let mut dnd = start_dnd(&env, &[]);
    let base = dnd.base.clone();
    let downtown = location_id(&test_db.url, demo::DOWNTOWN);
    // 2,000 people with a contact each, so each STOP shows in the history.
    {
        let mut conn = test_db.conn();
        diesel::sql_query(format!(
            "INSERT INTO contacts (location_id, name, phone)
             SELECT {downtown}, 'Fault ' || g, '+1212557' || lpad(g::text, 4, '0')
             FROM generate_series(0, 1999) g"
        ))
        .execute(&mut conn)
        .unwrap();
    }
    let events: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("SMkill{i:06}"), format!("+1212557{i:04}")))
        .collect();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    // 40 senders side by side, like a provider's retry queue.
    let senders: Vec<_> = events
        .chunks(50)
        .map(|chunk| {
            tokio::spawn(send_until_acknowledged(
                base.clone(),
                downtown,
                chunk.to_vec(),
                acked.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "{}", dnd.log_text());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill(dnd.pid(), Signal::SIGKILL).unwrap();
    let _ = dnd.wait_exit(Duration::from_secs(10));
    let acked_before_kill = acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = start_dnd(&env, &[]);
    assert_eq!(restarted.base, base);
    for s in senders {
        s.await.unwrap();
    }
    assert!(acked_before_kill < 2000, "the kill came too late to test");

    // Every acknowledged event is there, each once, each applied once.
    let url = &test_db.url;
    assert_eq!(
        count(
            url,
            "SELECT count(*) AS n FROM webhook_events WHERE event_key LIKE 'SMkill%'"
        ),
        2000
    );
    assert_eq!(
        count(
            url,
            &format!(
                "SELECT count(DISTINCT c.id) AS n FROM contacts c
                 JOIN address_dnd_reasons a ON a.location_id = c.location_id AND a.address = c.phone
                 WHERE c.location_id = {downtown} AND c.name LIKE 'Fault %'
                   AND a.channel = 'sms' AND a.reason = 'sms_opt_out'"
            )
        ),
        2000,
        "every STOP took effect"
    );
    assert_eq!(
        count(
            url,
            &format!(
                "SELECT count(*) AS n FROM (
                     SELECT h.contact_id FROM dnd_history h
                     JOIN contacts c ON c.location_id = h.location_id AND c.id = h.contact_id
                     WHERE h.location_id = {downtown} AND c.name LIKE 'Fault %'
                       AND h.reason = 'sms_opt_out' AND h.action = 'set'
                     GROUP BY h.contact_id HAVING count(*) = 1) once"
            )
        ),
        2000,
        "each STOP is in each person's history exactly once"
    );
    drop(restarted);
}

/// A Twilio double that counts each message it is asked to send, by the
/// idempotency token the client sends (one per message of ours).
async fn counting_twilio(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let data = web::Data::new(seen.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            web::post().to(
                move |req: HttpRequest, seen: web::Data<Arc<Mutex<Vec<String>>>>| async move {
                    let token = req
                        .headers()
                        .get("i-twilio-idempotency-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string();
                    tokio::time::sleep(delay).await;
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(token);
                        seen.len()
                    };
                    HttpResponse::Created()
                        .json(json!({"sid": format!("SM{n:032}"), "status": "queued"}))
                },
            ),
        )
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), seen)
}

#[actix_web::test]
async fn two_servers_on_one_database_send_each_message_once_and_apply_each_event_once() {
    let test_db = TestDb::new();
    let url = test_db.url.clone();
    let downtown = location_id(&url, demo::DOWNTOWN);
    let (fake, seen) = counting_twilio(Duration::ZERO).await;
    send_sms_through(&test_db, downtown, &fake);
    let servers: Vec<Dnd> = ["a", "b"]
        .iter()
        .map(|name| {
            start_dnd(
                &[
                    ("DATABASE_URL", url.clone()),
                    (
                        "DND_DATA_DIR",
                        run_dir(&format!("faults-two-{name}")).display().to_string(),
                    ),
                ],
                &[],
            )
        })
        .collect();
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let ids: Vec<i64> = diesel::sql_query(format!(
        "SELECT id FROM contacts WHERE location_id = {downtown} AND phone IS NOT NULL ORDER BY id"
    ))
    .load::<Id>(&mut test_db.conn())
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect();
    let client = client();
    // A bulk send through each server, and the same 100 STOPs to both.
    let mut queued = 0;
    for (i, server) in servers.iter().enumerate() {
        let r = client
            .post(format!("{}/api/v1/messages/bulk", server.base))
            .bearer_auth(demo::API_KEY_DOWNTOWN)
            .json(&json!({"channel": "sms", "body": format!("Reminder {i}"), "contact_ids": ids}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        queued += body["queued"].as_i64().unwrap();
    }
    assert!(queued > 100, "{queued}");
    let client = &client;
    let stops = (0..100).flat_map(|i| {
        servers.iter().map(move |server| {
            let client = client.clone();
            let base = server.base.clone();
            async move {
                post_sms(
                    &client,
                    &base,
                    downtown,
                    &format!("SMtwo{i:05}"),
                    &format!("+1212558{i:04}"),
                    "STOP",
                )
                .await
                .unwrap()
            }
        })
    });
    for status in futures_util::future::join_all(stops).await {
        assert_eq!(status, 200);
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    while count(
        &url,
        "SELECT count(*) AS n FROM messages WHERE status IN ('queued', 'sending')",
    ) > 0
    {
        assert!(
            Instant::now() < deadline,
            "messages still waiting: {}",
            servers[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a message was sent twice");
    assert_eq!(seen.len() as i64, queued, "every queued message was sent");
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM messages WHERE direction = 'outbound' AND status = 'sent'"
        ),
        queued
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM webhook_events WHERE event_key LIKE 'SMtwo%'"
        ),
        100
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM address_dnd_reasons
             WHERE address LIKE '+1212558%' AND reason = 'sms_opt_out'"
        ),
        100
    );
}

#[actix_web::test]
async fn a_stopping_dispatcher_finishes_the_message_in_hand_and_hands_the_rest_back() {
    let test_db = TestDb::new();
    let url = test_db.url.clone();
    let downtown = location_id(&url, demo::DOWNTOWN);
    let (fake, seen) = counting_twilio(Duration::from_millis(300)).await;
    send_sms_through(&test_db, downtown, &fake);
    let base = serve_in_process(&test_db, Duration::from_secs(2));
    let ids: Vec<i64> = (0..10).map(|i| first_contact(&url, downtown) + i).collect();
    let r = client()
        .post(format!("{base}/api/v1/messages/bulk"))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .json(&json!({"channel": "sms", "body": "Reminder", "contact_ids": ids}))
        .send()
        .await
        .unwrap();
    let queued = r.json::<serde_json::Value>().await.unwrap()["queued"]
        .as_i64()
        .unwrap();
    assert!(queued >= 5, "{queued}");

    let dispatcher = dnd::outbound::dispatcher::Dispatcher::new(
        test_db.pool(),
        None,
        crate::common::test_hosts(),
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = dispatcher.spawn(stop_rx);
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the dispatcher stops within the message in hand")
        .unwrap();
    let sent = seen.lock().unwrap().len() as i64;
    assert!(
        sent < queued,
        "it stopped between messages ({sent} of {queued})"
    );
    let by = |status: &str| {
        count(
            &url,
            &format!("SELECT count(*) AS n FROM messages WHERE direction = 'outbound' AND status = '{status}'"),
        )
    };
    assert_eq!(
        by("sent"),
        sent,
        "the message in hand was finished and recorded"
    );
    assert_eq!(by("sending"), 0, "nothing is left claimed");
    assert_eq!(
        by("queued"),
        queued - sent,
        "the rest waits for the next start"
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) AS n FROM messages WHERE status = 'queued' AND attempts <> 0"
        ),
        0,
        "a handed-back claim does not count as an attempt"
    );
}

#[actix_web::test]
async fn a_locked_contact_fails_only_its_own_webhook_not_the_batch_it_came_in() {
    let test_db = TestDb::new();
    let base = serve_in_process(&test_db, Duration::from_secs(1));
    let downtown = location_id(&test_db.url, demo::DOWNTOWN);
    #[derive(diesel::QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        phone: String,
    }
    let held: Held = diesel::sql_query(format!(
        "SELECT id, phone FROM contacts WHERE location_id = {downtown} AND phone IS NOT NULL ORDER BY id LIMIT 1"
    ))
    .get_result(&mut test_db.conn())
    .unwrap();
    let release = hold_contact_lock(&test_db.url, held.id);
    let client = client();
    let client = &client;
    let base = &base;
    let held_phone = &held.phone;
    // The locked contact's STOP among 20 others, all at once (so they
    // share batches).
    let sends = (0..21).map(|i| async move {
        let from = if i == 0 {
            held_phone.clone()
        } else {
            format!("+1212559{i:04}")
        };
        let status = post_sms(
            client,
            base,
            downtown,
            &format!("SMlock{i:04}"),
            &from,
            "STOP",
        )
        .await
        .unwrap();
        (i, status)
    });
    let answers = futures_util::future::join_all(sends).await;
    drop(release);
    for (i, status) in answers {
        if i == 0 {
            assert_eq!(status, 503, "the locked contact's STOP is retried later");
        } else {
            assert_eq!(status, 200, "STOP {i} is not failed by another's lock");
        }
    }
    assert_eq!(
        count(
            &test_db.url,
            "SELECT count(*) AS n FROM webhook_events WHERE event_key LIKE 'SMlock%'"
        ),
        20
    );
}

#[actix_web::test]
async fn a_bulk_send_waits_out_a_held_row_longer_than_a_request_would() {
    let test_db = TestDb::new();
    let base = serve_in_process(&test_db, Duration::from_secs(1));
    let downtown = location_id(&test_db.url, demo::DOWNTOWN);
    let first = first_contact(&test_db.url, downtown);
    let ids: Vec<i64> = (first..first + 20).collect();
    let release = hold_contact_lock(&test_db.url, first + 5);
    let started = Instant::now();
    let send = client()
        .post(format!("{base}/api/v1/messages/bulk"))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .json(&json!({"channel": "sms", "body": "Reminder", "contact_ids": ids}))
        .send();
    let (sent, ()) = tokio::join!(send, async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        drop(release);
    });
    let sent = sent.unwrap();
    // The pool's lock timeout is 1 s: a job of many contacts waits for
    // the one busy row instead of failing on it.
    assert_eq!(
        sent.status().as_u16(),
        200,
        "{}",
        sent.text().await.unwrap()
    );
    assert!(started.elapsed() >= Duration::from_millis(2400));
}
