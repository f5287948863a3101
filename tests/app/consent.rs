//! Consent follows the address: every way of getting a message to an
//! opted-out number, email or id through another contact is refused, over
//! HTTP, the way a user or an API client would try it.

use chrono::Utc;
use serde_json::json;

use crate::common::{spawn_app, TestApp};
use crate::webhooks::{
    address_history, count, event, inbound, mailgun_body, mailgun_post, meta_post, twilio_post,
    whatsapp,
};
use dnd::db::demo;
use dnd::domain::Channel;

const KEY: &str = demo::API_KEY_DOWNTOWN;

async fn upsert(app: &TestApp, body: serde_json::Value) -> (u16, serde_json::Value) {
    app.api_post(KEY, "/api/v1/contacts", body).await
}

async fn created(app: &TestApp, body: serde_json::Value) -> i64 {
    let (code, contact) = upsert(app, body).await;
    assert_eq!(code, 201, "{contact}");
    contact["id"].as_i64().unwrap()
}

async fn send(app: &TestApp, contact_id: i64, channel: &str) -> (u16, serde_json::Value) {
    app.api_post(
        KEY,
        "/api/v1/messages",
        json!({"contact_id": contact_id, "channel": channel, "body": "Spring offer", "subject": "Hi"}),
    )
    .await
}

async fn dnd_of(app: &TestApp, contact_id: i64) -> serde_json::Value {
    let (code, body) = app
        .api_get(KEY, &format!("/api/v1/contacts/{contact_id}"))
        .await;
    assert_eq!(code, 200, "{body}");
    body["dnd"].clone()
}

/// A location user turns email DND off on a contact's page, confirming the
/// address left the provider's suppression list; the answer's status.
async fn lift_email_as_a_user(app: &TestApp, location_id: i64, id: i64) -> u16 {
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{location_id}/contacts/{id}");
    let csrf = app.csrf_from(&page).await;
    let r = app
        .post_form(
            &format!("{page}/dnd"),
            &[
                ("csrf_token", csrf.as_str()),
                ("target", "email"),
                ("turn", "off"),
                ("confirm_suppression_removed", "yes"),
            ],
        )
        .await;
    r.status().as_u16()
}

async fn history_of(app: &TestApp, contact_id: i64) -> Vec<serde_json::Value> {
    let (code, body) = app
        .api_get(KEY, &format!("/api/v1/contacts/{contact_id}/dnd/history"))
        .await;
    assert_eq!(code, 200, "{body}");
    body["history"].as_array().unwrap().clone()
}

