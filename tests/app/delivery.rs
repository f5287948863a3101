//! The dispatcher and the real provider clients, against a local server
//! that speaks the providers' documented request and response formats.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use chrono::Utc;
use diesel::RunQueryDsl;
use serde_json::json;

use crate::common::{spawn_app, test_hosts, TestApp};
use dnd::db::contacts::{self, ContactInput};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::{Channel, EmailAddress, PhoneNumber};
use dnd::outbound::dispatcher::Dispatcher;

/// One request the fake provider received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: String,
    idempotency: Option<String>,
    form: Vec<(String, String)>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// How long the fake provider takes to answer for [`SLOW`].
const SLOW_ANSWER: Duration = Duration::from_secs(5);
/// How long the dispatcher's client waits in the tests of [`SLOW`].
const TIMEOUT: Duration = Duration::from_secs(1);
/// The number the fake provider answers only after [`SLOW_ANSWER`].
const SLOW: &str = "+14156669009";
/// The number the fake provider answers 503 for, every time.
const DOWN: &str = "+14156669010";

/// Twilio's and Mailgun's sending endpoints, as documented: 201 with a
/// message SID, 400 with code 21610 for an unsubscribed recipient, 503 once
/// for a number that then succeeds and always for [`DOWN`]; for two
/// numbers, a 500 and a 201 without a SID (answers that leave open whether
/// the message went out); and for [`SLOW`], a 201 only after
/// [`SLOW_ANSWER`]. Every request is logged as it arrives.
async fn fake_provider() -> (String, Log) {
    let log: Log = Arc::default();
    let flaky = Arc::new(Mutex::new(0u32));
    let data = web::Data::new((log.clone(), flaky));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                web::post().to(|req: HttpRequest, form: web::Form<Vec<(String, String)>>, data: web::Data<(Log, Arc<Mutex<u32>>)>| async move {
                    let seen = record(&req, form.into_inner());
                    let to = seen.form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone()).unwrap_or_default();
                    data.0.lock().unwrap().push(seen);
                    if to == "+14156669001" || to == "+4402079460958" {
                        return HttpResponse::BadRequest().json(json!({
                            "code": 21610, "message": "Attempt to send to unsubscribed recipient",
                            "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}));
                    }
                    if to == "+14156669003" {
                        return HttpResponse::InternalServerError().finish();
                    }
                    // Twilio's documented answers for bad credentials, a
                    // rate limit that never lifts, and a landline.
                    if to == "+14156669006" {
                        return HttpResponse::Unauthorized().json(json!({
                            "code": 20003, "message": "Authenticate", "status": 401}));
                    }
                    if to == "+14156669007" {
                        return HttpResponse::TooManyRequests().json(json!({
                            "code": 20429, "message": "Too Many Requests", "status": 429}));
                    }
                    if to == "+14156669008" {
                        return HttpResponse::BadRequest().json(json!({
                            "code": 21614, "message": "'To' number is not a valid mobile number", "status": 400}));
                    }
                    if to == "+14156669005" {
                        return HttpResponse::Created().json(json!({"status": "queued"}));
                    }
                    if to == DOWN {
                        return HttpResponse::ServiceUnavailable().finish();
                    }
                    if to == SLOW {
                        actix_web::rt::time::sleep(SLOW_ANSWER).await;
                        return HttpResponse::Created().json(json!({"sid": "SMTOOLATE", "status": "queued"}));
                    }
                    if to == "+14156669002" {
                        let mut n = data.1.lock().unwrap();
                        *n += 1;
                        if *n == 1 {
                            return HttpResponse::ServiceUnavailable().finish();
                        }
                    }
                    HttpResponse::Created().json(json!({"sid": format!("SM{:032}", data.0.lock().unwrap().len()), "status": "queued"}))
                }),
            )
            .route(
                "/v3/{domain}/messages",
                web::post().to(|req: HttpRequest, form: web::Form<Vec<(String, String)>>, data: web::Data<(Log, Arc<Mutex<u32>>)>| async move {
                    data.0.lock().unwrap().push(record(&req, form.into_inner()));
                    HttpResponse::Ok().json(json!({"id": "<20261127.1@mg.example>", "message": "Queued. Thank you."}))
                }),
            )
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), log)
}

