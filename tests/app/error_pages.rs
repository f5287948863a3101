//! Every error is the app's own page (issue 14): with the navigation when
//! signed in (a sign-in link when not) and a way back; URL mistakes and
//! unknown routes too. The API keeps JSON and webhooks their refusals.

use dnd::db::demo;

use crate::common::spawn_app;

/// The error page's parts a person uses to go on.
fn assert_app_page(html: &str, signed_in: bool, what: &str) {
    assert!(
        html.contains("<section class=\"card narrow\" id=\"error\">"),
        "{what}: {html}"
    );
    assert!(
        !html.contains("deserialize") && !html.contains("can not parse"),
        "{what}: {html}"
    );
    if signed_in {
        assert!(
            html.contains("<nav class=\"user\""),
            "{what}: no navigation"
        );
        assert!(html.contains("Sign out"), "{what}");
        assert!(html.contains("id=\"to-locations\""), "{what}");
    } else {
        assert!(!html.contains("<nav class=\"user\""), "{what}");
        assert!(
            html.contains("href=\"/login\" id=\"to-sign-in\""),
            "{what}: {html}"
        );
    }
}

#[actix_web::test]
async fn url_mistakes_are_the_apps_own_pages_with_navigation() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;

    for (path, status) in [
        (format!("/locations/{downtown}/contacts?after=abc"), 400),
        (format!("/locations/{downtown}/contacts?start=x"), 400),
        ("/locations/abc/contacts".to_string(), 404),
        (format!("/locations/{downtown}/contacts/abc"), 404),
        ("/no/such/page".to_string(), 404),
        ("/locations/999999/contacts".to_string(), 404),
        // A path that only takes a form is no page.
        ("/logout".to_string(), 404),
    ] {
        let (code, html) = app.get_text(&path).await;
        assert_eq!(code, status, "{path}");
        assert_app_page(&html, true, &path);
    }
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts?after=abc"))
        .await;
    assert!(html.contains("This link is not right"), "{html}");
}

#[actix_web::test]
async fn an_error_offers_the_way_back_to_the_page_one_came_from() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let from = format!("/locations/{downtown}/contacts?q=garc");
    let r = app
        .client
        .get(app.url("/locations/abc"))
        .header("Referer", app.url(&from))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "href=\"/locations/{downtown}/contacts?q=garc\" id=\"go-back\""
        )),
        "{html}"
    );
    // Another site is no way back.
    let r = app
        .client
        .get(app.url("/locations/abc"))
        .header("Referer", "https://evil.example/locations")
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("go-back"));
}

#[actix_web::test]
async fn signed_out_an_error_page_offers_to_sign_in() {
    let app = spawn_app().await;
    let (code, html) = app.get_text("/no/such/page").await;
    assert_eq!(code, 404);
    assert_app_page(&html, false, "/no/such/page");
    let (code, html) = app.get_text("/set-password/not-a-token").await;
    assert_eq!(code, 404);
    assert_app_page(&html, false, "an expired link");
}

#[actix_web::test]
async fn the_api_and_the_webhooks_keep_their_own_errors() {
    let app = spawn_app().await;
    let (code, body) = app.api_get(demo::API_KEY_DOWNTOWN, "/api/v1/nope").await;
    assert_eq!(code, 404);
    assert!(body.is_object(), "{body}");
    let (code, body) = app
        .api_get(demo::API_KEY_DOWNTOWN, "/api/v1/contacts/abc")
        .await;
    assert_eq!(code, 404);
    assert!(body.is_object(), "{body}");
    let r = app.get("/webhooks/nope").await;
    assert_eq!(r.status().as_u16(), 404);
    assert!(!r.text().await.unwrap().contains("<html"));
    let r = app
        .client
        .post(app.url("/webhooks/twilio/abc/sms"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(!r.text().await.unwrap().contains("<html"));
}
