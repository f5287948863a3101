//! One gate rule, failing closed: the single send, the bulk send and the
//! dispatcher decide alike on any state, the database's copy of the domain's
//! definitions agrees with them, the mask the list and the bulk gate read
//! never lags behind a reason, and a value this version cannot read stops
//! the message instead of letting it through.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool, Nullable, SmallInt, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use proptest::prelude::*;
use serde_json::json;

use crate::common::{spawn_app, test_actor, test_hosts, TestApp, TestDb};
use dnd::db::contacts::{self, ContactInput};
use dnd::db::dnd as store;
use dnd::db::events::{self, Delivery, ProviderEvent};
use dnd::db::{demo, locations, outbound};
use dnd::domain::dnd::{Actor, ActorKind, ConsentEvent, Effect, Origin, Reason, Status};
use dnd::domain::{Addresses, Channel, EmailAddress, PhoneNumber};
use dnd::outbound::dispatcher::Dispatcher;

#[derive(QueryableByName)]
struct Bit {
    #[diesel(sql_type = Nullable<SmallInt>)]
    bit: Option<i16>,
}

#[derive(QueryableByName)]
struct Address {
    #[diesel(sql_type = Nullable<Text>)]
    address: Option<String>,
}

#[derive(QueryableByName)]
struct Mask {
    #[diesel(sql_type = SmallInt)]
    dnd_mask: i16,
    #[diesel(sql_type = SmallInt)]
    dnd_status: i16,
}

fn mask_of(conn: &mut PgConnection, location_id: i64, id: i64) -> Mask {
    diesel::sql_query(
        "SELECT dnd_mask, dnd_status FROM contacts WHERE location_id = $1 AND id = $2",
    )
    .bind::<BigInt, _>(location_id)
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .unwrap()
}

/// The channel bits, the address each channel goes to, and the status
/// code are defined once, in the domain; the database's functions and its
/// generated status column must say the same, for every value.
#[test]
fn the_databases_definitions_agree_with_the_domain() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for channel in Channel::ALL {
        let bit: Bit = diesel::sql_query("SELECT dnd_channel_bit($1) AS bit")
            .bind::<Text, _>(channel)
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(bit.bit, Some(channel.bit()), "{channel}");
        for whatsapp in [None, Some("+447700900123")] {
            let a = Addresses {
                phone: Some("+12125550100"),
                email: Some("a@example.com"),
                facebook_id: Some("PSID-1"),
                gmb_id: Some("GMB-1"),
                whatsapp_id: whatsapp,
            };
            let sql: Address =
                diesel::sql_query("SELECT dnd_contact_address($1, $2, $3, $4, $5, $6) AS address")
                    .bind::<Text, _>(channel)
                    .bind::<Nullable<Text>, _>(a.phone)
                    .bind::<Nullable<Text>, _>(a.email)
                    .bind::<Nullable<Text>, _>(a.facebook_id)
                    .bind::<Nullable<Text>, _>(a.gmb_id)
                    .bind::<Nullable<Text>, _>(a.whatsapp_id)
                    .get_result(&mut conn)
                    .unwrap();
            assert_eq!(sql.address.as_deref(), a.on(channel), "{channel}");
        }
    }
    let unknown: Bit = diesel::sql_query("SELECT dnd_channel_bit('telegram') AS bit")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(unknown.bit, None);
    // Every switch and mask: the generated status is the domain's.
    let location = locations::find_by_name(&mut conn, demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    let id = contacts::upsert(
        &mut conn,
        location,
        &ContactInput {
            email: Some(EmailAddress::parse("status@example.com").unwrap()),
            ..Default::default()
        },
        &test_actor(),
    )
    .unwrap()
    .0
    .id;
    for all in [false, true] {
        for mask in 0..=Channel::FULL_MASK {
            diesel::sql_query(
                "UPDATE contacts SET dnd_all = $3, dnd_mask = $4 WHERE location_id = $1 AND id = $2",
            )
            .bind::<BigInt, _>(location)
            .bind::<BigInt, _>(id)
            .bind::<Bool, _>(all)
            .bind::<SmallInt, _>(mask)
            .execute(&mut conn)
            .unwrap();
            let stored = mask_of(&mut conn, location, id);
            assert_eq!(
                Status::from_code(stored.dnd_status),
                Some(Status::of(all, mask)),
                "all {all} mask {mask}"
            );
        }
    }
}