fn record(req: &HttpRequest, form: Vec<(String, String)>) -> Seen {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Seen {
        path: req.path().to_string(),
        authorization: header("authorization").unwrap_or_default(),
        idempotency: header("i-twilio-idempotency-token"),
        form,
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn contact(app: &TestApp, location_id: i64, phone: &str, email: &str) -> i64 {
    contacts::upsert(
        &mut app.db.conn(),
        location_id,
        &ContactInput {
            phone: Some(PhoneNumber::parse_international(phone).unwrap()),
            email: Some(EmailAddress::parse(email).unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

async fn queue(app: &TestApp, id: i64, channel: &str) -> i64 {
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages",
            json!({"contact_id": id, "channel": channel, "body": "See you at 10:00", "subject": "Appointment"}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    body["id"].as_i64().unwrap()
}

/// The next SMS to the contact is refused at the gate, for this reason.
async fn assert_sms_blocked_by(app: &TestApp, id: i64, reason: &str) {
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages",
            json!({"contact_id": id, "channel": "sms", "body": "x"}),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["reasons"], json!([reason]));
}

async fn status_of(app: &TestApp, id: i64) -> serde_json::Value {
    app.api_get(demo::API_KEY_DOWNTOWN, &format!("/api/v1/messages/{id}"))
        .await
        .1
}

fn point_at(app: &TestApp, location_id: i64, base: &str) {
    let mut conn = app.db.conn();
    dnd::db::integrations::set_transport(
        &mut conn,
        location_id,
        Channel::Sms,
        dnd::domain::TransportKind::Twilio,
        Some(base),
        None,
        Some("+12125559999"),
    )
    .unwrap();
    dnd::db::integrations::set_transport(
        &mut conn,
        location_id,
        Channel::Email,
        dnd::domain::TransportKind::Mailgun,
        Some(base),
        Some("key-demo-mailgun-api"),
        Some("Downtown Dental <hello@mg.downtown-dental.example>"),
    )
    .unwrap();
}

#[actix_web::test]
async fn the_real_clients_send_the_documented_requests() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let ana = contact(&app, downtown, "+14156661001", "ana@example.com");
    let sms = queue(&app, ana, "sms").await;
    let email = queue(&app, ana, "email").await;
    let dispatcher = Dispatcher::new(
        app.db.pool(),
        Some("https://dnd.example.com".into()),
        test_hosts(),
    )
    .unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap(), 2);

    let seen = log.lock().unwrap().clone();
    let twilio = seen
        .iter()
        .find(|s| s.path.contains("/Messages.json"))
        .unwrap();
    assert_eq!(
        twilio.path,
        "/2010-04-01/Accounts/AC00000000000000000000000000000001/Messages.json"
    );
    assert_eq!(
        twilio.authorization,
        basic(
            "AC00000000000000000000000000000001",
            demo::TWILIO_AUTH_TOKEN
        )
    );
    let field = |s: &Seen, k: &str| s.form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field(twilio, "To").as_deref(), Some("+14156661001"));
    assert_eq!(field(twilio, "From").as_deref(), Some("+12125559999"));
    assert_eq!(field(twilio, "Body").as_deref(), Some("See you at 10:00"));
    assert_eq!(
        field(twilio, "StatusCallback").as_deref(),
        Some(
            format!(
                "https://dnd.example.com/webhooks/twilio/{downtown}/status?m={}",
                sms
            )
            .as_str()
        )
    );
    assert_eq!(
        twilio.idempotency.as_deref(),
        Some(format!("dnd-{downtown}-{sms}").as_str())
    );
    let mailgun = seen.iter().find(|s| s.path.contains("/v3/")).unwrap();
    assert_eq!(mailgun.path, "/v3/mg.downtown-dental.example/messages");
    assert_eq!(mailgun.authorization, basic("api", "key-demo-mailgun-api"));
    assert_eq!(field(mailgun, "to").as_deref(), Some("ana@example.com"));
    assert_eq!(field(mailgun, "subject").as_deref(), Some("Appointment"));
    assert_eq!(field(mailgun, "text").as_deref(), Some("See you at 10:00"));

    let s = status_of(&app, sms).await;
    assert_eq!(s["status"], "sent");
    assert!(s["provider_sid"].as_str().unwrap().starts_with("SM"));
    assert_eq!(
        status_of(&app, email).await["provider_sid"],
        "<20261127.1@mg.example>"
    );
    // Nothing is sent twice.
    assert_eq!(dispatcher.run_once().await.unwrap(), 0);
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[actix_web::test]
async fn error_21610_fails_the_message_and_sets_permanent_sms_dnd() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, _log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let id = contact(&app, downtown, "+14156669001", "gone@example.com");
    let message = queue(&app, id, "sms").await;
    Dispatcher::new(app.db.pool(), None, test_hosts())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let s = status_of(&app, message).await;
    assert_eq!(s["status"], "failed");
    assert_eq!(s["error_code"], 21610);
    let state = store::load_state(&mut app.db.conn(), downtown, id)
        .unwrap()
        .unwrap();
    assert_eq!(
        state.reasons(Channel::Sms)[0].reason,
        Reason::SmsUnsubscribed
    );
    // The next message to them is blocked at the gate.
    assert_sms_blocked_by(&app, id, "sms_unsubscribed").await;
}

/// A message queued before the upgrade, to the number as the old parser
/// spelled it, meets a 21610: the reason is kept on the number as
/// providers spell it, so the person's next message is blocked.
#[actix_web::test]
async fn a_send_error_on_an_old_spelling_blocks_the_number() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, _log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let id = contact(&app, downtown, "+442079460958", "uk@example.com");
    let message = queue(&app, id, "sms").await;
    diesel::sql_query("UPDATE messages SET to_address = '+4402079460958' WHERE id = $1")
        .bind::<diesel::sql_types::BigInt, _>(message)
        .execute(&mut app.db.conn())
        .unwrap();
    Dispatcher::new(app.db.pool(), None, test_hosts())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    assert_eq!(status_of(&app, message).await["error_code"], 21610);
    assert_sms_blocked_by(&app, id, "sms_unsubscribed").await;
}

#[actix_web::test]
async fn transient_errors_retry_and_a_dnd_set_after_queueing_stops_the_message() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let flaky = contact(&app, downtown, "+14156669002", "flaky@example.com");
    let late = contact(&app, downtown, "+14156661003", "late@example.com");
    let m1 = queue(&app, flaky, "sms").await;
    let m2 = queue(&app, late, "sms").await;
    // DND arrives after the message was queued, before it leaves.
    store::apply(&mut app.db.conn(), downtown, late, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &Actor::new(ActorKind::Contact, None, "c"),
            Utc::now(),
            None,
            None,
        )
    })
    .unwrap();
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    dispatcher.run_once().await.unwrap();
    assert_eq!(
        status_of(&app, m2).await["status"],
        "blocked",
        "never handed over"
    );
    assert_eq!(
        status_of(&app, m1).await["status"],
        "queued",
        "503: back in the queue"
    );
    // Due again now (instead of waiting for the backoff).
    diesel::sql_query("UPDATE messages SET next_attempt_at = now() WHERE status = 'queued'")
        .execute(&mut app.db.conn())
        .unwrap();
    dispatcher.run_once().await.unwrap();
    assert_eq!(status_of(&app, m1).await["status"], "sent");
    let to_late = log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.form.iter().any(|(_, v)| v == "+14156661003"))
        .count();
    assert_eq!(to_late, 0);
}

