//! The test harness: one embedded PostgreSQL cluster per test binary, a
//! database per test cloned from a migrated and seeded template (so tests
//! run in parallel), and an app server per test on a free port.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use diesel::{PgConnection, RunQueryDsl};
use dnd::config::Config;
use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::{self, DbPool};
use dnd::Application;

const TEMPLATE: &str = "dnd_template";

/// Prefix of every directory a test run makes in /tmp; the pid after it
/// tells later runs whether the owner is still alive.
pub const TMP_PREFIX: &str = "dnd-test-";

struct Shared {
    /// A URL with `{db}` where the database name goes.
    url_pattern: String,
    create_lock: Mutex<()>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory for this run under /tmp, which the postgres user can reach
/// when the tests run as root.
pub fn run_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    PathBuf::from(format!(
        "/tmp/{TMP_PREFIX}{}-{name}-{nanos}",
        std::process::id()
    ))
}

/// Removes what earlier runs left behind (a killed `cargo test` cannot clean
/// up after itself): directories whose owning process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(TMP_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        remove_stale_dirs();
        let dir = run_dir("cluster");
        let (tx, rx) = std::sync::mpsc::channel();
        // The cluster lives on a thread that never ends, so PostgreSQL's
        // parent-death signal fires when the test process exits, not when
        // the first test's thread does.
        std::thread::spawn(move || {
            let started = EmbeddedCluster::start(&ClusterOptions {
                dir: dir.clone(),
                durable: false,
            });
            match started {
                Ok(cluster) => {
                    let pattern = cluster.url("{db}");
                    let result = (|| -> Result<(), String> {
                        cluster
                            .ensure_database(TEMPLATE)
                            .map_err(|e| e.to_string())?;
                        install_test_key();
                        let mut conn =
                            db::connect(&cluster.url(TEMPLATE)).map_err(|e| e.to_string())?;
                        db::migrate(&mut conn).map_err(|e| e.to_string())?;
                        dnd::db::demo::seed(&mut conn).map_err(|e| e.to_string())?;
                        Ok(())
                    })();
                    tx.send(result.map(|()| pattern)).unwrap();
                    let _keep = cluster;
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    tx.send(Err(e.to_string())).unwrap();
                }
            }
        });
        let url_pattern = rx
            .recv()
            .expect("cluster thread")
            .unwrap_or_else(|e| panic!("could not start the test cluster: {e}"));
        Shared {
            url_pattern: url_pattern.replace("%7Bdb%7D", "{db}"),
            create_lock: Mutex::new(()),
        }
    })
}

pub fn database_url(name: &str) -> String {
    shared().url_pattern.replace("{db}", name)
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A copy of the template: migrated, with the demo tenant.
    pub fn new() -> Self {
        Self::create(TEMPLATE)
    }

    /// An empty database, with no migrations applied.
    pub fn empty() -> Self {
        Self::create("template0")
    }

    fn create(template: &str) -> Self {
        install_test_key();
        let shared = shared();
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        {
            // Copies of one template are made one at a time: PostgreSQL
            // refuses a copy while another session uses the template.
            let _guard = shared.create_lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut conn = db::connect(&database_url("postgres")).expect("connect to postgres");
            diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut conn)
                .expect("create test database");
        }
        TestDb {
            url: database_url(&name),
            name,
        }
    }

    pub fn conn(&self) -> PgConnection {
        db::connect(&self.url).expect("connect to the test database")
    }

    pub fn pool(&self) -> DbPool {
        db::build_pool(&self.url, 4, Duration::from_secs(2)).expect("pool")
    }

    /// Takes the database away under a running app (to test outages).
    pub fn drop_now(&self) {
        let mut conn = db::connect(&database_url("postgres")).expect("connect to postgres");
        diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .expect("drop test database");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = db::connect(&database_url("postgres")) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// A running app on its own database.
pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub client: reqwest::Client,
}