/// The bypass as it was found: a number texts STOP, its contact's phone is
/// replaced through the API, a new contact gets the number, and a message
/// to the new contact on SMS was queued. Now it is refused, named by the
/// reason on the number, and both contacts say so.
#[actix_web::test]
async fn an_opted_out_number_moved_to_a_new_contact_cannot_get_an_sms() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let x = created(
        &app,
        json!({"name": "Xavier Stone", "phone": "+13125551001", "email": "xavier@example.com"}),
    )
    .await;
    let (code, reply) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMMOVE1", "+13125551001", "STOP"),
    )
    .await;
    assert_eq!(code, 200);
    assert!(reply.contains("unsubscribed"), "{reply}");

    // X's phone is replaced (upsert matched by email).
    let (code, moved) = upsert(
        &app,
        json!({"email": "xavier@example.com", "phone": "+13125551002"}),
    )
    .await;
    assert_eq!((code, moved["id"].as_i64()), (200, Some(x)), "{moved}");
    // A new contact gets the opted-out number, written another way.
    let y = created(
        &app,
        json!({"name": "Yara Quinn", "phone": "(312) 555-1001", "email": "yara@example.com"}),
    )
    .await;

    let (code, refused) = send(&app, y, "sms").await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["error"], "dnd_active");
    assert_eq!(refused["reasons"], json!(["sms_opt_out"]));
    assert_eq!(refused["address"], "+13125551001");
    let (_, message) = app
        .api_get(KEY, &format!("/api/v1/messages/{}", refused["id"]))
        .await;
    assert_eq!(message["status"], "blocked", "recorded, never sent");

    // Y shows blocked, and on which number.
    let dnd = dnd_of(&app, y).await;
    assert_eq!(dnd["status"], "partial");
    assert_eq!(dnd["channels"]["sms"]["blocked"], true);
    assert_eq!(
        dnd["channels"]["sms"]["reasons"][0]["reason"],
        "sms_opt_out"
    );
    assert_eq!(
        dnd["channels"]["sms"]["reasons"][0]["address"],
        "+13125551001"
    );
    assert_eq!(dnd["channels"]["call"]["blocked"], false);
    // Y's history says why: that number's STOP.
    let history = history_of(&app, y).await;
    assert!(
        history
            .iter()
            .any(|h| h["reason"] == "sms_opt_out" && h["address"] == "+13125551001"),
        "{history:?}"
    );

    // X is on a new number: reachable there, and its history says where
    // the old number's reasons stay.
    let (code, body) = send(&app, x, "sms").await;
    assert_eq!(code, 202, "{body}");
    let history = history_of(&app, x).await;
    let moved = history
        .iter()
        .find(|h| h["action"] == "address_changed")
        .unwrap_or_else(|| panic!("{history:?}"));
    assert_eq!(moved["channel"], "sms");
    assert_eq!(moved["address"], "+13125551001");
    assert_eq!(moved["source"], "+13125551002");
    let detail = moved["detail"].as_str().unwrap();
    assert!(
        detail.contains("stay on that address") && detail.contains("Opted out by SMS"),
        "{detail}"
    );
    assert!(dnd_of(&app, x).await["channels"]["sms"]["reasons"]
        .as_array()
        .unwrap()
        .is_empty());

    // The list shows Y blocked on SMS, X not.
    app.sign_in_as(demo::LOCATION_USER).await;
    let (_, list) = app
        .get_text(&format!(
            "/locations/{downtown}/contacts?channel=sms&q=%2B1312555"
        ))
        .await;
    assert!(list.contains("Yara Quinn"), "{list}");
    assert!(!list.contains("Xavier Stone"), "{list}");
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{y}"))
        .await;
    assert!(page.contains("DND Partial"));
    assert!(page.contains("Opted out by SMS"));
    assert!(page.contains("on +13125551001"), "{page}");
}

/// The same for email after a spam complaint: the complaint is about the
/// address, whatever contact has it, however it is spelled.
#[actix_web::test]
async fn a_complained_email_moved_to_a_new_contact_cannot_get_an_email() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let x = created(
        &app,
        json!({"name": "Xena Park", "phone": "+13125552001", "email": "xena@example.com"}),
    )
    .await;
    let now = Utc::now().timestamp();
    let (code, text) = mailgun_post(
        &app,
        downtown,
        &mailgun_body(
            demo::MAILGUN_SIGNING_KEY,
            "tok-complaint-1",
            now,
            event(
                "complained",
                "ev-complaint-1",
                "Xena@Example.com",
                None,
                None,
            ),
        ),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(send(&app, x, "email").await.0, 409);
    // X gets another address; a new contact takes the complained one.
    let (code, _) = upsert(
        &app,
        json!({"phone": "+13125552001", "email": "xena.park@example.net"}),
    )
    .await;
    assert_eq!(code, 200);
    let y = created(
        &app,
        json!({"name": "Yusuf Ali", "phone": "+13125552002", "email": "  XENA@example.COM "}),
    )
    .await;
    let (code, refused) = send(&app, y, "email").await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["reasons"], json!(["email_spam_complaint"]));
    assert_eq!(refused["address"], "xena@example.com");
    assert_eq!(send(&app, x, "email").await.0, 202);
    // Nothing the location user may do lifts it from Y's record.
    assert_eq!(lift_email_as_a_user(&app, downtown, y).await, 403);
    assert_eq!(send(&app, y, "email").await.0, 409);
}

/// WhatsApp: a stop is about the number, whether a contact has it as its
/// WhatsApp id or only as its phone; and two contacts can no longer share
/// one WhatsApp id.
#[actix_web::test]
async fn a_whatsapp_stop_holds_for_every_contact_that_reaches_the_number() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let x = created(
        &app,
        json!({"name": "Xiomara", "phone": "+13125553001", "whatsapp_id": "16465553001"}),
    )
    .await;
    let ts = Utc::now().timestamp() as u64;
    assert_eq!(
        meta_post(
            &app,
            downtown,
            &whatsapp("16465553001", "stop", ts),
            demo::META_APP_SECRET
        )
        .await,
        200
    );
    let (code, refused) = send(&app, x, "whatsapp").await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["reasons"], json!(["channel_opt_out"]));
    // In one call, a second contact with the same WhatsApp id: refused,
    // naming the field, and nothing is stored.
    let (code, body) = upsert(
        &app,
        json!({"name": "Copy", "phone": "+13125553002", "whatsapp_id": "+1 646 555 3001"}),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["field"], "whatsapp_id");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM contacts WHERE phone = '+13125553002'"
        ),
        0
    );
    // A contact with that number as its phone and no WhatsApp id is sent
    // WhatsApp at its phone: blocked all the same. SMS to it is not.
    let z = created(&app, json!({"name": "Zed", "phone": "+16465553001"})).await;
    let (code, refused) = send(&app, z, "whatsapp").await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["address"], "+16465553001");
    assert_eq!(send(&app, z, "sms").await.0, 202);
}