/// 401 (the credentials were refused) fails the message without any DND;
/// 429 is retried with back-off and given up after five attempts; 21614
/// (not a mobile number) fails it and sets `not_mobile` on the number.
#[actix_web::test]
async fn refused_credentials_rate_limits_and_landlines() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let refused = contact(&app, downtown, "+14156669006", "refused@example.com");
    let limited = contact(&app, downtown, "+14156669007", "limited@example.com");
    let landline = contact(&app, downtown, "+14156669008", "landline@example.com");
    let (m1, m2, m3) = (
        queue(&app, refused, "sms").await,
        queue(&app, limited, "sms").await,
        queue(&app, landline, "sms").await,
    );
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    dispatcher.run_once().await.unwrap();
    let first = status_of(&app, m1).await;
    assert_eq!(first["status"], "failed", "{first}");
    assert_eq!(first["error_code"], 20003);
    assert!(!crate::dnd::state_of(&app, downtown, refused).is_blocked(Channel::Sms));
    let third = status_of(&app, m3).await;
    assert_eq!(third["status"], "failed", "{third}");
    assert_eq!(third["error_code"], 21614);
    assert!(crate::dnd::state_of(&app, downtown, landline)
        .reasons(Channel::Sms)
        .iter()
        .any(|a| a.reason == Reason::NotMobile));
    // 429: back in the queue, later each time, then given up.
    let waits = retried_until_given_up(&app, &dispatcher, m2).await;
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "back-off grows: {waits:?}"
    );
    let given_up = status_of(&app, m2).await;
    assert_eq!(given_up["status"], "failed", "{given_up}");
    assert_eq!(requests_to(&log, "+14156669007"), 5, "five attempts in all");
}

