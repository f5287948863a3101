//! Provider webhooks against a real database: signed requests change DND,
//! everything else changes nothing.

use chrono::Utc;
use diesel::RunQueryDsl;
use serde_json::json;

use crate::common::{spawn_app, spawn_app_with, TestApp};
use dnd::db::contacts;
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{ActorKind, DndState, Kind, Reason};
use dnd::domain::{Channel, EmailAddress, PhoneNumber};
use dnd::webhooks::signatures::{sign, twilio_signature};

pub fn form(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Posts a Twilio form the way Twilio does, signed for `signed_url`.
pub async fn twilio_post_signed(
    app: &TestApp,
    path: &str,
    signed_url: &str,
    params: &[(String, String)],
    token: &str,
) -> (u16, String) {
    let signature = twilio_signature(signed_url, params, token);
    let r = app
        .client
        .post(app.url(path))
        .header("X-Twilio-Signature", signature)
        .form(params)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

pub async fn twilio_post(
    app: &TestApp,
    location_id: i64,
    kind: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    let path = format!("/webhooks/twilio/{location_id}/{kind}");
    twilio_post_signed(
        app,
        &path,
        &app.url(&path),
        &form(params),
        demo::TWILIO_AUTH_TOKEN,
    )
    .await
}

pub fn inbound<'a>(sid: &'a str, from: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("AccountSid", "AC00000000000000000000000000000001"),
        ("From", from),
        ("To", "+12125559999"),
        ("Body", body),
        ("NumMedia", "0"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
}

fn phone_state(app: &TestApp, location_id: i64, phone: &str) -> Option<(i64, DndState)> {
    let mut conn = app.db.conn();
    let c = contacts::find_by_phone(
        &mut conn,
        location_id,
        &PhoneNumber::parse_international(phone).unwrap(),
    )
    .unwrap()?;
    Some((
        c.id,
        store::load_state(&mut conn, location_id, c.id)
            .unwrap()
            .unwrap(),
    ))
}

fn email_state(app: &TestApp, location_id: i64, email: &str) -> Option<(i64, DndState)> {
    let mut conn = app.db.conn();
    let c = contacts::find_by_email(&mut conn, location_id, &EmailAddress::parse(email).unwrap())
        .unwrap()?;
    Some((
        c.id,
        store::load_state(&mut conn, location_id, c.id)
            .unwrap()
            .unwrap(),
    ))
}

/// The reasons kept on an address, whoever holds it (maybe nobody).
pub fn address_reasons(
    app: &TestApp,
    location_id: i64,
    channel: Channel,
    address: &str,
) -> Vec<Reason> {
    let key = store::AddressKey {
        location_id,
        channel,
        address: address.to_string(),
    };
    let states = store::address_states(&mut app.db.conn(), std::slice::from_ref(&key)).unwrap();
    states[&key]
        .reasons
        .reasons(channel)
        .iter()
        .map(|a| a.reason)
        .collect()
}

/// The history kept on an address, oldest first.
pub fn address_history(
    app: &TestApp,
    location_id: i64,
    channel: Channel,
    address: &str,
) -> Vec<store::HistoryRow> {
    store::address_history(
        &mut app.db.conn(),
        &store::AddressKey {
            location_id,
            channel,
            address: address.to_string(),
        },
    )
    .unwrap()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub fn count(app: &TestApp, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(&mut app.db.conn())
        .unwrap()
        .n
}

fn history_len(app: &TestApp, location_id: i64, contact_id: i64) -> usize {
    store::history(&mut app.db.conn(), location_id, contact_id, 1000)
        .unwrap()
        .len()
}

#[actix_web::test]
async fn stop_sets_permanent_sms_dnd_and_replies_with_the_confirmation() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (code, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0001", "+12125550100", "Stop."),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<Response><Message>Downtown Dental: you are unsubscribed"),
        "{body}"
    );
    let (id, state) = phone_state(&app, downtown, "+12125550100").unwrap();
    let reasons = state.reasons(Channel::Sms);
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].reason, Reason::SmsOptOut);
    assert_eq!(reasons[0].reason.kind(), Kind::Permanent);
    assert_eq!(reasons[0].actor.kind, ActorKind::Contact);
    assert_eq!(reasons[0].address.as_deref(), Some("+12125550100"));
    // The message is on the contact's timeline, the event is stored.
    let timeline = dnd::db::webhooks::timeline(&mut app.db.conn(), downtown, id, 10).unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].body, "Stop.");
    assert_eq!(timeline[0].provider_sid.as_deref(), Some("SM0001"));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM webhook_events WHERE outcome = 'opt_out'"
        ),
        1
    );

    // Twilio retries the same message: same answer, nothing new.
    let history = history_len(&app, downtown, id);
    let (code, again) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0001", "+12125550100", "Stop."),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(again, body);
    assert_eq!(history_len(&app, downtown, id), history);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages"), 1);

    // A second STOP (a new message) changes nothing but the history.
    let (code, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0002", "+12125550100", "STOP"),
    )
    .await;
    assert_eq!(code, 200);
    let (_, state2) = phone_state(&app, downtown, "+12125550100").unwrap();
    assert_eq!(
        state2.reasons(Channel::Sms)[0].since,
        reasons[0].since,
        "not downgraded nor duplicated"
    );
    assert_eq!(history_len(&app, downtown, id), history + 1);
}

