//! Contact list benchmark: 1,000,000 contacts in one location with a
//! realistic DND mix, then p50/p95 of query + render for the pages people
//! open. Run with `cargo run --release --bin bench-contacts`.
//!
//! Uses its own embedded cluster under `DND_DATA_DIR/bench` (default
//! `./var/bench`), seeded once and reused by later runs; or `BENCH_DATABASE_URL`.

use std::time::{Duration, Instant};

use askama::Template;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::contacts::{self, Cursor, ListFilter};
use dnd::db::{self, locations};
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
    let location = match locations::find_by_name(&mut conn, LOCATION)? {
        Some(l) => {
            println!("reusing the seeded location \"{LOCATION}\"");
            l
        }
        None => seed(&mut conn)?,
    };
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
            "status = partial + phone prefix",
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
    for (name, filter, cursor) in cases {
        let mut times = Vec::with_capacity(RUNS);
        let mut rows = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            let page = contacts::list(&mut conn, location.id, &filter, &cursor, PAGE_SIZE)?;
            rows = page.contacts.len();
            let html = ContactsPage::new(
                Nav {
                    email: "bench@demo.test".into(),
                    role: "Agency user",
                    csrf: "x".repeat(64),
                    settings: true,
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

/// 1,000,000 contacts in SQL (generate_series), ≈10% with some reason and
/// ≈2% with the all-channels switch; reasons rows to match.
fn seed(conn: &mut PgConnection) -> Result<locations::Location, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let agency = locations::create_agency(conn, "Bench Agency")?;
    let location = locations::create(conn, agency, LOCATION, "UTC")?;
    println!("seeding {CONTACTS} contacts...");
    let first = "ARRAY['Olivia','Liam','Emma','Noah','Ava','Elijah','Sophia','Mateo','Isabella','Lucas','Mia','Amir','Charlotte','Kenji','Amelia','Diego','Harper','Ravi','Evelyn','Samuel','Chloe','Omar','Grace','Tomas','Zoe','Wei','Nora','Kwame','Lily','Sebastian','Hannah','Yusuf','Aaliyah','Jonas','Priya','Felix','Leah','Mohammed','Ingrid','Caleb','Ana','Marco','Sara','Ivan','Lena','Hugo','Maya','Theo','Alma','Rafael']";
    let last = "ARRAY['Smith','Johnson','Garcia','Nguyen','Patel','Kim','Muller','Rossi','Okafor','Silva','Brown','Martinez','Cohen','Tanaka','Lopez','OBrien','Hernandez','Wilson','Kowalski','Anderson','Dubois','Chen','Ivanova','Thompson','Haddad','Moore','Santos','Jackson','Novak','Clark','Fischer','Rahman','Lewis','Andersen','Walker','Costa','Young','Mensah','Hall','Schmidt','Baker','Reyes','Sato','Murphy','Nielsen','Popescu','Yilmaz','Kaur','Ali','Jensen']";
    let chunk = 100_000;
    for start in (0..CONTACTS).step_by(chunk as usize) {
        diesel::sql_query(format!(
            "INSERT INTO contacts (location_id, name, phone, email, dnd_all, dnd_mask)
             SELECT $1,
                    f || ' ' || l,
                    '+1' || (ARRAY['212','646','415','628','312','617','305','713','206','503'])[1 + i % 10]
                         || lpad((200 + (i / 10) / 10000)::text, 3, '0') || lpad(((i / 10) % 10000)::text, 4, '0'),
                    lower(f) || '.' || lower(l) || i || '@example.' || (ARRAY['com','net','org'])[1 + i % 3],
                    i % 50 = 7,
                    CASE WHEN i % 10 = 3 THEN (ARRAY[1, 4, 5, 32, 1, 4, 2, 1, 8, 63])[1 + (i / 10) % 10] ELSE 0 END
             FROM (SELECT i, h,
                          ({first})[1 + (h / 10) % 50] AS f,
                          ({last})[1 + (h / 500) % 50] AS l
                   FROM (SELECT i, (hashint8(i)::bigint & 2147483647) AS h
                         FROM generate_series($2::bigint, $3::bigint) AS i) AS hashed) AS g"
        ))
        .bind::<BigInt, _>(location.id)
        .bind::<BigInt, _>(start)
        .bind::<BigInt, _>((start + chunk - 1).min(CONTACTS - 1))
        .execute(conn)?;
    }
    // A reason row for every flagged channel, as the app would have written.
    for (bit, channel, reason, kind) in [
        (1, "sms", "sms_opt_out", "permanent"),
        (2, "call", "manual", "temporary"),
        (4, "email", "email_bounced", "temporary"),
        (8, "facebook", "manual", "temporary"),
        (16, "gmb", "manual", "temporary"),
        (32, "whatsapp", "channel_opt_out", "permanent"),
    ] {
        diesel::sql_query(
            "INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind, set_at, actor_kind, actor_label)
             SELECT location_id, id, $2, $3, $4, now(), 'provider', 'bench' FROM contacts
             WHERE location_id = $1 AND (dnd_mask & $5::smallint) <> 0",
        )
        .bind::<BigInt, _>(location.id)
        .bind::<Text, _>(channel)
        .bind::<Text, _>(reason)
        .bind::<Text, _>(kind)
        .bind::<diesel::sql_types::SmallInt, _>(bit as i16)
        .execute(conn)?;
    }
    diesel::sql_query("VACUUM ANALYZE contacts").execute(conn)?;
    diesel::sql_query("VACUUM ANALYZE contact_dnd_reasons").execute(conn)?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(location)
}
