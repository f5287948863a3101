use diesel::RunQueryDsl;

use crate::common::{location, spawn_app};
use dnd::db::demo;

#[actix_web::test]
async fn signing_in_with_the_right_password_opens_the_locations() {
    let app = spawn_app().await;
    let r = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/locations");
    let (status, html) = app.get_text("/locations").await;
    assert_eq!(status, 200);
    assert!(html.contains("Downtown Dental"));
    assert!(html.contains(demo::LOCATION_USER));
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
    assert_eq!(location(&r), "/login");
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
    assert_eq!(location(&r), "/login");
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
    // The cookie is encrypted: the user id is not readable in it.
    assert!(!cookie.contains("user_id"));
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
