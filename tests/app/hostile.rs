//! Hostile input answers a 4xx naming the problem, never a 500, and
//! changes nothing.

use serde_json::json;

use crate::common::spawn_app;
use dnd::db::demo;

#[actix_web::test]
async fn nul_characters_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    // The sign-in form.
    let csrf = app.csrf_from("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("email", "a\0@example.com"),
                ("password", "x"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("&#34;email&#34;"), "{body}");
    // A query string, signed in.
    app.sign_in_as(demo::LOCATION_USER).await;
    let (status, body) = app
        .get_text(&format!("/locations/{downtown}/contacts?q=%00"))
        .await;
    assert_eq!(status, 400, "{body}");
    // The app's error page, naming the parameter.
    assert!(body.contains("&#34;q&#34;"), "{body}");
    assert!(body.contains("id=\"error\""), "{body}");
    // Any string of an API body.
    for (body, field) in [
        (json!({"name": "A\u{0}", "phone": "+14155551000"}), "name"),
        (
            json!({"phone": "+14155551000", "email": "x\u{0}@example.com"}),
            "email",
        ),
    ] {
        let (status, answer) = app
            .api_post(demo::API_KEY_DOWNTOWN, "/api/v1/contacts", body)
            .await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, answer) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages/bulk",
            json!({"channel": "sms", "body": "hi", "contact_ids": [1], "subject": "a\u{0}"}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "subject");
    let (status, _) = app
        .api_get(demo::API_KEY_DOWNTOWN, "/api/v1/contacts?phone=%00")
        .await;
    assert_eq!(status, 400);
    // Nothing was created.
    let (_, found) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts?phone=%2B14155551000",
        )
        .await;
    assert_eq!(found["contacts"], json!([]));
}

#[actix_web::test]
async fn a_subject_is_one_line_of_at_most_998_characters() {
    let app = spawn_app().await;
    for subject in [
        "x".repeat(999),
        "Hello\r\nBcc: all@example.com".to_string(),
        "x".repeat(3_000_000),
    ] {
        for (path, body) in [
            (
                "/api/v1/messages",
                json!({"contact_id": 1, "channel": "email", "body": "hi", "subject": subject}),
            ),
            (
                "/api/v1/messages/bulk",
                json!({"contact_ids": [1], "channel": "email", "body": "hi", "subject": subject}),
            ),
        ] {
            let (status, answer) = app.api_post(demo::API_KEY_DOWNTOWN, path, body).await;
            assert_eq!(status, 422, "{path}: {answer}");
            assert_eq!(answer["field"], "subject", "{path}: {answer}");
        }
    }
}

#[actix_web::test]
async fn metrics_answer_loopback_or_the_token_and_https_sites_send_hsts() {
    let app = crate::common::spawn_app_with(|c| {
        c.metrics_token = Some("metrics-token-123".into());
        c.public_url = Some("https://dnd.example.com".into());
    })
    .await;
    // A public URL means a proxy in front: loopback alone is not enough.
    let r = app.get("/metrics").await;
    assert_eq!(r.status().as_u16(), 404);
    let hsts = r
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(hsts.as_deref(), Some("max-age=31536000; includeSubDomains"));
    // Through a proxy (every request would look local): only with the token.
    let proxied = |token: Option<&str>| {
        let mut r = app
            .client
            .get(app.url("/metrics"))
            .header("X-Forwarded-For", "203.0.113.9");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(proxied(None).await.unwrap().status().as_u16(), 404);
    assert_eq!(proxied(Some("wrong")).await.unwrap().status().as_u16(), 404);
    assert_eq!(
        proxied(Some("metrics-token-123"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Without a public URL (a developer's machine), a direct loopback
    // request is served, and no HSTS.
    let plain = spawn_app().await;
    assert_eq!(plain.get("/metrics").await.status().as_u16(), 200);
    assert!(plain
        .get("/healthz")
        .await
        .headers()
        .get("strict-transport-security")
        .is_none());
}

#[actix_web::test]
async fn an_api_key_past_its_rate_gets_429_with_retry_after() {
    let app = crate::common::spawn_app_with(|c| {
        c.api_limits = dnd::web::limits::KeyLimitConfig {
            per_second: 0.2,
            burst: 3.0,
            in_flight: 4,
        };
    })
    .await;
    for _ in 0..3 {
        let (status, _) = app.api_get(demo::API_KEY_DOWNTOWN, "/api/v1/me").await;
        assert_eq!(status, 200);
    }
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    // Another location's key is not held back.
    let (status, _) = app.api_get(demo::API_KEY_HARBOR, "/api/v1/me").await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn every_answer_carries_its_request_id() {
    let app = spawn_app().await;
    let id = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let a = app.get("/healthz").await;
    let b = app.get("/login").await;
    let c = app.get("/no-such-page").await;
    for r in [&a, &b, &c] {
        assert_eq!(id(r).len(), 12, "{:?}", r.headers());
    }
    assert_ne!(id(&a), id(&b));
}

#[actix_web::test]
async fn a_signed_stop_carrying_a_nul_still_counts() {
    use crate::webhooks::{inbound, twilio_post};
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (code, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMnul1", "+12125550188", "ST\u{0}OP"),
    )
    .await;
    assert_eq!(code, 200);
    let contact = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+12125550188").unwrap(),
    )
    .unwrap()
    .unwrap();
    let state = dnd::db::dnd::load_state(&mut app.db.conn(), downtown, contact.id)
        .unwrap()
        .unwrap();
    assert!(state.is_blocked(dnd::domain::Channel::Sms));
}