#[actix_web::test]
async fn start_after_stop_lifts_only_the_permanent_sms_reasons() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0101", "+12125550101", "STOP"),
    )
    .await;
    // A temporary carrier reason arrives too.
    let (code, _) = twilio_post(
        &app,
        downtown,
        "status",
        &[
            ("MessageSid", "SM9001"),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"),
            ("To", "+12125550101"),
            ("From", "+12125559999"),
        ],
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0102", "+12125550101", "start"),
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("you are resubscribed"), "{body}");
    let (_, state) = phone_state(&app, downtown, "+12125550101").unwrap();
    let left: Vec<Reason> = state
        .reasons(Channel::Sms)
        .iter()
        .map(|a| a.reason)
        .collect();
    assert_eq!(
        left,
        vec![Reason::CarrierUnreachable],
        "the temporary reason stays"
    );
}

#[actix_web::test]
async fn help_and_ordinary_messages_change_nothing() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (_, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0201", "+12125550102", "HELP"),
    )
    .await;
    assert!(body.contains("reply STOP to unsubscribe"), "{body}");
    let (_, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0202", "+12125550102", "please don't stop"),
    )
    .await;
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"
    );
    let (_, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0203", "+12125550102", "stop please"),
    )
    .await;
    assert!(body.ends_with("<Response/>"));
    let (_, state) = phone_state(&app, downtown, "+12125550102").unwrap();
    assert!(!state.is_blocked(Channel::Sms));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM messages WHERE direction = 'inbound'"
        ),
        3,
        "all stored"
    );
}

#[actix_web::test]
async fn twilio_opt_out_type_and_location_keywords_are_honoured() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let mut params = inbound("SM0301", "+12125550103", "Arrêtez");
    params.push(("OptOutType", "STOP"));
    twilio_post(&app, downtown, "sms", &params).await;
    assert!(phone_state(&app, downtown, "+12125550103")
        .unwrap()
        .1
        .is_blocked(Channel::Sms));

    // A location's own words and reply.
    let mut settings = dnd::db::webhooks::SmsSettings::defaults(demo::DOWNTOWN);
    settings.keywords.opt_out.push("BASTA".into());
    settings.opt_out_reply = "Got it, no more texts.".into();
    dnd::db::webhooks::save_sms_settings(&mut app.db.conn(), downtown, &settings).unwrap();
    let (_, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0302", "+12125550104", "basta!"),
    )
    .await;
    assert!(body.contains("Got it, no more texts."), "{body}");
    assert!(phone_state(&app, downtown, "+12125550104")
        .unwrap()
        .1
        .is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn an_unknown_sender_becomes_a_contact_with_the_wish_kept() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    assert!(phone_state(&app, downtown, "+13105550177").is_none());
    twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0401", "+13105550177", "UNSUBSCRIBE"),
    )
    .await;
    let (id, state) = phone_state(&app, downtown, "+13105550177").unwrap();
    assert!(state.is_blocked(Channel::Sms));
    // A later import (API upsert) keeps the DND.
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "+13105550177", "name": "Imported Later"}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["id"], id);
    assert!(phone_state(&app, downtown, "+13105550177")
        .unwrap()
        .1
        .is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn bad_or_missing_signatures_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let path = format!("/webhooks/twilio/{downtown}/sms");
    let params = form(&inbound("SM0501", "+12125550105", "STOP"));
    let (code, _) = twilio_post_signed(&app, &path, &app.url(&path), &params, "wrong-token").await;
    assert_eq!(code, 403);
    let r = app
        .client
        .post(app.url(&path))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "no signature");
    // Signed for another location's URL.
    let other = format!("/webhooks/twilio/{}/sms", app.location_id(demo::HARBOR));
    let (code, _) = twilio_post_signed(
        &app,
        &path,
        &app.url(&other),
        &params,
        demo::TWILIO_AUTH_TOKEN,
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM webhook_events"), 0);
    assert!(!phone_state(&app, downtown, "+12125550105")
        .unwrap()
        .1
        .is_blocked(Channel::Sms));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("dnd_webhooks_refused_signature_total 3"),
        "{metrics}"
    );

    // Unknown location: refused like a bad signature, in the same words
    // (nobody learns which locations exist). Malformed: 400, with a message.
    let (code, unknown) = twilio_post(
        &app,
        999_999,
        "sms",
        &inbound("SM0502", "+12125550105", "STOP"),
    )
    .await;
    assert_eq!(code, 403);
    let (_, forged) = crate::webhooks::twilio_post_signed(
        &app,
        &format!("/webhooks/twilio/{downtown}/sms"),
        &app.url(&format!("/webhooks/twilio/{downtown}/sms")),
        &form(&inbound("SM0504", "+12125550105", "STOP")),
        "not-the-token",
    )
    .await;
    assert_eq!(unknown, forged);
    let (code, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &[("MessageSid", "SM0503"), ("Body", "STOP")],
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("From"), "{body}");
    let (code, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0504", "not a phone", "STOP"),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let big = "x".repeat(70 * 1024);
    let (code, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0505", "+12125550105", &big),
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("larger than 64 KiB"), "{body}");
    let r = app
        .client
        .post(app.url(&path))
        .header("X-Twilio-Signature", "x")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'B', b'o', b'd', b'y', b'=', b'%', b'F', b'F'])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "not UTF-8: it cannot be verified, so it is refused"
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM webhook_events"), 0);
}

