//! DND-change webhooks: subscriptions through the API, deliveries written
//! with the change, signed, in order per contact, retried, and never sent
//! where the host rules refuse.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::common::{spawn_app, spawn_app_with, test_hosts, TestApp};
use crate::dnd::{new_contact, set_reason};
use dnd::db::demo;
use dnd::db::subscriptions;
use dnd::domain::dnd::Reason;
use dnd::domain::Channel;
use dnd::outbound::notify::{signature, Notifier};

#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: String,
}

/// What the receiver keeps: the requests, and how many to fail.
type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<u32>>);

struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    /// Answers 500 while this is above zero (counting down).
    failing: Arc<Mutex<u32>>,
}

async fn receiver() -> Receiver {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let failing: Arc<Mutex<u32>> = Arc::default();
    let data = web::Data::new((seen.clone(), failing.clone()));
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/hook",
            web::post().to(
                |req: HttpRequest, body: web::Bytes, data: web::Data<ReceiverState>| async move {
                    let mut failing = data.1.lock().unwrap();
                    if *failing > 0 {
                        *failing -= 1;
                        return HttpResponse::InternalServerError().finish();
                    }
                    data.0.lock().unwrap().push(Received {
                        signature: req
                            .headers()
                            .get("X-DND-Signature")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default(),
                        body: String::from_utf8(body.to_vec()).unwrap(),
                    });
                    HttpResponse::Ok().finish()
                },
            ),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    Receiver {
        url: format!("http://127.0.0.1:{port}/hook"),
        seen,
        failing,
    }
}

async fn subscribe(app: &TestApp, key: &str, url: &str) -> (u16, Value) {
    app.api_post(key, "/api/v1/webhook-subscriptions", json!({ "url": url }))
        .await
}

fn notifier(app: &TestApp) -> Notifier {
    Notifier::new(app.db.pool(), test_hosts()).unwrap()
}

fn events(r: &Receiver) -> Vec<Value> {
    r.seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.body).unwrap())
        .collect()
}

#[actix_web::test]
async fn each_change_is_delivered_signed_and_in_order() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let hook = receiver().await;
    let (status, created) = subscribe(&app, demo::API_KEY_HARBOR, &hook.url).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = app
        .api_get(demo::API_KEY_HARBOR, "/api/v1/webhook-subscriptions")
        .await;
    assert_eq!(listed["webhook_subscriptions"][0]["id"], created["id"]);
    assert!(listed["webhook_subscriptions"][0].get("secret").is_none());

    let id = new_contact(&app, harbor, "+14155550701");
    let path = format!("/api/v1/contacts/{id}/dnd");
    app.api_put(
        demo::API_KEY_HARBOR,
        &path,
        json!({"channels": {"sms": true}}),
    )
    .await;
    app.api_put(
        demo::API_KEY_HARBOR,
        &path,
        json!({"channels": {"sms": false}, "inbound": {"calls": true}}),
    )
    .await;
    // Not a change: nothing is queued for it (nor for a refused one).
    app.api_put(
        demo::API_KEY_HARBOR,
        &path,
        json!({"channels": {"sms": false}}),
    )
    .await;
    set_reason(&app, harbor, id, Channel::Sms, Reason::SmsOptOut);
    let (status, _) = app
        .api_put(
            demo::API_KEY_HARBOR,
            &path,
            json!({"channels": {"sms": false}}),
        )
        .await;
    assert_eq!(status, 403);

    while notifier(&app).run_once().await.unwrap() > 0 {}
    let got = events(&hook);
    let actions: Vec<(&str, &str, Option<&str>)> = got
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["channel"].as_str().unwrap(),
                e["reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("set", "sms", Some("manual")),
            ("lifted", "sms", Some("manual")),
            ("inbound_on", "call", None),
            ("set", "sms", Some("sms_opt_out")),
        ]
    );
    let first = &got[0];
    assert_eq!(first["type"], "contact.dnd_updated");
    assert_eq!(first["location_id"], harbor);
    assert_eq!(first["contact_id"], id);
    assert_eq!(first["actor"]["kind"], "api");
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(got[3]["address"], "+14155550701");
    // Each signature verifies with the secret, over "t.body".
    for r in hook.seen.lock().unwrap().iter() {
        let t: i64 = r
            .signature
            .trim_start_matches("t=")
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(r.signature, signature(&secret, t, r.body.as_bytes()));
    }
    // Delivered once: another round sends nothing.
    assert_eq!(notifier(&app).run_once().await.unwrap(), 0);
    assert_eq!(events(&hook).len(), 4);
}

