//! A private PostgreSQL cluster started from the machine's own binaries, so
//! `cargo run` and `cargo test` need no database set up by hand.
//!
//! The cluster listens on a unix socket only (no TCP port to collide with),
//! trusts local connections (the socket directory is private to its owner),
//! and runs as the `postgres` user when we are root, because PostgreSQL
//! refuses to run as root.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

/// The port only names the socket file (`.s.PGSQL.5432`); no TCP is opened.
const SOCKET_PORT: u16 = 5432;
/// The superuser `initdb` creates, whoever runs it.
const SUPERUSER: &str = "postgres";
/// Where the cluster goes when we are root and the postgres user cannot
/// reach the data directory.
const FALLBACK_ROOT: &str = "/var/lib/dnd";
/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "No PostgreSQL server binaries were found (looked for `initdb` and `postgres` on PATH \
         and under /usr/lib/postgresql/*/bin), and DATABASE_URL is not set. Either install the \
         PostgreSQL server (on Debian/Ubuntu: `apt-get install postgresql`) so dnd can run its \
         own private cluster, or set DATABASE_URL to an existing server, e.g. \
         DATABASE_URL=postgres://user:password@localhost/dnd."
    )]
    NoBinaries,
    #[error(
        "dnd is running as root and PostgreSQL refuses to run as root, so it must run as the \
         `postgres` user, but this machine has no such user. Create it (`useradd --system \
         postgres`), run dnd as a normal user, or set DATABASE_URL to an existing server."
    )]
    NoPostgresUser,
    #[error(
        "dnd is running as root, so its PostgreSQL cluster runs as the `postgres` user, which \
         cannot reach {dir} (the directory {blocker} is not searchable by others), nor could \
         it use /var/lib/dnd instead. Set DND_DATA_DIR to a directory the postgres user can reach (e.g. DND_DATA_DIR=/var/lib/dnd), \
         or allow it through with `chmod o+x {blocker}`, or set DATABASE_URL."
    )]
    Unreachable { dir: String, blocker: String },
    #[error("{what} failed: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("initdb failed (exit {status}); its output:\n{output}")]
    Initdb { status: String, output: String },
    #[error("PostgreSQL did not start; the end of its log ({log}):\n{tail}")]
    Start { log: String, tail: String },
    #[error(
        "the embedded PostgreSQL stopped {crashes} times within {minutes} minutes; dnd gives up \
         rather than restart it forever (its log: {log})"
    )]
    Crashing {
        crashes: usize,
        minutes: u64,
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Everything lives below this directory: `pgdata/`, `pgsock/`,
    /// `postgres.log`.
    pub dir: PathBuf,
    /// Tests trade durability for speed; the app keeps it.
    pub durable: bool,
}

/// A running cluster. Dropping it stops PostgreSQL (fast shutdown).
#[derive(Debug)]
pub struct EmbeddedCluster {
    child: Option<Child>,
    socket_dir: PathBuf,
    log_path: PathBuf,
    /// How to start the postmaster again (see [`EmbeddedCluster::supervise`]).
    launch: Launch,
}

/// Everything `postgres` is started with.
#[derive(Debug, Clone)]
struct Launch {
    bin: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    run_as: Option<RunAs>,
    durable: bool,
}

