//! The contact's DND record through the pages and the API, against a real
//! database: every refusal is proven on the server, not just in the UI.

use chrono::Utc;
use diesel::RunQueryDsl;
use serde_json::json;

use crate::common::{location, spawn_app, TestApp};
use dnd::db::contacts::{self, ContactInput};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, DndState, Reason};
use dnd::domain::{Channel, PhoneNumber};

/// A fresh contact of a location, so tests do not share state.
pub(crate) fn new_contact(app: &TestApp, location_id: i64, phone: &str) -> i64 {
    contacts::upsert(
        &mut app.db.conn(),
        location_id,
        &ContactInput {
            name: Some(format!("Test {phone}")),
            phone: Some(PhoneNumber::parse_international(phone).unwrap()),
            email: Some(
                dnd::domain::EmailAddress::parse(&format!("t{}@example.com", &phone[1..])).unwrap(),
            ),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

/// Sets a reason the way its rightful setter would (a reason kept by
/// address lands on the contact's address on that channel).
pub(crate) fn set_reason(
    app: &TestApp,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
    reason: Reason,
) {
    let kind = if reason.may_set(ActorKind::Api) {
        ActorKind::Api
    } else {
        ActorKind::Provider
    };
    let actor = Actor::new(kind, None, "Twilio");
    store::apply(&mut app.db.conn(), location_id, contact_id, |s| {
        s.set(
            channel,
            reason,
            &actor,
            Utc::now(),
            None,
            Some("SM123".into()),
        )
    })
    .unwrap();
}

pub(crate) fn state_of(app: &TestApp, location_id: i64, contact_id: i64) -> DndState {
    store::load_state(&mut app.db.conn(), location_id, contact_id)
        .unwrap()
        .unwrap()
}

pub(crate) fn history_len(app: &TestApp, location_id: i64, contact_id: i64) -> usize {
    store::history(&mut app.db.conn(), location_id, contact_id, 10_000)
        .unwrap()
        .len()
}

async fn post_dnd(
    app: &TestApp,
    location_id: i64,
    contact_id: i64,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let page = format!("/locations/{location_id}/contacts/{contact_id}");
    let csrf = app.csrf_from(&page).await;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    let r = app.post_form(&format!("{page}/dnd"), &all).await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[actix_web::test]
async fn a_location_user_turns_sms_on_and_off_and_the_history_grows() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550001");
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("DND Off"));
    assert!(html.contains("No DND change yet."));

    let (code, _) = post_dnd(&app, downtown, id, &[("target", "sms"), ("turn", "on")]).await;
    assert_eq!(code, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("DND Partial"), "status badge");
    assert!(html.contains("SMS DND turned on."), "a one-time notice");
    assert!(html.contains("id=\"switch-sms\" aria-checked=\"true\""));
    assert!(html.contains("Turned on by hand"));
    assert!(html.contains(demo::LOCATION_USER), "by whom");
    assert_eq!(history_len(&app, downtown, id), 1);
    let (_, again) = app.get_text(&page).await;
    assert!(
        !again.contains("SMS DND turned on."),
        "the notice shows once"
    );

    let (code, _) = post_dnd(&app, downtown, id, &[("target", "all"), ("turn", "on")]).await;
    assert_eq!(code, 303);
    assert!(app.get_text(&page).await.1.contains("DND On"));
    let (code, _) = post_dnd(&app, downtown, id, &[("target", "all"), ("turn", "off")]).await;
    assert_eq!(code, 303);
    let (code, _) = post_dnd(&app, downtown, id, &[("target", "sms"), ("turn", "off")]).await;
    assert_eq!(code, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("DND Off"));
    assert_eq!(history_len(&app, downtown, id), 4);
    // Newest first.
    let rows: Vec<&str> = html
        .split("<table class=\"list\" id=\"history\">")
        .nth(1)
        .unwrap()
        .split("<tr>")
        .skip(2)
        .collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].contains("SMS") && rows[0].contains("lifted"));
    assert!(rows[3].contains("SMS") && rows[3].contains("turned on"));
    // The history replays to the stored state.
    let entries: Vec<_> = store::history(&mut app.db.conn(), downtown, id, 100)
        .unwrap()
        .iter()
        .rev()
        .map(|h| h.entry())
        .collect();
    assert_eq!(DndState::replay(&entries), state_of(&app, downtown, id));
}

