//! Outbound messages through the gate, from the automation API.

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::dsl::sql;
use diesel::sql_types::{Bool, Integer};
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::json;

use crate::common::{spawn_app, TestApp};
use dnd::db::contacts::{self, ContactInput};
use dnd::db::demo;
use dnd::db::dnd::{self as store, DndError};
use dnd::domain::dnd::{Actor, ActorKind, Decision, Origin, Reason};
use dnd::domain::{Channel, EmailAddress, PhoneNumber};

fn contact(app: &TestApp, location_id: i64, n: u32) -> i64 {
    contacts::upsert(
        &mut app.db.conn(),
        location_id,
        &ContactInput {
            name: Some(format!("Recipient {n}")),
            phone: Some(PhoneNumber::parse_international(&format!("+1415666{n:04}")).unwrap()),
            email: Some(EmailAddress::parse(&format!("r{n}@example.com")).unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

fn set(app: &TestApp, location_id: i64, id: i64, channel: Channel, reason: Reason) {
    let kind = if reason == Reason::Manual {
        ActorKind::Api
    } else {
        ActorKind::Provider
    };
    store::apply(&mut app.db.conn(), location_id, id, |s| {
        s.set(
            channel,
            reason,
            &Actor::new(kind, None, "t"),
            Utc::now(),
            None,
            None,
        )
    })
    .unwrap();
}

fn switch_all(app: &TestApp, location_id: i64, id: i64) {
    store::apply(&mut app.db.conn(), location_id, id, |s| {
        s.switch_all(true, &Actor::new(ActorKind::Api, None, "t"), Utc::now())
    })
    .unwrap();
}

async fn send(app: &TestApp, body: serde_json::Value) -> (u16, serde_json::Value) {
    app.api_post(demo::API_KEY_DOWNTOWN, "/api/v1/messages", body)
        .await
}

#[actix_web::test]
async fn an_allowed_message_is_queued_and_a_blocked_one_recorded_with_its_reasons() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let ok = contact(&app, downtown, 1);
    let opted_out = contact(&app, downtown, 2);
    set(&app, downtown, opted_out, Channel::Sms, Reason::SmsOptOut);

    let (code, body) = send(
        &app,
        json!({"contact_id": ok, "channel": "sms", "body": "Your appointment is tomorrow"}),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let (_, shown) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            &format!("/api/v1/messages/{}", body["id"]),
        )
        .await;
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["origin"], "automated");
    assert_eq!(shown["to"], "+14156660001");

    let (code, body) = send(
        &app,
        json!({"contact_id": opted_out, "channel": "sms", "body": "Hello"}),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(body["error"], "dnd_active");
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["reasons"], json!(["sms_opt_out"]));
    let (_, shown) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            &format!("/api/v1/messages/{}", body["id"]),
        )
        .await;
    assert_eq!(
        shown["status"], "blocked",
        "recorded, never queued for a provider"
    );
    // Partial: email still goes.
    let (code, _) = send(
        &app,
        json!({"contact_id": opted_out, "channel": "email", "body": "Hello", "subject": "Hi"}),
    )
    .await;
    assert_eq!(code, 202);
}

#[actix_web::test]
async fn the_all_channels_switch_blocks_every_channel() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = contact(&app, downtown, 3);
    switch_all(&app, downtown, id);
    for channel in ["sms", "email", "call"] {
        let (code, body) = send(
            &app,
            json!({"contact_id": id, "channel": channel, "body": "x"}),
        )
        .await;
        assert_eq!(code, 409, "{channel}");
        assert_eq!(body["reasons"], json!(["all_channels"]));
    }
}

#[actix_web::test]
async fn bad_requests_are_refused_with_the_field_and_record_nothing() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let id = contact(&app, downtown, 4);
    let foreign = contact(&app, harbor, 5);
    let (code, body) = send(
        &app,
        json!({"contact_id": id, "channel": "pigeon", "body": "x"}),
    )
    .await;
    assert_eq!((code, body["field"].as_str()), (422, Some("channel")));
    let (code, body) = send(
        &app,
        json!({"contact_id": id, "channel": "sms", "body": "  "}),
    )
    .await;
    assert_eq!((code, body["field"].as_str()), (422, Some("body")));
    let (code, _) = send(
        &app,
        json!({"contact_id": foreign, "channel": "sms", "body": "x"}),
    )
    .await;
    assert_eq!(code, 404, "another location's contact");
    let (code, body) = send(
        &app,
        json!({"contact_id": id, "channel": "facebook", "body": "x"}),
    )
    .await;
    assert_eq!(
        (code, body["field"].as_str()),
        (422, Some("contact_id")),
        "no Messenger id"
    );
    let (code, _) = app
        .api_get(demo::API_KEY_HARBOR, "/api/v1/messages/1")
        .await;
    assert_eq!(code, 404);
    let mut conn = app.db.conn();
    let stored = dnd::db::webhooks::timeline(&mut conn, downtown, id, 10).unwrap();
    assert!(stored.is_empty());
}