/// A consent event on an address and a contact taking that address at the
/// same moment: whichever commits first, the contact ends up blocked (the
/// two serialise on the address's lock, and the mask is computed after it).
#[test]
fn a_stop_and_a_new_contact_with_its_number_at_the_same_moment() {
    let db = TestDb::new();
    let location = locations::find_by_name(&mut db.conn(), demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    let reason_insert = |phone: &str| {
        format!(
            "INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
                 actor_kind, actor_label) VALUES ({location}, '{phone}', 'sms', 'sms_opt_out',
                 'permanent', now(), 'contact', '{phone}')"
        )
    };
    let create = |url: String, phone: &'static str| {
        std::thread::spawn(move || {
            let mut conn = dnd::db::connect(&url).unwrap();
            contacts::upsert(
                &mut conn,
                location,
                &ContactInput {
                    phone: Some(PhoneNumber::parse_international(phone).unwrap()),
                    ..Default::default()
                },
                &test_actor(),
            )
            .unwrap()
            .0
            .id
        })
    };

    // The STOP is being written when the contact is created.
    let mut stop = db.conn();
    stop.batch_execute(&format!("BEGIN; {}", reason_insert("+13125550901")))
        .unwrap();
    let creating = create(db.url.clone(), "+13125550901");
    wait_until_blocked_by(&db.url, &mut stop);
    assert!(!creating.is_finished(), "the contact waits for the address");
    stop.batch_execute("COMMIT").unwrap();
    let id = creating.join().unwrap();
    assert_eq!(
        mask_of(&mut db.conn(), location, id).dnd_mask & Channel::Sms.bit(),
        Channel::Sms.bit()
    );

    // The contact is being created when the STOP is written.
    let mut creator = db.conn();
    creator
        .batch_execute(&format!(
            "BEGIN; INSERT INTO contacts (location_id, name, phone) VALUES ({location}, 'Racer', '+13125550902')"
        ))
        .unwrap();
    let url = db.url.clone();
    let insert = reason_insert("+13125550902");
    let stopping = std::thread::spawn(move || {
        dnd::db::connect(&url)
            .unwrap()
            .batch_execute(&insert)
            .unwrap()
    });
    wait_until_blocked_by(&db.url, &mut creator);
    assert!(!stopping.is_finished(), "the STOP waits for the address");
    creator.batch_execute("COMMIT").unwrap();
    stopping.join().unwrap();
    let id = contacts::find_by_phone(
        &mut db.conn(),
        location,
        &PhoneNumber::parse_international("+13125550902").unwrap(),
    )
    .unwrap()
    .unwrap()
    .id;
    assert_eq!(
        mask_of(&mut db.conn(), location, id).dnd_mask & Channel::Sms.bit(),
        Channel::Sms.bit()
    );
}

/// Waits until another backend is blocked by `holder`'s open transaction,
/// so the race under test really happened (a sleep proves nothing if the
/// other thread had not started yet); fails after 10 s.
fn wait_until_blocked_by(url: &str, holder: &mut PgConnection) {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    #[derive(QueryableByName)]
    struct Blocked {
        #[diesel(sql_type = Bool)]
        blocked: bool,
    }
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(holder)
        .unwrap()
        .pid;
    // Its own connection: pg_stat_activity is a snapshot per transaction.
    let mut watcher = dnd::db::connect(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE wait_event_type = 'Lock' AND {pid} = ANY(pg_blocking_pids(pid)))
             AS blocked"
        ))
        .get_result::<Blocked>(&mut watcher)
        .unwrap();
        if seen.blocked {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing waited on the held transaction: the test raced nothing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A reason lifted on one of a contact's addresses while a new reason is
/// being set on another: the mask is computed after the contact's row is
/// locked, from what committed before, so the lift never writes back a
/// mask that misses the other address's new reason.
#[test]
fn a_lift_on_one_address_never_drops_a_reason_set_on_another() {
    let db = TestDb::new();
    let location = locations::find_by_name(&mut db.conn(), demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    db.conn()
        .batch_execute(&format!(
            "INSERT INTO contacts (location_id, name, phone, email)
             VALUES ({location}, 'Two', '+13125550911', 'two@example.com');
             INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
                 actor_kind, actor_label)
             VALUES ({location}, '+13125550911', 'sms', 'sms_opt_out', 'permanent', now(),
                 'contact', '+13125550911')"
        ))
        .unwrap();
    let id = contacts::find_by_phone(
        &mut db.conn(),
        location,
        &PhoneNumber::parse_international("+13125550911").unwrap(),
    )
    .unwrap()
    .unwrap()
    .id;
    assert_eq!(
        mask_of(&mut db.conn(), location, id).dnd_mask,
        Channel::Sms.bit()
    );

    // A complaint on the email, not committed yet.
    let mut complaint = db.conn();
    complaint
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
                 actor_kind, actor_label)
             VALUES ({location}, 'two@example.com', 'email', 'email_spam_complaint', 'permanent',
                 now(), 'provider', 'Mailgun')"
        ))
        .unwrap();
    // Meanwhile the person texts START: the lift waits for the contact.
    let url = db.url.clone();
    let lifting = std::thread::spawn(move || {
        dnd::db::connect(&url)
            .unwrap()
            .batch_execute(&format!(
                "DELETE FROM address_dnd_reasons
                 WHERE location_id = {location} AND address = '+13125550911'"
            ))
            .unwrap()
    });
    wait_until_blocked_by(&db.url, &mut complaint);
    assert!(
        !lifting.is_finished(),
        "the lift waits for the contact's row"
    );
    complaint.batch_execute("COMMIT").unwrap();
    lifting.join().unwrap();
    assert_eq!(
        mask_of(&mut db.conn(), location, id).dnd_mask,
        Channel::Email.bit(),
        "SMS lifted, the complaint kept"
    );
}

