//! Configuration, from the environment only (see the README's table).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("could not keep a generated key in {path}: {source}")]
    SessionKeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Config {
    /// `DND_BIND`: address the web server listens on.
    pub bind: String,
    /// `DATABASE_URL`: an existing server; unset means the embedded cluster.
    pub database_url: Option<String>,
    /// `DND_DATA_DIR`: the embedded cluster and the generated session key.
    pub data_dir: PathBuf,
    /// `DND_SESSION_KEY`: signs and encrypts session cookies.
    pub session_key: Option<String>,
    /// `DND_SECRET_KEY`: encrypts provider secrets at rest.
    pub secret_key: Option<String>,
    /// `DND_PUBLIC_URL`: the URL people and providers reach us at.
    pub public_url: Option<String>,
    /// `DND_POOL_SIZE`: database connections per server.
    pub pool_size: u32,
    /// `DND_POOL_TIMEOUT_SECS`: how long a request waits for a connection.
    pub pool_timeout: Duration,
    /// `DND_PROVIDER_HOSTS`: hosts besides the providers' own that provider
    /// calls may go to (a proxy, a test double), comma-separated.
    pub provider_hosts: Vec<String>,
    /// `DND_ALLOW_PRIVATE_URLS`: whether provider calls may go to loopback,
    /// link-local and private addresses (a local test server).
    pub allow_private_urls: bool,
    /// `DND_WEBHOOK_HOSTS`: when set, the only hosts DND-change webhooks
    /// are sent to (comma-separated); when unset, any public host.
    pub webhook_hosts: Vec<String>,
    /// `DND_METRICS_TOKEN`: when set, `/metrics` also answers requests
    /// bearing it (else only direct loopback requests).
    pub metrics_token: Option<String>,
    /// `DND_API_RATE` (requests a second per key, after a burst of twice
    /// that) and `DND_API_IN_FLIGHT` (requests per key at once).
    pub api_limits: crate::web::limits::KeyLimitConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may carry a password and the session key is a
        // secret: neither is ever printed.
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("session_key", &self.session_key.as_ref().map(|_| "<set>"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .field("public_url", &self.public_url)
            .field("pool_size", &self.pool_size)
            .field("pool_timeout", &self.pool_timeout)
            .field("provider_hosts", &self.provider_hosts)
            .field("allow_private_urls", &self.allow_private_urls)
            .field("webhook_hosts", &self.webhook_hosts)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            value,
            why: "expected a whole number".into(),
        }),
    }
}

/// A comma-separated list (empty when unset).
fn list(name: &str) -> Vec<String> {
    var(name)
        .map(|v| {
            v.split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn flag(name: &'static str) -> Result<bool, ConfigError> {
    match var(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(value) => Err(ConfigError::Invalid {
            name,
            value,
            why: "expected true or false".into(),
        }),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_url = var("DND_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    name: "DND_PUBLIC_URL",
                    value: url.clone(),
                    why: "expected an absolute http:// or https:// URL".into(),
                });
            }
        }
        let pool_size: u32 = number("DND_POOL_SIZE", 10)?;
        if pool_size < 2 {
            return Err(ConfigError::Invalid {
                name: "DND_POOL_SIZE",
                value: pool_size.to_string(),
                why: "at least 2 connections are needed".into(),
            });
        }
        Ok(Config {
            bind: var("DND_BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: var("DATABASE_URL"),
            data_dir: var("DND_DATA_DIR").unwrap_or_else(|| "./var".into()).into(),
            session_key: var("DND_SESSION_KEY"),
            secret_key: var("DND_SECRET_KEY"),
            public_url,
            pool_size,
            pool_timeout: Duration::from_secs(number("DND_POOL_TIMEOUT_SECS", 5)?),
            provider_hosts: list("DND_PROVIDER_HOSTS"),
            allow_private_urls: flag("DND_ALLOW_PRIVATE_URLS")?,
            webhook_hosts: list("DND_WEBHOOK_HOSTS"),
            metrics_token: var("DND_METRICS_TOKEN").filter(|t| !t.trim().is_empty()),
            api_limits: {
                let rate: u32 = number("DND_API_RATE", 100)?;
                crate::web::limits::KeyLimitConfig {
                    per_second: f64::from(rate.max(1)),
                    burst: f64::from(rate.max(1)) * 2.0,
                    in_flight: number("DND_API_IN_FLIGHT", 16)?,
                }
            },
        })
    }

    /// Where provider calls (and DND-change webhooks) may go.
    pub fn host_policy(&self) -> crate::outbound::hosts::HostPolicy {
        crate::outbound::hosts::HostPolicy::new(&self.provider_hosts, self.allow_private_urls)
            .with_webhook_hosts(&self.webhook_hosts)
    }

    /// Whether cookies must only travel over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The session key bytes: `DND_SESSION_KEY` (at least 32 bytes, hex or
    /// text) or, when unset, a random key generated once and kept in the data
    /// directory, so sessions survive a restart.
    pub fn session_key_bytes(&self) -> Result<Vec<u8>, ConfigError> {
        key_bytes(
            "DND_SESSION_KEY",
            self.session_key.as_deref(),
            &self.data_dir,
            "session.key",
        )
    }

    /// The key provider secrets are encrypted with: `DND_SECRET_KEY` (at
    /// least 32 bytes, hex or text) or a random key generated once into
    /// `DND_DATA_DIR/secret.key`.
    pub fn secret_key(&self) -> Result<crate::secrets::SecretKey, ConfigError> {
        key_bytes(
            "DND_SECRET_KEY",
            self.secret_key.as_deref(),
            &self.data_dir,
            "secret.key",
        )
        .map(|b| crate::secrets::SecretKey::from_bytes(&b))
    }

    /// Where a generated secret key is kept.
    pub fn secret_key_file(&self) -> PathBuf {
        self.data_dir.join("secret.key")
    }
}

/// A key from its variable, else from its file in the data directory,
/// else generated into that file (mode 0600).
fn key_bytes(
    name: &'static str,
    configured: Option<&str>,
    data_dir: &std::path::Path,
    file: &str,
) -> Result<Vec<u8>, ConfigError> {
    if let Some(key) = configured {
        let bytes = hex::decode(key.trim()).unwrap_or_else(|_| key.as_bytes().to_vec());
        if bytes.len() < 32 {
            return Err(ConfigError::Invalid {
                name,
                value: "<hidden>".into(),
                why: "use at least 32 random bytes (e.g. `openssl rand -hex 64`)".into(),
            });
        }
        return Ok(bytes);
    }
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return match hex::decode(text.trim()) {
                Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
                // Never replaced: what it encrypted would be lost with it.
                _ => Err(ConfigError::Invalid {
                    name,
                    value: path.display().to_string(),
                    why: "the key file is damaged (expected at least 64 hex characters): restore \
                          it from a backup, or set the variable"
                        .into(),
                }),
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ConfigError::SessionKeyFile {
                path: path.display().to_string(),
                source,
            })
        }
    }
    use rand::RngCore;
    let mut bytes = vec![0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    write_key_file(&path, &bytes).map_err(|source| ConfigError::SessionKeyFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(bytes)
}

/// Writes a key file readable by its owner only.
/// Written whole or not at all (a temporary file renamed over it), so a
/// crash never leaves half a key.
pub fn write_key_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("new");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(hex::encode(bytes).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}