/// Messenger: a STOP NOTIFICATIONS for a page-scoped id nobody has yet
/// blocks whoever gets the id later.
#[actix_web::test]
async fn a_messenger_stop_for_an_unknown_id_blocks_its_future_contact() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let stop = json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [{
        "sender": {"id": "PSID-9001"}, "recipient": {"id": "PAGE"},
        "timestamp": Utc::now().timestamp_millis(),
        "optin": {"type": "notification_messages", "notification_messages_status": "STOP NOTIFICATIONS"}}]}]});
    assert_eq!(
        meta_post(&app, downtown, &stop, demo::META_APP_SECRET).await,
        200
    );
    let y = created(
        &app,
        json!({"name": "Yves", "email": "yves@example.com", "facebook_id": "PSID-9001"}),
    )
    .await;
    let (code, refused) = send(&app, y, "facebook").await;
    assert_eq!(code, 409, "{refused}");
    assert_eq!(refused["reasons"], json!(["channel_opt_out"]));
    // And the id cannot be given to a second contact.
    let (code, body) = upsert(
        &app,
        json!({"email": "other@example.com", "facebook_id": "PSID-9001"}),
    )
    .await;
    assert_eq!((code, body["field"].as_str()), (409, Some("facebook_id")));
}

/// A phone that belongs to another contact cannot be given to a contact
/// matched by its email: 409 naming the field, nothing changed.
#[actix_web::test]
async fn one_phone_is_one_contact() {
    let app = spawn_app().await;
    let a = created(
        &app,
        json!({"phone": "+13125554001", "email": "a4001@example.com"}),
    )
    .await;
    created(
        &app,
        json!({"phone": "+13125554002", "email": "b4002@example.com"}),
    )
    .await;
    let (code, body) = upsert(
        &app,
        json!({"phone": "+13125554002", "email": "a4001@example.com"}),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body["field"].is_string(), "{body}");
    let (_, a_now) = app.api_get(KEY, &format!("/api/v1/contacts/{a}")).await;
    assert_eq!(a_now["phone"], "+13125554001");
}

/// A number written with its trunk prefix reaches the same contact as the
/// STOP that arrives in E.164: one canonical string whatever the path.
#[actix_web::test]
async fn a_number_written_nationally_is_the_number_its_stop_comes_from() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = created(
        &app,
        json!({"name": "Gwen", "phone": "+44 (0)20 7946 0958", "email": "gwen@example.co.uk"}),
    )
    .await;
    let (_, contact) = app.api_get(KEY, &format!("/api/v1/contacts/{id}")).await;
    assert_eq!(contact["phone"], "+442079460958");
    twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMUK1", "+442079460958", "STOP"),
    )
    .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM contacts WHERE phone LIKE '+44%'"
        ),
        1,
        "no second contact"
    );
    assert_eq!(send(&app, id, "sms").await.0, 409);
    // Looking it up in national form finds it too.
    let (_, found) = app
        .api_get(KEY, "/api/v1/contacts?phone=%2B44%20(0)20%207946%200958")
        .await;
    assert_eq!(found["contacts"][0]["id"], id);
}