/// How many requests the fake provider had for this number.
fn requests_to(log: &Log, to: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.form.iter().any(|(k, v)| k == "To" && v == to))
        .count()
}

/// Makes message `m`, back in the queue after its first attempt, due at
/// once four times, checking each time that it waits in the queue, then
/// that a fifth round finds nothing to send: the back-off before each of
/// attempts 2 to 5, in seconds.
async fn retried_until_given_up(app: &TestApp, dispatcher: &Dispatcher, m: i64) -> Vec<f64> {
    #[derive(diesel::QueryableByName)]
    struct Wait {
        #[diesel(sql_type = diesel::sql_types::Double)]
        secs: f64,
    }
    let make_due = || {
        diesel::sql_query("UPDATE messages SET next_attempt_at = now() WHERE status = 'queued'")
            .execute(&mut app.db.conn())
            .unwrap()
    };
    let mut waits = Vec::new();
    for attempt in 2..=5 {
        let stored = status_of(app, m).await;
        assert_eq!(
            stored["status"], "queued",
            "before attempt {attempt}: {stored}"
        );
        let wait: Wait = diesel::sql_query(format!(
            "SELECT extract(epoch FROM next_attempt_at - now())::float8 AS secs FROM messages WHERE id = {m}"
        ))
        .get_result(&mut app.db.conn())
        .unwrap();
        waits.push(wait.secs);
        make_due();
        dispatcher.run_once().await.unwrap();
    }
    make_due();
    assert_eq!(
        dispatcher.run_once().await.unwrap(),
        0,
        "nothing is due after the fifth attempt"
    );
    waits
}

/// A provider that keeps answering 503 (not taken, so worth another try)
/// is asked five times in all, waiting longer each time, and then the
/// message fails with the provider's answer.
#[actix_web::test]
async fn a_provider_that_stays_down_is_tried_five_times_then_the_message_fails() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let id = contact(&app, downtown, DOWN, "down@example.com");
    let m = queue(&app, id, "sms").await;
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap(), 1);
    let waits = retried_until_given_up(&app, &dispatcher, m).await;
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]) && waits[0] > 0.0,
        "back-off grows: {waits:?}"
    );
    let given_up = status_of(&app, m).await;
    assert_eq!(given_up["status"], "failed", "{given_up}");
    assert!(
        given_up["error_message"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{given_up}"
    );
    assert_eq!(requests_to(&log, DOWN), 5, "five attempts in all");
    assert!(
        !crate::dnd::state_of(&app, downtown, id).is_blocked(Channel::Sms),
        "a provider's outage says nothing about the person's consent"
    );
}

