//! The location settings page: webhook URLs, masked secrets with rotation,
//! keyword lists and replies, by role.

use crate::common::{new_client, spawn_app};
use crate::webhooks::twilio_post;
use dnd::db::demo;

#[actix_web::test]
async fn an_agency_user_sees_the_urls_and_masked_secrets_and_rotates_one() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let (code, html) = app
        .get_text(&format!("/locations/{downtown}/settings"))
        .await;
    assert_eq!(code, 200);
    assert!(
        html.contains(&app.url(&format!("/webhooks/twilio/{downtown}/sms"))),
        "paste-ready URL"
    );
    assert!(html.contains(&app.url(&format!("/webhooks/mailgun/{downtown}"))));
    assert!(html.contains(&app.url(&format!("/webhooks/meta/{downtown}"))));
    assert!(html.contains("••••••••oken"), "masked");
    assert!(!html.contains(demo::TWILIO_AUTH_TOKEN), "never shown whole");
    assert!(!html.contains(demo::MAILGUN_SIGNING_KEY));

    let csrf = app
        .csrf_from(&format!("/locations/{downtown}/settings"))
        .await;
    let r = app
        .post_form(
            &format!("/locations/{downtown}/settings/integrations/sms/secret"),
            &[("csrf_token", &csrf), ("secret", "rotated-token-0001")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/settings"))
        .await;
    assert!(html.contains("The SMS Auth Token was replaced."));
    assert!(html.contains("••••••••0001"));
    // The old token no longer signs; the new one does.
    let params = [
        ("MessageSid", "SMROT1"),
        ("From", "+12125550120"),
        ("To", "+1"),
        ("Body", "STOP"),
    ];
    assert_eq!(twilio_post(&app, downtown, "sms", &params).await.0, 403);
    let path = format!("/webhooks/twilio/{downtown}/sms");
    let (code, _) = crate::webhooks::twilio_post_signed(
        &app,
        &path,
        &app.url(&path),
        &crate::webhooks::form(&params),
        "rotated-token-0001",
    )
    .await;
    assert_eq!(code, 200);
    // A too-short secret is refused and changes nothing.
    let r = app
        .post_form(
            &format!("/locations/{downtown}/settings/integrations/sms/secret"),
            &[("csrf_token", &csrf), ("secret", "short")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
}

#[actix_web::test]
async fn keyword_lists_and_replies_are_saved_and_used() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let page = format!("/locations/{downtown}/settings");
    let csrf = app.csrf_from(&page).await;
    let fields = |opt_out: &'static str| {
        vec![
            ("opt_out_keywords", opt_out),
            ("opt_in_keywords", "START, UNSTOP, YES, OUI"),
            ("help_keywords", "HELP, INFO"),
            (
                "opt_out_reply",
                "Downtown Dental: no more texts. Reply START to come back.",
            ),
            ("opt_in_reply", "Welcome back!"),
            ("help_reply", "Call us at 212-555-0100."),
        ]
    };
    // Dropping an FCC word: 422 with the reason, nothing saved.
    let mut bad = fields("QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE, STOPALL");
    bad.push(("csrf_token", &csrf));
    let r = app.post_form(&format!("{page}/sms"), &bad).await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("must keep STOP"), "{html}");
    assert!(html.contains("Nothing was saved."));

    let mut good =
        fields("STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, OPT OUT, ARRET");
    good.push(("csrf_token", &csrf));
    let r = app.post_form(&format!("{page}/sms"), &good).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("Keywords and replies saved."));
    assert!(html.contains("ARRET"));

    let msg = [
        ("MessageSid", "SMKW1"),
        ("From", "+12125550121"),
        ("To", "+1"),
        ("Body", "arret"),
    ];
    let (_, body) = twilio_post(&app, downtown, "sms", &msg).await;
    assert!(
        body.contains("no more texts. Reply START to come back."),
        "{body}"
    );
    let msg = [
        ("MessageSid", "SMKW2"),
        ("From", "+12125550121"),
        ("To", "+1"),
        ("Body", "Oui!"),
    ];
    let (_, body) = twilio_post(&app, downtown, "sms", &msg).await;
    assert!(body.contains("Welcome back!"), "{body}");

    // The contact page shows both messages on the timeline.
    let contact = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+12125550121").unwrap(),
    )
    .unwrap()
    .unwrap();
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{}", contact.id))
        .await;
    let messages = html.split("id=\"messages\"").nth(1).unwrap();
    assert!(messages.contains("arret") && messages.contains("Oui!"));
}