#[actix_web::test]
async fn the_public_url_is_what_twilio_signs() {
    let app = spawn_app_with(|c| c.public_url = Some("https://dnd.example.com".into())).await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let path = format!("/webhooks/twilio/{downtown}/sms");
    let params = form(&inbound("SM0601", "+12125550106", "STOP"));
    let (code, _) = twilio_post_signed(
        &app,
        &path,
        &app.url(&path),
        &params,
        demo::TWILIO_AUTH_TOKEN,
    )
    .await;
    assert_eq!(code, 403, "signed for the local URL");
    let public = format!("https://dnd.example.com:443{path}");
    let (code, _) =
        twilio_post_signed(&app, &path, &public, &params, demo::TWILIO_AUTH_TOKEN).await;
    assert_eq!(
        code, 200,
        "signed for the public URL, with its default port"
    );
    assert!(phone_state(&app, downtown, "+12125550106")
        .unwrap()
        .1
        .is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn a_disconnected_integration_still_applies() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    diesel::sql_query("UPDATE integrations SET status = 'disconnected'")
        .execute(&mut app.db.conn())
        .unwrap();
    let (code, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM0701", "+12125550107", "QUIT"),
    )
    .await;
    assert_eq!(code, 200);
    assert!(phone_state(&app, downtown, "+12125550107")
        .unwrap()
        .1
        .is_blocked(Channel::Sms));
}

pub async fn status(
    app: &TestApp,
    location_id: i64,
    sid: &str,
    status: &str,
    code: Option<&str>,
) -> u16 {
    let mut params = vec![
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("To", "+12125550108"),
        ("From", "+12125559999"),
    ];
    if let Some(code) = code {
        params.push(("ErrorCode", code));
    }
    twilio_post(app, location_id, "status", &params).await.0
}

#[actix_web::test]
async fn carrier_codes_set_temporary_then_permanent_reasons() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    assert_eq!(
        status(&app, downtown, "SM1001", "undelivered", Some("30003")).await,
        200
    );
    let (id, state) = phone_state(&app, downtown, "+12125550108").unwrap();
    assert_eq!(
        state.reasons(Channel::Sms)[0].reason,
        Reason::CarrierUnreachable
    );
    assert_eq!(
        status(&app, downtown, "SM1002", "failed", Some("30004")).await,
        200
    );
    // Filtered and unknown errors are recorded only.
    assert_eq!(
        status(&app, downtown, "SM1003", "failed", Some("30007")).await,
        200
    );
    assert_eq!(
        status(&app, downtown, "SM1004", "failed", Some("30008")).await,
        200
    );
    let (_, state) = phone_state(&app, downtown, "+12125550108").unwrap();
    let reasons: Vec<Reason> = state
        .reasons(Channel::Sms)
        .iter()
        .map(|a| a.reason)
        .collect();
    assert_eq!(
        reasons,
        vec![Reason::CarrierBlocked, Reason::CarrierUnreachable]
    );
    // A location user lifts the temporary one; the permanent one stays.
    let user = dnd::domain::dnd::Actor::new(ActorKind::LocationUser, None, "u");
    let t = store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.lift(Channel::Sms, &user, Utc::now(), Default::default())
    })
    .unwrap();
    assert_eq!(t.remaining[0].reason, Reason::CarrierBlocked);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM webhook_events WHERE outcome = 'recorded'"
        ),
        2
    );
}

#[actix_web::test]
async fn status_callbacks_are_idempotent_and_never_move_backwards() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    assert_eq!(
        status(&app, downtown, "SM2001", "delivered", None).await,
        200
    );
    assert_eq!(
        status(&app, downtown, "SM2001", "sent", None).await,
        200,
        "late"
    );
    assert_eq!(
        status(&app, downtown, "SM2001", "sent", None).await,
        200,
        "retry"
    );
    let (id, _) = phone_state(&app, downtown, "+12125550108").unwrap();
    let timeline = dnd::db::webhooks::timeline(&mut app.db.conn(), downtown, id, 10).unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].status, "delivered");
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM webhook_events"),
        2,
        "retry not stored twice"
    );
    // The same carrier code twice (two messages) is one reason, two history rows.
    status(&app, downtown, "SM2002", "undelivered", Some("30005")).await;
    status(&app, downtown, "SM2003", "undelivered", Some("30005")).await;
    status(&app, downtown, "SM2003", "undelivered", Some("30005")).await;
    let (_, state) = phone_state(&app, downtown, "+12125550108").unwrap();
    assert_eq!(state.reasons(Channel::Sms).len(), 1);
    assert_eq!(history_len(&app, downtown, id), 2);
}