/// A bulk send decides each recipient on the address it goes to: a
/// contact that moved off an opted-out number is reached, the contact that
/// took the number is not.
#[actix_web::test]
async fn a_bulk_send_with_moved_and_fresh_addresses() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let mover = created(
        &app,
        json!({"name": "Mover", "phone": "+13125555001", "email": "mover@example.com"}),
    )
    .await;
    let fresh = created(
        &app,
        json!({"name": "Fresh", "phone": "+13125555002", "email": "fresh@example.com"}),
    )
    .await;
    twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMBULK1", "+13125555001", "STOP"),
    )
    .await;
    twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMBULK2", "+13125555003", "STOP"),
    )
    .await;
    upsert(
        &app,
        json!({"email": "mover@example.com", "phone": "+13125555004"}),
    )
    .await;
    let taker = created(&app, json!({"name": "Taker", "phone": "+13125555001"})).await;
    // The STOP from a number nobody had made a contact, blocked from its
    // first moment; another new contact is reachable.
    let (code, second) = upsert(
        &app,
        json!({"email": "second@example.com", "phone": "+13125555006"}),
    )
    .await;
    assert_eq!(code, 201);
    let texter = app
        .api_get(KEY, "/api/v1/contacts?phone=%2B13125555003")
        .await
        .1["contacts"][0]["id"]
        .as_i64()
        .unwrap();
    let (code, body) = app
        .api_post(
            KEY,
            "/api/v1/messages/bulk",
            json!({"channel": "sms", "body": "Sale", "contact_ids": [mover, fresh, taker, texter, second["id"]]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let status = |id: i64| {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["contact_id"] == id)
            .map(|r| (r["status"].clone(), r["reasons"].clone()))
            .unwrap()
    };
    assert_eq!(status(mover).0, "queued");
    assert_eq!(status(fresh).0, "queued");
    assert_eq!(status(taker), (json!("blocked"), json!(["sms_opt_out"])));
    assert_eq!(status(texter).0, "blocked");
    assert_eq!(status(second["id"].as_i64().unwrap()).0, "queued");
    assert_eq!(
        (body["queued"].clone(), body["blocked"].clone()),
        (json!(3), json!(2))
    );
}

/// Meta retries for hours: a resume and a stop delivered in swapped order
/// are applied by their own times, and the late one is recorded as stale.
#[actix_web::test]
async fn meta_stop_and_resume_in_swapped_order_follow_their_timestamps() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let now = Utc::now().timestamp() as u64;
    let x = created(
        &app,
        json!({"name": "Wren", "phone": "+13125556001", "whatsapp_id": "13125556001"}),
    )
    .await;
    // The person stopped at now-60, after resuming at now-120; the stop
    // arrives first, the older resume an hour later.
    let secret = demo::META_APP_SECRET;
    assert_eq!(
        meta_post(
            &app,
            downtown,
            &whatsapp("13125556001", "stop", now - 60),
            secret
        )
        .await,
        200
    );
    assert_eq!(
        meta_post(
            &app,
            downtown,
            &whatsapp("13125556001", "resume", now - 120),
            secret
        )
        .await,
        200
    );
    assert_eq!(
        send(&app, x, "whatsapp").await.0,
        409,
        "the late resume lifts nothing"
    );
    let history = address_history(&app, downtown, Channel::Whatsapp, "+13125556001");
    let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, vec!["set", "stale"]);
    assert!(history[1]
        .detail
        .as_deref()
        .unwrap()
        .contains("before the last consent change"));
    // The other way round: a resume newer than a late stop stands.
    let y = created(
        &app,
        json!({"name": "Yael", "phone": "+13125556002", "whatsapp_id": "13125556002"}),
    )
    .await;
    meta_post(
        &app,
        downtown,
        &whatsapp("13125556002", "stop", now - 300),
        secret,
    )
    .await;
    meta_post(
        &app,
        downtown,
        &whatsapp("13125556002", "resume", now - 100),
        secret,
    )
    .await;
    meta_post(
        &app,
        downtown,
        &whatsapp("13125556002", "stop", now - 200),
        secret,
    )
    .await;
    assert_eq!(
        send(&app, y, "whatsapp").await.0,
        202,
        "the late stop re-sets nothing"
    );
    let actions: Vec<String> = address_history(&app, downtown, Channel::Whatsapp, "+13125556002")
        .iter()
        .map(|h| h.action.as_str().to_string())
        .collect();
    assert_eq!(actions, vec!["set", "lifted", "stale"]);
}