/// A provider that answers only after the client has given up may have
/// taken the message: it is `unknown`, never sent again (the provider sees
/// one request, however often the dispatcher runs), and the provider's
/// later status report settles it.
#[actix_web::test]
async fn a_send_that_times_out_is_unknown_until_the_providers_report() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let id = contact(&app, downtown, SLOW, "slow@example.com");
    let m = queue(&app, id, "sms").await;
    let mut dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    // The real client, giving up sooner than the fake answers.
    dispatcher.client = test_hosts().client_with_timeout(TIMEOUT).unwrap();
    let started = Instant::now();
    assert_eq!(dispatcher.run_once().await.unwrap(), 1);
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT && took < SLOW_ANSWER,
        "the client gave up on the answer after {took:?}"
    );
    let stored = status_of(&app, m).await;
    assert_eq!(stored["status"], "unknown", "{stored}");
    assert!(
        stored["error_message"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer") && e.contains("not sent again")),
        "{stored}"
    );
    assert_eq!(requests_to(&log, SLOW), 1);

    // Neither another round, even with the message due, nor the sweep for
    // stuck messages sends it again.
    diesel::sql_query("UPDATE messages SET next_attempt_at = now()")
        .execute(&mut app.db.conn())
        .unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap(), 0);
    let settled = dispatcher
        .reconcile(chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!((settled.requeued, settled.unknown), (0, 0));
    assert_eq!(requests_to(&log, SLOW), 1, "sent once, never again");

    // Twilio's status report settles it.
    assert_eq!(
        status_callback(&app, downtown, &format!("?m={m}"), "SMSLOW1", SLOW).await,
        200
    );
    let reported = status_of(&app, m).await;
    assert_eq!(reported["status"], "delivered", "{reported}");
    assert_eq!(reported["provider_sid"], "SMSLOW1");
    assert_eq!(requests_to(&log, SLOW), 1);
}

/// An answer that leaves open whether the provider took the message (a
/// 500, a 2xx without its id) is never retried: the person could get it
/// twice. A provider that could not be reached at all took nothing, and
/// the message waits for another try.
#[actix_web::test]
async fn a_send_that_may_have_gone_out_is_never_sent_again() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let crashed = contact(&app, downtown, "+14156669003", "crashed@example.com");
    let no_sid = contact(&app, downtown, "+14156669005", "nosid@example.com");
    let m1 = queue(&app, crashed, "sms").await;
    let m2 = queue(&app, no_sid, "sms").await;
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    dispatcher.run_once().await.unwrap();
    for m in [m1, m2] {
        let stored = status_of(&app, m).await;
        assert_eq!(stored["status"], "unknown", "{stored}");
    }
    diesel::sql_query("UPDATE messages SET next_attempt_at = now()")
        .execute(&mut app.db.conn())
        .unwrap();
    while dispatcher.run_once().await.unwrap() > 0 {}
    assert_eq!(log.lock().unwrap().len(), 2, "each went out once");

    // Nothing listens: the connection is never made, nothing was sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    point_at(&app, downtown, &nowhere);
    let m3 = queue(&app, crashed, "sms").await;
    dispatcher.run_once().await.unwrap();
    let stored = status_of(&app, m3).await;
    assert_eq!(stored["status"], "queued", "{stored}");
}

#[actix_web::test]
async fn the_log_transport_keeps_messages_on_the_machine() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = contact(&app, downtown, "+14156661004", "log@example.com");
    let message = queue(&app, id, "sms").await;
    Dispatcher::new(app.db.pool(), None, test_hosts())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let s = status_of(&app, message).await;
    assert_eq!(s["status"], "sent");
    assert_eq!(s["provider_sid"], format!("log-dnd-{downtown}-{message}"));
}