pub fn test_config() -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        database_url: None,
        data_dir: run_dir("data"),
        session_key: Some("0123456789abcdef".repeat(8)),
        secret_key: Some(TEST_SECRET_KEY.into()),
        public_url: None,
        pool_size: 4,
        pool_timeout: Duration::from_secs(1),
        provider_hosts: Vec::new(),
        webhook_hosts: Vec::new(),
        metrics_token: None,
        api_limits: Default::default(),
        // The tests' provider doubles listen on loopback.
        allow_private_urls: true,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An app with its configuration adjusted (e.g. a public URL).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::new();
    let mut config = test_config();
    adjust(&mut config);
    let app = Application::build(&config, db.pool()).expect("build the app");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        base,
        db,
        client: new_client(),
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (so
/// tests see them).
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// Posts a form the way a browser on one of our pages does (with our
    /// Origin).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("Origin", &self.base)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// Submits a form as the signed-in user (the CSRF token of their
    /// session, this site's Origin): the status, and where a redirect goes
    /// or else the page.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let csrf = self.csrf_from("/locations").await;
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self.post_form(path, &all).await;
        let status = r.status().as_u16();
        let to = location(&r);
        let body = r.text().await.unwrap();
        (status, if status == 303 { to } else { body })
    }

    /// Signs in, in a fresh browser, as a new admin of a new agency.
    pub async fn switch_to_other_agency(&mut self) -> i64 {
        let agency = {
            let mut conn = self.db.conn();
            let agency = dnd::db::locations::create_agency(&mut conn, "Other Agency").unwrap();
            let hash = dnd::password::hash("other-agency-pass").unwrap();
            dnd::db::users::create(
                &mut conn,
                &dnd::db::users::NewUser {
                    email: "boss@other.test",
                    password_hash: &hash,
                    role: "agency",
                    agency_id: Some(agency),
                    is_admin: true,
                },
                &[],
            )
            .unwrap();
            agency
        };
        self.client = new_client();
        let r = self.sign_in("boss@other.test", "other-agency-pass").await;
        assert_eq!(r.status().as_u16(), 303);
        agency
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf_from(&self, path: &str) -> String {
        let (_, html) = self.get_text(path).await;
        csrf_in(&html).unwrap_or_else(|| panic!("no csrf token on {path}"))
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf_from("/login").await;
        self.post_form(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    /// Starts over as another user: a fresh browser (no cookie of the one
    /// before), signed in.
    pub async fn switch_to(&mut self, email: &str) {
        self.client = new_client();
        self.sign_in_as(email).await;
    }

    /// Signs in and checks it worked.
    pub async fn sign_in_as(&self, email: &str) {
        let r = self.sign_in(email, dnd::db::demo::PASSWORD).await;
        assert_eq!(r.status().as_u16(), 303, "sign-in of {email} failed");
        // The locations, or a location user's only location's contacts.
        let to = location(&r);
        assert!(
            to == "/locations" || (to.starts_with("/locations/") && to.ends_with("/contacts")),
            "sign-in of {email} went to {to}"
        );
    }

    pub async fn api_get(&self, key: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn api_post(
        &self,
        key: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.api_send(self.client.post(self.url(path)), key, body)
            .await
    }

    pub async fn api_put(
        &self,
        key: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.api_send(self.client.put(self.url(path)), key, body)
            .await
    }

    async fn api_send(
        &self,
        request: reqwest::RequestBuilder,
        key: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = request.bearer_auth(key).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The id of a demo location by name.
    pub fn location_id(&self, name: &str) -> i64 {
        dnd::db::locations::find_by_name(&mut self.db.conn(), name)
            .unwrap()
            .unwrap_or_else(|| panic!("no location {name}"))
            .id
    }
}

pub fn csrf_in(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Who a test's own set-up acts as (an API key, as an import would).
pub fn test_actor() -> dnd::domain::dnd::Actor {
    dnd::domain::dnd::Actor::new(dnd::domain::dnd::ActorKind::Api, None, "test set-up")
}

/// The host policy the tests' app runs with (provider doubles on loopback).
pub fn test_hosts() -> dnd::outbound::hosts::HostPolicy {
    test_config().host_policy()
}

/// The key the tests' provider secrets are encrypted with.
pub const TEST_SECRET_KEY: &str =
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// Installs the tests' secret key (before any database is seeded).
pub fn install_test_key() {
    dnd::secrets::install(dnd::secrets::SecretKey::from_bytes(
        &hex::decode(TEST_SECRET_KEY).unwrap(),
    ));
}