/// Every provider reason × every role: a crafted POST to lift it succeeds
/// exactly when the rules allow, and a refusal is a 403 in words that
/// changes nothing.
#[actix_web::test]
async fn crafted_lifts_are_refused_per_role_and_reason() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let mut n = 0;
    for user in [demo::LOCATION_USER, demo::AGENCY_USER, demo::SUPPORT_USER] {
        app.sign_in_as(user).await;
        for reason in Reason::ALL {
            let channel = reason.channels()[0];
            n += 1;
            let id = new_contact(&app, downtown, &format!("+1312555{:04}", 1000 + n));
            set_reason(&app, downtown, id, channel, reason);
            let before = state_of(&app, downtown, id);
            let history = history_len(&app, downtown, id);
            let (code, body) = post_dnd(
                &app,
                downtown,
                id,
                &[
                    ("target", channel.as_str()),
                    ("turn", "off"),
                    ("confirm_suppression_removed", "yes"),
                ],
            )
            .await;
            let kind = if user == demo::LOCATION_USER {
                ActorKind::LocationUser
            } else if user == demo::AGENCY_USER {
                ActorKind::AgencyUser
            } else {
                ActorKind::Support
            };
            // Support acts only through evidence review, never from here.
            let allowed = reason.may_lift(kind) && kind != ActorKind::Support;
            if allowed {
                assert_eq!(code, 303, "{user} lifting {reason}");
                assert!(
                    !state_of(&app, downtown, id).has_reasons(channel),
                    "{user} {reason}"
                );
                assert_eq!(history_len(&app, downtown, id), history + 1);
            } else {
                assert_eq!(code, 403, "{user} lifting {reason}");
                assert!(
                    body.contains("Nothing was changed"),
                    "{user} {reason}: {body}"
                );
                if kind != ActorKind::Support {
                    assert!(
                        body.replace("&#39;", "'").contains(reason.lift_rule()),
                        "{reason}: {body}"
                    );
                }
                assert_eq!(state_of(&app, downtown, id), before, "{user} {reason}");
                assert_eq!(history_len(&app, downtown, id), history, "{user} {reason}");
            }
        }
        app.post_form(
            "/logout",
            &[("csrf_token", &app.csrf_from("/locations").await)],
        )
        .await;
    }
}

#[actix_web::test]
async fn a_permanent_reason_shows_a_disabled_switch_with_what_to_do() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550002");
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    app.sign_in_as(demo::LOCATION_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(
        html.contains(
            "id=\"switch-sms\" aria-checked=\"true\" aria-disabled=\"true\" aria-describedby=\"why-sms-0\""
        ),
        "{html}"
    );
    assert!(html.contains("Ask support to review opt-in evidence"));
    assert!(html.contains("only a START reply from the contact or support can lift it"));
    assert!(
        html.contains("+13125550002"),
        "the address the reason is kept on"
    );
}

#[actix_web::test]
async fn email_bounces_need_the_suppression_confirmation() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550003");
    set_reason(&app, downtown, id, Channel::Email, Reason::EmailBounced);
    app.sign_in_as(demo::AGENCY_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(
        html.contains("name=\"confirm_suppression_removed\""),
        "the page asks"
    );
    let (code, body) = post_dnd(&app, downtown, id, &[("target", "email"), ("turn", "off")]).await;
    assert_eq!(code, 403);
    assert!(body.contains("suppression list"), "{body}");
    assert!(state_of(&app, downtown, id).has_reasons(Channel::Email));
    let (code, _) = post_dnd(
        &app,
        downtown,
        id,
        &[
            ("target", "email"),
            ("turn", "off"),
            ("confirm_suppression_removed", "yes"),
        ],
    )
    .await;
    assert_eq!(code, 303);
    assert!(!state_of(&app, downtown, id).has_reasons(Channel::Email));
}