/// One random step of a property case.
#[derive(Debug, Clone)]
enum Step {
    /// A user or the API sets or lifts `manual` on a channel.
    Manual(usize, Channel, bool),
    Switch(usize, bool),
    /// A provider or the person sets a reason on one of the numbers or
    /// emails (whoever holds it, maybe nobody).
    OnNumber(usize, Reason),
    OnEmail(usize, Reason),
    /// The person's own opt-in on a number.
    OptIn(usize, Channel),
    /// A contact takes another number or email (if it is free).
    MovePhone(usize, usize),
    MoveEmail(usize, usize),
    WhatsappId(usize, usize),
}

const CONTACTS: usize = 5;
const NUMBERS: usize = 8;

fn step() -> impl Strategy<Value = Step> {
    let contact = 0..CONTACTS;
    let channel = prop::sample::select(Channel::ALL.to_vec());
    let number_reason = prop::sample::select(vec![
        Reason::SmsOptOut,
        Reason::CarrierBlocked,
        Reason::CarrierUnreachable,
        Reason::NotMobile,
        Reason::ChannelOptOut,
        Reason::ImportedOptOut,
    ]);
    let email_reason = prop::sample::select(vec![
        Reason::EmailBounced,
        Reason::EmailSpamComplaint,
        Reason::EmailUnsubscribed,
    ]);
    prop_oneof![
        (contact.clone(), channel.clone(), any::<bool>())
            .prop_map(|(c, ch, on)| Step::Manual(c, ch, on)),
        (contact.clone(), any::<bool>()).prop_map(|(c, on)| Step::Switch(c, on)),
        (0..NUMBERS, number_reason).prop_map(|(n, r)| Step::OnNumber(n, r)),
        (0..NUMBERS, email_reason).prop_map(|(n, r)| Step::OnEmail(n, r)),
        (
            0..NUMBERS,
            prop::sample::select(vec![Channel::Sms, Channel::Whatsapp])
        )
            .prop_map(|(n, ch)| Step::OptIn(n, ch)),
        (contact.clone(), 0..NUMBERS).prop_map(|(c, n)| Step::MovePhone(c, n)),
        (contact.clone(), 0..NUMBERS).prop_map(|(c, n)| Step::MoveEmail(c, n)),
        (contact, 0..NUMBERS).prop_map(|(c, n)| Step::WhatsappId(c, n)),
    ]
}

