//! Inbound DND: the two switches (API, page, history), calls rejected by the
//! voice webhook, inbound SMS kept muted.

use serde_json::json;

use crate::common::{spawn_app, TestApp};
use crate::dnd::{new_contact, set_reason, state_of};
use crate::webhooks::{form, inbound, twilio_post, twilio_post_signed};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Action, Reason};
use dnd::domain::Channel;

fn call(sid: &str, from: &str) -> Vec<(String, String)> {
    form(&[
        ("CallSid", sid),
        ("AccountSid", "AC00000000000000000000000000000001"),
        ("From", from),
        ("To", "+12125559999"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
    ])
}

async fn voice(app: &TestApp, location_id: i64, params: &[(String, String)]) -> (u16, String) {
    let path = format!("/webhooks/twilio/{location_id}/voice");
    twilio_post_signed(app, &path, &app.url(&path), params, demo::TWILIO_AUTH_TOKEN).await
}

#[actix_web::test]
async fn the_api_switches_inbound_dnd_in_the_same_transaction_as_outbound() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let id = new_contact(&app, harbor, "+14155550601");
    let path = format!("/api/v1/contacts/{id}/dnd");
    let (status, body) = app
        .api_put(
            demo::API_KEY_HARBOR,
            &path,
            json!({"inbound": {"calls": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dnd"]["inbound"], json!({"sms": false, "calls": true}));
    // Outbound is untouched: inbound DND never blocks a send.
    assert!(!state_of(&app, harbor, id).is_blocked(Channel::Call));
    let (_, shown) = app
        .api_get(demo::API_KEY_HARBOR, &format!("/api/v1/contacts/{id}"))
        .await;
    assert_eq!(shown["dnd"]["inbound"]["calls"], true);
    let last = &store::history(&mut app.db.conn(), harbor, id, 1).unwrap()[0];
    assert_eq!(
        (last.action, last.channel, last.reason),
        (Action::InboundOn, Some(Channel::Call), None)
    );
    let (_, history) = app
        .api_get(
            demo::API_KEY_HARBOR,
            &format!("/api/v1/contacts/{id}/dnd/history"),
        )
        .await;
    assert_eq!(history["history"][0]["action"], "inbound_on");

    // Both kinds in one request, all or nothing: a refused lift keeps the
    // inbound switch as it was.
    set_reason(&app, harbor, id, Channel::Sms, Reason::SmsOptOut);
    let (status, _) = app
        .api_put(
            demo::API_KEY_HARBOR,
            &path,
            json!({"channels": {"sms": false}, "inbound": {"sms": true}}),
        )
        .await;
    assert_eq!(status, 403);
    let (_, shown) = app
        .api_get(demo::API_KEY_HARBOR, &format!("/api/v1/contacts/{id}"))
        .await;
    assert_eq!(
        shown["dnd"]["inbound"],
        json!({"sms": false, "calls": true})
    );
    let (status, body) = app
        .api_put(
            demo::API_KEY_HARBOR,
            &path,
            json!({"channels": {"email": true}, "inbound": {"sms": true, "calls": false}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dnd"]["inbound"], json!({"sms": true, "calls": false}));
    assert_eq!(body["dnd"]["channels"]["email"]["blocked"], true);
    // Bad shapes are refused.
    for bad in [
        json!({"inbound": {"email": true}}),
        json!({"inbound": {"sms": "yes"}}),
    ] {
        let (status, _) = app.api_put(demo::API_KEY_HARBOR, &path, bad.clone()).await;
        assert!(status == 400 || status == 422, "{bad}: {status}");
    }
}

#[actix_web::test]
async fn calls_from_a_contact_with_inbound_call_dnd_are_rejected() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+19175550602");
    // No inbound DND: the location's default message.
    let (status, twiml) = voice(&app, downtown, &call("CA1", "+19175550602")).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains("<Say>Thank you for calling Downtown Dental."),
        "{twiml}"
    );

    // The location user turns "Reject inbound calls" on from the page.
    app.sign_in_as(demo::LOCATION_USER).await;
    let (status, to) = app
        .submit(
            &format!("/locations/{downtown}/contacts/{id}/dnd"),
            &[("target", "inbound_calls"), ("turn", "on")],
        )
        .await;
    assert_eq!(status, 303, "{to}");
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(
        page.contains("Inbound calls from this contact are now rejected."),
        "{page}"
    );
    assert!(
        page.contains(r#"id="switch-inbound_calls" aria-checked="true""#),
        "{page}"
    );
    let (status, twiml) = voice(&app, downtown, &call("CA2", "(917) 555-0602")).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Response><Reject/></Response>"), "{twiml}");
    // A withheld number or another caller is not rejected.
    let (_, twiml) = voice(&app, downtown, &call("CA3", "anonymous")).await;
    assert!(!twiml.contains("Reject"), "{twiml}");

    // The agency sets a number to forward to; calls are dialled through.
    app.switch_to(demo::AGENCY_USER).await;
    let (status, page) = app
        .submit(
            &format!("/locations/{downtown}/settings/voice"),
            &[("forward_to", "not a number"), ("message", "")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("not a number"),
        "the typed value is kept: {page}"
    );
    let (status, _) = app
        .submit(
            &format!("/locations/{downtown}/settings/voice"),
            &[("forward_to", "(212) 555-0199"), ("message", "")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, twiml) = voice(&app, downtown, &call("CA4", "+13125550100")).await;
    assert!(twiml.contains("<Dial>+12125550199</Dial>"), "{twiml}");
    let (_, twiml) = voice(&app, downtown, &call("CA5", "+19175550602")).await;
    assert!(twiml.contains("<Reject/>"), "{twiml}");

    // Unsigned or mis-signed: refused, like the SMS webhook.
    let path = format!("/webhooks/twilio/{downtown}/voice");
    let r = app
        .client
        .post(app.url(&path))
        .form(&call("CA6", "+19175550602"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (status, _) = twilio_post_signed(
        &app,
        &path,
        &app.url(&path),
        &call("CA7", "+1"),
        "wrong-token",
    )
    .await;
    assert_eq!(status, 403);
    // Support cannot change it; location users cannot set calls settings.
    app.switch_to(demo::SUPPORT_USER).await;
    let (status, _) = app
        .submit(
            &format!("/locations/{downtown}/contacts/{id}/dnd"),
            &[("target", "inbound_calls"), ("turn", "off")],
        )
        .await;
    assert_eq!(status, 403);
    app.switch_to(demo::LOCATION_USER).await;
    let (status, _) = app
        .submit(
            &format!("/locations/{downtown}/settings/voice"),
            &[("forward_to", ""), ("message", "hi")],
        )
        .await;
    assert_eq!(status, 403);
}

#[actix_web::test]
async fn inbound_sms_from_a_muted_contact_is_kept_muted() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+19175550603");
    dnd::db::inbound::switch(
        &mut app.db.conn(),
        downtown,
        id,
        &[(Channel::Sms, true)],
        &crate::common::test_actor(),
    )
    .unwrap();
    let (status, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMmute1", "+19175550603", "hello there"),
    )
    .await;
    assert_eq!(status, 200);
    let other = new_contact(&app, downtown, "+19175550604");
    let (status, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMmute2", "+19175550604", "hi"),
    )
    .await;
    assert_eq!(status, 200);
    let muted = |contact: i64| {
        dnd::db::webhooks::timeline(&mut app.db.conn(), downtown, contact, 10)
            .unwrap()
            .iter()
            .map(|m| m.muted)
            .collect::<Vec<_>>()
    };
    assert_eq!(muted(id), vec![true]);
    assert_eq!(muted(other), vec![false]);
    // Muted is not opted out: a STOP from them still counts.
    let (_, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMmute3", "+19175550603", "STOP"),
    )
    .await;
    assert!(state_of(&app, downtown, id).is_blocked(Channel::Sms));
    app.sign_in_as(demo::LOCATION_USER).await;
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(page.contains("muted: inbound SMS DND is on"), "{page}");
}
