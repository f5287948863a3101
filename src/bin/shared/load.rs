//! What the HTTP benchmarks share: the app served from a child process of
//! the benchmark (so its memory is measured alone), a closed-loop load of
//! many connections, pgbench for the SQL side, and the figures.

// Each benchmark binary includes this module and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dnd::config::Config;

/// The argument that makes a benchmark binary serve instead of measure.
pub const SERVE_ARG: &str = "--serve-for-benchmark";
pub const SECRET_KEY: &str = "bench-secret-key-bench-secret-key-bench-secret-key";

/// Call first in `main`: in the child, serves the app on `url` (web
/// server only, no dispatcher: the load is what is measured) and never
/// returns.
pub fn serve_if_child() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(SERVE_ARG) {
        return;
    }
    let url = args.get(2).cloned().unwrap_or_default();
    let pool_size: u32 = std::env::var("DND_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    dnd::secrets::install(dnd::secrets::SecretKey::from_bytes(SECRET_KEY.as_bytes()));
    let config = config(&url, pool_size);
    let code = match dnd::db::build_pool(&url, pool_size, Duration::from_secs(5)) {
        Ok(pool) => actix_web::rt::System::new().block_on(async move {
            match dnd::Application::build(&config, pool) {
                Ok(app) => {
                    println!("listening {}", app.port());
                    app.run_until_stopped().await.map(|_| 0).unwrap_or(1)
                }
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }),
        Err(e) => {
            eprintln!("{e}");
            1
        }
    };
    std::process::exit(code);
}

/// The app's configuration in a benchmark: the database at `url`, the
/// benchmarks' keys, loopback, no provider hosts.
pub fn config(url: &str, pool_size: u32) -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        database_url: Some(url.into()),
        data_dir: std::env::temp_dir().join("dnd-bench-serve"),
        session_key: Some("b".repeat(64)),
        secret_key: Some(SECRET_KEY.into()),
        public_url: None,
        pool_size,
        pool_timeout: Duration::from_secs(5),
        provider_hosts: Vec::new(),
        webhook_hosts: Vec::new(),
        metrics_token: None,
        api_limits: Default::default(),
        allow_private_urls: false,
    }
}

/// A new agency and location with a connected Twilio SMS integration
/// whose auth token is `token` (stored encrypted, as in production).
pub fn twilio_location(
    conn: &mut diesel::PgConnection,
    agency: &str,
    name: &str,
    token: &str,
) -> Result<dnd::db::locations::Location, Box<dyn std::error::Error>> {
    use dnd::db::integrations::{self, NewIntegration};
    use dnd::db::locations;
    let agency = locations::create_agency(conn, agency)?;
    let location = locations::create(conn, agency, name, "UTC")?;
    integrations::create(
        conn,
        location.id,
        &NewIntegration {
            channel: dnd::domain::Channel::Sms,
            provider: "twilio",
            status: dnd::domain::IntegrationStatus::Connected,
            account: None,
            secret: Some(token),
            verify_token: None,
        },
    )?;
    Ok(location)
}

/// The app in a child process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(url: &str, pool_size: u32) -> Result<Self, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([SERVE_ARG, url])
            .env("DND_POOL_SIZE", pool_size.to_string())
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .ok_or_else(|| format!("the server did not start: {line:?}"))?
            .to_string();
        Ok(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    /// (peak RSS, RSS now) in MiB, from /proc.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(f64::NAN)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Figures {
    pub count: usize,
    pub per_second: f64,
    pub p50: f64,
    pub p99: f64,
    pub errors: usize,
}

impl Figures {
    pub fn from_latencies(mut latencies: Vec<f64>, elapsed: f64, errors: usize) -> Self {
        latencies.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Figures {
            count: latencies.len(),
            per_second: latencies.len() as f64 / elapsed,
            p50: pick(0.50),
            p99: pick(0.99),
            errors,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} done, {} errors)",
            self.per_second, self.p50, self.p99, self.count, self.errors
        )
    }
}

/// One request of a load: the client, and the request number.
pub type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// `connections` closed loops for `seconds`, each sending `make(i)` and
/// waiting for the whole answer; a non-2xx answer counts as an error.
pub fn run_load(
    connections: usize,
    seconds: u64,
    make: MakeRequest,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = {
        let _inside = runtime.enter();
        reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .redirect(reqwest::redirect::Policy::none())
            .build()?
    };
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Ok(runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (client, make, next) = (client.clone(), make.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let start = Instant::now();
                        let ok = match make(&client, i).send().await {
                            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                            Ok(r) => {
                                if errors == 0 {
                                    eprintln!("first refusal: {}", r.status());
                                }
                                false
                            }
                            Err(e) => {
                                if errors == 0 {
                                    eprintln!("first failure: {e}");
                                }
                                false
                            }
                        };
                        if ok {
                            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            if let Ok((l, e)) = t.await {
                all.extend(l);
                errors += e;
            }
        }
        Figures::from_latencies(all, started.elapsed().as_secs_f64(), errors)
    }))
}

pub fn pgbench_binary() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("pgbench"))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            candidates.push(e.path().join("bin/pgbench"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The socket directory and database of a libpq URL of the embedded
/// cluster (`postgres://postgres@/db?host=...&port=5432`).
pub fn socket_and_database(url: &str) -> (String, String) {
    let host = url
        .split("host=")
        .nth(1)
        .and_then(|h| h.split('&').next())
        .map(|h| {
            urlencoding::decode(h)
                .map(|c| c.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let database = url
        .split("@/")
        .nth(1)
        .and_then(|d| d.split('?').next())
        .unwrap_or("postgres")
        .to_string();
    (host, database)
}

/// pgbench running `script` with `clients` clients for `seconds` (prepared
/// statements); transactions per second and latency percentiles from its
/// per-transaction log.
pub fn run_pgbench(
    bin: &Path,
    url: &str,
    script: &str,
    clients: usize,
    seconds: u64,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!(
        "dnd-pgbench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("script.sql"), script)?;
    let (host, database) = socket_and_database(url);
    let output = Command::new(bin)
        .current_dir(&dir)
        .args(["-h", &host, "-p", "5432", "-U", "postgres", "-n"])
        .args(["-M", "prepared", "-l"])
        .args(["-c", &clients.to_string(), "-j", "2"])
        .args(["-T", &seconds.to_string(), "-f", "script.sql", &database])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    // Each log line: client, transaction, latency in µs, ...
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            for line in std::fs::read_to_string(entry.path())?.lines() {
                if let Some(us) = line
                    .split_whitespace()
                    .nth(2)
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    latencies.push(us / 1000.0);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures::from_latencies(latencies, seconds as f64, 0))
}