fn consent(
    conn: &mut PgConnection,
    location: i64,
    key: String,
    channel: Channel,
    address: String,
    effect: Effect,
) {
    let event = ConsentEvent::new(
        channel,
        address.clone(),
        effect,
        Actor::new(
            match effect {
                Effect::Set(r) if !r.may_set(ActorKind::Provider) => ActorKind::Api,
                Effect::Set(_) => ActorKind::Provider,
                Effect::OptIn => ActorKind::Contact,
            },
            None,
            "property",
        ),
        None,
        Utc::now(),
        key.clone(),
    );
    events::apply(
        conn,
        &[Delivery {
            location_id: location,
            nonce: None,
            events: vec![ProviderEvent {
                provider: "twilio",
                kind: "property".into(),
                key,
                payload: String::new(),
                channel,
                address: Some(address),
                consent: Some(event),
                outcome: "recorded",
                inbound: None,
                status: None,
            }],
        }],
    )
    .unwrap();
}

/// Random states (several reasons per channel, the switch, reasons on
/// addresses that contacts hold, had, or take later): the bulk gate, the
/// single gate and the contact's page decide alike, contact by contact,
/// reasons and their order included, and the mask the list filters on is
/// exactly the channels with a reason.
#[test]
fn single_and_bulk_decisions_agree_on_any_state() {
    let db = TestDb::new();
    let shared = std::cell::RefCell::new(db.conn());
    let location = locations::find_by_name(&mut shared.borrow_mut(), demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    let counter = std::cell::Cell::new(0u32);
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in prop::collection::vec(step(), 1..40))| {
        let case = counter.get() + 1;
        counter.set(case);
        let mut conn = shared.borrow_mut();
        let number = |n: usize| format!("+1415777{:02}{:02}", case % 100, n);
        let email = |n: usize| format!("p{case}-{n}@example.com");
        let mut ids = Vec::new();
        for c in 0..CONTACTS {
            ids.push(contacts::upsert(&mut conn, location, &ContactInput {
                phone: Some(PhoneNumber::parse_international(&number(c)).unwrap()),
                email: Some(EmailAddress::parse(&email(c)).unwrap()),
                ..Default::default()
            }, &test_actor()).unwrap().0.id);
        }
        let api = Actor::new(ActorKind::Api, None, "property");
        for (k, s) in steps.iter().enumerate() {
            let key = format!("prop-{case}-{k}");
            match s.clone() {
                Step::Manual(c, channel, on) => {
                    let _ = store::apply(&mut conn, location, ids[c], |st| if on {
                        st.set(channel, Reason::Manual, &api, Utc::now(), None, None)
                    } else {
                        st.lift(channel, &api, Utc::now(), Default::default())
                    });
                }
                Step::Switch(c, on) => {
                    store::apply(&mut conn, location, ids[c], |st| st.switch_all(on, &api, Utc::now())).unwrap();
                }
                Step::OnNumber(n, reason) => {
                    let channel = if reason.channels().contains(&Channel::Sms) { Channel::Sms } else { Channel::Whatsapp };
                    consent(&mut conn, location, key, channel, number(n), Effect::Set(reason));
                }
                Step::OnEmail(n, reason) => consent(&mut conn, location, key, Channel::Email, email(n), Effect::Set(reason)),
                Step::OptIn(n, channel) => consent(&mut conn, location, key, channel, number(n), Effect::OptIn),
                Step::MovePhone(c, n) => {
                    let current = contacts::find(&mut conn, location, ids[c]).unwrap().unwrap();
                    let _ = contacts::upsert(&mut conn, location, &ContactInput {
                        email: current.email.map(|e| EmailAddress::parse(&e).unwrap()),
                        phone: Some(PhoneNumber::parse_international(&number(n)).unwrap()),
                        ..Default::default()
                    }, &test_actor());
                }
                Step::MoveEmail(c, n) => {
                    let current = contacts::find(&mut conn, location, ids[c]).unwrap().unwrap();
                    let _ = contacts::upsert(&mut conn, location, &ContactInput {
                        phone: current.phone.map(|p| PhoneNumber::parse_international(&p).unwrap()),
                        email: Some(EmailAddress::parse(&email(n)).unwrap()),
                        ..Default::default()
                    }, &test_actor());
                }
                Step::WhatsappId(c, n) => {
                    let current = contacts::find(&mut conn, location, ids[c]).unwrap().unwrap();
                    let _ = contacts::upsert(&mut conn, location, &ContactInput {
                        email: current.email.map(|e| EmailAddress::parse(&e).unwrap()),
                        whatsapp_id: Some(number(n)),
                        ..Default::default()
                    }, &test_actor());
                }
            }
        }
        for channel in Channel::ALL {
            let bulk = outbound::decide_bulk(&mut conn, location, channel, &ids).unwrap();
            prop_assert_eq!(bulk.len(), ids.len());
            for d in &bulk {
                let contact = contacts::find(&mut conn, location, d.contact_id).unwrap().unwrap();
                let address = contact.addresses().on(channel).map(str::to_string);
                prop_assert_eq!(d.reachable, address.is_some());
                let page = store::load_state(&mut conn, location, d.contact_id).unwrap().unwrap();
                prop_assert_eq!(&page.decide(channel, Origin::Automated), &d.decision, "page vs bulk, {}", channel);
                if let Some(address) = &address {
                    let single = store::gate_state(&mut conn, location, d.contact_id, channel, address).unwrap().unwrap();
                    prop_assert_eq!(&single.decide(channel, Origin::Manual), &d.decision, "single vs bulk, {}", channel);
                }
                let mask = mask_of(&mut conn, location, d.contact_id).dnd_mask;
                prop_assert_eq!(mask & channel.bit() != 0, page.has_reasons(channel), "mask of {}", channel);
            }
        }
    });
}