#[actix_web::test]
async fn location_users_have_no_settings_and_support_only_reads() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let page = format!("/locations/{downtown}/settings");
    app.sign_in_as(demo::LOCATION_USER).await;
    assert_eq!(app.get(&page).await.status().as_u16(), 403);
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    assert!(!html.contains("/settings\""), "no link to it either");
    let csrf = app.csrf_from("/locations").await;
    let r = app
        .post_form(
            &format!("{page}/integrations/sms/secret"),
            &[("csrf_token", &csrf), ("secret", "attacker-secret-1")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);

    app.client = new_client();
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (code, html) = app.get_text(&page).await;
    assert_eq!(code, 200);
    assert!(html.contains("settings are shown read-only"));
    assert!(!html.contains("Rotate"));
    let csrf = app.csrf_from("/locations").await;
    let r = app
        .post_form(
            &format!("{page}/integrations/sms/secret"),
            &[("csrf_token", &csrf), ("secret", "attacker-secret-1")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    // Still the demo token.
    let params = [
        ("MessageSid", "SMSUP1"),
        ("From", "+12125550122"),
        ("To", "+1"),
        ("Body", "hi"),
    ];
    assert_eq!(twilio_post(&app, downtown, "sms", &params).await.0, 200);
    // And another agency's location is a 404 for the agency user.
    app.client = new_client();
    app.sign_in_as(demo::AGENCY_USER).await;
    assert_eq!(
        app.get("/locations/999999/settings")
            .await
            .status()
            .as_u16(),
        404
    );
}

#[actix_web::test]
async fn an_agency_user_points_sms_and_email_at_the_providers_apis() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let page = format!("/locations/{downtown}/settings");
    let csrf = app.csrf_from(&page).await;
    let post = |channel: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let mut all = fields;
        all.push(("csrf_token", Box::leak(csrf.clone().into_boxed_str())));
        let path = format!("{page}/integrations/{channel}/transport");
        let app = &app;
        async move { app.post_form(&path, &all).await.status().as_u16() }
    };
    assert_eq!(
        post("sms", vec![("transport", "mailgun"), ("sender", "+1")]).await,
        422
    );
    assert_eq!(
        post(
            "sms",
            vec![("transport", "twilio"), ("api_base_url", "ftp://x")]
        )
        .await,
        422
    );
    assert_eq!(
        post("sms", vec![("transport", "twilio"), ("sender", "")]).await,
        422,
        "a sender is needed"
    );
    assert_eq!(
        post(
            "sms",
            vec![
                ("transport", "twilio"),
                ("api_base_url", "http://127.0.0.1:9/"),
                ("sender", "+12125559999")
            ]
        )
        .await,
        303
    );
    assert_eq!(
        post(
            "email",
            vec![
                ("transport", "mailgun"),
                ("sender", "hello@mg.example"),
                ("api_key", "key-abcdef123456")
            ]
        )
        .await,
        303
    );
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("Email now sends through mailgun."));
    assert!(html.contains("••••••••3456"), "the API key is masked");
    assert!(!html.contains("key-abcdef123456"));
    let mut conn = app.db.conn();
    let sms = dnd::db::integrations::find(&mut conn, downtown, dnd::domain::Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(sms.transport, dnd::domain::TransportKind::Twilio);
    assert_eq!(sms.api_base_url.as_deref(), Some("http://127.0.0.1:9"));
    // Saving again with a blank key keeps the stored one.
    assert_eq!(
        post(
            "email",
            vec![
                ("transport", "mailgun"),
                ("sender", "hello@mg.example"),
                ("api_key", "")
            ]
        )
        .await,
        303
    );
    let email = dnd::db::integrations::find(&mut conn, downtown, dnd::domain::Channel::Email)
        .unwrap()
        .unwrap();
    assert_eq!(email.api_key.as_deref(), Some("key-abcdef123456"));
}