pub fn mailgun_body(
    key: &str,
    token: &str,
    timestamp: i64,
    event: serde_json::Value,
) -> serde_json::Value {
    let ts = timestamp.to_string();
    json!({
        "signature": {"timestamp": ts, "token": token, "signature": sign::mailgun(key, &ts, token)},
        "event-data": event,
    })
}

pub async fn mailgun_post(
    app: &TestApp,
    location_id: i64,
    body: &serde_json::Value,
) -> (u16, String) {
    let r = app
        .client
        .post(app.url(&format!("/webhooks/mailgun/{location_id}")))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

pub fn event(
    kind: &str,
    id: &str,
    recipient: &str,
    severity: Option<&str>,
    reason: Option<&str>,
) -> serde_json::Value {
    json!({"event": kind, "id": id, "timestamp": 1_700_000_000.5, "recipient": recipient,
           "severity": severity, "reason": reason, "log-level": "error",
           "delivery-status": {"code": 605, "message": "", "description": "Not delivering to previously bounced address"}})
}

#[actix_web::test]
async fn mailgun_bounces_unsubscribes_and_complaints_set_email_dnd() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let now = Utc::now().timestamp();
    let key = demo::MAILGUN_SIGNING_KEY;
    for (n, (kind, severity, reason, recipient)) in [
        (
            "failed",
            Some("permanent"),
            Some("suppress-bounce"),
            "bounce@example.com",
        ),
        (
            "failed",
            Some("temporary"),
            Some("bounce"),
            "soft@example.com",
        ),
        ("unsubscribed", None, None, "unsub@example.com"),
        ("complained", None, None, "spam@example.com"),
        ("delivered", None, None, "fine@example.com"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = mailgun_body(
            key,
            &format!("token{n:046}"),
            now,
            event(kind, &format!("ev{n}"), recipient, severity, reason),
        );
        let (code, text) = mailgun_post(&app, downtown, &body).await;
        assert_eq!(code, 200, "{kind}: {text}");
    }
    // Nobody holds these addresses: the reasons are kept on them all the
    // same, and no contact was made up for them.
    let reason_of = |email| address_reasons(&app, downtown, Channel::Email, email);
    assert_eq!(reason_of("bounce@example.com"), vec![Reason::EmailBounced]);
    assert_eq!(
        reason_of("soft@example.com"),
        vec![],
        "temporary failures are recorded only"
    );
    assert_eq!(
        reason_of("unsub@example.com"),
        vec![Reason::EmailUnsubscribed]
    );
    assert_eq!(
        reason_of("spam@example.com"),
        vec![Reason::EmailSpamComplaint]
    );
    assert_eq!(reason_of("fine@example.com"), vec![]);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM webhook_events WHERE provider = 'mailgun'"
        ),
        5
    );
    assert!(email_state(&app, downtown, "bounce@example.com").is_none());
}

#[actix_web::test]
async fn a_mailgun_token_honoured_for_one_location_is_a_replay_for_another() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    // Both demo locations verify with the same signing key (one Mailgun
    // account); the signature covers only timestamp and token.
    let body = mailgun_body(
        demo::MAILGUN_SIGNING_KEY,
        "t-cross-1",
        Utc::now().timestamp(),
        event("complained", "ev-cross", "target@example.com", None, None),
    );
    assert_eq!(mailgun_post(&app, downtown, &body).await.0, 200);
    let (code, text) = mailgun_post(&app, harbor, &body).await;
    assert_eq!(
        code, 406,
        "a captured request replayed at another location: {text}"
    );
    assert!(address_history(&app, harbor, Channel::Email, "target@example.com").is_empty());
    // An unknown location is refused as Mailgun understands (406: stop
    // retrying), in the words of any refusal.
    let (code, text) = mailgun_post(&app, 999_999, &body).await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "refused: this request could not be verified for this URL"
    );
}

#[actix_web::test]
async fn mailgun_refuses_replays_stale_and_forged_events_with_406() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let now = Utc::now().timestamp();
    let key = demo::MAILGUN_SIGNING_KEY;
    let ev = event("complained", "ev-replay", "victim@example.com", None, None);
    let body = mailgun_body(key, "t-0001", now, ev.clone());
    assert_eq!(mailgun_post(&app, downtown, &body).await.0, 200);
    let (code, text) = mailgun_post(&app, downtown, &body).await;
    assert_eq!(code, 406, "the same token again is a replay: {text}");
    // The same event re-signed with a new token (a genuine retry): no-op.
    let (code, _) = mailgun_post(
        &app,
        downtown,
        &mailgun_body(key, "t-0002", now, ev.clone()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        address_history(&app, downtown, Channel::Email, "victim@example.com").len(),
        1
    );
    // Six minutes old, or from the future: refused.
    let (code, _) = mailgun_post(
        &app,
        downtown,
        &mailgun_body(
            key,
            "t-0003",
            now - 360,
            event("complained", "ev-old", "old@example.com", None, None),
        ),
    )
    .await;
    assert_eq!(code, 406);
    let (code, _) = mailgun_post(
        &app,
        downtown,
        &mailgun_body(
            key,
            "t-0004",
            now + 360,
            event("complained", "ev-new", "new@example.com", None, None),
        ),
    )
    .await;
    assert_eq!(code, 406);
    // Wrong key.
    let (code, _) = mailgun_post(
        &app,
        downtown,
        &mailgun_body(
            "other-key",
            "t-0005",
            now,
            event("complained", "ev-forged", "forged@example.com", None, None),
        ),
    )
    .await;
    assert_eq!(code, 406);
    assert!(address_reasons(&app, downtown, Channel::Email, "old@example.com").is_empty());
    assert!(address_reasons(&app, downtown, Channel::Email, "forged@example.com").is_empty());
    // Not JSON: its signature cannot be checked, so it is refused (406)
    // like a bad one, in the same words as for a location that does not
    // exist.
    let oops = |location: i64| {
        app.client
            .post(app.url(&format!("/webhooks/mailgun/{location}")))
            .header("content-type", "application/json")
            .body("{oops")
            .send()
    };
    let known = oops(downtown).await.unwrap();
    assert_eq!(known.status().as_u16(), 406);
    let known = known.text().await.unwrap();
    let unknown = oops(999_999).await.unwrap();
    assert_eq!(unknown.status().as_u16(), 406);
    assert_eq!(known, unknown.text().await.unwrap());
}

