//! Bulk DND benchmark: one change (SMS DND on, then off again) for 50,000
//! contacts of a 200,000-contact location through `db::bulk::apply` (the
//! rules per contact, a history row per changed contact, chunked
//! transactions), next to the bare SQL that writes the same rows (one
//! INSERT of reasons and one of history, no rules, no locks) on another
//! channel, in the same process and connection. Run with
//! `cargo run --release --bin bench-bulk` (reuses the benchmarks' cluster
//! under `./var/bench`).

#[path = "shared/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};

use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::{self, bulk};
use dnd::domain::dnd::{Actor, ActorKind, Switches};
use dnd::domain::Channel;

const CONTACTS: i64 = 200_000;
const CHANGED: usize = 50_000;
const RUNS: usize = 3;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var("DND_DATA_DIR").unwrap_or_else(|_| "./var".into());
    let cluster = EmbeddedCluster::start(&ClusterOptions {
        dir: std::path::Path::new(&data_dir).join("bench"),
        durable: false,
    })?;
    // A database of its own: the location's 200,000 contacts are the
    // whole contacts table (the other benchmarks' million are elsewhere).
    cluster.ensure_database("dnd_bench_bulk")?;
    let mut conn = db::connect(&cluster.url("dnd_bench_bulk"))?;
    let mut second = db::connect(&cluster.url("dnd_bench_bulk"))?;
    db::migrate(&mut conn)?;
    let location = seed::location(&mut conn, "Bench bulk 200k", CONTACTS)?;
    let ids: Vec<i64> = diesel::sql_query(
        "SELECT id FROM contacts WHERE location_id = $1 ORDER BY hashint8(id) LIMIT $2",
    )
    .bind::<BigInt, _>(location.id)
    .bind::<BigInt, _>(CHANGED as i64)
    .load::<Id>(&mut conn)?
    .into_iter()
    .map(|r| r.id)
    .collect();
    println!("contacts changed per run: {}", ids.len());
    let actor = Actor::new(ActorKind::Api, None, "bench");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for run in 1..=RUNS {
        let mut timed =
            |on: bool| -> Result<(Duration, bulk::BulkOutcome), Box<dyn std::error::Error>> {
                let switches = Switches {
                    all: None,
                    channels: vec![(Channel::Sms, on)],
                };
                let now = Utc::now();
                let start = Instant::now();
                // As the app runs it: two connections side by side.
                let outcome =
                    bulk::apply_on(vec![&mut conn, &mut second], location.id, &ids, |s| {
                        s.switch(&switches, &actor, now, "bench", Some("bench run"))
                    })?;
                Ok((start.elapsed(), outcome))
            };
        let (on, set) = timed(true)?;
        let (off, lifted) = timed(false)?;

        // The bare writes of the same size: reasons and history rows for
        // the same contacts on the Messenger channel, then deleted.
        let start = Instant::now();
        conn.transaction(|conn| -> QueryResult<()> {
            diesel::sql_query(
                "WITH added AS (
                    INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind,
                        set_at, actor_kind, actor_id, actor_label, source)
                    SELECT $1, id, 'facebook', 'manual', 'temporary', now(), 'api', NULL, 'bench', 'bench'
                    FROM unnest($2::int8[]) AS id
                    ON CONFLICT DO NOTHING RETURNING contact_id)
                 INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action,
                    actor_kind, actor_id, actor_label, address, source, at, event_at, detail)
                 SELECT $1, contact_id, 'facebook', 'manual', 'temporary', 'set', 'api', NULL,
                    'bench', NULL, 'bench', now(), NULL, 'bench run' FROM added",
            )
            .bind::<BigInt, _>(location.id)
            .bind::<Array<BigInt>, _>(&ids)
            .execute(conn)?;
            Ok(())
        })?;
        let bare_on = start.elapsed();
        let start = Instant::now();
        conn.transaction(|conn| -> QueryResult<()> {
            diesel::sql_query(
                "WITH gone AS (
                    DELETE FROM contact_dnd_reasons WHERE location_id = $1
                    AND contact_id = ANY($2::int8[]) AND channel = 'facebook' AND reason = 'manual'
                    RETURNING contact_id)
                 INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action,
                    actor_kind, actor_id, actor_label, address, source, at, event_at, detail)
                 SELECT $1, contact_id, 'facebook', 'manual', 'temporary', 'lifted', 'api', NULL,
                    'bench', NULL, 'bench', now(), NULL, 'bench run' FROM gone",
            )
            .bind::<BigInt, _>(location.id)
            .bind::<Array<BigInt>, _>(&ids)
            .execute(conn)?;
            Ok(())
        })?;
        let bare_off = start.elapsed();
        println!(
            "run {run}: bulk on {:.0} ms ({} changed, {} unchanged, {} skipped) | off {:.0} ms ({} changed, {} still blocked, {} skipped)",
            ms(on),
            set.changed,
            set.unchanged,
            set.skipped.len(),
            ms(off),
            lifted.changed,
            lifted.still_blocked.len(),
            lifted.skipped.len(),
        );
        println!(
            "       bare SQL on {:.0} ms | off {:.0} ms   ratio bulk/bare: on {:.1}x, off {:.1}x",
            ms(bare_on),
            ms(bare_off),
            ms(on) / ms(bare_on),
            ms(off) / ms(bare_off),
        );
    }
    Ok(())
}
