//! The command line: `dnd serve | migrate | demo | create-user`.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::db::cluster::{ClusterOptions, EmbeddedCluster};
use crate::db::{self, demo, locations, users};
use crate::domain::Role;
use crate::outbound::dispatcher::Dispatcher;
use crate::{password, Application};

/// How long the dispatcher may take to finish the message in hand at
/// shutdown (longer than a provider call's timeout).
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(40);

/// The database name inside the embedded cluster.
const EMBEDDED_DATABASE: &str = "dnd";

#[derive(Parser)]
#[command(
    name = "dnd",
    version,
    about = "Keeps contacts' Do Not Disturb wishes per channel, and blocks every outbound message on a channel where DND is on.",
    long_about = "Keeps contacts' Do Not Disturb wishes per channel, and blocks every outbound \
                  message on a channel where DND is on.\n\n\
                  Without DATABASE_URL, dnd runs its own private PostgreSQL cluster under \
                  DND_DATA_DIR (default ./var) from the machine's PostgreSQL binaries. \
                  Configuration comes from the environment: see the README."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default). With the embedded database it also
    /// migrates and seeds the demo tenant the first time.
    Serve {
        /// Seed the demo tenant even when DATABASE_URL is set.
        #[arg(long)]
        demo: bool,
    },
    /// Apply the database migrations that are not applied yet, then exit.
    Migrate,
    /// Seed the demo tenant (agency, two locations, users, contacts,
    /// integrations, API keys) unless it is there already.
    Demo,
    /// Create a user; the password is read from standard input (one line).
    CreateUser {
        /// The sign-in email.
        #[arg(long)]
        email: String,
        /// location, agency or support.
        #[arg(long)]
        role: String,
        /// The agency (name or id); required for agency users.
        #[arg(long)]
        agency: Option<String>,
        /// A location (name or id) a location user works in; repeat for several.
        #[arg(long = "location")]
        locations: Vec<String>,
        /// May manage the agency's users.
        #[arg(long)]
        admin: bool,
    },
    /// Re-encrypt every stored provider secret with a new key, given in
    /// DND_NEW_SECRET_KEY (the current one is DND_SECRET_KEY, or the
    /// generated DND_DATA_DIR/secret.key). All or nothing. With a generated
    /// key, the file is replaced; with DND_SECRET_KEY, set it to the new key
    /// before the next start.
    RotateSecretKey,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Cluster(#[from] db::cluster::ClusterError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    #[error(transparent)]
    Start(#[from] crate::StartError),
    #[error("{0}")]
    Usage(String),
    #[error("the web server stopped with an error: {0}")]
    Serve(std::io::Error),
}

impl From<diesel::result::Error> for CliError {
    fn from(e: diesel::result::Error) -> Self {
        CliError::Db(e.into())
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = Config::from_env()
        .map_err(CliError::from)
        .and_then(|config| {
            // Provider secrets are encrypted with it: installed before the
            // database is touched.
            crate::secrets::install(config.secret_key()?);
            Ok(config)
        })
        .and_then(
            |config| match cli.command.unwrap_or(Command::Serve { demo: false }) {
                Command::Serve { demo } => serve(&config, demo),
                Command::Migrate => migrate(&config),
                Command::Demo => seed_demo(&config),
                Command::CreateUser {
                    email,
                    role,
                    agency,
                    locations,
                    admin,
                } => create_user(&config, &email, &role, agency.as_deref(), &locations, admin),
                Command::RotateSecretKey => rotate_secret_key(&config),
            },
        );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dnd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The database to use: `DATABASE_URL`, or the embedded cluster (started
/// here, stopped when the returned guard is dropped). Migrations are applied.
struct Database {
    url: String,
    embedded: Option<EmbeddedCluster>,
}

fn open_database(config: &Config) -> Result<Database, CliError> {
    let database = match &config.database_url {
        Some(url) => Database {
            url: url.clone(),
            embedded: None,
        },
        None => {
            let cluster = EmbeddedCluster::start(&ClusterOptions {
                dir: config.data_dir.clone(),
                durable: true,
            })?;
            cluster.ensure_database(EMBEDDED_DATABASE)?;
            Database {
                url: cluster.url(EMBEDDED_DATABASE),
                embedded: Some(cluster),
            }
        }
    };
    let mut conn = db::connect(&database.url)?;
    let applied = db::migrate(&mut conn)?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "applied database migrations");
    }
    Ok(database)
}

fn serve(config: &Config, demo_requested: bool) -> Result<(), CliError> {
    let database = open_database(config)?;
    if database.embedded.is_some() || demo_requested {
        let mut conn = db::connect(&database.url)?;
        if demo::seed(&mut conn)? == demo::Seeded::Now {
            tracing::info!("seeded the demo tenant");
        }
    }
    let pool = db::build_pool(&database.url, config.pool_size, config.pool_timeout)?;
    let dispatcher = Dispatcher::new(
        pool.clone(),
        config.public_url.clone(),
        config.host_policy(),
    )
    .map_err(|e| CliError::Usage(format!("the provider HTTP client could not be built: {e}")))?;
    let notifier = crate::outbound::notify::Notifier::new(pool.clone(), config.host_policy())
        .map_err(|e| CliError::Usage(format!("the webhook HTTP client could not be built: {e}")))?;
    let app = Application::build(config, pool)?;
    let shown_host = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", display_bind(&config.bind, app.port())));
    println!("dnd is running at {shown_host}  (Ctrl-C stops it)");
    if database.embedded.is_some() || demo_requested {
        println!(
            "Demo sign-ins (password \"{}\"): {} (Downtown Dental), {} (all of Demo Agency), {} (read-only, all locations)",
            demo::PASSWORD,
            demo::LOCATION_USER,
            demo::AGENCY_USER,
            demo::SUPPORT_USER
        );
    }
    // The embedded cluster is watched while dnd serves: restarted after a
    // crash; if it cannot be, the server stops and dnd exits with the cause.
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel();
    let cluster = database.embedded.map(|c| {
        c.supervise(move |e| {
            let _ = fatal_tx.send(e);
        })
    });
    let server = app.handle();
    let stop_watching = cluster.as_ref().map(|c| c.stopper());
    let result = actix_web::rt::System::new().block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Queued messages go out from every server; they never collide.
        let dispatching = dispatcher.spawn(stop_rx.clone());
        // DND-change webhooks likewise (claims are leased, never doubled).
        let notifying = notifier.spawn(stop_rx);
        let fatal = async {
            match fatal_rx.await {
                Ok(e) => e,
                // No embedded cluster: nothing to watch.
                Err(_) => std::future::pending().await,
            }
        };
        let serving = app.run_until_stopped();
        tokio::pin!(serving);
        let outcome = tokio::select! {
            served = &mut serving => served.map_err(CliError::Serve),
            e = fatal => {
                tracing::error!(error = %e, "stopping: the database cannot be kept running");
                // Not gracefully: with no database, nothing in flight can
                // finish anyway.
                // The command goes at once; the server future carries it
                // out, so it is awaited before the acknowledgement.
                let stopped = server.stop(false);
                let _ = serving.await;
                stopped.await;
                Err(CliError::Cluster(e))
            }
        };
        // SIGTERM/Ctrl-C: the server has drained. Nothing is restarted
        // from now on; the background loops finish the message or delivery
        // in hand, then stop.
        if let Some(s) = &stop_watching {
            s.stop();
        }
        let _ = stop_tx.send(true);
        let stopped = tokio::time::timeout(SHUTDOWN_WAIT, async {
            let _ = dispatching.await;
            let _ = notifying.await;
        })
        .await;
        if stopped.is_err() {
            tracing::warn!("the dispatcher did not stop within {SHUTDOWN_WAIT:?}");
        }
        outcome
    });
    // The cluster stops here, after the server and the loops: a clean,
    // fast shutdown.
    drop(cluster);
    result
}