pub async fn meta_post(
    app: &TestApp,
    location_id: i64,
    body: &serde_json::Value,
    secret: &str,
) -> u16 {
    let raw = serde_json::to_vec(body).unwrap();
    app.client
        .post(app.url(&format!("/webhooks/meta/{location_id}")))
        .header("X-Hub-Signature-256", sign::meta(secret, &raw))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub fn whatsapp(wa_id: &str, value: &str, ts: u64) -> serde_json::Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "user_preferences",
        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "123"},
                  "contacts": [{"wa_id": wa_id}],
                  "user_preferences": [{"wa_id": wa_id, "detail": "User requested to stop marketing messages",
                                        "category": "marketing_messages", "value": value, "timestamp": ts}]}}]}]})
}

#[actix_web::test]
async fn meta_handshake_and_whatsapp_and_messenger_opt_outs() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (code, body) = app
        .get_text(&format!(
            "/webhooks/meta/{downtown}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
            demo::META_VERIFY_TOKEN
        ))
        .await;
    assert_eq!((code, body.as_str()), (200, "1158201444"));
    let (code, _) = app
        .get_text(&format!(
            "/webhooks/meta/{downtown}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"
        ))
        .await;
    assert_eq!(code, 403);

    // WhatsApp stop, for a number that is a demo contact's phone.
    assert_eq!(
        meta_post(
            &app,
            downtown,
            &whatsapp("12125550110", "stop", 1_700_000_001),
            demo::META_APP_SECRET
        )
        .await,
        200
    );
    let (_, state) = phone_state(&app, downtown, "+12125550110").unwrap();
    assert_eq!(
        state.reasons(Channel::Whatsapp)[0].reason,
        Reason::ChannelOptOut
    );
    assert!(!state.is_blocked(Channel::Sms), "other channels untouched");
    // A forged one changes nothing.
    assert_eq!(
        meta_post(
            &app,
            downtown,
            &whatsapp("12125550111", "stop", 1_700_000_002),
            "wrong"
        )
        .await,
        403
    );
    assert!(!phone_state(&app, downtown, "+12125550111")
        .unwrap()
        .1
        .is_blocked(Channel::Whatsapp));
    // Resume lifts it; a retry of the resume is a no-op: no second event
    // stored, no second history row (the state alone would be the same
    // either way).
    let resume = whatsapp("12125550110", "resume", 1_700_000_003);
    assert_eq!(
        meta_post(&app, downtown, &resume, demo::META_APP_SECRET).await,
        200
    );
    let events_sql = "SELECT count(*) AS n FROM webhook_events WHERE provider = 'meta'";
    let history_sql = "SELECT count(*) AS n FROM dnd_history WHERE address = '+12125550110' AND channel = 'whatsapp'";
    let (events, history) = (count(&app, events_sql), count(&app, history_sql));
    assert_eq!(
        meta_post(&app, downtown, &resume, demo::META_APP_SECRET).await,
        200
    );
    assert_eq!(count(&app, events_sql), events, "the retry stored nothing");
    assert_eq!(
        count(&app, history_sql),
        history,
        "the retry wrote no history"
    );
    assert!(!phone_state(&app, downtown, "+12125550110")
        .unwrap()
        .1
        .is_blocked(Channel::Whatsapp));

    // Messenger: STOP NOTIFICATIONS for an unknown page-scoped id.
    let messenger = json!({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [{
        "sender": {"id": "PSID-42"}, "recipient": {"id": "PAGE"}, "timestamp": 1_700_000_004u64,
        "optin": {"type": "notification_messages", "notification_messages_status": "STOP NOTIFICATIONS",
                  "notification_messages_token": "tok"}}]}]});
    assert_eq!(
        meta_post(&app, downtown, &messenger, demo::META_APP_SECRET).await,
        200
    );
    // Nobody has that id: the wish is kept on the id itself, and the
    // contact who gets it later is blocked from the start.
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM contacts WHERE facebook_id = 'PSID-42'"
        ),
        0
    );
    let (code, created) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"email": "psid42@example.com", "facebook_id": "PSID-42"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let mut conn = app.db.conn();
    let state = store::load_state(&mut conn, downtown, created["id"].as_i64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        state.reasons(Channel::Facebook)[0].reason,
        Reason::ChannelOptOut
    );
    // A location user may not lift it.
    let user = dnd::domain::dnd::Actor::new(ActorKind::LocationUser, None, "u");
    assert!(state
        .lift(Channel::Facebook, &user, Utc::now(), Default::default())
        .is_err());
}

