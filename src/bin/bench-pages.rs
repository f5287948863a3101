//! Page benchmark: a signed-in location user's contact page and contact
//! list (100,000 contacts in the location) under 64 connections, next to a
//! static asset of the same server and to pgbench running the very SQL each
//! page sent (captured from PostgreSQL's log for one request, replayed with
//! prepared statements by as many clients). Each page and its pgbench take
//! turns in short rounds, so a machine busy with something else slows both
//! alike; the ratio printed is the median of the rounds'. Prints req/s,
//! p50/p99, the ratios, and the server's peak and final RSS (the server
//! runs in a child process, web server only). Run with
//! `cargo run --release --bin bench-pages`.
//!
//! Uses its own embedded cluster under `DND_DATA_DIR/bench-pages` (default
//! `./var`), seeded once and reused by later runs.

#[path = "shared/load.rs"]
mod load;
#[path = "shared/seed.rs"]
mod seed;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};
use dnd::db::{self, users};

const CONNECTIONS: usize = 64;
/// The static asset's run.
const SECONDS: u64 = 10;
/// Each page and its pgbench take turns this many times, for this long.
const ROUNDS: usize = 3;
const ROUND_SECONDS: u64 = 5;
const CONTACTS: i64 = 100_000;
const LOCATION: &str = "Bench Pages";
const EMAIL: &str = "pages@bench.test";
const PASSWORD: &str = "bench-pages-password";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    load::serve_if_child();
    let data_dir = std::env::var("DND_DATA_DIR").unwrap_or_else(|_| "./var".into());
    let dir = Path::new(&data_dir).join("bench-pages");
    let cluster = EmbeddedCluster::start(&ClusterOptions {
        dir: dir.clone(),
        durable: false,
    })?;
    cluster.ensure_database("pages")?;
    let url = cluster.url("pages");
    dnd::secrets::install(dnd::secrets::SecretKey::from_bytes(
        load::SECRET_KEY.as_bytes(),
    ));
    let mut conn = db::connect(&url)?;
    db::migrate(&mut conn)?;
    let location = seed::location(&mut conn, LOCATION, CONTACTS)?;
    if users::find_by_email(&mut conn, EMAIL)?.is_none() {
        let hash = dnd::password::hash(PASSWORD)?;
        users::create(
            &mut conn,
            &users::NewUser {
                email: EMAIL,
                password_hash: &hash,
                role: "location",
                agency_id: None,
                is_admin: false,
            },
            &[location.id],
        )?;
    }
    diesel::sql_query("VACUUM ANALYZE").execute(&mut conn)?;
    // A contact with some DND, as the pages people open most.
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let contact: Id = diesel::sql_query(
        "SELECT id FROM contacts WHERE location_id = $1 AND dnd_status = 1 ORDER BY id LIMIT 1",
    )
    .bind::<BigInt, _>(location.id)
    .get_result(&mut conn)?;

    let server = load::Server::start(&url, 10)?;
    let cookie = sign_in(&server.base)?;
    let contact_page = format!("/locations/{}/contacts/{}", location.id, contact.id);
    let list_page = format!("/locations/{}/contacts", location.id);
    let pages = [("contact page", contact_page), ("contact list", list_page)];

    // The SQL each page sends, from the server's log for one request.
    let log_path = dir.join("postgres.log");
    let mut scripts = Vec::new();
    for (name, path) in &pages {
        let sql = capture_sql(&mut conn, &log_path, || {
            get_once(&server.base, path, &cookie)
        })?;
        println!(
            "{name}: {} statements per request ({} round trips)",
            sql.len(),
            sql.len()
        );
        if std::env::var_os("BENCH_SHOW_SQL").is_some() {
            for statement in &sql {
                println!("  {statement}");
            }
        }
        scripts.push(sql.join(";\n") + ";\n");
    }

    let static_figures = load::run_load(
        CONNECTIONS,
        SECONDS,
        Arc::new({
            let url = format!("{}/static/app.css", server.base);
            move |client: &reqwest::Client, _| client.get(&url)
        }),
    )?;
    let pgbench = load::pgbench_binary();
    println!(
        "\n{CONNECTIONS} connections, server pool 10, {CONTACTS} contacts in the location; \
         each page and its pgbench alternate in {ROUNDS} rounds of {ROUND_SECONDS} s, so a \
         busy machine slows both alike"
    );
    println!("static asset        {}", static_figures.line());
    for ((name, path), script) in pages.iter().zip(&scripts) {
        let page_url = format!("{}{path}", server.base);
        let mut rounds: Vec<(load::Figures, Option<load::Figures>)> = Vec::new();
        for _ in 0..ROUNDS {
            let (page_url, cookie) = (page_url.clone(), cookie.clone());
            let page = load::run_load(
                CONNECTIONS,
                ROUND_SECONDS,
                Arc::new(move |client: &reqwest::Client, _| {
                    client.get(&page_url).header("Cookie", &cookie)
                }),
            )?;
            let pg = match &pgbench {
                Some(bin) => Some(load::run_pgbench(
                    bin,
                    &url,
                    script,
                    CONNECTIONS,
                    ROUND_SECONDS,
                )?),
                None => None,
            };
            rounds.push((page, pg));
        }
        println!("{name}");
        for (i, (page, pg)) in rounds.iter().enumerate() {
            println!("  round {}  page     {}", i + 1, page.line());
            if let Some(pg) = pg {
                println!("           pgbench  {}", pg.line());
            }
        }
        let page_rate = mean(rounds.iter().map(|(p, _)| p.per_second));
        print!(
            "  page {page_rate:.0} req/s, {:.3} of the static asset",
            page_rate / static_figures.per_second
        );
        let ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|(p, pg)| pg.as_ref().map(|pg| p.per_second / pg.per_second))
            .collect();
        if ratios.is_empty() {
            println!("; pgbench not found: no SQL baseline");
        } else {
            let pg_rate = mean(
                rounds
                    .iter()
                    .filter_map(|(_, pg)| pg.as_ref().map(|f| f.per_second)),
            );
            println!(
                "; pgbench of its SQL {pg_rate:.0} tx/s; ratio page/pgbench median {:.2} (rounds {})",
                median(&ratios),
                ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let (peak, now) = server.memory_mib();
    println!("server RSS: peak {peak:.1} MiB, after the run {now:.1} MiB");
    drop(server);
    drop(conn);
    drop(cluster);
    Ok(())
}

/// Signs the bench user in; the session cookie (`name=value`).
fn sign_in(base: &str) -> Result<String, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let page = client.get(format!("{base}/login")).send().await?;
        let first = session_cookie(&page).ok_or("no session cookie on /login")?;
        let html = page.text().await?;
        let csrf = html
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or("no CSRF token on /login")?
            .to_string();
        let signed = client
            .post(format!("{base}/login"))
            .header("Cookie", &first)
            .header("Origin", base)
            .form(&[
                ("email", EMAIL),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ])
            .send()
            .await?;
        if !signed.status().is_redirection() {
            return Err(format!("sign-in answered {}", signed.status()).into());
        }
        Ok(session_cookie(&signed).unwrap_or(first))
    })
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("dnd_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

fn get_once(base: &str, path: &str, cookie: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("Cookie", cookie)
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(format!("{path} answered {}", r.status()).into());
        }
        r.bytes().await?;
        Ok(())
    })
}