/// A receiver that counts whatever reaches it (a host credentials must not
/// reach), and what Authorization it saw.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let data = web::Data::new(seen.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
                |req: HttpRequest,
                 data: web::Data<std::sync::Arc<std::sync::Mutex<Vec<String>>>>| async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    data.lock().unwrap().push(auth);
                    HttpResponse::Created().json(serde_json::json!({"sid": "SMstolen"}))
                },
            ))
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), seen)
}

#[actix_web::test]
async fn provider_urls_off_the_allow_list_are_refused_and_never_get_the_secret() {
    use dnd::domain::{Channel, TransportKind};
    use dnd::outbound::dispatcher::Dispatcher;
    use dnd::outbound::hosts::HostPolicy;

    let app = crate::common::spawn_app_with(|c| c.allow_private_urls = false).await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (trap, seen) = receiver().await;
    app.sign_in_as(demo::AGENCY_USER).await;
    let page = format!("/locations/{downtown}/settings");
    let csrf = app.csrf_from(&page).await;
    let stored = |app: &crate::common::TestApp| {
        dnd::db::integrations::find(&mut app.db.conn(), downtown, Channel::Sms)
            .unwrap()
            .unwrap()
            .api_base_url
    };
    let before = stored(&app);
    for (url, why) in [
        (trap.as_str(), "loopback"),
        ("https://evil.example.com", "not a provider API host"),
        ("https://169.254.169.254/latest", "private"),
        ("https://api.twilio.com@evil.example.com", "user name"),
        ("http://api.twilio.com", "https://"),
    ] {
        let r = app
            .post_form(
                &format!("{page}/integrations/sms/transport"),
                &[
                    ("csrf_token", csrf.as_str()),
                    ("transport", "twilio"),
                    ("api_base_url", url),
                    ("sender", "+12125559999"),
                ],
            )
            .await;
        assert_eq!(r.status().as_u16(), 422, "{url}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("transport-error-sms") && html.contains(why),
            "{url}: {html}"
        );
        assert!(
            html.contains(&format!("value=\"{url}\"")),
            "the typed URL is kept"
        );
        assert_eq!(stored(&app), before, "{url} was stored");
    }
    let r = app
        .post_form(
            &format!("{page}/integrations/sms/transport"),
            &[
                ("csrf_token", csrf.as_str()),
                ("transport", "twilio"),
                ("api_base_url", "https://api.twilio.com"),
                ("sender", "+12125559999"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);

    // A URL stored before hosts were checked: the dispatcher refuses to
    // send the auth token there; the message fails and says why.
    dnd::db::integrations::set_transport(
        &mut app.db.conn(),
        downtown,
        Channel::Sms,
        TransportKind::Twilio,
        Some(&trap),
        None,
        Some("+12125559999"),
    )
    .unwrap();
    let id = dnd::db::contacts::upsert(
        &mut app.db.conn(),
        downtown,
        &dnd::db::contacts::ContactInput {
            phone: Some(dnd::domain::PhoneNumber::parse_international("+14156667001").unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id;
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages",
            serde_json::json!({"contact_id": id, "channel": "sms", "body": "hello"}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let dispatcher = Dispatcher::new(app.db.pool(), None, HostPolicy::default()).unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap(), 1);
    assert!(
        seen.lock().unwrap().is_empty(),
        "the token reached a refused host"
    );
    let (_, message) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            &format!("/api/v1/messages/{}", body["id"]),
        )
        .await;
    assert_eq!(message["status"], "failed", "{message}");
    assert!(message.to_string().contains("refused"), "{message}");

    // With private URLs allowed (a local test double), the same URL works.
    let local = Dispatcher::new(app.db.pool(), None, HostPolicy::new(&[], true)).unwrap();
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages",
            serde_json::json!({"contact_id": id, "channel": "sms", "body": "hello again"}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(local.run_once().await.unwrap(), 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}