#[actix_web::test]
async fn a_bulk_send_skips_dnd_contacts_in_one_statement() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let ids: Vec<i64> = (10..30).map(|n| contact(&app, downtown, n)).collect();
    set(&app, downtown, ids[0], Channel::Sms, Reason::SmsOptOut);
    set(
        &app,
        downtown,
        ids[1],
        Channel::Sms,
        Reason::CarrierUnreachable,
    );
    set(&app, downtown, ids[1], Channel::Sms, Reason::Manual);
    set(&app, downtown, ids[2], Channel::Email, Reason::EmailBounced);
    switch_all(&app, downtown, ids[3]);
    let mut wanted = ids.clone();
    wanted.push(ids[4]); // a duplicate is sent once
    wanted.push(999_999); // unknown
    let harbor_contact = contact(&app, app.location_id(demo::HARBOR), 99);
    wanted.push(harbor_contact); // not this location's
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages/bulk",
            json!({"channel": "sms", "body": "Spring offer", "contact_ids": wanted}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["blocked"], 3);
    assert_eq!(body["queued"], 17);
    let results = body["results"].as_array().unwrap();
    let of = |id: i64| {
        results
            .iter()
            .find(|r| r["contact_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(ids[0])["reasons"], json!(["sms_opt_out"]));
    // In the one order every path names them: the contact's own first,
    // then the address's, as the reasons are listed.
    assert_eq!(
        of(ids[1])["reasons"],
        json!(["manual", "carrier_unreachable"])
    );
    assert_eq!(
        of(ids[2])["status"],
        "queued",
        "an email reason does not block SMS"
    );
    assert_eq!(of(ids[3])["reasons"], json!(["all_channels"]));
    assert_eq!(of(999_999)["status"], "not_found");
    assert_eq!(of(harbor_contact)["status"], "not_found");
    assert_eq!(
        results.iter().filter(|r| r["contact_id"] == ids[4]).count(),
        1
    );

    // The set-based decision agrees with the gate's, contact by contact.
    let mut conn = app.db.conn();
    for id in &ids {
        let state = store::load_state(&mut conn, downtown, *id)
            .unwrap()
            .unwrap();
        let expected = match state.decide(Channel::Sms, Origin::Automated) {
            Decision::Allowed => "queued",
            Decision::Blocked(_) => "blocked",
            Decision::Unreadable(_) => "failed",
        };
        assert_eq!(of(*id)["status"], expected, "contact {id}");
    }

    let (code, _) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages/bulk",
            json!({"channel": "sms", "body": "x", "contact_ids": []}),
        )
        .await;
    assert_eq!(code, 422);
}

/// Runs `write` in a transaction on a connection of its own and keeps it
/// open, its locks held, until another backend is seen waiting on one of
/// them: in `pg_stat_activity` with `wait_event_type = 'Lock'` and this
/// backend among its `pg_blocking_pids`. Then it commits. The receiver
/// hears once `write` is done; the thread answers whether the wait was
/// seen (false after 10 s without one: then nothing raced, and the test
/// proved nothing).
fn hold_until_waited_on<T, F>(url: String, write: F) -> (Receiver<()>, JoinHandle<bool>)
where
    F: FnOnce(&mut PgConnection) -> Result<T, DndError> + Send + 'static,
{
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut conn = dnd::db::connect(&url).unwrap();
        // Outside the transaction: pg_stat_activity is read once per
        // transaction, so the polls need their own connection.
        let mut watcher = dnd::db::connect(&url).unwrap();
        conn.transaction::<_, DndError, _>(|conn| {
            write(conn)?;
            let holder: i32 =
                diesel::select(sql::<Integer>("pg_backend_pid()")).get_result(conn)?;
            locked_tx.send(()).unwrap();
            let waited_on = sql::<Bool>(&format!(
                "EXISTS (SELECT 1 FROM pg_stat_activity
                         WHERE wait_event_type = 'Lock' AND {holder} = ANY(pg_blocking_pids(pid)))"
            ));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if diesel::select(waited_on.clone()).get_result::<bool>(&mut watcher)? {
                    return Ok(true);
                }
                if Instant::now() > deadline {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap()
    });
    (locked_rx, holder)
}

/// A DND committed while a bulk send runs is honoured: the send waits for
/// the contact's row, then sees the DND.
#[actix_web::test]
async fn a_dnd_set_during_a_bulk_send_is_honoured() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let target = contact(&app, downtown, 40);
    let others: Vec<i64> = (41..45).map(|n| contact(&app, downtown, n)).collect();
    let (locked, holder) = hold_until_waited_on(app.db.url.clone(), move |conn| {
        let actor = Actor::new(ActorKind::Api, None, "racer");
        store::apply_within(conn, downtown, target, |s| {
            s.set(Channel::Sms, Reason::Manual, &actor, Utc::now(), None, None)
        })
    });
    locked.recv().unwrap();
    let mut all = others.clone();
    all.push(target);
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages/bulk",
            json!({"channel": "sms", "body": "Flash sale", "contact_ids": all}),
        )
        .await;
    assert!(
        holder.join().unwrap(),
        "the bulk send never waited on the uncommitted DND's lock: nothing raced ({body})"
    );
    assert_eq!(code, 200);
    let result = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["contact_id"] == target)
        .unwrap()
        .clone();
    assert_eq!(result["status"], "blocked", "{body}");
    assert_eq!(body["queued"], 4);
}

/// The same race for a single send.
#[actix_web::test]
async fn a_dnd_set_during_a_single_send_is_honoured() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let target = contact(&app, downtown, 50);
    let (locked, holder) = hold_until_waited_on(app.db.url.clone(), move |conn| {
        let actor = Actor::new(ActorKind::Contact, None, "racer");
        store::apply_within(conn, downtown, target, |s| {
            s.set(
                Channel::Sms,
                Reason::SmsOptOut,
                &actor,
                Utc::now(),
                None,
                None,
            )
        })
    });
    locked.recv().unwrap();
    let (code, body) = send(
        &app,
        json!({"contact_id": target, "channel": "sms", "body": "now"}),
    )
    .await;
    assert!(
        holder.join().unwrap(),
        "the send never waited on the uncommitted DND's lock: nothing raced ({body})"
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["reasons"], json!(["sms_opt_out"]));
}
