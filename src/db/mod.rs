//! Everything that talks to PostgreSQL: the pool and its blocking helper,
//! the embedded cluster, migrations, and the queries per table.

pub mod api_keys;
pub mod bulk;
pub mod cluster;
pub mod contact_page;
pub mod contacts;
pub mod dashboard;
pub mod data_fixes;
pub mod demo;
pub mod dnd;
pub mod events;
pub mod export;
pub mod imports;
pub mod inbound;
pub mod integrations;
pub mod list_page;
pub mod locations;
pub mod optin;
pub mod outbound;
pub mod overview;
mod prepared;
pub mod schema;
pub mod sql_types;
pub mod subscriptions;
pub mod users;
pub mod webhooks;
pub mod who;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Semaphore;

pub type DbConn = PooledConnection<Manager>;

/// A pooled connection, and when it last did its work without an error.
pub struct PooledPg {
    conn: PgConnection,
    known_good: Option<Instant>,
}

impl Deref for PooledPg {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for PooledPg {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// How long a connection that just worked is trusted without a ping.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// diesel's connection manager, but a connection that worked a moment ago
/// is handed out without a `SELECT 1` first: under load that ping was one
/// round trip in every six of a webhook. A connection that failed, or sat
/// idle, is still pinged, so after a database restart a dead connection is
/// replaced rather than handed out again.
///
/// Every pooled connection waits at most `lock_timeout` for a row or
/// advisory lock: a transaction stuck holding a contact's lock makes the
/// requests behind it answer 503 after that long, instead of each one
/// holding a connection until the pool is gone.
pub struct Manager {
    inner: ConnectionManager<PgConnection>,
    lock_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = PooledPg;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PooledPg, Self::Error> {
        use diesel::connection::SimpleConnection;
        let mut conn = self.inner.connect()?;
        prepare_session(&mut conn).map_err(diesel::r2d2::Error::QueryError)?;
        conn.batch_execute(&format!(
            "SET lock_timeout = {}",
            self.lock_timeout.as_millis().max(1)
        ))
        .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(PooledPg {
            conn,
            known_good: Some(Instant::now()),
        })
    }

    fn is_valid(&self, conn: &mut PooledPg) -> Result<(), Self::Error> {
        if conn.known_good.is_some_and(|at| at.elapsed() < TRUSTED_FOR) {
            return Ok(());
        }
        conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)?;
        conn.known_good = Some(Instant::now());
        Ok(())
    }

    fn has_broken(&self, conn: &mut PooledPg) -> bool {
        self.inner.has_broken(&mut conn.conn)
    }
}

/// The connection pool, and a first-come-first-served queue in front of
/// it: requests wait for a connection in async land, in arrival order,
/// instead of parking blocking threads on the pool (whose wake-ups are in
/// no particular order, which made the slowest requests very slow).
#[derive(Clone)]
pub struct DbPool {
    inner: Pool<Manager>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    size: u32,
    /// One large job (a bulk change, an import) at a time, so they never
    /// take the connections webhooks and pages need.
    wide: Arc<Semaphore>,
    /// The contact list's estimates of this database's locations.
    estimates: Arc<contacts::Estimates>,
}

impl DbPool {
    /// A connection now, blocking (for start-up, the CLI and tests).
    pub fn get(&self) -> Result<DbConn, diesel::r2d2::PoolError> {
        self.inner.get()
    }

    /// The estimates of how many contacts each location holds, kept for
    /// this database (see [`contacts::Estimates`]).
    pub fn estimates(&self) -> Arc<contacts::Estimates> {
        self.estimates.clone()
    }
}

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("no database connection became free within {0:?}")]
    Busy(Duration),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("could not connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("the database worker thread was cancelled")]
    Cancelled,
    #[error("a stored invariant does not hold: {0}")]
    Invariant(String),
    /// The database is not reachable; the words of the original error (a
    /// batch that failed this way answers each of its requests with one).
    #[error("{0}")]
    Unavailable(String),
    /// Any other error, in the words of the original (as above).
    #[error("{0}")]
    Replicated(String),
}

