//! Provider secrets encrypted at rest: Twilio auth tokens, Mailgun keys,
//! Meta app secrets and access tokens are stored as
//! `v1:<base64(nonce || AES-256-GCM ciphertext)>`, bound to their column
//! (the column name is the associated data, so a value copied into another
//! column does not open). The key comes from `DND_SECRET_KEY`, or is
//! generated once into the data directory; it is installed once per
//! process, before the database is touched.

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::{Nullable, Text};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no secret key is installed (a startup step was skipped)")]
    NoKey,
    #[error(
        "a stored secret could not be decrypted: wrong DND_SECRET_KEY, or the value was altered"
    )]
    Undecryptable,
    #[error("encrypting a secret failed")]
    Encrypt,
}

/// A 256-bit key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// From configured bytes: 32 bytes are used as they are, anything
    /// else (at least 32 bytes of text) through SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        if bytes.len() == 32 {
            let mut key = [0u8; 32];
            key.copy_from_slice(bytes);
            return SecretKey(key);
        }
        use sha2::Digest;
        SecretKey(sha2::Sha256::digest(bytes).into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.0).into())
    }

    /// Encrypts a secret for a column.
    pub fn seal(&self, column: &str, plain: &str) -> Result<String, SecretError> {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Decrypts a stored value of a column. A value without the prefix was
    /// stored before encryption (the upgrade encrypts them): read as is.
    pub fn open(&self, column: &str, stored: &str) -> Result<String, SecretError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Undecryptable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

static KEY: OnceLock<SecretKey> = OnceLock::new();

/// Installs the process's key (the first one installed stays).
pub fn install(key: SecretKey) {
    let _ = KEY.set(key);
}

/// Whether a key is installed in this process.
pub fn is_installed() -> bool {
    KEY.get().is_some()
}

fn key() -> Result<&'static SecretKey, SecretError> {
    KEY.get().ok_or(SecretError::NoKey)
}

/// Whether a stored value is encrypted.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// Encrypts a value for a column with the installed key.
pub fn seal(column: &str, plain: &str) -> Result<String, SecretError> {
    key()?.seal(column, plain)
}

/// [`seal`] for an optional value, as a diesel error (for queries).
pub fn seal_opt(column: &str, plain: Option<&str>) -> diesel::QueryResult<Option<String>> {
    plain
        .map(|p| seal(column, p))
        .transpose()
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Decrypts a stored value of a column with the installed key.
pub fn open(column: &str, stored: &str) -> Result<String, SecretError> {
    key()?.open(column, stored)
}

/// Reads an encrypted nullable column into `Option<String>`. A value that
/// cannot be decrypted reads as absent, and says so in the log: the page
/// still renders, and the integration cannot use it (a send fails, a
/// webhook is refused) rather than the whole location breaking.
macro_rules! sealed_column {
    ($name:ident, $column:literal) => {
        #[derive(Debug, FromSqlRow)]
        pub struct $name(pub Option<String>);

        impl FromSql<Nullable<Text>, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let stored = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok($name(match open($column, &stored) {
                    Ok(plain) => Some(plain),
                    Err(e) => {
                        tracing::error!(column = $column, error = %e, "a stored secret is unreadable");
                        None
                    }
                }))
            }

            fn from_nullable_sql(bytes: Option<PgValue<'_>>) -> deserialize::Result<Self> {
                match bytes {
                    Some(b) => Self::from_sql(b),
                    None => Ok($name(None)),
                }
            }
        }

        impl From<$name> for Option<String> {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}

sealed_column!(SealedSecret, "integrations.secret");
sealed_column!(SealedApiKey, "integrations.api_key");
sealed_column!(SealedVerifyToken, "integrations.verify_token");

/// The columns that hold secrets, as (associated data, table, column);
/// each table is keyed by (location_id, id).
pub const SEALED_COLUMNS: [(&str, &str, &str); 4] = [
    ("integrations.secret", "integrations", "secret"),
    ("integrations.api_key", "integrations", "api_key"),
    ("integrations.verify_token", "integrations", "verify_token"),
    (
        "webhook_subscriptions.secret",
        "webhook_subscriptions",
        "secret",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_column() {
        let key = SecretKey::from_bytes(b"a test key that is long enough to use");
        let sealed = key.seal("integrations.secret", "auth-token-123").unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("auth-token-123"));
        assert_eq!(
            key.open("integrations.secret", &sealed).unwrap(),
            "auth-token-123"
        );
        assert_ne!(
            sealed,
            key.seal("integrations.secret", "auth-token-123").unwrap(),
            "fresh nonce"
        );
        assert_eq!(
            key.open("integrations.api_key", &sealed),
            Err(SecretError::Undecryptable),
            "another column's value does not open"
        );
        let other = SecretKey::from_bytes(b"another key that is long enough to use");
        assert_eq!(
            other.open("integrations.secret", &sealed),
            Err(SecretError::Undecryptable)
        );
        // One bit of the ciphertext flipped: refused.
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed.strip_prefix("v1:").unwrap())
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        assert_eq!(
            key.open("integrations.secret", &tampered),
            Err(SecretError::Undecryptable)
        );
        assert_eq!(
            key.open("integrations.secret", "legacy-plain").unwrap(),
            "legacy-plain"
        );
    }
}