/// An integration row written by a newer version (a channel, a status or
/// a transport this binary does not know) never stops the location's
/// consent intake on its other integrations.
#[actix_web::test]
async fn an_unreadable_integration_row_does_not_stop_opt_outs() {
    use diesel::connection::SimpleConnection;
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.db
        .conn()
        .batch_execute(&format!(
            "ALTER TABLE integrations DROP CONSTRAINT integrations_channel_check;
             ALTER TABLE integrations DROP CONSTRAINT integrations_status_check;
             ALTER TABLE integrations DROP CONSTRAINT integrations_transport_check;
             INSERT INTO integrations (location_id, channel, provider, status, transport)
             VALUES ({downtown}, 'telegram', 'telegram', 'paused', 'bot_api');
             UPDATE integrations SET status = 'paused', transport = 'cloud_api_v2'
             WHERE location_id = {downtown} AND channel = 'whatsapp';"
        ))
        .unwrap();
    let (code, body) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SM-newer-1", "+12125550100", "STOP"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (_, state) = phone_state(&app, downtown, "+12125550100").unwrap();
    assert!(state.is_blocked(Channel::Sms));
    // The WhatsApp integration itself still verifies its webhooks.
    assert_eq!(
        meta_post(
            &app,
            downtown,
            &whatsapp("12125550100", "stop", 1_700_000_001),
            demo::META_APP_SECRET
        )
        .await,
        200
    );
    let (_, state) = phone_state(&app, downtown, "+12125550100").unwrap();
    assert!(state.is_blocked(Channel::Whatsapp));
}

/// One WhatsApp user's signal that cannot be read does not lose the other
/// users' stops in the same delivery; a delivery with nothing readable is
/// refused.
#[actix_web::test]
async fn one_unreadable_meta_signal_does_not_lose_the_others() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let mut body = whatsapp("12125550110", "stop", 1_700_000_001);
    let prefs = body["entry"][0]["changes"][0]["value"]["user_preferences"]
        .as_array_mut()
        .unwrap();
    prefs.insert(
        0,
        json!({"wa_id": "not-a-number", "value": "stop", "timestamp": 1_700_000_001}),
    );
    prefs.push(json!({"wa_id": 12125550111u64, "value": "stop"}));
    prefs.push(json!({"wa_id": "12125550112", "value": "stop", "timestamp": 1_700_000_002}));
    assert_eq!(
        meta_post(&app, downtown, &body, demo::META_APP_SECRET).await,
        200
    );
    for number in ["+12125550110", "+12125550112"] {
        assert!(
            phone_state(&app, downtown, number)
                .unwrap()
                .1
                .is_blocked(Channel::Whatsapp),
            "{number}"
        );
    }
    let bad = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "user_preferences", "value": {"user_preferences": [
            {"wa_id": "not-a-number", "value": "stop", "timestamp": 1}]}}]}]});
    assert_eq!(
        meta_post(&app, downtown, &bad, demo::META_APP_SECRET).await,
        400
    );
}

/// Signals without Meta's timestamp: a second STOP after a RESUME is its
/// own event, not a retry of the first; a retry of one delivery is. A
/// RESUME without a time cannot be ordered against the person's STOPs, so
/// it lifts nothing.
#[actix_web::test]
async fn meta_signals_without_a_timestamp_are_told_apart() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let untimed = |value: &str, id: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": id, "changes": [{
            "field": "user_preferences", "value": {"user_preferences": [
                {"wa_id": "12125550110", "value": value}]}}]}]})
    };
    let blocked = || {
        phone_state(&app, downtown, "+12125550110")
            .unwrap()
            .1
            .is_blocked(Channel::Whatsapp)
    };
    let post = |body: serde_json::Value| {
        let app = &app;
        async move { meta_post(app, downtown, &body, demo::META_APP_SECRET).await }
    };
    let stop = untimed("stop", "WABA-1");
    assert_eq!(post(stop.clone()).await, 200);
    assert!(blocked());
    assert_eq!(post(untimed("resume", "WABA-2")).await, 200);
    assert!(blocked(), "a resume without a time lifts nothing");
    // With its time (a second on, past the stop's sub-second arrival).
    let later = Utc::now().timestamp() as u64 + 1;
    assert_eq!(post(whatsapp("12125550110", "resume", later)).await, 200);
    assert!(!blocked());
    // Meta retries the first delivery: the same event, nothing changes.
    assert_eq!(post(stop).await, 200);
    assert!(!blocked(), "a retry of the first STOP is not a new STOP");
    // The person stops again.
    assert_eq!(post(untimed("stop", "WABA-3")).await, 200);
    assert!(blocked(), "a second STOP after the RESUME counts");
}

