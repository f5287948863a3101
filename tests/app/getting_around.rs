//! Getting around (issue 14): a location user with one location lands on
//! its contacts; signing in returns to the page that was asked for, and
//! only to a page of this site.

use dnd::db::{demo, locations, users};

use crate::common::{location, spawn_app, TestApp};

/// Signs in through the sign-in page as a visitor who was sent there from
/// `asked` (its `next`), and says where signing in went.
async fn sign_in_from(app: &TestApp, email: &str, next: &str) -> String {
    let login = format!("/login?next={}", urlencoding::encode(next));
    let (code, page) = app.get_text(&login).await;
    assert_eq!(code, 200);
    let csrf = crate::common::csrf_in(&page).unwrap();
    let r = app
        .post_form(
            "/login",
            &[
                ("email", email),
                ("password", demo::PASSWORD),
                ("csrf_token", &csrf),
                ("next", next),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    location(&r)
}

#[actix_web::test]
async fn a_location_user_with_one_location_lands_on_its_contacts() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let r = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(location(&r), format!("/locations/{downtown}/contacts"));
    assert_eq!(
        location(&app.get("/").await),
        format!("/locations/{downtown}/contacts")
    );
    assert_eq!(
        location(&app.get("/login").await),
        format!("/locations/{downtown}/contacts")
    );
    // The locations page is still there when asked for.
    assert_eq!(app.get_text("/locations").await.0, 200);

    // With a second location, the list of them.
    {
        let mut conn = app.db.conn();
        let user = users::find_by_email(&mut conn, demo::LOCATION_USER)
            .unwrap()
            .unwrap();
        let harbor = app.location_id(demo::HARBOR);
        diesel::RunQueryDsl::execute(
            diesel::sql_query(
                "INSERT INTO location_memberships (user_id, location_id) VALUES ($1, $2)",
            )
            .bind::<diesel::sql_types::BigInt, _>(user.id)
            .bind::<diesel::sql_types::BigInt, _>(harbor),
            &mut conn,
        )
        .unwrap();
        assert_eq!(locations::list_visible(&mut conn, &user).unwrap().len(), 2);
    }
    app.client = crate::common::new_client();
    let r = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(location(&r), "/locations");
}

#[actix_web::test]
async fn signing_in_returns_to_the_page_that_was_asked_for() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let asked = format!("/locations/{harbor}/contacts?q=garc&status=off");

    // Signed out: sent to sign in, with the page to come back to.
    let r = app.get(&asked).await;
    assert_eq!(r.status().as_u16(), 303);
    let to = location(&r);
    assert_eq!(to, format!("/login?next={}", urlencoding::encode(&asked)));
    let (_, page) = app.get_text(&to).await;
    assert!(
        page.contains(&format!(
            "name=\"next\" value=\"/locations/{harbor}/contacts?q=garc&amp;status=off\""
        )) || page.contains(&format!(
            "name=\"next\" value=\"/locations/{harbor}/contacts?q=garc&#38;status=off\""
        )),
        "{page}"
    );
    assert_eq!(sign_in_from(&app, demo::AGENCY_USER, &asked).await, asked);
    assert_eq!(app.get_text(&asked).await.0, 200);
}

#[actix_web::test]
async fn signing_in_never_sends_anyone_to_another_site() {
    for next in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/%0d%0aSet-Cookie:x=y".replace("%0d%0a", "\r\n").as_str(),
        "evil.example",
        "/login",
    ] {
        let app = spawn_app().await;
        let (_, page) = app
            .get_text(&format!("/login?next={}", urlencoding::encode(next)))
            .await;
        assert!(!page.contains("name=\"next\""), "{next:?} kept: {page}");
        assert_eq!(
            sign_in_from(&app, demo::AGENCY_USER, next).await,
            "/locations",
            "{next:?}"
        );
    }
}

#[actix_web::test]
async fn a_form_sent_signed_out_goes_to_sign_in_without_a_way_back_to_it() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    // Only a page one can open again is returned to (not a POST).
    let csrf = app.csrf_from("/login").await;
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/bulk-dnd"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/login");
}
