//! Page benchmark: a signed-in location user's contact page and contact
//! list (100,000 contacts in the location) under 64 connections, next to a
//! static asset of the same server and to pgbench running the page's reads
//! (captured from PostgreSQL's log, replayed with prepared statements by as
//! many clients). The contact page reads everything in one statement; its
//! reads are also replayed one statement each, as the app's per-read
//! functions make them (and as the page made them before: eight round
//! trips). The list sends its reads one statement each. Each page and its
//! pgbench runs take turns in short rounds, so a machine busy with
//! something else slows all alike; the ratios printed are the medians of
//! the rounds'. Prints req/s,
//! p50/p99, the ratios, and the server's peak and final RSS (the server
//! runs in a child process, web server only). Run with
//! `cargo run --release --bin bench-pages` (`BENCH_ONLY=list`: that page only).
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
    let mut references: Vec<Vec<(String, String)>> = Vec::new();
    for (name, path) in &pages {
        let sql = capture_sql(&mut conn, &log_path, Capture::Server, |_| {
            get_once(&server.base, path, &cookie)
        })?;
        println!("{name}: {} statements per request", sql.len());
        show_sql(&sql);
        references.push(vec![(
            format!("pgbench of its SQL ({} statements)", sql.len()),
            sql.join(";\n") + ";\n",
        )]);
    }
    // The contact page's reads one statement each: the app's own per-read
    // functions, as the API and the page before its one statement make
    // them.
    let (user_id, location_id, contact_id) = (user_id(&mut conn)?, location.id, contact.id);
    let separate = capture_sql(&mut conn, &log_path, Capture::Own, |conn| {
        reads_one_by_one(conn, user_id, location_id, contact_id)
    })?;
    add_one_by_one(&mut references[0], "contact page", &separate);
    // The estimate of the location's size is kept a minute (by the server
    // as here): the reads of a page view are those with it kept.
    let estimates = dnd::db::contacts::Estimates::default();
    list_one_by_one(&mut conn, user_id, location_id, &estimates)?;
    let separate = capture_sql(&mut conn, &log_path, Capture::Own, |conn| {
        list_one_by_one(conn, user_id, location_id, &estimates)
    })?;
    add_one_by_one(&mut references[1], "contact list", &separate);

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
    // `BENCH_ONLY=list`: only the pages whose name holds that word (to
    // profile one page's rounds).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for ((name, path), scripts) in pages.iter().zip(&references) {
        if !name.contains(only.as_str()) {
            continue;
        }
        let page_url = format!("{}{path}", server.base);
        // Per round: the page, then each reference.
        let mut rounds: Vec<(load::Figures, Vec<load::Figures>)> = Vec::new();
        for _ in 0..ROUNDS {
            let (page_url, cookie) = (page_url.clone(), cookie.clone());
            let page = load::run_load(
                CONNECTIONS,
                ROUND_SECONDS,
                Arc::new(move |client: &reqwest::Client, _| {
                    client.get(&page_url).header("Cookie", &cookie)
                }),
            )?;
            let mut pg = Vec::new();
            if let Some(bin) = &pgbench {
                for (_, script) in scripts {
                    pg.push(load::run_pgbench(
                        bin,
                        &url,
                        script,
                        CONNECTIONS,
                        ROUND_SECONDS,
                    )?);
                }
            }
            rounds.push((page, pg));
        }
        println!("{name}");
        for (i, (page, pg)) in rounds.iter().enumerate() {
            println!("  round {}  page     {}", i + 1, page.line());
            for ((label, _), figures) in scripts.iter().zip(pg) {
                println!("           {label}: {}", figures.line());
            }
        }
        let page_rate = mean(rounds.iter().map(|(p, _)| p.per_second));
        println!(
            "  page {page_rate:.0} req/s, {:.3} of the static asset",
            page_rate / static_figures.per_second
        );
        if pgbench.is_none() {
            println!("  pgbench not found: no SQL baseline");
        }
        for (k, (label, _)) in scripts.iter().enumerate() {
            let ratios: Vec<f64> = rounds
                .iter()
                .filter_map(|(p, pg)| pg.get(k).map(|f| p.per_second / f.per_second))
                .collect();
            if ratios.is_empty() {
                continue;
            }
            let pg_rate = mean(
                rounds
                    .iter()
                    .filter_map(|(_, pg)| pg.get(k).map(|f| f.per_second)),
            );
            println!(
                "  {label}: {pg_rate:.0} tx/s; ratio page/pgbench median {:.2} (rounds {})",
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

/// Whose statements [`capture_sql`] reads: the app server's (every
/// backend but the benchmark's own) or the benchmark connection's own.
#[derive(Clone, Copy, PartialEq)]
enum Capture {
    Server,
    Own,
}

/// Runs `request` (twice: the first warms the connections and their
/// prepared statements) with every statement logged the second time, and
/// reads back, with their parameters filled in, the statements sent.
fn capture_sql(
    conn: &mut PgConnection,
    log_path: &Path,
    whose: Capture,
    mut request: impl FnMut(&mut PgConnection) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let own: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(conn)?;
    request(conn)?;
    diesel::sql_query("ALTER SYSTEM SET log_statement = 'all'").execute(conn)?;
    diesel::sql_query("SELECT pg_reload_conf()").execute(conn)?;
    std::thread::sleep(Duration::from_millis(300));
    let start = std::fs::metadata(log_path)?.len();
    request(conn)?;
    std::thread::sleep(Duration::from_millis(300));
    diesel::sql_query("ALTER SYSTEM RESET log_statement").execute(conn)?;
    diesel::sql_query("SELECT pg_reload_conf()").execute(conn)?;
    let text = std::fs::read_to_string(log_path)?;
    let text = text.get(start as usize..).unwrap_or("");
    Ok(statements_in(text, |pid| {
        (pid == own.pid) == (whose == Capture::Own)
    }))
}

/// A page's reads one statement each, shown, and put first among its
/// pgbench references.
fn add_one_by_one(references: &mut Vec<(String, String)>, page: &str, sql: &[String]) {
    println!(
        "{page}'s reads one statement each: {} statements",
        sql.len()
    );
    show_sql(sql);
    references.insert(
        0,
        (
            format!("pgbench of its reads one by one ({})", sql.len()),
            sql.join(";\n") + ";\n",
        ),
    );
}

fn show_sql(sql: &[String]) {
    if std::env::var_os("BENCH_SHOW_SQL").is_some() {
        for statement in sql {
            println!("  {statement}");
        }
    }
}

/// The bench user's id.
fn user_id(conn: &mut PgConnection) -> Result<i64, Box<dyn std::error::Error>> {
    Ok(users::find_by_email(conn, EMAIL)?
        .ok_or("no bench user")?
        .id)
}

/// What the list's first page shows, read the way the app reads each
/// part on its own.
fn list_one_by_one(
    conn: &mut PgConnection,
    user_id: i64,
    location_id: i64,
    estimates: &dnd::db::contacts::Estimates,
) -> Result<(), Box<dyn std::error::Error>> {
    use dnd::db::{contacts, locations};
    let (user, _) =
        locations::user_and_visible(conn, user_id, location_id)?.ok_or("no bench user")?;
    locations::first_visible(conn, &user, 200)?;
    let filter = contacts::ListFilter::from_query("", "", "")?;
    contacts::list(
        conn,
        location_id,
        &filter,
        &contacts::Cursor::First,
        50,
        estimates,
    )?;
    Ok(())
}

/// What the contact page shows, read the way the app reads each part on
/// its own (`locations::user_and_visible` and `first_visible` are what
/// every other location page reads first).
fn reads_one_by_one(
    conn: &mut PgConnection,
    user_id: i64,
    location_id: i64,
    contact_id: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    use dnd::db::{contacts, dnd as dnd_store, integrations, locations, optin, webhooks};
    let (user, _) =
        locations::user_and_visible(conn, user_id, location_id)?.ok_or("no bench user")?;
    locations::first_visible(conn, &user, 200)?;
    let contact = contacts::find(conn, location_id, contact_id)?.ok_or("no bench contact")?;
    integrations::list(conn, location_id)?;
    dnd_store::state_of(conn, &contact)?;
    dnd_store::history_of(conn, &contact, 200)?;
    optin::for_contact(conn, location_id, contact_id)?;
    webhooks::timeline(conn, location_id, contact_id, 100)?;
    Ok(())
}

/// The statements in a PostgreSQL log (default prefix `%m [%p] `) of the
/// backends `wanted`, bar session set-up (`SET`) and pings.
fn statements_in(log: &str, wanted: impl Fn(i32) -> bool) -> Vec<String> {
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
        if !wanted(*pid) || level != "LOG" {
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
        if upper.starts_with("SET ")
            || upper == "SELECT 1"
            || upper.starts_with("ALTER SYSTEM")
            || upper.starts_with("SELECT PG_RELOAD_CONF")
        {
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
