//! Sign-in flood benchmark: signed Twilio STOP webhooks from 16
//! connections for 20 s, first alone, then while 200 connections try to
//! sign in with random emails and wrong passwords as fast as the server
//! answers. A flood of sign-ins must not starve webhooks: prints the
//! webhooks' events/s and p50/p99 in both runs, their ratio, the 503s, and
//! what the sign-in attempts got. Run with
//! `cargo run --release --bin bench-flood`.
//!
//! Uses a fresh embedded cluster under `DND_DATA_DIR/bench-flood`
//! (default `./var`).

#[path = "shared/load.rs"]
mod load;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dnd::db;
use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::webhooks::signatures::twilio_signature;

const WEBHOOK_CONNECTIONS: usize = 16;
const FLOOD_CONNECTIONS: usize = 200;
const SECONDS: u64 = 20;
const TOKEN: &str = "bench-twilio-auth-token";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    load::serve_if_child();
    let data_dir = std::env::var("DND_DATA_DIR").unwrap_or_else(|_| "./var".into());
    let dir = Path::new(&data_dir).join("bench-flood");
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = EmbeddedCluster::start(&ClusterOptions { dir, durable: true })?;
    cluster.ensure_database("flood")?;
    let url = cluster.url("flood");
    dnd::secrets::install(dnd::secrets::SecretKey::from_bytes(
        load::SECRET_KEY.as_bytes(),
    ));
    let mut conn = db::connect(&url)?;
    db::migrate(&mut conn)?;
    let location = load::twilio_location(&mut conn, "Flood Agency", "Flood Location", TOKEN)?;
    drop(conn);

    let server = load::Server::start(&url, 10)?;
    let alone = webhooks(&server.base, location.id, "SMALONE")?;

    // The flood: every connection signs in with a new made-up email.
    let (cookie, csrf) = sign_in_form(&server.base)?;
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<std::collections::BTreeMap<u16, usize>>> = Arc::default();
    let flood = {
        let (base, stop, answers) = (server.base.clone(), stop.clone(), answers.clone());
        std::thread::spawn(move || flood(&base, &cookie, &csrf, &stop, &answers))
    };
    std::thread::sleep(Duration::from_secs(1));
    let flooded = webhooks(&server.base, location.id, "SMFLOOD")?;
    stop.store(true, Ordering::SeqCst);
    let attempts = flood.join().map_err(|_| "the flood thread panicked")??;
    let (peak, now) = server.memory_mib();

    println!(
        "\nsigned STOP webhooks, {WEBHOOK_CONNECTIONS} connections, {SECONDS} s, server pool 10"
    );
    println!("  alone                      {}", alone.0.line());
    println!("  during the sign-in flood   {}", flooded.0.line());
    println!(
        "  non-2xx (503) answers: alone {}, during the flood {}",
        alone.1, flooded.1
    );
    println!(
        "  ratio flooded/alone: {:.2} (events/s); p99 {:.1} ms vs {:.1} ms (bar: p99 < 250 ms, no 503)",
        flooded.0.per_second / alone.0.per_second,
        flooded.0.p99,
        alone.0.p99
    );
    println!(
        "sign-in attempts from {FLOOD_CONNECTIONS} connections: {attempts} in all ({:.0}/s), answers {:?}",
        attempts as f64 / (SECONDS as f64 + 1.0),
        answers.lock().map(|a| a.clone()).unwrap_or_default()
    );
    println!("server RSS: peak {peak:.1} MiB, after the run {now:.1} MiB");
    drop(server);
    drop(cluster);
    Ok(())
}

/// Webhooks for `SECONDS`: the figures and how many answered 503.
fn webhooks(
    base: &str,
    location_id: i64,
    prefix: &'static str,
) -> Result<(load::Figures, usize), Box<dyn std::error::Error>> {
    let path = format!("/webhooks/twilio/{location_id}/sms");
    let url = format!("{base}{path}");
    let figures = load::run_load(
        WEBHOOK_CONNECTIONS,
        SECONDS,
        Arc::new(move |client: &reqwest::Client, i| {
            let params = vec![
                ("MessageSid".to_string(), format!("{prefix}{i:024}")),
                (
                    "AccountSid".to_string(),
                    "AC00000000000000000000000000000001".to_string(),
                ),
                ("From".to_string(), format!("+1{}", 2_000_000_000 + i)),
                ("To".to_string(), "+12125559999".to_string()),
                ("Body".to_string(), "STOP".to_string()),
                ("NumMedia".to_string(), "0".to_string()),
            ];
            let signature = twilio_signature(&url, &params, TOKEN);
            client
                .post(&url)
                .header("X-Twilio-Signature", signature)
                .form(&params)
        }),
    )?;
    // Every non-2xx is counted by the load as an error; to a correctly
    // signed STOP the only one a server gives under load is 503.
    let errors = figures.errors;
    Ok((figures, errors))
}

/// A session cookie and its CSRF token from the sign-in page.
fn sign_in_form(base: &str) -> Result<(String, String), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let page = reqwest::Client::new()
            .get(format!("{base}/login"))
            .send()
            .await?;
        let cookie = page
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("dnd_session="))
            .and_then(|v| v.split(';').next())
            .ok_or("no session cookie on /login")?
            .to_string();
        let html = page.text().await?;
        let csrf = html
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("no CSRF token on /login")?
            .to_string();
        Ok((cookie, csrf))
    })
}

/// Sign-in attempts from `FLOOD_CONNECTIONS` connections until `stop`;
/// how many were answered, by status.
fn flood(
    base: &str,
    cookie: &str,
    csrf: &str,
    stop: &Arc<AtomicBool>,
    answers: &Mutex<std::collections::BTreeMap<u16, usize>>,
) -> Result<usize, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(FLOOD_CONNECTIONS)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let total: usize = runtime.block_on(async {
        let tasks: Vec<_> = (0..FLOOD_CONNECTIONS)
            .map(|c| {
                let (client, stop) = (client.clone(), stop.clone());
                let (base, cookie, csrf) = (base.to_string(), cookie.to_string(), csrf.to_string());
                async move {
                    let mut seen: Vec<u16> = Vec::new();
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(SECONDS + 5)
                    {
                        n += 1;
                        let email = format!("nobody{c}x{n}@flood.test");
                        let sent = client
                            .post(format!("{base}/login"))
                            .header("Cookie", &cookie)
                            .header("Origin", &base)
                            .form(&[
                                ("email", email.as_str()),
                                ("password", "wrong-password"),
                                ("csrf_token", csrf.as_str()),
                            ])
                            .send()
                            .await;
                        if let Ok(r) = sent {
                            seen.push(r.status().as_u16());
                            let _ = r.bytes().await;
                        }
                    }
                    seen
                }
            })
            .map(|f| runtime.spawn(f))
            .collect();
        let mut total = 0;
        for t in tasks {
            if let Ok(seen) = t.await {
                total += seen.len();
                if let Ok(mut answers) = answers.lock() {
                    for s in seen {
                        *answers.entry(s).or_default() += 1;
                    }
                }
            }
        }
        total
    });
    Ok(total)
}