async fn send(app: &TestApp, id: i64) -> (u16, serde_json::Value) {
    app.api_post(
        demo::API_KEY_DOWNTOWN,
        "/api/v1/messages",
        json!({"contact_id": id, "channel": "sms", "body": "hello"}),
    )
    .await
}

async fn created(app: &TestApp, phone: &str) -> i64 {
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": phone}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn message(app: &TestApp, id: &serde_json::Value) -> serde_json::Value {
    app.api_get(demo::API_KEY_DOWNTOWN, &format!("/api/v1/messages/{id}"))
        .await
        .1
}

/// A reason, an actor or a transport written by a newer version: the
/// single send, the bulk send and the dispatcher all refuse to send
/// (recorded `failed`, saying why), and never fall back to another way.
#[actix_web::test]
async fn values_from_a_newer_version_fail_closed() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let unknown_reason = created(&app, "+13125559101").await;
    let unknown_actor = created(&app, "+13125559102").await;
    let fine = created(&app, "+13125559103").await;
    // Queued while everything was readable.
    let (code, early) = send(&app, unknown_reason).await;
    assert_eq!(code, 202);
    app.db
        .conn()
        .batch_execute(&format!(
            "ALTER TABLE address_dnd_reasons DROP CONSTRAINT address_dnd_reasons_reason_check;
             ALTER TABLE address_dnd_reasons DROP CONSTRAINT address_dnd_reasons_actor_kind_check;
             INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at,
                 actor_kind, actor_label)
             VALUES ({downtown}, '+13125559101', 'sms', 'regulator_block', 'permanent', now(),
                     'provider', 'newer'),
                    ({downtown}, '+13125559102', 'sms', 'sms_opt_out', 'permanent', now(),
                     'robot', 'newer');"
        ))
        .unwrap();

    for id in [unknown_reason, unknown_actor] {
        let (code, body) = send(&app, id).await;
        assert_eq!(code, 409, "{body}");
        assert_eq!(body["error"], "dnd_unreadable");
        let stored = message(&app, &body["id"]).await;
        assert_eq!(stored["status"], "failed");
        assert!(
            stored["error_message"]
                .as_str()
                .unwrap()
                .contains("does not know"),
            "{stored}"
        );
    }
    let (code, bulk) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages/bulk",
            json!({"channel": "sms", "body": "x", "contact_ids": [unknown_reason, fine]}),
        )
        .await;
    assert_eq!(code, 200, "{bulk}");
    let of = |id: i64| {
        bulk["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["contact_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(unknown_reason)["status"], "failed");
    assert!(of(unknown_reason)["error"]
        .as_str()
        .unwrap()
        .contains("regulator_block"));
    assert_eq!(of(fine)["status"], "queued");
    // The list still shows the contact blocked on SMS (its mask has the
    // channel's bit, whatever the reason's name).
    let contact = contacts::find(&mut app.db.conn(), downtown, unknown_reason)
        .unwrap()
        .unwrap();
    assert!(contact.blocked_channels().contains(&Channel::Sms));

    // The message queued before: the dispatcher fails it, never sends it.
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    while dispatcher.run_once().await.unwrap() > 0 {}
    let stored = message(&app, &early["id"]).await;
    assert_eq!(stored["status"], "failed", "{stored}");
    assert!(stored["provider_sid"].is_null(), "never handed over");

    // A transport this version does not know: the message fails, it does
    // not go out through the log transport (or any other).
    app.db
        .conn()
        .batch_execute(&format!(
            "ALTER TABLE integrations DROP CONSTRAINT integrations_transport_check;
             UPDATE integrations SET transport = 'carrier_pigeon'
             WHERE location_id = {downtown} AND channel = 'sms';"
        ))
        .unwrap();
    let (code, queued) = send(&app, fine).await;
    assert_eq!(code, 202);
    while dispatcher.run_once().await.unwrap() > 0 {}
    let stored = message(&app, &queued["id"]).await;
    assert_eq!(stored["status"], "failed", "{stored}");
    assert!(
        stored["error_message"]
            .as_str()
            .unwrap()
            .contains("carrier_pigeon"),
        "{stored}"
    );
    assert!(stored["provider_sid"].is_null());
}

