//! Contact list benchmark: 1,000,000 contacts in one location with a
//! realistic DND mix, then p50/p95 of query + render for the pages people
//! open. Run with `cargo run --release --bin bench-contacts`.
//!
//! Uses its own embedded cluster under `DND_DATA_DIR/bench` (default
//! `./var/bench`), seeded once and reused by later runs; or `BENCH_DATABASE_URL`.

#[path = "shared/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use askama::Template;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use dnd::db;
use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::contacts::{self, Cursor, ListFilter};
use dnd::domain::dnd::Status;
use dnd::domain::Channel;
use dnd::web::pages::contacts::{ContactsPage, PAGE_SIZE};
use dnd::web::pages::Nav;

const CONTACTS: i64 = 1_000_000;
const RUNS: usize = 200;
const LOCATION: &str = "Bench 1M";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::var("DND_DATA_DIR").unwrap_or_else(|_| "./var".into());
    let (_cluster, url) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let cluster = EmbeddedCluster::start(&ClusterOptions {
                dir: std::path::Path::new(&data_dir).join("bench"),
                durable: false,
            })?;
            cluster.ensure_database("dnd_bench")?;
            let url = cluster.url("dnd_bench");
            (Some(cluster), url)
        }
    };
    let mut conn = db::connect(&url)?;
    db::migrate(&mut conn)?;
    let location = seed::location(&mut conn, LOCATION, CONTACTS)?;
    let count: i64 = dnd::db::schema::contacts::table
        .filter(dnd::db::schema::contacts::location_id.eq(location.id))
        .count()
        .get_result(&mut conn)?;
    let by_status: Vec<(i16, i64)> = dnd::db::schema::contacts::table
        .filter(dnd::db::schema::contacts::location_id.eq(location.id))
        .group_by(dnd::db::schema::contacts::dnd_status)
        .select((
            dnd::db::schema::contacts::dnd_status,
            diesel::dsl::count_star(),
        ))
        .load(&mut conn)?;
    println!(
        "contacts in the location: {count}; by status (2 on, 1 partial, 0 off): {by_status:?}"
    );

    // Page 5,000 starts after the 249,999th contact of the list order.
    #[derive(QueryableByName)]
    struct Anchor {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let anchor: Anchor = diesel::sql_query(
        "SELECT id FROM contacts WHERE location_id = $1 ORDER BY lower(name), id OFFSET $2 LIMIT 1",
    )
    .bind::<BigInt, _>(location.id)
    .bind::<BigInt, _>(4999 * PAGE_SIZE - 1)
    .get_result(&mut conn)?;

    let cases: Vec<(&str, ListFilter, Cursor)> = vec![
        ("first page", ListFilter::default(), Cursor::First),
        (
            "page 5,000",
            ListFilter::default(),
            Cursor::After(anchor.id),
        ),
        ("status = on", status(Status::On), Cursor::First),
        ("status = partial", status(Status::Partial), Cursor::First),
        ("status = off", status(Status::Off), Cursor::First),
        (
            "blocked on sms",
            ListFilter {
                blocked: Some(Channel::Sms),
                ..Default::default()
            },
            Cursor::First,
        ),
        (
            "phone prefix +1 212 205",
            search("+1 212 205"),
            Cursor::First,
        ),
        ("phone prefix +1 617", search("+1 617"), Cursor::First),
        ("name search \"garcia\"", search("garcia"), Cursor::First),
        (
            "status = partial + phone +1 628",
            ListFilter {
                status: Some(Status::Partial),
                ..search("+1 628")
            },
            Cursor::First,
        ),
        // No partial contact has a +1 212 number: the filter must find
        // that without walking either set.
        (
            "status = partial + phone +1 212",
            ListFilter {
                status: Some(Status::Partial),
                ..search("+1 212")
            },
            Cursor::First,
        ),
    ];

    println!(
        "\n{:<34} {:>9} {:>9} {:>9}   ({RUNS} runs each, query + render, one connection)",
        "case", "p50 ms", "p95 ms", "max ms"
    );
    // Kept as the server keeps them: the whole location's estimate is
    // planned once a minute, not on every page.
    let estimates = contacts::Estimates::default();
    for (name, filter, cursor) in cases {
        let mut times = Vec::with_capacity(RUNS);
        let mut rows = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            let page = contacts::list(
                &mut conn,
                location.id,
                &filter,
                &cursor,
                PAGE_SIZE,
                &estimates,
            )?;
            rows = page.contacts.len();
            let html = ContactsPage::new(
                Nav {
                    email: "bench@demo.test".into(),
                    role: "Agency user",
                    csrf: "x".repeat(64),
                    settings: true,
                    support: false,
                    agency: true,
                    switcher: Vec::new(),
                    current: None,
                },
                location.clone(),
                page,
                filter.search.clone().unwrap_or_default(),
                filter
                    .status
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                filter
                    .blocked
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            )
            .render()?;
            std::hint::black_box(html);
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>9.2}   {rows} rows",
            name,
            ms(times[RUNS / 2]),
            ms(times[RUNS * 95 / 100]),
            ms(times[RUNS - 1])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn status(s: Status) -> ListFilter {
    ListFilter {
        status: Some(s),
        ..Default::default()
    }
}

fn search(q: &str) -> ListFilter {
    ListFilter {
        search: Some(q.into()),
        ..Default::default()
    }
}