/// The gate is asked again right before each provider call, not only when
/// a batch is claimed: a STOP committed while a message waits in a claimed
/// batch stops it.
#[actix_web::test]
async fn a_stop_committed_while_a_message_waits_in_a_claimed_batch_stops_it() {
    use crate::webhooks::{inbound, twilio_post};

    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, log) = fake_provider().await;
    point_at(&app, downtown, &base);
    let first = contact(&app, downtown, "+14156661101", "first@example.com");
    let second = contact(&app, downtown, "+14156661102", "second@example.com");
    let m1 = queue(&app, first, "sms").await;
    let m2 = queue(&app, second, "sms").await;
    let claimed = dnd::db::outbound::claim(&mut app.db.conn(), 10).unwrap();
    assert_eq!(claimed.len(), 2);
    // The second recipient texts STOP while the batch is on its way.
    let (code, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMCLAIMED1", "+14156661102", "STOP"),
    )
    .await;
    assert_eq!(code, 200);
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    for m in claimed {
        dispatcher.deliver(m).await.unwrap();
    }
    assert_eq!(status_of(&app, m1).await["status"], "sent");
    let stopped = status_of(&app, m2).await;
    assert_eq!(stopped["status"], "blocked");
    assert_eq!(stopped["reasons"], json!(["sms_opt_out"]));
    let sent_to: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s.form
                .iter()
                .find(|(k, _)| k == "To")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(sent_to, vec!["+14156661101"]);
}

async fn status_callback(app: &TestApp, location_id: i64, query: &str, sid: &str, to: &str) -> u16 {
    let path = format!("/webhooks/twilio/{location_id}/status{query}");
    let params = crate::webhooks::form(&[
        ("MessageSid", sid),
        ("MessageStatus", "delivered"),
        ("To", to),
        ("From", "+12125559999"),
    ]);
    crate::webhooks::twilio_post_signed(
        app,
        &path,
        &app.url(&path),
        &params,
        demo::TWILIO_AUTH_TOKEN,
    )
    .await
    .0
}

fn rows_with_sid(app: &TestApp, sid: &str) -> i64 {
    crate::webhooks::count(
        app,
        &format!("SELECT count(*) AS n FROM messages WHERE provider_sid = '{sid}'"),
    )
}

/// Twilio may report on a message before the dispatcher has recorded the
/// SID it was given. The report and the dispatcher's write meet on one row,
/// whichever comes first, and nothing is left `sending`.
#[actix_web::test]
async fn a_status_report_before_the_sid_is_recorded_meets_the_message_on_one_row() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    // The report carries our message id (the callback URL the dispatcher
    // gives Twilio): it finds the message and records the SID itself.
    let ana = contact(&app, downtown, "+14156661201", "early1@example.com");
    let m1 = queue(&app, ana, "sms").await;
    let mut conn = app.db.conn();
    let claimed = dnd::db::outbound::claim(&mut conn, 10).unwrap();
    assert!(matches!(
        dnd::db::outbound::hand_over(&mut conn, &claimed[0]).unwrap(),
        dnd::db::outbound::HandOver::Send(_)
    ));
    assert_eq!(
        status_callback(
            &app,
            downtown,
            &format!("?m={m1}"),
            "SMEARLY1",
            "+14156661201"
        )
        .await,
        200
    );
    dnd::db::outbound::mark_sent(&mut conn, downtown, m1, "SMEARLY1").unwrap();
    let s = status_of(&app, m1).await;
    assert_eq!(
        (s["status"].as_str(), s["provider_sid"].as_str()),
        (Some("delivered"), Some("SMEARLY1"))
    );
    assert_eq!(rows_with_sid(&app, "SMEARLY1"), 1);

    // A report without our id (a Messaging Service's own callback) makes a
    // row of its own first; the dispatcher's record merges it.
    let bo = contact(&app, downtown, "+14156661202", "early2@example.com");
    let m2 = queue(&app, bo, "sms").await;
    let sid = format!("log-dnd-{downtown}-{m2}");
    assert_eq!(
        status_callback(&app, downtown, "", &sid, "+14156661202").await,
        200
    );
    assert_eq!(rows_with_sid(&app, &sid), 1);
    Dispatcher::new(app.db.pool(), None, test_hosts())
        .unwrap()
        .run_once()
        .await
        .unwrap();
    let s = status_of(&app, m2).await;
    assert_eq!(s["status"], "delivered", "{s}");
    assert_eq!(s["provider_sid"], sid.as_str());
    assert_eq!(rows_with_sid(&app, &sid), 1, "one row");
}

