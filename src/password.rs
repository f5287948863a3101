//! Password hashing: argon2id with OWASP's minimum parameters (19 MiB, two
//! passes, one lane). Callers run these on a blocking thread: a hash takes
//! tens of milliseconds on purpose.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
#[error("could not hash the password: {0}")]
pub struct HashError(String);

pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether the password matches the stored hash. A malformed stored hash
/// matches nothing.
///
/// The 19 MiB argon2 works in is taken from a small shared stock and given
/// back, instead of being allocated and freed by whichever thread runs the
/// check: freed by many threads, each buffer stayed in that thread's
/// allocator arena, and a sign-in flood grew the server past 800 MiB.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut memory = Memory::take(params.block_count());
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut memory.blocks[..],
    );
    drop(memory);
    hashed.is_ok() && same_bytes(&out, expected.as_bytes())
}

/// Buffers argon2 works in, kept for the next check: as many as checks ran
/// at once (the sign-in queue allows one per core), at most `KEPT`.
struct Memory {
    blocks: Vec<argon2::Block>,
}

static SPARE: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
const KEPT: usize = 8;

impl Memory {
    fn take(count: usize) -> Self {
        let spare = SPARE.lock().ok().and_then(|mut s| {
            let at = s.iter().position(|b| b.len() == count)?;
            Some(s.swap_remove(at))
        });
        Memory {
            blocks: spare.unwrap_or_else(|| vec![argon2::Block::default(); count]),
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Ok(mut spare) = SPARE.lock() {
            if spare.len() < KEPT {
                spare.push(std::mem::take(&mut self.blocks));
            }
        }
    }
}

/// Compares in time that depends only on the length.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A hash of a password nobody has, verified when the email is unknown so
/// that "no such user" takes as long as "wrong password".
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not a password anyone has").unwrap_or_default())
}

/// The shortest password `create-user` accepts.
pub const MIN_LENGTH: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_right_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse battery!", &h));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn verifies_hashes_made_with_other_parameters_too() {
        // Stored before a change of parameters (argon2's own verifier
        // agrees), and argon2i.
        for (algorithm, m, t) in [
            (Algorithm::Argon2id, 8 * 1024, 1),
            (Algorithm::Argon2i, 4096, 3),
        ] {
            let argon = Argon2::new(
                algorithm,
                Version::V0x13,
                Params::new(m, t, 1, None).unwrap(),
            );
            let salt = SaltString::generate(&mut OsRng);
            let h = argon
                .hash_password(b"older password", &salt)
                .unwrap()
                .to_string();
            assert!(verify("older password", &h), "{h}");
            assert!(!verify("older passwore", &h), "{h}");
        }
        // Checked again and again, the stock of buffers does not grow.
        let h = hash("correct horse battery").unwrap();
        for _ in 0..20 {
            assert!(verify("correct horse battery", &h));
        }
        assert!(SPARE.lock().unwrap().len() <= KEPT);
    }
}
