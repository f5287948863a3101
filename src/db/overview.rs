//! The agency overview's figures: per location, its contacts and their DND
//! by status and by channel, open support requests, and integrations' state.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};

use super::locations::Location;
use super::schema::{contacts, integrations, optin_open_requests};
use crate::domain::Channel;

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct DndCounts {
    #[diesel(sql_type = BigInt)]
    pub location_id: i64,
    #[diesel(sql_type = BigInt)]
    pub contacts: i64,
    #[diesel(sql_type = BigInt)]
    pub on: i64,
    #[diesel(sql_type = BigInt)]
    pub partial: i64,
    #[diesel(sql_type = BigInt)]
    pub off: i64,
    #[diesel(sql_type = Array<BigInt>)]
    pub by_channel: Vec<i64>,
}

/// One location's line of the overview.
#[derive(Debug, Clone)]
pub struct LocationLine {
    pub location: Location,
    pub agency_name: String,
    pub counts: DndCounts,
    pub open_requests: i64,
    /// Each integration's channel, provider and state (never its secrets).
    pub integrations: Vec<IntegrationState>,
}

#[derive(Debug, Clone, Queryable)]
pub struct IntegrationState {
    pub location_id: i64,
    pub channel: Channel,
    pub provider: String,
    pub status: crate::domain::IntegrationStatus,
}

impl LocationLine {
    /// Contacts blocked on each channel, in `Channel::ALL` order.
    pub fn channel_counts(&self) -> Vec<(Channel, i64)> {
        Channel::ALL
            .into_iter()
            .zip(
                self.counts
                    .by_channel
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(0)),
            )
            .collect()
    }
}

/// The figures of these locations, in their order. One pass over each
/// location's contacts (the counts by status read the status index).
pub fn lines(
    conn: &mut PgConnection,
    located: Vec<(Location, String)>,
) -> QueryResult<Vec<LocationLine>> {
    let ids: Vec<i64> = located.iter().map(|(l, _)| l.id).collect();
    let counts: Vec<DndCounts> = diesel::sql_query(
        "SELECT location_id, count(*) AS contacts,
                count(*) FILTER (WHERE dnd_status = 2) AS on,
                count(*) FILTER (WHERE dnd_status = 1) AS partial,
                count(*) FILTER (WHERE dnd_status = 0) AS off,
                ARRAY[
                    count(*) FILTER (WHERE dnd_all OR dnd_mask & 1 <> 0),
                    count(*) FILTER (WHERE dnd_all OR dnd_mask & 2 <> 0),
                    count(*) FILTER (WHERE dnd_all OR dnd_mask & 4 <> 0),
                    count(*) FILTER (WHERE dnd_all OR dnd_mask & 8 <> 0),
                    count(*) FILTER (WHERE dnd_all OR dnd_mask & 16 <> 0),
                    count(*) FILTER (WHERE dnd_all OR dnd_mask & 32 <> 0)
                ] AS by_channel
         FROM contacts WHERE location_id = ANY($1) GROUP BY location_id",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .load(conn)?;
    let open: Vec<(i64, i64)> = optin_open_requests::table
        .filter(optin_open_requests::location_id.eq_any(&ids))
        .group_by(optin_open_requests::location_id)
        .select((optin_open_requests::location_id, diesel::dsl::count_star()))
        .load(conn)?;
    let states: Vec<IntegrationState> = integrations::table
        .filter(integrations::location_id.eq_any(&ids))
        .order_by((integrations::location_id, integrations::id))
        .select((
            integrations::location_id,
            integrations::channel,
            integrations::provider,
            integrations::status,
        ))
        .load(conn)?;
    let mut out = Vec::with_capacity(located.len());
    for (location, agency_name) in located {
        let id = location.id;
        out.push(LocationLine {
            integrations: states
                .iter()
                .filter(|s| s.location_id == id)
                .cloned()
                .collect(),
            counts: counts
                .iter()
                .find(|c| c.location_id == id)
                .cloned()
                .unwrap_or(DndCounts {
                    location_id: id,
                    by_channel: vec![0; 6],
                    ..DndCounts::default()
                }),
            open_requests: open.iter().find(|(l, _)| *l == id).map_or(0, |(_, n)| *n),
            location,
            agency_name,
        });
    }
    Ok(out)
}

/// The contacts with one of these phones, or this email, in these
/// locations (exact address match: one address is one person).
pub fn find_person(
    conn: &mut PgConnection,
    location_ids: &[i64],
    phones: &[String],
    email: Option<&str>,
) -> QueryResult<Vec<super::contacts::Contact>> {
    let mut query = contacts::table
        .filter(contacts::location_id.eq_any(location_ids))
        .into_boxed();
    query = match email {
        Some(e) => query.filter(contacts::email.eq(e.to_string())),
        None if !phones.is_empty() => query.filter(
            contacts::phone
                .eq_any(phones.to_vec())
                .or(contacts::whatsapp_id.eq_any(phones.to_vec())),
        ),
        None => return Ok(Vec::new()),
    };
    query
        .select(super::contacts::Contact::as_select())
        .order_by((contacts::location_id, contacts::id))
        .limit(200)
        .load(conn)
}
