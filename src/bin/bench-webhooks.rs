//! Webhook throughput benchmark: signed Twilio STOP webhooks from 64
//! concurrent connections for 20 s against the app on the embedded
//! database, twice: from distinct known contacts, then from numbers no
//! contact has (each becomes a contact, blocked by its own STOP). Then
//! pgbench (when present) runs the equivalent SQL (lock the address, store
//! the event, read and upsert the address's reason, which updates its
//! contact, append the history; one transaction per event) for the same
//! time. Prints events/s, p50/p99, the unknown/known ratio and the ratio
//! app/pgbench. Run with `cargo run --release --bin bench-webhooks`.

#[path = "shared/load.rs"]
mod load;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use dnd::db;
use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::webhooks::signatures::twilio_signature;
use load::{pgbench_binary, Figures};

const CONNECTIONS: usize = 64;
const SECONDS: u64 = 20;
const CONTACTS: i64 = 400_000;
const TOKEN: &str = "bench-twilio-auth-token";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = PathBuf::from(std::env::var("DND_DATA_DIR").unwrap_or_else(|_| "./var".into()))
        .join("bench-webhooks");
    // BENCH_DATABASE_URL (an empty database) runs the app side only, e.g.
    // against a server with pg_stat_statements loaded for profiling.
    let (cluster, url) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            // Start from scratch each run, so both sides meet the same tables.
            let _ = std::fs::remove_dir_all(&data_dir);
            let cluster = EmbeddedCluster::start(&ClusterOptions {
                dir: data_dir.clone(),
                durable: true,
            })?;
            cluster.ensure_database("bench")?;
            let url = cluster.url("bench");
            (Some(cluster), url)
        }
    };
    // The key the app below is configured with: the seeded auth token is
    // stored encrypted, as in production, so the webhook path decrypts it.
    dnd::secrets::install(dnd::secrets::SecretKey::from_bytes(
        load::SECRET_KEY.as_bytes(),
    ));
    let mut conn = db::connect(&url)?;
    db::migrate(&mut conn)?;
    let location = load::twilio_location(&mut conn, "Bench Agency", "Bench Webhooks", TOKEN)?;
    println!("seeding {CONTACTS} contacts...");
    // In one statement, so without the triggers that keep each contact's
    // mask (they lock every address for the transaction): nobody has a
    // reason yet, every mask is 0.
    diesel::sql_query("SET session_replication_role = replica").execute(&mut conn)?;
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone)
         SELECT $1, 'Contact ' || i, '+1' || (2000000000 + i)::text FROM generate_series(1, $2) AS i",
    )
    .bind::<BigInt, _>(location.id)
    .bind::<BigInt, _>(CONTACTS)
    .execute(&mut conn)?;
    diesel::sql_query("RESET session_replication_role").execute(&mut conn)?;
    diesel::sql_query("VACUUM ANALYZE contacts").execute(&mut conn)?;
    let first_id: i64 = dnd::db::schema::contacts::table
        .filter(dnd::db::schema::contacts::location_id.eq(location.id))
        .select(diesel::dsl::min(dnd::db::schema::contacts::id))
        .first::<Option<i64>>(&mut conn)?
        .unwrap_or(1);

    // The app's default pool (DND_POOL_SIZE, 10): on two cores PostgreSQL
    // does most with few busy backends; the 64 connections queue in the app.
    let pool_size: u32 = std::env::var("DND_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // Each side starts right after a checkpoint, so neither pays for the
    // seeding's (or the other side's) WAL with a checkpoint of its own.
    let base = start_app(&url, pool_size)?;
    checkpoint(&mut conn);
    let app = load(&base, location.id, "SMBENCH", 2_000_000_000)?;
    println!("\napp: signed Twilio STOP webhooks from {CONNECTIONS} connections for {SECONDS} s (each a distinct known contact), database pool {pool_size}");
    print_events(&app);
    checkpoint(&mut conn);
    let unknown = load(&base, location.id, "SMUNKNOWN", 3_000_000_000)?;
    println!("\napp: the same from {CONNECTIONS} connections for {SECONDS} s, every sender a number no contact has (each becomes one)");
    print_events(&unknown);
    println!(
        "\nratio unknown/known senders: {:.2} (events/s); p99 known {:.1} ms, unknown {:.1} ms",
        unknown.per_second / app.per_second,
        app.p99,
        unknown.p99
    );

    let pg = match (pgbench_binary(), &cluster) {
        (Some(bin), Some(cluster)) => {
            checkpoint(&mut conn);
            Some(run_pgbench(&bin, cluster, location.id, first_id)?)
        }
        (_, None) => None,
        (None, Some(_)) => {
            println!("\npgbench not found next to initdb; skipping the SQL baseline");
            None
        }
    };
    if let Some(pg) = pg {
        println!("\npgbench: the same SQL per event in one transaction, {CONNECTIONS} clients, {SECONDS} s");
        print_events(&pg);
        println!(
            "\nratio app/pgbench: {:.2} (events/s); app p99 {:.1} ms",
            app.per_second / pg.per_second,
            app.p99
        );
    }
    // Every acknowledged event is stored and applied once.
    for (prefix, figures) in [("SMBENCH%", &app), ("SMUNKNOWN%", &unknown)] {
        let stored: i64 = dnd::db::schema::webhook_events::table
            .filter(dnd::db::schema::webhook_events::location_id.eq(location.id))
            .filter(dnd::db::schema::webhook_events::event_key.like(prefix))
            .count()
            .get_result(&mut conn)?;
        println!(
            "app events stored ({}): {stored} (acknowledged: {})",
            prefix.trim_end_matches('%'),
            figures.count
        );
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let unblocked: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM contacts WHERE location_id = $1 AND phone LIKE '+13%' AND dnd_mask & 1 = 0",
    )
    .bind::<BigInt, _>(location.id)
    .get_result(&mut conn)?;
    println!(
        "contacts made for unknown senders and not blocked: {}",
        unblocked.n
    );
    drop(conn);
    drop(cluster);
    Ok(())
}

