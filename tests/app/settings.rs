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
    assert!(html.contains("The SMS secret was replaced."));
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
    assert_eq!(r.status().as_u16(), 400);
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
        400
    );
    assert_eq!(
        post(
            "sms",
            vec![("transport", "twilio"), ("api_base_url", "ftp://x")]
        )
        .await,
        400
    );
    assert_eq!(
        post("sms", vec![("transport", "twilio"), ("sender", "")]).await,
        400,
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
