//! A location's integrations in the browser pages: connect, disconnect and
//! test against a provider double; DND kept across a disconnect, end to end
//! through the pages (no SQL).

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use serde_json::json;

use crate::common::spawn_app;
use dnd::db::contacts::{self, ContactInput};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::{Channel, PhoneNumber};

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "right-twilio-token";

/// Twilio's account fetch, Mailgun's domain fetch and Meta's `me`, as
/// documented, accepting only the right credentials.
pub async fn provider_double() -> String {
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/2010-04-01/Accounts/{sid}.json",
                web::get().to(|req: HttpRequest| async move {
                    let expected = format!(
                        "Basic {}",
                        base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            format!("{SID}:{TOKEN}")
                        )
                    );
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok());
                    if auth != Some(expected.as_str()) {
                        return HttpResponse::Unauthorized()
                            .json(json!({"code": 20003, "message": "Authenticate"}));
                    }
                    HttpResponse::Ok().json(
                        json!({"sid": SID, "friendly_name": "Downtown Dental", "status": "active"}),
                    )
                }),
            )
            .route(
                "/v3/domains/{domain}",
                web::get().to(|path: web::Path<String>| async move {
                    HttpResponse::Ok()
                        .json(json!({"domain": {"name": path.into_inner(), "state": "active"}}))
                }),
            )
            .route(
                "/v19.0/me",
                web::get().to(|| async {
                    HttpResponse::Ok().json(json!({"id": "1234", "name": "Downtown Dental"}))
                }),
            )
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

#[actix_web::test]
async fn disconnecting_whatsapp_keeps_dnd_read_only_and_reconnecting_offers_it_again() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = contacts::upsert(
        &mut app.db.conn(),
        downtown,
        &ContactInput {
            name: Some("Wren Whatsapp".into()),
            whatsapp_id: Some("+14155550777".into()),
            phone: Some(PhoneNumber::parse_international("+14155550777").unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id;
    store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            Channel::Whatsapp,
            Reason::ChannelOptOut,
            &Actor::new(ActorKind::Contact, None, "+14155550777"),
            Utc::now(),
            None,
            Some("wamid.stop".into()),
        )
    })
    .unwrap();
    let contact_page = format!("/locations/{downtown}/contacts/{id}");
    let integrations = format!("/locations/{downtown}/integrations");
    app.switch_to(demo::AGENCY_USER).await;
    let (_, html) = app.get_text(&contact_page).await;
    assert!(html.contains("id=\"switch-whatsapp\" aria-checked=\"true\""));

    let (status, to) = app
        .submit(&format!("{integrations}/whatsapp/disconnect"), &[])
        .await;
    assert_eq!((status, to.as_str()), (303, integrations.as_str()));
    let (_, page) = app.get_text(&integrations).await;
    assert!(page.contains("id=\"state-whatsapp\">disconnected"));
    let (_, html) = app.get_text(&contact_page).await;
    assert!(
        !html.contains("id=\"switch-whatsapp\""),
        "no switch while disconnected"
    );
    assert!(html.contains("Kept while WhatsApp is disconnected."));
    assert!(html.contains("Opted out on this channel"));
    // The DND itself did not move.
    let state = store::load_state(&mut app.db.conn(), downtown, id)
        .unwrap()
        .unwrap();
    assert!(state.is_blocked(Channel::Whatsapp));

    // Reconnect, keeping the stored secrets (left blank).
    let (status, to) = app
        .submit(
            &format!("{integrations}/whatsapp/connect"),
            &[
                ("account_id", "1234567890"),
                ("access_token", "EAAB-demo-access"),
            ],
        )
        .await;
    assert_eq!((status, to.as_str()), (303, integrations.as_str()), "{to}");
    let (_, html) = app.get_text(&contact_page).await;
    assert!(html.contains("id=\"switch-whatsapp\" aria-checked=\"true\""));
    let kept = dnd::db::integrations::find(&mut app.db.conn(), downtown, Channel::Whatsapp)
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.secret.as_deref(),
        Some(demo::META_APP_SECRET),
        "secret kept"
    );
}