fn checkpoint(conn: &mut PgConnection) {
    if let Err(e) = diesel::sql_query("CHECKPOINT").execute(conn) {
        println!("(no checkpoint before this run: {e})");
    }
}

/// The webhook runs' figures, worded as events.
fn print_events(f: &Figures) {
    println!(
        "  {} events, {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        f.count, f.per_second, f.p50, f.p99, f.errors
    );
}

/// Starts the app on its own thread; its base URL.
fn start_app(url: &str, pool_size: u32) -> Result<String, Box<dyn std::error::Error>> {
    let pool = db::build_pool(url, pool_size, Duration::from_secs(5))?;
    let config = load::config(url, pool_size);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = dnd::Application::build(&config, pool).expect("build the app");
            tx.send(app.port()).expect("report the port");
            let _ = app.run_until_stopped().await;
        })
    });
    let port = rx.recv()?;
    Ok(format!("http://127.0.0.1:{port}"))
}

/// 64 connections posting signed STOPs for 20 s, each from a distinct
/// number `first + i` (message SIDs with `prefix`).
fn load(
    base: &str,
    location_id: i64,
    prefix: &'static str,
    first: i64,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let base = base.to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    // A client that cannot be built ends the run with its reason.
    let client = {
        let _inside = runtime.enter();
        reqwest::Client::builder()
            .pool_max_idle_per_host(CONNECTIONS)
            .build()?
    };
    Ok(runtime.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(SECONDS);
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let client = client.clone();
                let base = base.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let path = format!("/webhooks/twilio/{location_id}/sms");
                    let url = format!("{base}{path}");
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed) as i64 % CONTACTS + 1;
                        let params = vec![
                            ("MessageSid".to_string(), format!("{prefix}{i:024}")),
                            (
                                "AccountSid".to_string(),
                                "AC00000000000000000000000000000001".to_string(),
                            ),
                            ("From".to_string(), format!("+1{}", first + i)),
                            ("To".to_string(), "+12125559999".to_string()),
                            ("Body".to_string(), "STOP".to_string()),
                            ("NumMedia".to_string(), "0".to_string()),
                        ];
                        let signature = twilio_signature(&url, &params, TOKEN);
                        let start = Instant::now();
                        let ok = match client
                            .post(&url)
                            .header("X-Twilio-Signature", signature)
                            .form(&params)
                            .send()
                            .await
                        {
                            Ok(r) if r.status().is_success() => true,
                            Ok(r) => {
                                if errors == 0 {
                                    let status = r.status();
                                    let body = r.text().await.unwrap_or_default();
                                    eprintln!("first refusal: {status} {body}");
                                }
                                false
                            }
                            Err(e) => {
                                if errors == 0 {
                                    eprintln!("first failure: {e}");
                                }
                                false
                            }
                        };
                        if ok {
                            latencies.push((
                                start.duration_since(started).as_secs_f64(),
                                start.elapsed().as_secs_f64() * 1000.0,
                            ));
                        } else {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut all: Vec<(f64, f64)> = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("load task");
            all.extend(l);
            errors += e;
        }
        // How the tail moves over the run (warm-up, vacuum, checkpoints).
        let mut windows = String::new();
        for w in 0..(SECONDS / 5) {
            let slice: Vec<f64> = all
                .iter()
                .filter(|(at, _)| (*at / 5.0) as u64 == w)
                .map(|(_, ms)| *ms)
                .collect();
            let f = Figures::from_latencies(slice, 5.0, 0);
            windows.push_str(&format!(
                "  {}-{} s: {:.0}/s p50 {:.1} p99 {:.1};",
                w * 5,
                w * 5 + 5,
                f.per_second,
                f.p50,
                f.p99
            ));
        }
        println!("{}", windows.trim_end_matches(';'));
        let all = all.into_iter().map(|(_, ms)| ms).collect();
        Figures::from_latencies(all, started.elapsed().as_secs_f64(), errors)
    }))
}