/// The uid/gid PostgreSQL runs as, when it is not ours.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl EmbeddedCluster {
    /// Creates the cluster on first use, then starts it and waits until it
    /// accepts connections. A second start reuses the cluster and its data.
    pub fn start(options: &ClusterOptions) -> Result<Self, ClusterError> {
        let bin = find_binaries()?;
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = User::from_name(SUPERUSER)
                .ok()
                .flatten()
                .ok_or(ClusterError::NoPostgresUser)?;
            Some(RunAs {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            })
        } else {
            None
        };

        fs::create_dir_all(&options.dir)
            .map_err(io(format!("creating {}", options.dir.display())))?;
        let mut dir = fs::canonicalize(&options.dir)
            .map_err(io(format!("resolving {}", options.dir.display())))?;
        if let Some(run_as) = run_as {
            if let Err(unreachable) = check_reachable(&dir, run_as) {
                // A checkout under /root, say: keep the cluster where the
                // postgres user can work, one directory per data directory
                // so two checkouts never share a cluster.
                let fallback =
                    PathBuf::from(FALLBACK_ROOT).join(format!("cluster-{}", short_hash(&dir)));
                fs::create_dir_all(&fallback).map_err(|_| unreachable)?;
                check_reachable(&fallback, run_as)?;
                tracing::info!(
                    data_dir = %dir.display(),
                    cluster = %fallback.display(),
                    "the postgres user cannot reach the data directory; the PostgreSQL cluster lives in the fallback directory"
                );
                dir = fallback;
            }
        }

        let data_dir = dir.join("pgdata");
        let mut socket_dir = dir.join("pgsock");
        if socket_dir.as_os_str().len() + ".s.PGSQL.5432".len() + 1 > MAX_SOCKET_PATH {
            // A deep data directory would make the socket path too long for
            // the kernel; keep the socket in a short private directory.
            socket_dir = PathBuf::from(format!("/tmp/dnd-pgsock-{}", short_hash(&dir)));
        }
        for d in [&data_dir, &socket_dir] {
            private_dir(d, run_as)?;
        }
        let log_path = dir.join("postgres.log");

        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bin, &data_dir, run_as, options.durable)?;
        }

        let launch = Launch {
            bin,
            data_dir,
            socket_dir: socket_dir.clone(),
            log_path: log_path.clone(),
            run_as,
            durable: options.durable,
        };
        let (child, log_start) = launch.spawn()?;
        let mut cluster = EmbeddedCluster {
            child: Some(child),
            socket_dir,
            log_path,
            launch,
        };
        cluster.wait_ready(log_start)?;
        Ok(cluster)
    }

    /// A libpq URL for one database of this cluster.
    pub fn url(&self, database: &str) -> String {
        socket_url(&self.socket_dir, database)
    }

    /// Starts the postmaster again after it exited, and waits for it.
    /// Crash recovery replays the WAL written since the last checkpoint,
    /// which after heavy writing takes longer than a first start: it is
    /// waited for as long as the postmaster lives, unless dnd is stopping.
    fn restart(&mut self, stopping: &AtomicBool) -> Result<(), ClusterError> {
        let (child, log_start) = self.launch.spawn()?;
        self.child = Some(child);
        self.wait_ready_until(log_start, Duration::from_secs(3600), Some(stopping))
    }

    /// Creates the database if it does not exist yet.
    pub fn ensure_database(&self, database: &str) -> Result<(), super::DbError> {
        use diesel::RunQueryDsl;
        let mut conn = super::connect(&self.url("postgres"))?;
        #[derive(diesel::QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        let found: Exists = diesel::sql_query(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists",
        )
        .bind::<diesel::sql_types::Text, _>(database)
        .get_result(&mut conn)?;
        if !found.exists {
            diesel::sql_query(format!(
                "CREATE DATABASE \"{}\"",
                database.replace('"', "\"\"")
            ))
            .execute(&mut conn)?;
        }
        Ok(())
    }

    fn wait_ready(&mut self, log_start: u64) -> Result<(), ClusterError> {
        self.wait_ready_until(log_start, Duration::from_secs(60), None)
    }

    fn wait_ready_until(
        &mut self,
        log_start: u64,
        within: Duration,
        stopping: Option<&AtomicBool>,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + within;
        // A short connect timeout: a postmaster that hangs must not hang
        // the supervisor (and with it dnd's shutdown).
        let url = format!("{}&connect_timeout=2", self.url("postgres"));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return Err(self.start_error(log_start));
                }
            }
            if super::connect(&url).is_ok() {
                return Ok(());
            }
            let given_up = stopping.is_some_and(|s| s.load(Ordering::SeqCst));
            if Instant::now() > deadline || given_up {
                self.stop();
                return Err(self.start_error(log_start));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_error(&self, log_start: u64) -> ClusterError {
        let mut tail = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.seek(SeekFrom::Start(log_start));
            let _ = f.read_to_string(&mut tail);
        }
        ClusterError::Start {
            log: self.log_path.display().to_string(),
            tail,
        }
    }

    /// Fast shutdown: open sessions are ended, the data is flushed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!("PostgreSQL did not stop within 30 s; asking for an immediate shutdown");
        let _ = kill(pid, Signal::SIGQUIT);
        let _ = child.wait();
    }
}