/// A message whose outcome could not be recorded, or whose dispatcher died
/// mid-way, is found and settled: one never handed over is queued again
/// (and asks the gate again); one handed over is `unknown`, never sent a
/// second time, until the provider's report settles it. A failure with one
/// message never keeps the others of its batch from going out.
#[actix_web::test]
async fn messages_left_sending_are_settled_and_never_sent_twice() {
    use diesel::connection::SimpleConnection;

    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            contact(
                &app,
                downtown,
                &format!("+1415666130{i}"),
                &format!("stuck{i}@example.com"),
            )
        })
        .collect();
    let mut messages = Vec::new();
    for id in &ids {
        messages.push(queue(&app, *id, "sms").await);
    }
    // Recording the outcome of the second message fails.
    app.db
        .conn()
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'the disk is full'; END $$;
             CREATE TRIGGER refuse_sent BEFORE UPDATE ON messages FOR EACH ROW
             WHEN (NEW.id = {} AND NEW.status = 'sent') EXECUTE FUNCTION refuse_sent();",
            messages[1]
        ))
        .unwrap();
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap(), 3);
    assert_eq!(status_of(&app, messages[0]).await["status"], "sent");
    assert_eq!(
        status_of(&app, messages[2]).await["status"],
        "sent",
        "not stranded"
    );
    assert_eq!(status_of(&app, messages[1]).await["status"], "sending");
    // A fourth is claimed by a dispatcher that dies before handing it over.
    let fourth = contact(&app, downtown, "+14156661309", "stuck9@example.com");
    let m4 = queue(&app, fourth, "sms").await;
    assert_eq!(
        dnd::db::outbound::claim(&mut app.db.conn(), 10)
            .unwrap()
            .len(),
        1
    );

    let settled = dispatcher
        .reconcile(chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!((settled.requeued, settled.unknown), (1, 1));
    let unknown = status_of(&app, messages[1]).await;
    assert_eq!(unknown["status"], "unknown");
    assert!(unknown["error_message"]
        .as_str()
        .unwrap()
        .contains("not sent again"));
    assert_eq!(status_of(&app, m4).await["status"], "queued");
    assert_eq!(
        dispatcher.run_once().await.unwrap(),
        1,
        "only the one never handed over"
    );
    assert_eq!(status_of(&app, m4).await["status"], "sent");
    assert_eq!(dispatcher.run_once().await.unwrap(), 0);
    // The provider's report settles the unknown one.
    assert_eq!(
        status_callback(
            &app,
            downtown,
            &format!("?m={}", messages[1]),
            "SMSETTLED",
            "+14156661301"
        )
        .await,
        200
    );
    let settled = status_of(&app, messages[1]).await;
    assert_eq!(settled["status"], "delivered");
    assert_eq!(settled["provider_sid"], "SMSETTLED");
}

/// One location's bulk send does not hold another location's message
/// behind it: each claim takes every location's oldest first.
#[actix_web::test]
async fn a_bulk_send_of_one_location_does_not_hold_back_another() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let ids: Vec<i64> = (0..30)
        .map(|i| {
            contact(
                &app,
                harbor,
                &format!("+1415667{i:04}"),
                &format!("bulk{i}@example.com"),
            )
        })
        .collect();
    let (code, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/messages/bulk",
            json!({"channel": "email", "body": "Class moved to 7pm", "subject": "Schedule", "contact_ids": ids}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // Queued after all thirty.
    let late = contact(&app, downtown, "+14156679999", "late@example.com");
    let one = queue(&app, late, "email").await;
    let claimed = dnd::db::outbound::claim(&mut app.db.conn(), 10).unwrap();
    assert!(
        claimed.iter().any(|m| m.id == one),
        "the other location's message waits"
    );
    // At most five of one location per claim; the next claims take the rest.
    assert_eq!(
        claimed.iter().filter(|m| m.location_id == harbor).count(),
        5
    );
    let mut rest = 0;
    loop {
        let more = dnd::db::outbound::claim(&mut app.db.conn(), 10).unwrap();
        if more.is_empty() {
            break;
        }
        rest += more.len();
    }
    assert_eq!(rest, 25, "every queued message is claimed once");
}