#[actix_web::test]
async fn lifting_keeps_what_the_user_may_not_lift_and_says_so() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550004");
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    set_reason(&app, downtown, id, Channel::Sms, Reason::Manual);
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("Turning it off keeps: Opted out by SMS"));
    let (code, _) = post_dnd(&app, downtown, id, &[("target", "sms"), ("turn", "off")]).await;
    assert_eq!(code, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("the channel stays blocked"), "{html}");
    let left: Vec<Reason> = state_of(&app, downtown, id)
        .reasons(Channel::Sms)
        .iter()
        .map(|a| a.reason)
        .collect();
    assert_eq!(left, vec![Reason::SmsOptOut]);
}

#[actix_web::test]
async fn dnd_on_a_disconnected_channel_is_kept_and_comes_back_on_reconnect() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550005");
    set_reason(&app, downtown, id, Channel::Gmb, Reason::Manual);
    set_reason(&app, downtown, id, Channel::Whatsapp, Reason::Manual);
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("Kept while Google Business Messages is disconnected."));
    assert!(
        !html.contains("id=\"switch-gmb\""),
        "no switch while disconnected"
    );
    // Disconnect WhatsApp: its switch goes, its DND stays.
    diesel::sql_query(format!(
        "UPDATE integrations SET status = 'disconnected', disconnected_at = now() WHERE location_id = {downtown} AND channel IN ('whatsapp')"
    ))
    .execute(&mut app.db.conn())
    .unwrap();
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("Kept while WhatsApp is disconnected."));
    assert!(!html.contains("id=\"switch-whatsapp\""));
    assert!(html.contains("DND Partial"));
    // Reconnect both: the switches come back, on.
    diesel::sql_query(format!(
        "UPDATE integrations SET status = 'connected', connected_at = now() WHERE location_id = {downtown}"
    ))
    .execute(&mut app.db.conn())
    .unwrap();
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("id=\"switch-gmb\" aria-checked=\"true\""));
    assert!(html.contains("id=\"switch-whatsapp\" aria-checked=\"true\""));
}