/// How often the supervisor looks at the postmaster.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Tries to start it again after one crash, a second apart (the old
/// backends may still hold its shared memory for a moment).
const START_TRIES: u32 = 5;
/// More crashes than this within [`CRASH_WINDOW`] and dnd gives up.
const MAX_CRASHES: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(600);

/// An embedded cluster watched by a thread of its own: if the postmaster
/// exits while dnd serves (killed, out of memory), it is started again,
/// which runs PostgreSQL's crash recovery, and the pool reconnects by
/// itself. When it cannot be brought back, `on_fatal` is told why.
pub struct SupervisedCluster {
    cluster: Arc<Mutex<EmbeddedCluster>>,
    stopping: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
    /// The same across restarts, so are the URLs.
    socket_dir: PathBuf,
}

impl EmbeddedCluster {
    /// Hands the cluster to a supervisor thread (see [`SupervisedCluster`]).
    pub fn supervise(
        self,
        on_fatal: impl FnOnce(ClusterError) + Send + 'static,
    ) -> SupervisedCluster {
        let socket_dir = self.socket_dir.clone();
        let cluster = Arc::new(Mutex::new(self));
        let stopping = Arc::new(AtomicBool::new(false));
        let watcher = {
            let cluster = cluster.clone();
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("postgres-supervisor".into())
                .spawn(move || watch(&cluster, &stopping, on_fatal))
                .ok()
        };
        if watcher.is_none() {
            tracing::warn!("could not start the PostgreSQL supervisor thread; a crash of the embedded cluster will not be restarted");
        }
        SupervisedCluster {
            cluster,
            stopping,
            watcher,
            socket_dir,
        }
    }
}

impl SupervisedCluster {
    /// A libpq URL for one database of this cluster.
    pub fn url(&self, database: &str) -> String {
        socket_url(&self.socket_dir, database)
    }

    /// Stops the watching (not PostgreSQL) as soon as dnd begins to shut
    /// down, so nothing is restarted while it drains.
    pub fn stopper(&self) -> StopWatching {
        StopWatching(self.stopping.clone())
    }

    /// Stops watching, then stops PostgreSQL (fast shutdown).
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        match self.cluster.lock() {
            Ok(mut cluster) => cluster.stop(),
            Err(poisoned) => poisoned.into_inner().stop(),
        }
    }
}

/// See [`SupervisedCluster::stopper`].
pub struct StopWatching(Arc<AtomicBool>);