/// Runs `request` (twice: the first warms the server's connections) with
/// every statement logged the second time, and reads back, with their
/// parameters filled in, the statements the server sent.
fn capture_sql(
    conn: &mut PgConnection,
    log_path: &Path,
    request: impl Fn() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let own: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(conn)?;
    request()?;
    diesel::sql_query("ALTER SYSTEM SET log_statement = 'all'").execute(conn)?;
    diesel::sql_query("SELECT pg_reload_conf()").execute(conn)?;
    std::thread::sleep(Duration::from_millis(300));
    let start = std::fs::metadata(log_path)?.len();
    request()?;
    std::thread::sleep(Duration::from_millis(300));
    diesel::sql_query("ALTER SYSTEM RESET log_statement").execute(conn)?;
    diesel::sql_query("SELECT pg_reload_conf()").execute(conn)?;
    let text = std::fs::read_to_string(log_path)?;
    let text = text.get(start as usize..).unwrap_or("");
    Ok(statements_in(text, own.pid))
}

/// The statements in a PostgreSQL log (default prefix `%m [%p] `), bar
/// those of `skip_pid`, session set-up (`SET`) and pings.
fn statements_in(log: &str, skip_pid: i32) -> Vec<String> {
    // Entries: (pid, "LOG"/"DETAIL", message with its continuation lines).
    let mut entries: Vec<(i32, String, String)> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix('\t') {
            if let Some(last) = entries.last_mut() {
                last.2.push('\n');
                last.2.push_str(rest);
            }
            continue;
        }
        let Some((_, after)) = line.split_once(" [") else {
            continue;
        };
        let Some((pid, after)) = after.split_once("] ") else {
            continue;
        };
        let Some((level, message)) = after.split_once(":  ") else {
            continue;
        };
        entries.push((
            pid.parse().unwrap_or(0),
            level.to_string(),
            message.to_string(),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, (pid, level, message)) in entries.iter().enumerate() {
        if *pid == skip_pid || level != "LOG" {
            continue;
        }
        let sql = if let Some(s) = message.strip_prefix("statement: ") {
            s.to_string()
        } else if let Some(s) = message.strip_prefix("execute ") {
            match s.split_once(": ") {
                Some((_, sql)) => sql.to_string(),
                None => continue,
            }
        } else {
            continue;
        };
        let parameters = entries
            .get(i + 1)
            .filter(|(p, l, m)| p == pid && l == "DETAIL" && m.starts_with("parameters: "))
            .map(|(_, _, m)| parse_parameters(&m["parameters: ".len()..]))
            .unwrap_or_default();
        let mut sql = sql;
        for (n, literal) in parameters.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", n + 1), literal);
        }
        let upper = sql.trim_start().to_uppercase();
        if upper.starts_with("SET ") || upper == "SELECT 1" {
            continue;
        }
        out.push(sql);
    }
    out
}

/// `$1 = '5', $2 = NULL, $3 = 'O''Brien'` → the literals in order.
fn parse_parameters(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find(" = ") {
        rest = &rest[eq + 3..];
        if let Some(after) = rest.strip_prefix("NULL") {
            out.push("NULL".into());
            rest = after;
        } else if rest.starts_with('\'') {
            // A quoted literal, '' standing for one quote.
            let bytes = rest.as_bytes();
            let mut end = 1;
            while end < bytes.len() {
                if bytes[end] == b'\'' {
                    if bytes.get(end + 1) == Some(&b'\'') {
                        end += 2;
                        continue;
                    }
                    break;
                }
                end += 1;
            }
            out.push(rest[..(end + 1).min(rest.len())].to_string());
            rest = &rest[(end + 1).min(rest.len())..];
        } else {
            break;
        }
    }
    out
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