impl DbError {
    /// Whether the error means "the database is not there right now" (so a
    /// caller should answer 503 and let the client retry) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        match self {
            DbError::Pool(_)
            | DbError::Busy(_)
            | DbError::Connect(_)
            | DbError::Cancelled
            | DbError::Unavailable(_) => true,
            DbError::Query(Error::DatabaseError(
                Kind::ClosedConnection | Kind::UnableToSendCommand,
                _,
            )) => true,
            DbError::Query(Error::BrokenTransactionManager) => true,
            // The server going away mid-query ("terminating connection due
            // to administrator command", "server closed the connection").
            DbError::Query(Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("terminating connection")
                    || m.contains("closed the connection")
                    || m.contains("shutting down")
                    // `lock_timeout` (see `Manager`): a row held by a
                    // stuck transaction; the client may retry.
                    || m.contains("lock timeout")
            }
            _ => false,
        }
    }
}

impl DbError {
    /// PostgreSQL gave up waiting for a lock another transaction holds
    /// (`lock_timeout`): about one row or address, not the database.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("lock timeout"))
    }

    /// An error that says the same, for each of several requests that
    /// failed together (the original cannot be cloned).
    pub fn replicate(&self) -> DbError {
        if self.is_unavailable() {
            DbError::Unavailable(self.to_string())
        } else {
            DbError::Replicated(self.to_string())
        }
    }
}

/// Builds the pool once, at start-up. At least two connections, so a request
/// holding one never starves another into a deadlock; a short checkout
/// timeout, so a database outage answers 503 quickly instead of hanging.
pub fn build_pool(url: &str, size: u32, timeout: Duration) -> Result<DbPool, DbError> {
    let size = size.max(2);
    let manager = Manager {
        inner: ConnectionManager::<PgConnection>::new(url),
        // The same budget as waiting for a connection: either way the
        // request answers 503 after `timeout`.
        lock_timeout: timeout,
    };
    let inner = Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(timeout)
        .build(manager)?;
    Ok(DbPool {
        inner,
        permits: Arc::new(Semaphore::new(size as usize)),
        timeout,
        size,
        wide: Arc::new(Semaphore::new(1)),
        estimates: Arc::default(),
    })
}

/// Runs blocking diesel work on actix's blocking thread pool, checking the
/// connection out *inside* that thread so no async worker ever waits on the
/// pool or on PostgreSQL.
pub async fn run<T, E, F>(pool: &DbPool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    run_reporting(pool, move |conn| {
        let result = work(conn);
        let worked = result.is_ok();
        (result, worked)
    })
    .await
    .and_then(|result| result)
}

/// [`run`] with up to `n` connections at once (each counted as one of the
/// pool's permits), for one large piece of work that spreads over them.
/// One such job runs at a time, on at most a quarter of the pool, so the
/// rest stays free for webhooks, pages and the API.
pub async fn run_wide<T, E, F>(pool: &DbPool, n: u32, work: F) -> Result<T, E>
where
    F: FnOnce(Vec<&mut PgConnection>) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let n = n.clamp(1, (pool.size / 4).max(1));
    let wide = tokio::time::timeout(pool.timeout, pool.wide.clone().acquire_owned())
        .await
        .map_err(|_| E::from(DbError::Busy(pool.timeout)))?
        .map_err(|_| E::from(DbError::Cancelled))?;
    let permit = tokio::time::timeout(pool.timeout, pool.permits.clone().acquire_many_owned(n))
        .await
        .map_err(|_| E::from(DbError::Busy(pool.timeout)))?
        .map_err(|_| E::from(DbError::Cancelled))?;
    let inner = pool.inner.clone();
    let span = tracing::Span::current();
    actix_web::web::block(move || {
        let _entered = span.enter();
        let _permit = permit;
        let _wide = wide;
        let mut conns = Vec::with_capacity(n as usize);
        for _ in 0..n {
            conns.push(inner.get().map_err(DbError::from)?);
        }
        let result = work(conns.iter_mut().map(|c| &mut ***c).collect());
        let worked = result.is_ok();
        for conn in &mut conns {
            conn.known_good = worked.then(Instant::now);
        }
        result
    })
    .await
    .map_err(|_| E::from(DbError::Cancelled))?
}