impl StopWatching {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Drop for SupervisedCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The supervisor's loop: returns when asked to stop, or after telling
/// `on_fatal` that PostgreSQL cannot be kept running.
fn watch(
    cluster: &Mutex<EmbeddedCluster>,
    stopping: &AtomicBool,
    on_fatal: impl FnOnce(ClusterError),
) {
    let mut crashes: std::collections::VecDeque<Instant> = Default::default();
    loop {
        std::thread::sleep(WATCH_EVERY);
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut cluster) = cluster.lock() else {
            return;
        };
        let exited = match cluster.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status,
            // Running, or being stopped by us.
            _ => continue,
        };
        cluster.child = None;
        crashes.push_back(Instant::now());
        while crashes
            .front()
            .is_some_and(|at| at.elapsed() > CRASH_WINDOW)
        {
            crashes.pop_front();
        }
        tracing::error!(
            status = %exited,
            log = %cluster.log_path.display(),
            "the embedded PostgreSQL stopped unexpectedly; starting it again (crash recovery)"
        );
        if crashes.len() > MAX_CRASHES {
            on_fatal(ClusterError::Crashing {
                crashes: crashes.len(),
                minutes: CRASH_WINDOW.as_secs() / 60,
                log: cluster.log_path.display().to_string(),
            });
            return;
        }
        let began = Instant::now();
        let mut last_error = None;
        for attempt in 1..=START_TRIES {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            match cluster.restart(stopping) {
                Ok(()) => {
                    last_error = None;
                    tracing::warn!(
                        took_ms = began.elapsed().as_millis() as u64,
                        attempt,
                        "the embedded PostgreSQL is running again"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(attempt, error = %e, "the embedded PostgreSQL did not start again");
                    last_error = Some(e);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        if let Some(e) = last_error {
            on_fatal(e);
            return;
        }
    }
}

impl Launch {
    /// Starts the postmaster; returns it and where its log starts, for
    /// the error if it does not come up.
    fn spawn(&self) -> Result<(Child, u64), ClusterError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io(format!("opening {}", self.log_path.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-k")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(SOCKET_PORT.to_string())
            .args(["-c", "listen_addresses="])
            .args(["-c", "unix_socket_permissions=0700"])
            .args(["-c", "max_connections=200"])
            // Consent events and contacts taking addresses serialise on one
            // advisory lock per address, held to the end of the transaction:
            // room for large batches (200 x 256 lock slots, a few MB).
            .args(["-c", "max_locks_per_transaction=256"]);
        if !self.durable {
            cmd.args(["-c", "fsync=off"])
                .args(["-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("duplicating the log file"))?)
            .stderr(log)
            // Its own process group: Ctrl-C reaches dnd, which then stops
            // PostgreSQL after the web server has drained.
            .process_group(0);
        if let Some(run_as) = self.run_as {
            cmd.uid(run_as.uid).gid(run_as.gid);
        }
        // If we die without stopping it (killed, panicked test binary), the
        // kernel asks PostgreSQL for a fast shutdown. Runs after the uid
        // change, which would otherwise clear the setting.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Some(Signal::SIGINT)).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().map_err(io("starting postgres"))?;
        Ok((child, log_start))
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A program of the PostgreSQL installation the embedded cluster runs from
/// (`pg_dump`, `pg_restore`, `createdb`, ...), so a tool always matches the
/// server's major version.
pub fn server_program(name: &str) -> Result<PathBuf, ClusterError> {
    let dir = find_binaries()?;
    let beside = dir.join(name);
    if beside.is_file() {
        return Ok(beside);
    }
    // A directory on PATH may hold links to the server alone
    // (/usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres): the
    // tools are beside what the link points to.
    let server = dir.join("postgres");
    let real = fs::canonicalize(&server).map_err(io(format!("resolving {}", server.display())))?;
    match real.parent().map(|d| d.join(name)) {
        Some(program) if program.is_file() => Ok(program),
        _ => Err(ClusterError::Io {
            what: format!("finding {name}"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("not beside {} nor {}", server.display(), real.display()),
            ),
        }),
    }
}

/// `initdb`/`postgres` on PATH, else the newest /usr/lib/postgresql/*/bin.
fn find_binaries() -> Result<PathBuf, ClusterError> {
    find_binaries_in(
        std::env::var_os("PATH").as_deref(),
        Path::new("/usr/lib/postgresql"),
    )
}

fn find_binaries_in(
    path_var: Option<&std::ffi::OsStr>,
    versions_root: &Path,
) -> Result<PathBuf, ClusterError> {
    let on_path = path_var
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in on_path {
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(ClusterError::NoBinaries)
}

/// Every ancestor must be searchable by the postgres user.
fn check_reachable(dir: &Path, run_as: RunAs) -> Result<(), ClusterError> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in dir.ancestors() {
        let meta = fs::metadata(ancestor).map_err(io(format!("reading {}", ancestor.display())))?;
        let mode = meta.mode();
        let searchable = mode & 0o001 != 0
            || (meta.uid() == run_as.uid && mode & 0o100 != 0)
            || (meta.gid() == run_as.gid && mode & 0o010 != 0);
        if !searchable {
            return Err(ClusterError::Unreachable {
                dir: dir.display().to_string(),
                blocker: ancestor.display().to_string(),
            });
        }
    }
    Ok(())
}

/// A directory only PostgreSQL's user may enter (initdb insists on 0700).
fn private_dir(dir: &Path, run_as: Option<RunAs>) -> Result<(), ClusterError> {
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    if let Some(run_as) = run_as {
        chown(dir, Some(run_as.uid), Some(run_as.gid)).map_err(io(format!(
            "handing {} to the postgres user",
            dir.display()
        )))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io(format!("making {} private", dir.display())))
}

fn initdb(
    bin: &Path,
    data_dir: &Path,
    run_as: Option<RunAs>,
    durable: bool,
) -> Result<(), ClusterError> {
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8"])
        .args(["--locale=C.UTF-8", "--no-instructions"])
        .stdin(Stdio::null());
    if !durable {
        cmd.arg("--no-sync");
    }
    if let Some(run_as) = run_as {
        cmd.uid(run_as.uid).gid(run_as.gid);
    }
    let out = cmd.output().map_err(io("running initdb"))?;
    if !out.status.success() {
        return Err(ClusterError::Initdb {
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(())
}

fn socket_url(socket_dir: &Path, database: &str) -> String {
    format!(
        "postgres://{SUPERUSER}@/{database}?host={}&port={SOCKET_PORT}",
        urlencoding::encode(&socket_dir.to_string_lossy())
    )
}

fn short_hash(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(path.as_os_str().as_encoded_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for name in ["initdb", "postgres"] {
            fs::write(dir.join(name), "").unwrap();
        }
    }

    #[test]
    fn prefers_path_then_the_newest_installed_version() {
        let root = std::env::temp_dir().join(format!("dnd-find-bin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let lib = root.join("lib");
        fake_bin(&lib.join("13/bin"));
        fake_bin(&lib.join("15/bin"));
        fs::create_dir_all(lib.join("notaversion")).unwrap();
        let empty_path = std::ffi::OsString::from(root.join("nothing-here"));
        assert_eq!(
            find_binaries_in(Some(&empty_path), &lib).unwrap(),
            lib.join("15/bin")
        );
        let on_path = root.join("custom/bin");
        fake_bin(&on_path);
        let path_var = std::env::join_paths([root.join("nothing-here"), on_path.clone()]).unwrap();
        assert_eq!(find_binaries_in(Some(&path_var), &lib).unwrap(), on_path);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_binaries_names_both_fixes() {
        let err = find_binaries_in(None, Path::new("/nonexistent/postgresql")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClusterError::NoBinaries));
        assert!(text.contains("apt-get install postgresql"), "{text}");
        assert!(text.contains("DATABASE_URL"), "{text}");
    }

    #[test]
    fn a_directory_closed_to_others_is_reported_with_its_fix() {
        let root = std::env::temp_dir().join(format!("dnd-reach-{}", std::process::id()));
        let closed = root.join("closed");
        fs::create_dir_all(closed.join("inner")).unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
        // A uid/gid that owns nothing here, like the postgres user would.
        let stranger = RunAs {
            uid: 65_000,
            gid: 65_000,
        };
        let err = check_reachable(&closed.join("inner"), stranger).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("chmod o+x {}", closed.display())),
            "{text}"
        );
        assert!(text.contains("DND_DATA_DIR"), "{text}");
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_reachable(&closed.join("inner"), stranger).is_ok());
        fs::remove_dir_all(&root).unwrap();
    }
}
