use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::integrations;
use crate::domain::{Channel, IntegrationStatus, TransportKind};
use crate::secrets::{seal_opt, SealedApiKey, SealedSecret, SealedVerifyToken};

const SECRET: &str = "integrations.secret";
const API_KEY: &str = "integrations.api_key";
const VERIFY_TOKEN: &str = "integrations.verify_token";

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = integrations)]
pub struct Integration {
    pub location_id: i64,
    pub id: i64,
    pub channel: Channel,
    pub provider: String,
    pub status: IntegrationStatus,
    pub account: Option<String>,
    /// Signs the provider's webhooks. Deliberately not `Serialize`, and
    /// redacted by `Debug`: it never reaches a log line or a page.
    /// Encrypted at rest (decrypted as it is read).
    #[diesel(deserialize_as = SealedSecret)]
    pub secret: Option<String>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Meta's webhook handshake token (encrypted at rest).
    #[diesel(deserialize_as = SealedVerifyToken)]
    pub verify_token: Option<String>,
    pub transport: TransportKind,
    pub api_base_url: Option<String>,
    /// Mailgun's sending key, Meta's access token; redacted by `Debug` like
    /// the secret, encrypted at rest.
    #[diesel(deserialize_as = SealedApiKey)]
    pub api_key: Option<String>,
    pub sender: Option<String>,
    /// What the last failed test found, and when.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("location_id", &self.location_id)
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("provider", &self.provider)
            .field("status", &self.status)
            .field("account", &self.account)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .field("api_base_url", &self.api_base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

pub struct NewIntegration<'a> {
    pub channel: Channel,
    pub provider: &'a str,
    pub status: IntegrationStatus,
    pub account: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub verify_token: Option<&'a str>,
}

pub fn list(conn: &mut PgConnection, location_id: i64) -> QueryResult<Vec<Integration>> {
    integrations::table
        .filter(integrations::location_id.eq(location_id))
        .select(Integration::as_select())
        .order_by(integrations::id)
        .load(conn)
}

pub fn create(
    conn: &mut PgConnection,
    location_id: i64,
    new: &NewIntegration<'_>,
) -> QueryResult<Integration> {
    let connected = new.status == IntegrationStatus::Connected;
    let secret = seal_opt(SECRET, new.secret)?;
    let verify_token = seal_opt(VERIFY_TOKEN, new.verify_token)?;
    diesel::insert_into(integrations::table)
        .values((
            integrations::location_id.eq(location_id),
            integrations::channel.eq(new.channel),
            integrations::provider.eq(new.provider),
            integrations::status.eq(new.status),
            integrations::account.eq(new.account),
            integrations::secret.eq(secret),
            integrations::verify_token.eq(verify_token),
            integrations::connected_at.eq(connected.then(Utc::now)),
            integrations::disconnected_at.eq((!connected).then(Utc::now)),
        ))
        .returning(Integration::as_returning())
        .get_result(conn)
}

/// The location's integration for a channel, whatever its status (a
/// disconnected integration's webhooks are still honoured).
pub fn find(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
) -> QueryResult<Option<Integration>> {
    integrations::table
        .filter(integrations::location_id.eq(location_id))
        .filter(integrations::channel.eq(channel))
        .select(Integration::as_select())
        .first(conn)
        .optional()
}

/// Replaces an integration's webhook secret (after the provider rotated it).
pub fn rotate_secret(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    secret: &str,
) -> QueryResult<usize> {
    diesel::update(
        integrations::table
            .filter(integrations::location_id.eq(location_id))
            .filter(integrations::channel.eq(channel)),
    )
    .set(integrations::secret.eq(seal_opt(SECRET, Some(secret))?))
    .execute(conn)
}

/// Points an integration at a provider's sending API (or back to `log`).
pub fn set_transport(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    transport: TransportKind,
    api_base_url: Option<&str>,
    api_key: Option<&str>,
    sender: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(
        integrations::table
            .filter(integrations::location_id.eq(location_id))
            .filter(integrations::channel.eq(channel)),
    )
    .set((
        integrations::transport.eq(transport),
        integrations::api_base_url.eq(api_base_url),
        integrations::api_key.eq(seal_opt(API_KEY, api_key)?),
        integrations::sender.eq(sender),
    ))
    .execute(conn)
}

/// Connects a channel (a new integration, or the existing one updated).
/// A secret given as `None` keeps the stored one. SMS and email then send
/// through the provider's API (the settings page can set them back to
/// `log`); other channels' sending is not ours yet.
pub fn connect(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    c: &crate::domain::integration::Connection,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let transport = match channel {
        Channel::Sms => TransportKind::Twilio,
        Channel::Email => TransportKind::Mailgun,
        Channel::Whatsapp | Channel::Facebook => TransportKind::Meta,
        _ => TransportKind::Log,
    };
    conn.transaction(|conn| {
        let current = find(conn, location_id, channel)?;
        let sealed = |column: &str, new: &Option<String>, old: Option<&Option<String>>| {
            seal_opt(column, new.as_deref().or(old.and_then(|o| o.as_deref())))
        };
        let Some(current) = current else {
            diesel::insert_into(integrations::table)
                .values((
                    integrations::location_id.eq(location_id),
                    integrations::channel.eq(channel),
                    integrations::provider.eq(c.provider),
                    integrations::status.eq(IntegrationStatus::Connected),
                    integrations::account.eq(&c.account),
                    integrations::secret.eq(sealed(SECRET, &c.secret, None)?),
                    integrations::verify_token.eq(sealed(VERIFY_TOKEN, &c.verify_token, None)?),
                    integrations::api_key.eq(sealed(API_KEY, &c.api_key, None)?),
                    integrations::sender.eq(&c.sender),
                    integrations::api_base_url.eq(&c.api_base_url),
                    integrations::transport.eq(transport),
                    integrations::connected_at.eq(now),
                ))
                .execute(conn)?;
            return Ok(());
        };
        diesel::update(integrations::table.find((location_id, current.id)))
            .set((
                integrations::provider.eq(c.provider),
                integrations::status.eq(IntegrationStatus::Connected),
                integrations::account.eq(&c.account),
                integrations::secret.eq(sealed(SECRET, &c.secret, Some(&current.secret))?),
                integrations::verify_token.eq(sealed(
                    VERIFY_TOKEN,
                    &c.verify_token,
                    Some(&current.verify_token),
                )?),
                integrations::api_key.eq(sealed(API_KEY, &c.api_key, Some(&current.api_key))?),
                integrations::sender.eq(c.sender.as_ref().or(current.sender.as_ref())),
                integrations::api_base_url
                    .eq(c.api_base_url.as_ref().or(current.api_base_url.as_ref())),
                integrations::transport.eq(transport),
                integrations::connected_at.eq(now),
                integrations::last_error.eq(None::<String>),
                integrations::last_error_at.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Disconnects a channel. Its credentials are kept (reconnecting can keep
/// them), and no contact's DND changes: only what the contact page offers.
pub fn disconnect(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        integrations::table
            .filter(integrations::location_id.eq(location_id))
            .filter(integrations::channel.eq(channel)),
    )
    .set((
        integrations::status.eq(IntegrationStatus::Disconnected),
        integrations::disconnected_at.eq(now),
    ))
    .execute(conn)
}

/// Records a test against the provider: a pass connects an integration in
/// `error` (or keeps it connected), a failure puts a connected one in
/// `error` with what was found. A disconnected integration stays
/// disconnected either way (a disconnect is a decision; a test does not
/// undo it, even one that was running when it was made); its last error is
/// still kept.
pub fn record_test(
    conn: &mut PgConnection,
    location_id: i64,
    channel: Channel,
    outcome: Result<(), &str>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let target = || {
        integrations::table
            .filter(integrations::location_id.eq(location_id))
            .filter(integrations::channel.eq(channel))
    };
    let live = || target().filter(integrations::status.ne(IntegrationStatus::Disconnected));
    match outcome {
        Ok(()) => {
            diesel::update(target())
                .set((
                    integrations::last_error.eq(None::<String>),
                    integrations::last_error_at.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)?;
            diesel::update(live())
                .set(integrations::status.eq(IntegrationStatus::Connected))
                .execute(conn)
        }
        Err(why) => {
            diesel::update(target())
                .set((
                    integrations::last_error.eq(why),
                    integrations::last_error_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(live())
                .set(integrations::status.eq(IntegrationStatus::Error))
                .execute(conn)
        }
    }
}

/// Encrypts every secret still stored in clear (written before secrets were
/// encrypted); idempotent. Returns how many values it sealed.
pub fn seal_plain_secrets(conn: &mut PgConnection) -> QueryResult<usize> {
    // Every start asks; once done, a look that finds nothing, no lock.
    let plain: bool = diesel::select(diesel::dsl::exists(
        integrations::table.filter(
            integrations::secret
                .not_like("v1:%")
                .or(integrations::api_key.not_like("v1:%"))
                .or(integrations::verify_token.not_like("v1:%")),
        ),
    ))
    .get_result(conn)?;
    if !plain {
        return Ok(0);
    }
    reseal(conn, |column, stored| {
        if crate::secrets::is_sealed(stored) {
            return Ok(None);
        }
        crate::secrets::seal(column, stored).map(Some)
    })
}

/// Re-encrypts every secret from the installed key to `new` (the key
/// rotation), in one transaction. Returns how many values it re-encrypted.
pub fn rotate_key(conn: &mut PgConnection, new: &crate::secrets::SecretKey) -> QueryResult<usize> {
    reseal(conn, |column, stored| {
        let plain = crate::secrets::open(column, stored)?;
        new.seal(column, &plain).map(Some)
    })
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    location_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// Rewrites every stored secret with what `rewrite` makes of it (`None`:
/// leave it), all in one transaction. No integration is written meanwhile:
/// a server writing with another key would lose its write.
fn reseal(
    conn: &mut PgConnection,
    rewrite: impl Fn(&str, &str) -> Result<Option<String>, crate::secrets::SecretError>,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        diesel::sql_query("LOCK TABLE integrations, webhook_subscriptions IN EXCLUSIVE MODE")
            .execute(conn)?;
        let mut n = 0;
        for (column, table, name) in crate::secrets::SEALED_COLUMNS {
            // `table` and `name` are from SEALED_COLUMNS (never input).
            let rows: Vec<Row> = diesel::sql_query(format!(
                "SELECT location_id, id, {name} AS value FROM {table} WHERE {name} IS NOT NULL"
            ))
            .load(conn)?;
            for r in rows {
                let Some(value) = rewrite(column, &r.value)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?
                else {
                    continue;
                };
                diesel::sql_query(format!(
                    "UPDATE {table} SET {name} = $1 WHERE location_id = $2 AND id = $3"
                ))
                .bind::<diesel::sql_types::Text, _>(value)
                .bind::<diesel::sql_types::BigInt, _>(r.location_id)
                .bind::<diesel::sql_types::BigInt, _>(r.id)
                .execute(conn)?;
                n += 1;
            }
        }
        Ok(n)
    })
}
