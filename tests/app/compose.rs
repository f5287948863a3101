//! Sending from the contact page: the composer shows the gate's answer, and
//! the server enforces it whatever the page showed.

use chrono::Utc;

use crate::common::{new_client, spawn_app, TestApp};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::{Channel, PhoneNumber};

fn demo_contact(app: &TestApp, location_id: i64, phone: &str) -> i64 {
    dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        location_id,
        &PhoneNumber::parse_international(phone).unwrap(),
    )
    .unwrap()
    .unwrap()
    .id
}

#[actix_web::test]
async fn a_blocked_channel_cannot_be_sent_on_even_by_a_crafted_post() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = demo_contact(&app, downtown, "+12125550130");
    store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            Channel::Email,
            Reason::EmailBounced,
            &Actor::new(ActorKind::Provider, None, "Mailgun"),
            Utc::now(),
            None,
            None,
        )
    })
    .unwrap();
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    assert!(
        html.contains("type=\"button\" id=\"send-email\" aria-disabled=\"true\""),
        "email composer disabled"
    );
    assert!(
        html.contains("The email bounced permanently"),
        "with the reason"
    );
    assert!(html.contains("id=\"send-sms\">"), "SMS composer enabled");
    assert!(html.contains("Calls are allowed."));

    let csrf = app.csrf_from(&page).await;
    let r = app
        .post_form(
            &format!("{page}/messages"),
            &[
                ("csrf_token", &csrf),
                ("channel", "sms"),
                ("body", "Your cleaning is on Monday"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let r = app
        .post_form(
            &format!("{page}/messages"),
            &[
                ("csrf_token", &csrf),
                ("channel", "email"),
                ("subject", "Hi"),
                ("body", "Crafted"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 409);
    let html = r.text().await.unwrap();
    assert!(html.contains("recorded as blocked"), "{html}");
    assert!(html.contains("nothing was sent"));

    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("SMS message queued for sending."));
    let timeline = html.split("id=\"messages\"").nth(1).unwrap();
    assert!(timeline.contains("Your cleaning is on Monday") && timeline.contains("msg-queued"));
    assert!(timeline.contains("Crafted") && timeline.contains("msg-blocked"));
    assert!(timeline.contains("Email bounced or suppressed"));
    assert!(timeline.contains("manual"));
    assert!(
        timeline.contains("turned on — Email bounced or suppressed"),
        "DND changes share the timeline"
    );

    // An empty message comes back to its composer (422); another
    // location's contact is a 404.
    let r = app
        .post_form(
            &format!("{page}/messages"),
            &[("csrf_token", &csrf), ("channel", "sms"), ("body", "  ")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let harbor = app.location_id(demo::HARBOR);
    let foreign = demo_contact(&app, harbor, "+14155550100");
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/{foreign}/messages"),
            &[("csrf_token", &csrf), ("channel", "sms"), ("body", "x")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);

    // Support sends nothing.
    app.client = new_client();
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (_, html) = app.get_text(&page).await;
    assert!(!html.contains("id=\"compose\""));
    let csrf = app.csrf_from(&page).await;
    let r = app
        .post_form(
            &format!("{page}/messages"),
            &[("csrf_token", &csrf), ("channel", "sms"), ("body", "x")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
}

#[actix_web::test]
async fn the_all_channels_switch_disables_every_composer_and_blocks_calls() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = demo_contact(&app, downtown, "+12125550131");
    store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.switch_all(true, &Actor::new(ActorKind::Api, None, "t"), Utc::now())
    })
    .unwrap();
    app.sign_in_as(demo::AGENCY_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(
        html.contains("type=\"button\" id=\"send-sms\" aria-disabled=\"true\"")
            && html.contains("type=\"button\" id=\"send-email\" aria-disabled=\"true\"")
    );
    assert!(html.contains("Call blocked."));
    assert!(html.contains("DND is on for all channels"));
}