#[actix_web::test]
async fn support_sees_dnd_read_only_and_foreign_contacts_are_404() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let id = new_contact(&app, downtown, "+13125550006");
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(html.contains("Support sees DND read-only"));
    assert!(html.contains(
        "type=\"button\" class=\"switch\" role=\"switch\" id=\"switch-all\" aria-checked=\"false\" aria-disabled=\"true\""
    ));
    let (code, _) = post_dnd(&app, downtown, id, &[("target", "sms"), ("turn", "on")]).await;
    assert_eq!(code, 403);
    assert!(!state_of(&app, downtown, id).is_blocked(Channel::Sms));

    // A location user posting to another location's contact: 404, unchanged.
    let harbor_contact = new_contact(&app, harbor, "+13125550007");
    app.client = crate::common::new_client();
    app.sign_in_as(demo::LOCATION_USER).await;
    let csrf = app.csrf_from("/locations").await;
    let r = app
        .post_form(
            &format!("/locations/{harbor}/contacts/{harbor_contact}/dnd"),
            &[("csrf_token", &csrf), ("target", "sms"), ("turn", "on")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);
    // Through one's own location with a foreign contact id: 404 too.
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/{harbor_contact}/dnd"),
            &[("csrf_token", &csrf), ("target", "sms"), ("turn", "on")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);
    assert!(!state_of(&app, harbor, harbor_contact).is_blocked(Channel::Sms));
    // Without the CSRF token: 403, unchanged.
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/{id}/dnd"),
            &[("target", "sms"), ("turn", "on")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    // Nonsense: 400 with a message.
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/{id}/dnd"),
            &[
                ("csrf_token", &csrf),
                ("target", "telegram"),
                ("turn", "on"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("unknown channel"));
    assert!(!state_of(&app, downtown, id).is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn the_history_is_append_only() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550008");
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    let mut conn = app.db.conn();
    for statement in [
        "UPDATE dnd_history SET actor_label = 'someone else'",
        "DELETE FROM dnd_history",
        "TRUNCATE dnd_history",
    ] {
        let err = diesel::sql_query(statement).execute(&mut conn).unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    assert_eq!(history_len(&app, downtown, id), 1);
}

#[actix_web::test]
async fn concurrent_changes_to_one_contact_do_not_interleave() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550009");
    let url = app.db.url.clone();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut conn = dnd::db::connect(&url).unwrap();
                let actor = Actor::new(ActorKind::Api, Some(t), format!("worker {t}"));
                for i in 0..15 {
                    let channel = Channel::ALL[(t as usize + i) % Channel::ALL.len()];
                    store::apply(&mut conn, downtown, id, |s| {
                        if s.has_reasons(channel) {
                            s.lift(channel, &actor, Utc::now(), Default::default())
                        } else {
                            s.set(channel, Reason::Manual, &actor, Utc::now(), None, None)
                        }
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let entries: Vec<_> = store::history(&mut app.db.conn(), downtown, id, 10_000)
        .unwrap()
        .iter()
        .rev()
        .map(|h| h.entry())
        .collect();
    assert_eq!(entries.len(), 8 * 15, "every change recorded once");
    let stored = state_of(&app, downtown, id);
    let replayed = DndState::replay(&entries);
    assert_eq!(stored.channel_mask(), replayed.channel_mask());
    for c in Channel::ALL {
        let a: Vec<Reason> = stored.reasons(c).iter().map(|r| r.reason).collect();
        let b: Vec<Reason> = replayed.reasons(c).iter().map(|r| r.reason).collect();
        assert_eq!(a, b, "{c}");
    }
    let mask: i16 = contacts::find(&mut app.db.conn(), downtown, id)
        .unwrap()
        .unwrap()
        .dnd_mask;
    assert_eq!(mask, stored.channel_mask(), "the list's bitmask agrees");
}

#[actix_web::test]
async fn the_contact_list_shows_and_filters_by_dnd() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let sms = new_contact(&app, downtown, "+13125550010");
    set_reason(&app, downtown, sms, Channel::Sms, Reason::SmsOptOut);
    let email = new_contact(&app, downtown, "+13125550011");
    set_reason(&app, downtown, email, Channel::Email, Reason::EmailBounced);
    let all = new_contact(&app, downtown, "+13125550012");
    new_contact(&app, downtown, "+13125550014");
    store::apply(&mut app.db.conn(), downtown, all, |s| {
        s.switch_all(true, &Actor::new(ActorKind::Api, None, "test"), Utc::now())
    })
    .unwrap();
    app.sign_in_as(demo::LOCATION_USER).await;
    let base = format!("/locations/{downtown}/contacts");
    let body = |html: &str| html.split("<tbody>").nth(1).unwrap_or("").to_string();

    let (_, html) = app.get_text(&format!("{base}?q=%2B1312555001")).await;
    let rows = body(&html);
    assert!(
        rows.contains("badge-partial") && rows.contains("badge-on") && rows.contains("badge-off")
    );
    assert!(rows.contains("title=\"Blocked on SMS\""));

    let (_, html) = app.get_text(&format!("{base}?status=partial")).await;
    let rows = body(&html);
    assert!(rows.contains("+13125550010") && rows.contains("+13125550011"));
    assert!(!rows.contains("+13125550012") && !rows.contains("badge-off"));

    let (_, html) = app.get_text(&format!("{base}?status=on")).await;
    assert_eq!(body(&html).matches("<tr>").count(), 1);
    assert!(body(&html).contains("+13125550012"));

    // Blocked on SMS: its own reason, or the all-channels switch.
    let (_, html) = app.get_text(&format!("{base}?channel=sms")).await;
    let rows = body(&html);
    assert!(rows.contains("+13125550010") && rows.contains("+13125550012"));
    assert!(!rows.contains("+13125550011"));

    // Combined with a search.
    let (_, html) = app
        .get_text(&format!("{base}?channel=email&q=%2B13125550011"))
        .await;
    assert_eq!(body(&html).matches("<tr>").count(), 1);
    let (_, html) = app
        .get_text(&format!("{base}?status=off&q=%2B1312555001"))
        .await;
    assert_eq!(body(&html).matches("<tr>").count(), 1);
    assert!(body(&html).contains("+13125550014"));
    let (_, html) = app
        .get_text(&format!("{base}?status=on&q=%2B13125550010"))
        .await;
    assert!(html.contains("No contact matches"));

    // Off: the 200 demo contacts, paged, and the next link keeps the filter.
    let (_, html) = app.get_text(&format!("{base}?status=off")).await;
    assert!(
        html.contains("status=off&#38;start=51&#38;after="),
        "next keeps the filter"
    );
    assert_eq!(
        app.get(&format!("{base}?status=maybe"))
            .await
            .status()
            .as_u16(),
        400
    );
}

#[actix_web::test]
async fn the_api_shows_sets_and_lifts_dnd_under_the_same_rules() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550013");
    let key = demo::API_KEY_DOWNTOWN;

    let (code, body) = app.api_get(key, &format!("/api/v1/contacts/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(body["dnd"]["status"], "off");
    assert_eq!(body["dnd"]["all"], false);
    let channels = body["dnd"]["channels"].as_object().unwrap();
    assert_eq!(channels.len(), 6, "every channel listed");
    assert_eq!(channels["sms"], json!({"blocked": false, "reasons": []}));

    let r = app
        .client
        .put(app.url(&format!("/api/v1/contacts/{id}/dnd")))
        .bearer_auth(key)
        .json(&json!({"channels": {"email": true, "sms": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["dnd"]["status"], "partial");
    assert_eq!(
        body["dnd"]["channels"]["email"]["reasons"][0]["reason"],
        "manual"
    );
    assert_eq!(
        body["dnd"]["channels"]["email"]["reasons"][0]["liftable_by"],
        json!(["location_user", "agency_user", "api"])
    );

    // An opt-out arrives; the API may not lift it. The whole request is
    // refused: the email lift in it is not applied either.
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.lift(
            Channel::Sms,
            &Actor::new(ActorKind::Api, None, "x"),
            Utc::now(),
            Default::default(),
        )
    })
    .unwrap();
    let history = history_len(&app, downtown, id);
    let r = app
        .client
        .put(app.url(&format!("/api/v1/contacts/{id}/dnd")))
        .bearer_auth(key)
        .json(&json!({"all": true, "channels": {"email": false, "sms": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("SMS DND stays on"), "{message}");
    assert!(
        message.contains("Nothing in this request was applied"),
        "{message}"
    );
    assert_eq!(history_len(&app, downtown, id), history);
    let (_, body) = app.api_get(key, &format!("/api/v1/contacts/{id}")).await;
    assert_eq!(body["dnd"]["all"], false);
    assert_eq!(body["dnd"]["channels"]["email"]["blocked"], true);
    assert_eq!(
        body["dnd"]["channels"]["sms"]["reasons"][0]["kind"],
        "permanent"
    );
    assert_eq!(
        body["dnd"]["channels"]["sms"]["reasons"][0]["liftable_by"],
        json!(["contact", "support"])
    );

    // History, newest first, with the actor.
    let (code, body) = app
        .api_get(key, &format!("/api/v1/contacts/{id}/dnd/history"))
        .await;
    assert_eq!(code, 200);
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0]["action"], "lifted");
    assert_eq!(
        history.last().unwrap()["actor"]["label"],
        "API key Demo automation"
    );

    // Validation and scoping.
    let r = app
        .client
        .put(app.url(&format!("/api/v1/contacts/{id}/dnd")))
        .bearer_auth(key)
        .json(&json!({"channels": {"telegram": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = app
        .client
        .put(app.url(&format!("/api/v1/contacts/{id}/dnd")))
        .bearer_auth(demo::API_KEY_HARBOR)
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "another location's key");
    let (code, _) = app
        .api_get(
            demo::API_KEY_HARBOR,
            &format!("/api/v1/contacts/{id}/dnd/history"),
        )
        .await;
    assert_eq!(code, 404);
    let _ = location;
}