/// The check answers what a send would get, without sending: same
/// reasons, same address, for every channel; nothing is recorded.
#[actix_web::test]
async fn the_dnd_check_answers_as_the_gate_without_sending() {
    use chrono::Utc;
    use dnd::domain::dnd::{Actor, ActorKind, Reason};

    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let key = demo::API_KEY_DOWNTOWN;
    let (_, made) = app
        .api_post(
            key,
            "/api/v1/contacts",
            serde_json::json!({"name": "Cal Check", "phone": "+14155550180", "email": "cal@example.com"}),
        )
        .await;
    let id = made["id"].as_i64().unwrap();
    dnd::db::dnd::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &Actor::new(ActorKind::Contact, None, "+14155550180"),
            Utc::now(),
            None,
            Some("STOP".into()),
        )
    })
    .unwrap();
    let check = |channel: &'static str| {
        let app = &app;
        async move {
            app.api_get(
                key,
                &format!("/api/v1/contacts/{id}/dnd/check?channel={channel}"),
            )
            .await
        }
    };
    let messages_before = count_messages(&app);
    let (status, sms) = check("sms").await;
    assert_eq!(status, 200);
    assert_eq!(sms["allowed"], false);
    assert_eq!(sms["reasons"], serde_json::json!(["sms_opt_out"]));
    assert_eq!(sms["address"], "+14155550180");
    let (_, email) = check("email").await;
    assert_eq!(email["allowed"], true);
    assert_eq!(email["reasons"], serde_json::json!([]));
    let (_, call) = check("call").await;
    assert_eq!(
        call["allowed"], true,
        "calls are not blocked by an SMS opt-out"
    );
    let (_, whatsapp) = check("whatsapp").await;
    assert_eq!(
        whatsapp["allowed"], true,
        "WhatsApp goes to the phone number"
    );
    let (_, facebook) = check("facebook").await;
    assert_eq!(facebook["allowed"], false);
    assert!(
        facebook["error"]
            .as_str()
            .unwrap()
            .contains("no Facebook Messenger address"),
        "{facebook}"
    );
    assert_eq!(
        count_messages(&app),
        messages_before,
        "a check sends nothing"
    );

    // The same answers as a send.
    let (code, sent) = app
        .api_post(
            key,
            "/api/v1/messages",
            serde_json::json!({"contact_id": id, "channel": "sms", "body": "hi"}),
        )
        .await;
    assert_eq!(code, 409);
    assert_eq!(sent["reasons"], sms["reasons"]);
    // All channels on: every channel says so, the switch first.
    app.api_put(
        key,
        &format!("/api/v1/contacts/{id}/dnd"),
        serde_json::json!({"all": true}),
    )
    .await;
    let (_, email) = check("email").await;
    assert_eq!(email["allowed"], false);
    assert_eq!(email["reasons"], serde_json::json!(["all_channels"]));
    let (_, call) = check("call").await;
    assert_eq!(call["reasons"], serde_json::json!(["all_channels"]));

    // Refusals.
    assert_eq!(check("pigeon").await.0, 422);
    let (status, _) = app
        .api_get(
            demo::API_KEY_HARBOR,
            &format!("/api/v1/contacts/{id}/dnd/check?channel=sms"),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .api_get(
            "not-a-key",
            &format!("/api/v1/contacts/{id}/dnd/check?channel=sms"),
        )
        .await;
    assert_eq!(status, 401);
}

fn count_messages(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    dnd::db::schema::messages::table
        .count()
        .get_result(&mut app.db.conn())
        .unwrap()
}