fn display_bind(bind: &str, port: u16) -> String {
    match bind.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{bind}:{port}"),
    }
}

fn migrate(config: &Config) -> Result<(), CliError> {
    let _database = open_database(config)?;
    println!("The database schema is up to date.");
    Ok(())
}

fn seed_demo(config: &Config) -> Result<(), CliError> {
    let database = open_database(config)?;
    let mut conn = db::connect(&database.url)?;
    match demo::seed(&mut conn)? {
        demo::Seeded::Now => println!("Seeded the demo tenant \"{}\".", demo::AGENCY),
        demo::Seeded::Already => println!(
            "The demo tenant \"{}\" is there already; nothing changed.",
            demo::AGENCY
        ),
    }
    Ok(())
}

fn create_user(
    config: &Config,
    email: &str,
    role: &str,
    agency: Option<&str>,
    location_refs: &[String],
    admin: bool,
) -> Result<(), CliError> {
    let role: Role = role.parse().map_err(CliError::Usage)?;
    let email =
        crate::domain::EmailAddress::parse(email).map_err(|e| CliError::Usage(e.to_string()))?;
    match role {
        Role::Agency if agency.is_none() => {
            return Err(CliError::Usage(
                "an agency user needs --agency NAME_OR_ID".into(),
            ))
        }
        Role::Location if location_refs.is_empty() => {
            return Err(CliError::Usage(
                "a location user needs at least one --location NAME_OR_ID".into(),
            ))
        }
        Role::Support if agency.is_some() || !location_refs.is_empty() => {
            return Err(CliError::Usage(
                "support users reach every location; give no --agency or --location".into(),
            ))
        }
        _ => {}
    }
    if std::io::stdin().is_terminal() {
        eprintln!(
            "Password for {email} (one line; it is not echoed only if your terminal hides it):"
        );
    }
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| CliError::Usage(format!("could not read the password from stdin: {e}")))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < password::MIN_LENGTH {
        return Err(CliError::Usage(format!(
            "the password must have at least {} characters",
            password::MIN_LENGTH
        )));
    }

    let database = open_database(config)?;
    let mut conn = db::connect(&database.url)?;
    let agency_id = match agency {
        None => None,
        Some(reference) => Some(match reference.parse::<i64>() {
            Ok(id) => id,
            Err(_) => locations::find_agency_by_name(&mut conn, reference)?
                .ok_or_else(|| CliError::Usage(format!("no agency named \"{reference}\"")))?,
        }),
    };
    let mut location_ids = Vec::new();
    for reference in location_refs {
        let location = match reference.parse::<i64>() {
            Ok(id) => locations::find(&mut conn, id)?,
            Err(_) => locations::find_by_name(&mut conn, reference)?,
        }
        .ok_or_else(|| CliError::Usage(format!("no location \"{reference}\"")))?;
        if agency_id.is_some_and(|a| a != location.agency_id) {
            return Err(CliError::Usage(format!(
                "location \"{}\" belongs to another agency",
                location.name
            )));
        }
        location_ids.push(location.id);
    }
    if users::find_by_email(&mut conn, email.as_str())?.is_some() {
        return Err(CliError::Usage(format!(
            "a user with email {email} exists already"
        )));
    }
    let hash = password::hash(password).map_err(|e| CliError::Usage(e.to_string()))?;
    let user = users::create(
        &mut conn,
        &users::NewUser {
            email: email.as_str(),
            password_hash: &hash,
            role: role.as_str(),
            agency_id,
            is_admin: admin,
        },
        &location_ids,
    )?;
    println!(
        "Created {} user {} (id {}).",
        role.as_str(),
        user.email,
        user.id
    );
    Ok(())
}