fn run_pgbench(
    bin: &Path,
    cluster: &EmbeddedCluster,
    location_id: i64,
    first_id: i64,
) -> Result<Figures, Box<dyn std::error::Error>> {
    // What one STOP does in SQL: lock the address, store the event, read
    // the address's reasons, upsert the reason (the database's trigger then
    // updates the contact that holds the number), append the history.
    let script = format!(
            "\\set c random(1, {CONTACTS})
\\set k random(1, 2000000000)
BEGIN;
SELECT pg_advisory_xact_lock(dnd_address_lock_key({location_id}, '+1' || (2000000000 + :c)::text));
INSERT INTO webhook_events (location_id, provider, kind, event_key, payload, contact_id, outcome) VALUES ({location_id}, 'twilio', 'inbound_sms', 'PGB' || :client_id || '-' || :k, 'MessageSid=SM&From=%2B12000000001&Body=STOP', {first_id} + :c - 1, 'opt_out') ON CONFLICT DO NOTHING;
SELECT channel, reason FROM address_dnd_reasons WHERE location_id = {location_id} AND address = '+1' || (2000000000 + :c)::text;
INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at, actor_kind, actor_label, source) VALUES ({location_id}, '+1' || (2000000000 + :c)::text, 'sms', 'sms_opt_out', 'permanent', now(), 'contact', '+12000000001', 'SM') ON CONFLICT DO NOTHING;
INSERT INTO dnd_history (location_id, contact_id, channel, reason, kind, action, actor_kind, actor_label, address, source, at) VALUES ({location_id}, {first_id} + :c - 1, 'sms', 'sms_opt_out', 'permanent', 'set', 'contact', '+12000000001', '+12000000001', 'SM', now());
COMMIT;
"
        );
    load::run_pgbench(bin, &cluster.url("bench"), &script, CONNECTIONS, SECONDS)
}