#[actix_web::test]
async fn connect_checks_fields_and_test_marks_the_state_with_the_providers_answer() {
    let mut app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let base = provider_double().await;
    let page = format!("/locations/{harbor}/integrations");
    app.switch_to(demo::AGENCY_USER).await;
    // Harbor has no Calls integration yet: bad fields are refused in place.
    let (status, html) = app
        .submit(
            &format!("{page}/call/connect"),
            &[("account_sid", "AC12"), ("auth_token", "short")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("AC followed by 32 hex") && html.contains("at least 8 characters"));
    assert!(
        dnd::db::integrations::find(&mut app.db.conn(), harbor, Channel::Call)
            .unwrap()
            .is_none()
    );
    let (status, _) = app.submit(&format!("{page}/gmb/connect"), &[]).await;
    assert_eq!(status, 403, "GMB is legacy");

    let (status, _) = app
        .submit(
            &format!("{page}/call/connect"),
            &[
                ("account_sid", SID),
                ("auth_token", "a-wrong-token"),
                ("sending_number", "+1 415 555 0100"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("id=\"state-call\">connected"));
    assert!(!html.contains("a-wrong-token"), "secrets are write-only");
    // Point it at the double (the settings' base URL), then test.
    dnd::db::integrations::set_transport(
        &mut app.db.conn(),
        harbor,
        Channel::Call,
        dnd::domain::TransportKind::Log,
        Some(&base),
        None,
        None,
    )
    .unwrap();
    let (status, _) = app.submit(&format!("{page}/call/test"), &[]).await;
    assert_eq!(status, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("id=\"state-call\">error"), "{html}");
    assert!(html.contains("Twilio refused the account SID or auth token"));
    assert!(!html.contains("a-wrong-token"));
    // The right token (kept SID), and the test passes.
    app.submit(
        &format!("{page}/call/connect"),
        &[("account_sid", SID), ("auth_token", TOKEN)],
    )
    .await;
    dnd::db::integrations::set_transport(
        &mut app.db.conn(),
        harbor,
        Channel::Call,
        dnd::domain::TransportKind::Log,
        Some(&base),
        None,
        None,
    )
    .unwrap();
    let (status, _) = app.submit(&format!("{page}/call/test"), &[]).await;
    assert_eq!(status, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(
        html.contains("Test passed: Twilio account “Downtown Dental” is active."),
        "{html}"
    );
    assert!(html.contains("id=\"state-call\">connected"));

    // Mailgun's and Meta's reads too.
    for channel in ["email", "facebook"] {
        if channel == "facebook" {
            app.submit(
                &format!("{page}/facebook/connect"),
                &[
                    ("app_secret", "meta-app-secret"),
                    ("verify_token", "meta-verify-1"),
                    ("account_id", "998877"),
                    ("access_token", "EAAB-access-token"),
                ],
            )
            .await;
        }
        let c: Channel = channel.parse().unwrap();
        let current = dnd::db::integrations::find(&mut app.db.conn(), harbor, c)
            .unwrap()
            .unwrap();
        dnd::db::integrations::set_transport(
            &mut app.db.conn(),
            harbor,
            c,
            current.transport,
            Some(&base),
            Some(current.api_key.as_deref().unwrap_or("key-for-the-double")),
            current.sender.as_deref(),
        )
        .unwrap();
        let (status, _) = app.submit(&format!("{page}/{channel}/test"), &[]).await;
        assert_eq!(status, 303);
        let (_, html) = app.get_text(&page).await;
        assert!(html.contains("Test passed"), "{channel}: {html}");
    }

    // Connecting SMS makes it send through Twilio (the settings page can
    // set it back to log).
    let (status, _) = app
        .submit(
            &format!("{page}/sms/connect"),
            &[
                ("account_sid", SID),
                ("auth_token", TOKEN),
                ("sending_number", "+1 415 555 0101"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let sms = dnd::db::integrations::find(&mut app.db.conn(), harbor, Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(sms.transport, dnd::domain::TransportKind::Twilio);
    assert_eq!(sms.sender.as_deref(), Some("+14155550101"));
}

#[actix_web::test]
async fn only_the_agencys_users_change_integrations() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let page = format!("/locations/{downtown}/integrations");
    app.switch_to(demo::SUPPORT_USER).await;
    let (status, html) = app.get_text(&page).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("id=\"disconnect-sms\""),
        "support reads only"
    );
    assert_eq!(
        app.submit(&format!("{page}/sms/disconnect"), &[]).await.0,
        403
    );
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(app.get_text(&page).await.0, 403);
    assert_eq!(
        app.submit(&format!("{page}/sms/disconnect"), &[]).await.0,
        403
    );
    assert_eq!(app.submit(&format!("{page}/sms/test"), &[]).await.0, 403);
    let sms = dnd::db::integrations::find(&mut app.db.conn(), downtown, Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(sms.status, dnd::domain::IntegrationStatus::Connected);
}

#[actix_web::test]
async fn a_test_never_undoes_a_disconnect_nor_sends_a_secret_off_the_allow_list() {
    let mut app = crate::common::spawn_app_with(|c| c.allow_private_urls = false).await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let page = format!("/locations/{downtown}/integrations");
    // A receiver on loopback: not allowed in this app.
    let seen: std::sync::Arc<std::sync::Mutex<u32>> = Default::default();
    let counter = seen.clone();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().default_service(web::to(move || {
            let counter = counter.clone();
            async move {
                *counter.lock().unwrap() += 1;
                HttpResponse::Ok().json(json!({"status": "active"}))
            }
        }))
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let trap = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());
    dnd::db::integrations::set_transport(
        &mut app.db.conn(),
        downtown,
        Channel::Sms,
        dnd::domain::TransportKind::Log,
        Some(&trap),
        None,
        Some("+12125559999"),
    )
    .unwrap();
    app.switch_to(demo::AGENCY_USER).await;
    let (status, _) = app.submit(&format!("{page}/sms/test"), &[]).await;
    assert_eq!(status, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("the API URL is refused"), "{html}");
    assert!(html.contains("id=\"state-sms\">error"));
    assert_eq!(
        *seen.lock().unwrap(),
        0,
        "the auth token went to a refused host"
    );

    // Disconnected, a test (passing or failing) leaves it disconnected.
    app.submit(&format!("{page}/sms/disconnect"), &[]).await;
    app.submit(&format!("{page}/sms/test"), &[]).await;
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("id=\"state-sms\">disconnected"), "{html}");
    assert!(html.contains("stays disconnected"));
}

#[actix_web::test]
async fn other_agencies_and_location_users_cannot_connect() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let page = format!("/locations/{downtown}/integrations");
    let fields = [
        ("account_sid", SID),
        ("auth_token", "stolen-token-123"),
        ("sending_number", "+14155550100"),
    ];
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(
        app.submit(&format!("{page}/sms/connect"), &fields).await.0,
        403
    );
    app.switch_to_other_agency().await;
    assert_eq!(app.get_text(&page).await.0, 404);
    for action in ["connect", "disconnect", "test"] {
        assert_eq!(
            app.submit(&format!("{page}/sms/{action}"), &fields).await.0,
            404,
            "{action}"
        );
    }
    let sms = dnd::db::integrations::find(&mut app.db.conn(), downtown, Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(sms.secret.as_deref(), Some(demo::TWILIO_AUTH_TOKEN));
    assert_eq!(sms.status, dnd::domain::IntegrationStatus::Connected);
}