/// [`run`] for work that answers several requests at once and so cannot
/// fail as a whole: it says itself whether the connection worked.
pub async fn run_reporting<T, E, F>(pool: &DbPool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> (T, bool) + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    // One permit per connection, handed out in arrival order.
    let permit = tokio::time::timeout(pool.timeout, pool.permits.clone().acquire_owned())
        .await
        .map_err(|_| E::from(DbError::Busy(pool.timeout)))?
        .map_err(|_| E::from(DbError::Cancelled))?;
    let inner = pool.inner.clone();
    // The request's span (its id) goes along to the blocking thread.
    let span = tracing::Span::current();
    actix_web::web::block(move || {
        let _entered = span.enter();
        let _permit = permit;
        let mut conn = inner.get().map_err(DbError::from)?;
        let (result, worked) = work(&mut conn);
        // After an error, the next checkout pings first: the error may have
        // been the database going away.
        conn.known_good = worked.then(Instant::now);
        Ok(result)
    })
    .await
    .map_err(|_| E::from(DbError::Cancelled))?
}

/// `SELECT 1` through the pool, answering within `within` whatever the
/// pool is doing: a health check must say "unavailable" quickly while
/// requests wait for connections or the database is down.
pub async fn ping_within(pool: &DbPool, within: Duration) -> Result<(), DbError> {
    let started = Instant::now();
    let attempt = async {
        let permit = pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DbError::Cancelled)?;
        let inner = pool.inner.clone();
        let left = within
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(10));
        actix_web::web::block(move || {
            let _permit = permit;
            let mut conn = inner.get_timeout(left)?;
            let pinged = ping(&mut conn);
            conn.known_good = pinged.is_ok().then(Instant::now);
            pinged
        })
        .await
        .map_err(|_| DbError::Cancelled)?
    };
    tokio::time::timeout(within, attempt)
        .await
        .map_err(|_| DbError::Busy(within))?
}

/// Applies every embedded migration not yet applied, then the data fixes
/// not done yet (see `data_fixes`); the names of what it applied.
pub fn migrate(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    let mut done: Vec<String> = applied.iter().map(|v| v.to_string()).collect();
    done.extend(data_fixes::run(conn)?);
    // Secrets written before they were encrypted are encrypted now (every
    // start: it finds nothing once done). Without a key (a benchmark's own
    // database) there is nothing to encrypt with.
    if crate::secrets::is_installed() {
        let sealed = integrations::seal_plain_secrets(conn)?;
        if sealed > 0 {
            done.push(format!("encrypted {sealed} stored secrets"));
        }
    }
    Ok(done)
}

/// Reverts every applied migration, newest first (used by the up/down/up test
/// and by anyone who needs to take the schema away cleanly).
pub fn revert_all(conn: &mut PgConnection) -> Result<(), DbError> {
    conn.revert_all_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(())
}

/// Connects once, outside the pool (for the CLI and start-up).
pub fn connect(url: &str) -> Result<PgConnection, DbError> {
    use diesel::Connection;
    let mut conn = PgConnection::establish(url)?;
    prepare_session(&mut conn)?;
    Ok(conn)
}

/// Session settings for every connection.
///
/// - No JIT: the app's statements are short, and for the few large ones (a
///   100,000-recipient bulk send) compiling them took longer (about 90 ms)
///   than it saved.
/// - Every statement is planned for its values (statements stay prepared,
///   only the plan is made each time): a plan made once for "any location"
///   or while a table was still empty does not fit a location of a million
///   contacts or a table that has grown since. Seen: a plan cached while the
///   address reasons were few scanned the whole location for each lookup
///   (4 ms instead of 0.02 ms) once they were many.
fn prepare_session(conn: &mut PgConnection) -> Result<(), diesel::result::Error> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SET jit = off")
}

/// Inside a large job's transaction (a bulk send, a bulk-DND or import
/// chunk): wait for row and address locks as long as they are held, not
/// the pool's `lock_timeout` (see `Manager`), which is for requests. A
/// job of 100,000 contacts would otherwise fail on one busy row.
pub fn wait_for_locks(conn: &mut PgConnection) -> Result<(), diesel::result::Error> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SET LOCAL lock_timeout = 0")
}

/// `SELECT 1`, for the health check.
pub fn ping(conn: &mut PgConnection) -> Result<(), DbError> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}
