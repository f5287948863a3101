use diesel::RunQueryDsl;

use crate::common::{location, spawn_app};
use dnd::db::demo;

#[actix_web::test]
async fn signing_in_with_the_right_password_opens_the_locations() {
    let app = spawn_app().await;
    let r = app.sign_in(demo::AGENCY_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/locations");
    let (status, html) = app.get_text("/locations").await;
    assert_eq!(status, 200);
    assert!(html.contains("Downtown Dental"));
    assert!(html.contains(demo::AGENCY_USER));
    // The sign-in page now sends a signed-in user on.
    assert_eq!(location(&app.get("/login").await), "/locations");
}

#[actix_web::test]
async fn emails_are_matched_whatever_their_case() {
    let app = spawn_app().await;
    let r = app.sign_in("  Location@Demo.TEST ", demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
}

#[actix_web::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let wrong = app.sign_in(demo::LOCATION_USER, "not-the-password").await;
    assert_eq!(wrong.status().as_u16(), 401);
    let wrong_html = wrong.text().await.unwrap();
    let unknown = app.sign_in("nobody@demo.test", demo::PASSWORD).await;
    assert_eq!(unknown.status().as_u16(), 401);
    let unknown_html = unknown.text().await.unwrap();
    let message = "The email or password is not right.";
    assert!(wrong_html.contains(message));
    assert!(unknown_html.contains(message));
    // Still signed out.
    let r = app.get("/locations").await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/login?next=%2Flocations");
}

#[actix_web::test]
async fn ten_failures_lock_the_email_until_the_window_passes() {
    let mut app = spawn_app().await;
    for _ in 0..10 {
        let r = app.sign_in(demo::AGENCY_USER, "guess").await;
        assert_eq!(r.status().as_u16(), 401);
    }
    // Even the right password is refused now, with a clear 429.
    let r = app.sign_in(demo::AGENCY_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));
    // Other emails are not affected.
    let other = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(other.status().as_u16(), 303);

    // Once the failures are older than 15 minutes, signing in works again.
    diesel::sql_query(
        "UPDATE login_failures SET attempted_at = attempted_at - interval '16 minutes'",
    )
    .execute(&mut app.db.conn())
    .unwrap();
    app.client = crate::common::new_client();
    let r = app.sign_in(demo::AGENCY_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
}

#[actix_web::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app().await;
    app.sign_in_as(demo::LOCATION_USER).await;
    let csrf = app.csrf_from("/locations").await;
    let r = app.post_form("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/login");
    let r = app.get("/locations").await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/login?next=%2Flocations");
}

#[actix_web::test]
async fn the_session_cookie_is_http_only_and_same_site_strict() {
    let app = spawn_app().await;
    let r = app.get("/login").await;
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("dnd_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Plain HTTP without an https DND_PUBLIC_URL: not Secure, or it would
    // never come back.
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The cookie of a signed-in user is encrypted: neither the session's
    // keys nor the user's id or email can be read in it, not even once
    // base64-decoded.
    let csrf = app.csrf_from("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("email", demo::AGENCY_USER),
                ("password", demo::PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let signed_in = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("dnd_session="))
        .expect("a session cookie on sign-in");
    let value = signed_in
        .trim_start_matches("dnd_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let decoded = {
        use base64::Engine;
        let raw = urlencoding::decode(&value).unwrap().into_owned();
        [
            base64::engine::general_purpose::STANDARD.decode(&raw),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&raw),
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(&raw),
        ]
        .into_iter()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
            + " "
            + &raw
    };
    let user = {
        let mut conn = app.db.conn();
        dnd::db::users::find_by_email(&mut conn, demo::AGENCY_USER)
            .unwrap()
            .unwrap()
    };
    for secret in [
        "user_id",
        "generation",
        demo::AGENCY_USER,
        &format!("\"{}\"", user.id),
    ] {
        assert!(!decoded.contains(secret), "{secret} readable in {value}");
    }
    // And it works: the cookie signs the user in.
    assert_eq!(app.get_text("/locations").await.0, 200);
}

#[actix_web::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    // Sign-in without a token.
    let r = app
        .post_form(
            "/login",
            &[("email", demo::LOCATION_USER), ("password", demo::PASSWORD)],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("nothing was"));
    assert_eq!(
        app.get("/locations").await.status().as_u16(),
        303,
        "not signed in"
    );

    // Signed in: sign-out with a wrong token, or from another origin, or with
    // no Origin/Referer at all, leaves the session alone.
    app.sign_in_as(demo::LOCATION_USER).await;
    let csrf = app.csrf_from("/locations").await;
    let r = app.post_form("/logout", &[("csrf_token", "forged")]).await;
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .client
        .post(app.url("/logout"))
        .header("Origin", "http://evil.example")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        app.get("/locations").await.status().as_u16(),
        200,
        "still signed in"
    );

    // A Referer from our own pages is accepted when Origin is absent.
    let r = app
        .client
        .post(app.url("/logout"))
        .header("Referer", app.url("/locations"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[actix_web::test]
async fn past_fifty_failures_a_client_spends_no_hash_on_made_up_emails_and_locks_no_one_out() {
    let app = spawn_app().await;
    let csrf = app.csrf_from("/login").await;
    let count = |app: &crate::common::TestApp| -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM login_failures")
            .get_result::<N>(&mut app.db.conn())
            .unwrap()
            .n
    };
    for i in 0..55 {
        let email = format!("nobody{i}@example.com");
        let r = app
            .post_form(
                "/login",
                &[
                    ("email", email.as_str()),
                    ("password", "guess"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        // The same answer throughout: nothing says a limit was reached.
        assert_eq!(r.status().as_u16(), 401, "attempt {i}");
    }
    // The fifty counted; the made-up emails after them were not checked
    // (nor recorded).
    assert_eq!(count(&app), 50);
    // A real user behind the same address (a shared office, a proxy) still
    // signs in: an account is protected by its own limit.
    let r = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
}

#[actix_web::test]
async fn parallel_tries_cannot_slip_past_the_limit() {
    let app = spawn_app().await;
    let csrf = app.csrf_from("/login").await;
    let fields = [
        ("email", demo::SUPPORT_USER),
        ("password", "guess"),
        ("csrf_token", csrf.as_str()),
    ];
    let tries = (0..30).map(|_| app.post_form("/login", &fields));
    let statuses: Vec<u16> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 10, "exactly the limit is checked: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20);
}

#[actix_web::test]
async fn a_sign_in_flood_leaves_webhooks_answering() {
    use crate::webhooks::{inbound, twilio_post};
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let csrf = app.csrf_from("/login").await;
    let flood = futures_util::future::join_all((0..40).map(|i| {
        let email = format!("flood{i}@example.com");
        let client = app.client.clone();
        let url = app.url("/login");
        let origin = app.base.clone();
        let csrf = csrf.clone();
        async move {
            client
                .post(url)
                .header("Origin", origin)
                .form(&[
                    ("email", email.as_str()),
                    ("password", "guess"),
                    ("csrf_token", &csrf),
                ])
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    }));
    let webhook = async {
        // While the hashes run, STOPs are taken in at once.
        let mut codes = Vec::new();
        for i in 0..5 {
            let sid = format!("SMflood{i}");
            let (code, _) = twilio_post(
                &app,
                downtown,
                "sms",
                &inbound(&sid, "+12125550177", "STOP"),
            )
            .await;
            codes.push(code);
        }
        codes
    };
    let (signins, codes) = tokio::join!(flood, webhook);
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    assert!(
        signins.iter().all(|s| matches!(s, Ok(401) | Ok(429))),
        "{signins:?}"
    );
}