#[actix_web::test]
async fn a_failing_receiver_gets_retries_and_the_order_holds() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let hook = receiver().await;
    subscribe(&app, demo::API_KEY_HARBOR, &hook.url).await;
    let id = new_contact(&app, harbor, "+14155550702");
    let path = format!("/api/v1/contacts/{id}/dnd");
    *hook.failing.lock().unwrap() = 1;
    app.api_put(
        demo::API_KEY_HARBOR,
        &path,
        json!({"channels": {"email": true}}),
    )
    .await;
    app.api_put(
        demo::API_KEY_HARBOR,
        &path,
        json!({"channels": {"email": false}}),
    )
    .await;
    // The first try fails; the second change waits behind it.
    assert_eq!(notifier(&app).run_once().await.unwrap(), 1);
    assert!(events(&hook).is_empty());
    let log = subscriptions::log(&mut app.db.conn(), harbor, 10).unwrap();
    let failed = log.iter().find(|d| d.attempts == 1).unwrap();
    assert_eq!(failed.state, "pending");
    assert_eq!(failed.last_status, Some(500));
    assert!(failed.next_attempt_at > chrono::Utc::now());
    // Not due yet: nothing is sent.
    assert_eq!(notifier(&app).run_once().await.unwrap(), 0);
    subscriptions::retry_now(&mut app.db.conn(), harbor).unwrap();
    while notifier(&app).run_once().await.unwrap() > 0 {}
    let got: Vec<String> = events(&hook)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, vec!["set", "lifted"]);
    assert_eq!(
        subscriptions::pending(&mut app.db.conn(), harbor).unwrap(),
        0
    );

    // The settings page shows the subscription and its log.
    app.sign_in_as(demo::AGENCY_USER).await;
    let (_, page) = app.get_text(&format!("/locations/{harbor}/settings")).await;
    assert!(page.contains(&hook.url), "{page}");
    assert!(
        page.contains("delivered") && page.contains("HTTP 200"),
        "{page}"
    );
}

#[actix_web::test]
async fn deleting_a_subscription_cancels_what_waits_and_keys_stay_in_their_location() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let hook = receiver().await;
    let (_, created) = subscribe(&app, demo::API_KEY_HARBOR, &hook.url).await;
    let sub = created["id"].as_i64().unwrap();
    let id = new_contact(&app, harbor, "+14155550703");
    app.api_put(
        demo::API_KEY_HARBOR,
        &format!("/api/v1/contacts/{id}/dnd"),
        json!({"all": true}),
    )
    .await;
    assert_eq!(
        subscriptions::pending(&mut app.db.conn(), harbor).unwrap(),
        1
    );
    // Another location's key neither sees nor deletes it.
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/webhook-subscriptions/{sub}")))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (_, theirs) = app
        .api_get(demo::API_KEY_DOWNTOWN, "/api/v1/webhook-subscriptions")
        .await;
    assert_eq!(theirs["webhook_subscriptions"], json!([]));
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/webhook-subscriptions/{sub}")))
        .bearer_auth(demo::API_KEY_HARBOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        subscriptions::pending(&mut app.db.conn(), harbor).unwrap(),
        0
    );
    assert_eq!(notifier(&app).run_once().await.unwrap(), 0);
    assert!(events(&hook).is_empty());
}

#[actix_web::test]
async fn urls_the_host_rules_refuse_are_not_subscribed() {
    let app = spawn_app_with(|c| c.allow_private_urls = false).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://10.1.2.3/hook",
        "https://localhost/hook",
        "http://example.com/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let (status, body) = subscribe(&app, demo::API_KEY_HARBOR, url).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["field"], "url");
    }
    let (status, body) =
        subscribe(&app, demo::API_KEY_HARBOR, "https://hooks.example.com/dnd").await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn an_address_change_that_brings_a_suppression_is_announced() {
    let app = spawn_app().await;
    let hook = receiver().await;
    subscribe(&app, demo::API_KEY_HARBOR, &hook.url).await;
    let r = app
        .client
        .post(app.url("/api/v1/imports/suppressions?channel=sms"))
        .bearer_auth(demo::API_KEY_HARBOR)
        .header("Content-Type", "text/csv")
        .body("address\n+14155550710\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/contacts",
            json!({"name": "Mover", "email": "mover@example.com"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let (status, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/contacts",
            json!({"email": "mover@example.com", "phone": "+14155550710"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    while notifier(&app).run_once().await.unwrap() > 0 {}
    let actions: Vec<String> = events(&hook)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["channel"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert!(actions.contains(&"set sms".to_string()), "{actions:?}");
    assert!(
        actions.contains(&"address_changed sms".to_string()),
        "{actions:?}"
    );
}

#[actix_web::test]
async fn a_send_that_outlived_its_claim_records_nothing() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let hook = receiver().await;
    subscribe(&app, demo::API_KEY_HARBOR, &hook.url).await;
    let id = new_contact(&app, harbor, "+14155550711");
    app.api_put(
        demo::API_KEY_HARBOR,
        &format!("/api/v1/contacts/{id}/dnd"),
        json!({"all": true}),
    )
    .await;
    let claimed = subscriptions::claim(&mut app.db.conn(), 10).unwrap();
    assert_eq!(claimed.len(), 1);
    // Claimed again elsewhere once the lease ran out.
    diesel::sql_query("UPDATE webhook_deliveries SET attempts = attempts + 1")
        .execute(&mut app.db.conn())
        .unwrap();
    subscriptions::record(
        &mut app.db.conn(),
        &claimed[0],
        &subscriptions::Sent::Delivered { status: 200 },
        chrono::Utc::now(),
    )
    .unwrap();
    assert_eq!(
        subscriptions::pending(&mut app.db.conn(), harbor).unwrap(),
        1
    );
}