fn rotate_secret_key(config: &Config) -> Result<(), CliError> {
    let Some(new) = std::env::var("DND_NEW_SECRET_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Err(CliError::Usage(
            "set DND_NEW_SECRET_KEY to the new key (at least 32 random bytes, e.g. `openssl rand -hex 32`)"
                .into(),
        ));
    };
    let bytes = hex::decode(new.trim()).unwrap_or_else(|_| new.as_bytes().to_vec());
    if bytes.len() < 32 {
        return Err(CliError::Usage(
            "DND_NEW_SECRET_KEY is too short: use at least 32 random bytes".into(),
        ));
    }
    let key = crate::secrets::SecretKey::from_bytes(&bytes);
    let database = open_database(config)?;
    let mut conn = db::connect(&database.url)?;
    let n = db::integrations::rotate_key(&mut conn, &key)?;
    if config.secret_key.is_none() {
        let path = config.secret_key_file();
        crate::config::write_key_file(&path, &bytes).map_err(|e| {
            CliError::Usage(format!(
                "the secrets are re-encrypted with the new key, but {} could not be written ({e}): \
                 set DND_SECRET_KEY to the new key before starting dnd",
                path.display()
            ))
        })?;
        println!(
            "Re-encrypted {n} secrets; the new key is in {}.",
            path.display()
        );
    } else {
        println!("Re-encrypted {n} secrets. Set DND_SECRET_KEY to the new key before starting dnd again.");
    }
    Ok(())
}
