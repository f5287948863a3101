//! Gate benchmark: decide a 100,000-recipient bulk send among 1,000,000
//! contacts, next to the bare SQL that answers the same question, in the
//! same process and connection. Run with
//! `cargo run --release --bin bench-gate` (reuses bench-contacts' cluster
//! under `./var/bench`).

#[path = "shared/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool};

use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::{self, outbound};
use dnd::domain::Channel;

const CONTACTS: i64 = 1_000_000;
const RECIPIENTS: usize = 100_000;
const RUNS: usize = 20;

#[derive(QueryableByName)]
struct Bare {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id: i64,
    #[diesel(sql_type = Bool)]
    #[allow(dead_code)]
    blocked: bool,
}

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
    cluster.ensure_database("dnd_bench")?;
    let mut conn = db::connect(&cluster.url("dnd_bench"))?;
    db::migrate(&mut conn)?;
    let location = seed::location(&mut conn, "Bench 1M", CONTACTS)?;
    // 100,000 recipients picked by a hash: spread over the location and
    // carrying its DND mix.
    let ids: Vec<i64> = diesel::sql_query(
        "SELECT id FROM contacts WHERE location_id = $1 ORDER BY hashint8(id) LIMIT $2",
    )
    .bind::<BigInt, _>(location.id)
    .bind::<BigInt, _>(RECIPIENTS as i64)
    .load::<Id>(&mut conn)?
    .into_iter()
    .map(|r| r.id)
    .collect();
    println!("recipients: {}", ids.len());

    let mut gate = Vec::with_capacity(RUNS);
    let mut bare = Vec::with_capacity(RUNS);
    let mut blocked = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let decisions = outbound::decide_bulk(&mut conn, location.id, Channel::Sms, &ids)?;
        gate.push(start.elapsed());
        blocked = decisions
            .iter()
            .filter(|d| !d.decision.is_allowed())
            .count();

        // The bare question: which of these may not get an SMS?
        let start = Instant::now();
        let rows: Vec<Bare> = diesel::sql_query(
            "SELECT id, (dnd_all OR (dnd_mask & 1) <> 0) AS blocked FROM contacts
             WHERE location_id = $1 AND id = ANY($2::bigint[])",
        )
        .bind::<BigInt, _>(location.id)
        .bind::<Array<BigInt>, _>(&ids)
        .load(&mut conn)?;
        bare.push(start.elapsed());
        std::hint::black_box(rows);
    }
    gate.sort();
    bare.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (g50, g95) = (ms(gate[RUNS / 2]), ms(gate[RUNS * 95 / 100]));
    let (b50, b95) = (ms(bare[RUNS / 2]), ms(bare[RUNS * 95 / 100]));
    println!("\ndecide {RECIPIENTS} recipients for SMS ({RUNS} runs, one connection):");
    println!("  gate (decide_bulk, with reasons):  p50 {g50:.1} ms  p95 {g95:.1} ms  ({blocked} blocked)");
    println!("  bare SQL (blocked flag only):      p50 {b50:.1} ms  p95 {b95:.1} ms");
    println!(
        "  ratio gate/bare: p50 {:.2}, p95 {:.2}",
        g50 / b50,
        g95 / b95
    );

    // The whole bulk send, recording 100,000 messages, rolled back.
    let start = Instant::now();
    let _rolled_back = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        let results = outbound::send_bulk(conn, location.id, Channel::Sms, "Bench", None, &ids)
            .map_err(|_| diesel::result::Error::RollbackTransaction)?;
        std::hint::black_box(results);
        Err(diesel::result::Error::RollbackTransaction)
    });
    println!(
        "  full bulk send (decide + record {RECIPIENTS} messages, rolled back): {:.0} ms",
        ms(start.elapsed())
    );
    Ok(())
}