/// A Mailgun bounce older than a user's confirmed lift does not re-set it;
/// a bounce after the lift does.
#[actix_web::test]
async fn a_bounce_older_than_a_users_lift_does_not_come_back() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = created(
        &app,
        json!({"name": "Bo", "phone": "+13125557001", "email": "bo@example.com"}),
    )
    .await;
    let now = Utc::now().timestamp();
    let bounce = |token: &str, ev: &str, at: f64| {
        let mut e = event(
            "failed",
            ev,
            "bo@example.com",
            Some("permanent"),
            Some("bounce"),
        );
        e["timestamp"] = json!(at);
        mailgun_body(demo::MAILGUN_SIGNING_KEY, token, now, e)
    };
    assert_eq!(
        mailgun_post(
            &app,
            downtown,
            &bounce("tk-b1", "ev-b1", (now - 3600) as f64)
        )
        .await
        .0,
        200
    );
    assert_eq!(send(&app, id, "email").await.0, 409);
    // The user removes the address from Mailgun's list and lifts it.
    assert_eq!(lift_email_as_a_user(&app, downtown, id).await, 303);
    // Mailgun retries a bounce from before the lift, hours late.
    assert_eq!(
        mailgun_post(
            &app,
            downtown,
            &bounce("tk-b2", "ev-b2", (now - 1800) as f64)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(&app, id, "email").await.0,
        202,
        "the stale bounce changes nothing"
    );
    let actions: Vec<String> = address_history(&app, downtown, Channel::Email, "bo@example.com")
        .iter()
        .map(|h| h.action.as_str().to_string())
        .collect();
    assert_eq!(actions, vec!["set", "lifted", "stale"]);
    // A new bounce, after the lift, applies.
    assert_eq!(
        mailgun_post(
            &app,
            downtown,
            &bounce("tk-b3", "ev-b3", Utc::now().timestamp_micros() as f64 / 1e6)
        )
        .await
        .0,
        200
    );
    assert_eq!(send(&app, id, "email").await.0, 409);
}

/// A spam complaint older than a newer bounce, or than a user's lift of
/// the bounce, is still the person's complaint: clocks are per reason, so
/// late signals about other reasons are never dropped as stale.
#[actix_web::test]
async fn a_late_complaint_survives_a_newer_bounce_and_its_lift() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = created(&app, json!({"name": "Cy", "email": "cy@example.com"})).await;
    let now = Utc::now().timestamp();
    let signed = |token: &str, mut e: serde_json::Value, at: i64| {
        e["timestamp"] = json!(at as f64);
        mailgun_body(demo::MAILGUN_SIGNING_KEY, token, now, e)
    };
    let bounce = event(
        "failed",
        "ev-cy-b",
        "cy@example.com",
        Some("permanent"),
        Some("bounce"),
    );
    assert_eq!(
        mailgun_post(&app, downtown, &signed("tk-cy-1", bounce, now - 600))
            .await
            .0,
        200
    );
    // The user lifts the bounce after fixing the mailbox.
    assert_eq!(lift_email_as_a_user(&app, downtown, id).await, 303);
    assert_eq!(send(&app, id, "email").await.0, 202);
    // Mailgun delivers a complaint from before both, late.
    let complaint = event("complained", "ev-cy-c", "cy@example.com", None, None);
    assert_eq!(
        mailgun_post(&app, downtown, &signed("tk-cy-2", complaint, now - 1200))
            .await
            .0,
        200
    );
    let (status, body) = send(&app, id, "email").await;
    assert_eq!(status, 409, "{body}");
    let dnd = dnd_of(&app, id).await;
    let reasons: Vec<&str> = dnd["channels"]["email"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["email_spam_complaint"], "{dnd}");
}

/// Twilio retries a STOP after the person already texted START: the retry
/// is the same event and changes nothing; the person stays opted in.
#[actix_web::test]
async fn a_twilio_retry_of_an_old_stop_after_a_start_changes_nothing() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = created(&app, json!({"name": "Sam", "phone": "+13125558001"})).await;
    let stop = inbound("SMRETRY1", "+13125558001", "STOP");
    twilio_post(&app, downtown, "sms", &stop).await;
    twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMRETRY2", "+13125558001", "START"),
    )
    .await;
    assert_eq!(send(&app, id, "sms").await.0, 202);
    let (code, reply) = twilio_post(&app, downtown, "sms", &stop).await;
    assert_eq!(code, 200);
    assert!(
        reply.contains("unsubscribed"),
        "the retry gets the same answer: {reply}"
    );
    assert_eq!(send(&app, id, "sms").await.0, 202, "still opted in");
    assert_eq!(
        address_history(&app, downtown, Channel::Sms, "+13125558001").len(),
        2,
        "the retry adds nothing"
    );
}