/// The database goes away in the middle of a stream of webhooks: every
/// request answers 503 while it is down (none acknowledged unstored), and
/// once it is back the providers' retries apply each event exactly once.
/// A flood of inbound SMS (a campaign's replies) is written in batches;
/// each webhook still gets its own answer, each event is applied once, a
/// retry racing its original is a no-op, and a forged one in the middle
/// changes nothing.
#[actix_web::test]
async fn a_flood_of_inbound_sms_is_batched_and_each_gets_its_own_answer() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    struct Sms {
        location: i64,
        sid: String,
        from: String,
        body: &'static str,
        token: &'static str,
    }
    let sms = |location, sid: String, from: String, body| Sms {
        location,
        sid,
        from,
        body,
        token: demo::TWILIO_AUTH_TOKEN,
    };
    let mut flood = Vec::new();
    // 40 opt-outs at Downtown, the first 10 delivered twice at once.
    for i in 0..40 {
        flood.push(sms(
            downtown,
            format!("SMFLOOD{i:04}"),
            format!("+12125550{}", 100 + i),
            "STOP",
        ));
    }
    for i in 0..10 {
        flood.push(sms(
            downtown,
            format!("SMFLOOD{i:04}"),
            format!("+12125550{}", 100 + i),
            "STOP",
        ));
    }
    // 5 Downtown contacts opt out and back in at the same moment.
    for i in 50..55 {
        flood.push(sms(
            downtown,
            format!("SMOUT{i:04}"),
            format!("+12125550{}", 100 + i),
            "STOP",
        ));
        flood.push(sms(
            downtown,
            format!("SMIN{i:04}"),
            format!("+12125550{}", 100 + i),
            "START",
        ));
    }
    // 10 HELPs at Harbor, a sender nobody knows, and a forgery.
    for i in 0..10 {
        flood.push(sms(
            harbor,
            format!("SMHELP{i:04}"),
            format!("+14155550{}", 100 + i),
            "HELP",
        ));
    }
    flood.push(sms(
        downtown,
        "SMNEWCOMER".into(),
        "+12125557777".into(),
        "STOP",
    ));
    let mut forged = sms(downtown, "SMFORGED".into(), "+12125550199".into(), "STOP");
    forged.token = "not-the-token";
    flood.push(forged);

    let answers = futures_util::future::join_all(flood.iter().map(|m| {
        let path = format!("/webhooks/twilio/{}/sms", m.location);
        let params = form(&inbound(&m.sid, &m.from, m.body));
        let app = &app;
        async move { twilio_post_signed(app, &path, &app.url(&path), &params, m.token).await }
    }))
    .await;
    for (m, (code, body)) in flood.iter().zip(&answers) {
        if m.token != demo::TWILIO_AUTH_TOKEN {
            assert_eq!(*code, 403, "the forgery: {body}");
            continue;
        }
        assert_eq!(*code, 200, "{}: {body}", m.sid);
        let expected = match m.body {
            "STOP" => "you are unsubscribed",
            "START" => "you are resubscribed",
            _ => "Harbor Fitness: reply STOP to unsubscribe",
        };
        assert!(body.contains(expected), "{} {}: {body}", m.sid, m.body);
    }

    // Each distinct event stored once; the forgery not at all.
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM webhook_events"),
        40 + 10 + 10 + 1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM messages WHERE direction = 'inbound'"
        ),
        61
    );
    for i in 0..40 {
        let (id, state) = phone_state(&app, downtown, &format!("+12125550{}", 100 + i)).unwrap();
        assert_eq!(
            state.reasons(Channel::Sms)[0].reason,
            Reason::SmsOptOut,
            "contact {i}"
        );
        assert_eq!(
            history_len(&app, downtown, id),
            1,
            "contact {i}: applied once"
        );
    }
    // STOP and START together: whichever came first, the state is what
    // the history says, and the history has the STOP.
    for i in 50..55 {
        let (id, state) = phone_state(&app, downtown, &format!("+12125550{}", 100 + i)).unwrap();
        let rows = store::history(&mut app.db.conn(), downtown, id, 100).unwrap();
        let entries: Vec<_> = rows.iter().rev().map(|r| r.entry()).collect();
        assert!(
            entries.iter().any(|e| e.reason == Some(Reason::SmsOptOut)),
            "contact {i}"
        );
        assert_eq!(DndState::replay(&entries), state, "contact {i}");
    }
    let (_, newcomer) = phone_state(&app, downtown, "+12125557777").expect("created");
    assert!(newcomer.is_blocked(Channel::Sms));
    let (_, untouched) = phone_state(&app, downtown, "+12125550199").unwrap();
    assert!(
        !untouched.is_blocked(Channel::Sms),
        "the forgery changed nothing"
    );
    let (_, helped) = phone_state(&app, harbor, "+14155550100").unwrap();
    assert!(!helped.is_blocked(Channel::Sms));

    // They really were written together, not one by one.
    let metrics = app.get_text("/metrics").await.1;
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert_eq!(
        counter("dnd_webhook_batched_events_total"),
        flood.len() as u64
    );
    assert!(
        counter("dnd_webhook_batches_total") < flood.len() as u64,
        "{metrics}"
    );
}

