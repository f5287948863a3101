//! Import benchmark: a 100,000-row contacts CSV (every tenth row with a
//! DND flag) imported into an empty location through `db::imports`
//! (parsing, the form rules per row, upsert by phone then email, locks,
//! DND flags with their history), then the same file again (all matched,
//! unchanged), next to the bare SQL that inserts the same 100,000 rows in
//! one statement, in the same process. Run with
//! `cargo run --release --bin bench-import` (reuses the benchmarks'
//! cluster under `./var/bench`).

use std::time::Instant;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::imports::{self, ImportKind, ImportRun, ParsedFile};
use dnd::db::{self, locations};
use dnd::domain::dnd::{Actor, ActorKind};

const ROWS: usize = 100_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var("DND_DATA_DIR").unwrap_or_else(|_| "./var".into());
    let cluster = EmbeddedCluster::start(&ClusterOptions {
        dir: std::path::Path::new(&data_dir).join("bench"),
        durable: false,
    })?;
    cluster.ensure_database("dnd_bench_import")?;
    let mut conn = db::connect(&cluster.url("dnd_bench_import"))?;
    db::migrate(&mut conn)?;
    let agency = locations::create_agency(&mut conn, "Import bench")?;
    let stamp = chrono::Utc::now().timestamp_millis();
    let location = locations::create(
        &mut conn,
        agency,
        &format!("Import {stamp}"),
        "America/New_York",
    )?;
    let bare_location = locations::create(
        &mut conn,
        agency,
        &format!("Bare {stamp}"),
        "America/New_York",
    )?;

    let mut csv = String::from("name,phone,email,dnd_sms,dnd_email\r\n");
    for i in 0..ROWS {
        csv.push_str(&format!(
            "\"Person {i}, Jr\",(212) {:03}-{:04},person{i}@example.com,{},\r\n",
            200 + i / 10_000,
            i % 10_000,
            if i % 10 == 3 { "yes" } else { "" },
        ));
    }
    println!("file: {ROWS} rows, {:.1} MiB", csv.len() as f64 / 1048576.0);
    let actor = Actor::new(ActorKind::Api, None, "bench");
    let run = ImportRun {
        location_id: location.id,
        region: &location.default_region,
        actor: &actor,
        source: "bench import".into(),
        dry_run: false,
    };
    let mut timed = |label: &str| -> Result<f64, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let file = ParsedFile::read(ImportKind::Contacts, csv.as_bytes())?;
        let outcome = imports::import(&mut conn, &run, file, &|_, _| {})?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label}: {secs:.1} s  ({} created, {} updated, {} unchanged, {} errors)",
            outcome.created,
            outcome.updated,
            outcome.unchanged,
            outcome.errors.len()
        );
        Ok(secs)
    };
    let first = timed("import into an empty location")?;
    let again = timed("the same file again          ")?;

    // The bare insert of the same rows: no parsing rules, no matching, no
    // locks of ours, no DND; a statement per 1,000 rows (the contacts
    // trigger takes one advisory lock per row, and one statement of
    // 100,000 runs out of PostgreSQL's lock table).
    let phones: Vec<String> = (0..ROWS)
        .map(|i| format!("+1212{:03}{:04}", 200 + i / 10_000, i % 10_000))
        .collect();
    let emails: Vec<String> = (0..ROWS)
        .map(|i| format!("person{i}@example.com"))
        .collect();
    let names: Vec<String> = (0..ROWS).map(|i| format!("Person {i}, Jr")).collect();
    let start = Instant::now();
    for at in (0..ROWS).step_by(1000) {
        let end = (at + 1000).min(ROWS);
        diesel::sql_query(
            "INSERT INTO contacts (location_id, name, phone, email)
             SELECT $1, n, p, e FROM unnest($2::text[], $3::text[], $4::text[]) AS r (n, p, e)",
        )
        .bind::<BigInt, _>(bare_location.id)
        .bind::<Array<Text>, _>(&names[at..end])
        .bind::<Array<Text>, _>(&phones[at..end])
        .bind::<Array<Text>, _>(&emails[at..end])
        .execute(&mut conn)?;
    }
    let bare = start.elapsed().as_secs_f64();
    println!("bare SQL insert of the same rows: {bare:.1} s");
    println!(
        "ratio import/bare: first {:.1}x, again {:.1}x",
        first / bare,
        again / bare
    );
    Ok(())
}
