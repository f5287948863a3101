use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::locations::Location;
use super::schema::{api_keys, locations};

/// Only the SHA-256 of a key is stored: a leaked database does not leak
/// working keys. Keys are long random strings, so a fast hash is enough.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A live key and the location it belongs to.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub location: Location,
    pub key_id: i64,
    pub key_name: String,
}

/// The location a live (not revoked) key belongs to; marks the key used.
pub fn authenticate(conn: &mut PgConnection, key: &str) -> QueryResult<Option<KeyOwner>> {
    let hash = hash_key(key);
    let found: Option<(i64, i64, String)> = api_keys::table
        .filter(api_keys::key_sha256.eq(&hash))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::location_id, api_keys::id, api_keys::name))
        .first(conn)
        .optional()?;
    let Some((location_id, key_id, key_name)) = found else {
        return Ok(None);
    };
    diesel::update(api_keys::table.find((location_id, key_id)))
        .set(api_keys::last_used_at.eq(diesel::dsl::now))
        .execute(conn)?;
    let location = locations::table
        .find(location_id)
        .select(Location::as_select())
        .first(conn)
        .optional()?;
    Ok(location.map(|location| KeyOwner {
        location,
        key_id,
        key_name,
    }))
}

pub fn create(
    conn: &mut PgConnection,
    location_id: i64,
    name: &str,
    key: &str,
) -> QueryResult<i64> {
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::location_id.eq(location_id),
            api_keys::name.eq(name),
            api_keys::key_sha256.eq(hash_key(key)),
        ))
        .returning(api_keys::id)
        .get_result(conn)
}

pub fn revoke(conn: &mut PgConnection, location_id: i64, key: &str) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::location_id.eq(location_id))
            .filter(api_keys::key_sha256.eq(hash_key(key))),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
}

/// A key as its location's page lists it (never the key itself).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A location's keys, live ones first, newest first.
pub fn list(conn: &mut PgConnection, location_id: i64) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::location_id.eq(location_id))
        .order_by((api_keys::revoked_at.is_not_null(), api_keys::id.desc()))
        .select(ApiKeyRow::as_select())
        .load(conn)
}

/// Revokes one key of a location (0 when it has no such live key).
pub fn revoke_by_id(conn: &mut PgConnection, location_id: i64, key_id: i64) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::location_id.eq(location_id))
            .filter(api_keys::id.eq(key_id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
}

/// A new key: `dnd_` and 64 hex characters of randomness.
pub fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("dnd_{}", hex::encode(bytes))
}