/// A batch that fails for any reason but an outage is not lost: each of
/// its events is then written on its own. (A trigger makes every statement
/// that sets DND for more than one contact at once fail.)
#[actix_web::test]
async fn a_failing_batch_falls_back_to_one_event_at_a_time() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    diesel::connection::SimpleConnection::batch_execute(
        &mut app.db.conn(),
        "CREATE FUNCTION refuse_many() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF (SELECT count(*) FROM added) > 1 THEN
                 RAISE EXCEPTION 'one reason at a time, please';
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER refuse_many AFTER INSERT ON address_dnd_reasons
             REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION refuse_many();",
    )
    .unwrap();
    let phones: Vec<String> = (0..30).map(|i| format!("+16465550{}", 100 + i)).collect();
    let path = format!("/webhooks/twilio/{downtown}/sms");
    let answers = futures_util::future::join_all(phones.iter().enumerate().map(|(i, phone)| {
        let params = form(&inbound(&format!("SMFALLBACK{i:04}"), phone, "STOP"));
        let (app, path) = (&app, &path);
        async move {
            twilio_post_signed(app, path, &app.url(path), &params, demo::TWILIO_AUTH_TOKEN).await
        }
    }))
    .await;
    for (code, body) in &answers {
        assert_eq!(*code, 200, "{body}");
        assert!(body.contains("you are unsubscribed"), "{body}");
    }
    for phone in &phones {
        let (id, state) = phone_state(&app, downtown, phone).unwrap();
        assert!(state.is_blocked(Channel::Sms), "{phone}");
        assert_eq!(history_len(&app, downtown, id), 1, "{phone}");
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM webhook_events"), 30);
    let metrics = app.get_text("/metrics").await.1;
    let batches: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dnd_webhook_batches_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(batches < 30, "some events were batched: {metrics}");
}

#[actix_web::test]
async fn a_database_outage_loses_nothing_and_applies_everything_once() {
    use dnd::db::cluster::{ClusterOptions, EmbeddedCluster};

    let dir = crate::common::run_dir("fault");
    let options = ClusterOptions {
        dir: dir.clone(),
        durable: false,
    };
    let mut cluster = EmbeddedCluster::start(&options).unwrap();
    cluster.ensure_database("dnd").unwrap();
    let url = cluster.url("dnd");
    {
        let mut conn = dnd::db::connect(&url).unwrap();
        dnd::db::migrate(&mut conn).unwrap();
        dnd::db::demo::seed(&mut conn).unwrap();
    }
    let pool = dnd::db::build_pool(&url, 4, std::time::Duration::from_millis(500)).unwrap();
    let downtown = dnd::db::locations::find_by_name(&mut pool.get().unwrap(), demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    let server = dnd::Application::build(&crate::common::test_config(), pool).unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    actix_web::rt::spawn(server.run_until_stopped());
    let client = reqwest::Client::new();
    let send = |i: usize| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let sid = format!("SMFAULT{i:04}");
            let from = format!("+1213555{:04}", 1000 + i);
            let params = form(&inbound(&sid, &from, "STOP"));
            let path = format!("/webhooks/twilio/{downtown}/sms");
            let signature =
                twilio_signature(&format!("{base}{path}"), &params, demo::TWILIO_AUTH_TOKEN);
            client
                .post(format!("{base}{path}"))
                .header("X-Twilio-Signature", signature)
                .form(&params)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let code = send(i).await;
        assert_eq!(code, 200, "before the outage");
        acknowledged.push(i);
    }
    cluster.stop();
    for i in 10..20 {
        let code = send(i).await;
        assert_eq!(code, 503, "while the database is down, event {i}");
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dnd_webhooks_unavailable_total 10"),
        "{metrics}"
    );

    let cluster = EmbeddedCluster::start(&options).unwrap();
    {
        // Nothing answered 503 was stored; everything answered 200 was.
        let mut conn = dnd::db::connect(&url).unwrap();
        let stored: Vec<String> =
            diesel::sql_query("SELECT event_key AS n FROM webhook_events ORDER BY event_key")
                .load::<Key>(&mut conn)
                .unwrap()
                .into_iter()
                .map(|k| k.n)
                .collect();
        let expected: Vec<String> = acknowledged
            .iter()
            .map(|i| format!("SMFAULT{i:04}"))
            .collect();
        assert_eq!(stored, expected);
    }
    // Twilio retries everything (the acknowledged ones too, to be harsh).
    for i in 0..20 {
        assert_eq!(send(i).await, 200, "retry of {i}");
    }
    let mut conn = dnd::db::connect(&url).unwrap();
    let events: i64 = diesel::sql_query("SELECT count(*) AS n FROM webhook_events")
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n;
    assert_eq!(events, 20, "each event stored once");
    let history: i64 =
        diesel::sql_query("SELECT count(*) AS n FROM dnd_history WHERE reason = 'sms_opt_out'")
            .get_result::<Count>(&mut conn)
            .unwrap()
            .n;
    assert_eq!(history, 20, "each applied once");
    drop(conn);
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = diesel::sql_types::Text)]
    n: String,
}
