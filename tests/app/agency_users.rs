//! The agency's users in the browser pages: admins add users with a
//! one-time password link, make new links and deactivate; sessions end on
//! sign-out, a new password and a deactivation, in every browser.

use crate::common::{csrf_in, location, new_client, spawn_app, TestApp};
use dnd::db::{demo, users};

/// A browser of its own, signed in as `email` with `password`.
async fn browser(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let client = new_client();
    let page = client.get(app.url("/login")).send().await.unwrap();
    let csrf = csrf_in(&page.text().await.unwrap()).unwrap();
    let r = client
        .post(app.url("/login"))
        .header("Origin", &app.base)
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "sign-in of {email}");
    client
}

async fn get(client: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let r = client.get(app.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let to = location(&r);
    let body = r.text().await.unwrap();
    (status, if status == 303 { to } else { body })
}

async fn post(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let page = client.get(app.url("/locations")).send().await.unwrap();
    let csrf = csrf_in(&page.text().await.unwrap()).unwrap_or_default();
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    let r = client
        .post(app.url(path))
        .header("Origin", &app.base)
        .form(&all)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let to = location(&r);
    let body = r.text().await.unwrap();
    (status, if status == 303 { to } else { body })
}

/// The one-time link on an admin's page.
fn link_in(html: &str) -> String {
    let start =
        html.find("id=\"new-link\">").expect("a new link is shown") + "id=\"new-link\">".len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_string()
}

/// Sets a password through a link, as the new user's browser would.
async fn set_password(app: &TestApp, link: &str, password: &str, confirm: &str) -> (u16, String) {
    let client = new_client();
    let path = link
        .strip_prefix(&app.base)
        .expect("the link is on this site");
    let page = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "the link opens");
    let csrf = csrf_in(&page.text().await.unwrap()).unwrap();
    let r = client
        .post(app.url(path))
        .header("Origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", password),
            ("confirm", confirm),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let to = location(&r);
    (
        status,
        if status == 303 {
            to
        } else {
            r.text().await.unwrap()
        },
    )
}

#[actix_web::test]
async fn an_admin_adds_a_location_user_who_sets_a_password_and_sees_only_that_location() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let admin = browser(&app, demo::AGENCY_USER, demo::PASSWORD).await;
    let (status, page) = post(
        &admin,
        &app,
        "/agency/users",
        &[
            ("email", "Nora.Front@Example.com"),
            ("role", "location"),
            ("location_ids", &harbor.to_string()),
        ],
    )
    .await;
    assert_eq!(status, 201, "{page}");
    let link = link_in(&page);
    assert!(
        link.starts_with(&format!("{}/set-password/", app.base)),
        "{link}"
    );
    // Only the token's hash is stored.
    let token = link.rsplit('/').next().unwrap();
    let stored: i64 = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM password_links WHERE token_sha256 = '{token}'"
        ))
        .get_result::<N>(&mut app.db.conn())
        .unwrap()
        .n
    };
    assert_eq!(stored, 0, "the token itself is not stored");
    // The list shows the user with their location; the link is not shown again.
    let (_, list) = get(&admin, &app, "/agency/users").await;
    assert!(list.contains("nora.front@example.com") && list.contains("password link pending"));
    assert!(!list.contains(token));

    // No password yet: no sign-in.
    let r = app.sign_in("nora.front@example.com", "").await;
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(set_password(&app, &link, "short", "short").await.0, 422);
    assert_eq!(
        set_password(&app, &link, "a long enough one", "a different one!")
            .await
            .0,
        422
    );
    let (status, to) = set_password(&app, &link, "harbor-front-desk", "harbor-front-desk").await;
    assert_eq!((status, to.as_str()), (303, "/login?password=set"));
    // The link works once.
    let path = link.strip_prefix(&app.base).unwrap();
    assert_eq!(app.get_text(path).await.0, 404);

    let nora = browser(&app, "nora.front@example.com", "harbor-front-desk").await;
    let (_, locations) = get(&nora, &app, "/locations").await;
    assert!(locations.contains(demo::HARBOR) && !locations.contains(demo::DOWNTOWN));
    let downtown = app.location_id(demo::DOWNTOWN);
    assert_eq!(
        get(&nora, &app, &format!("/locations/{downtown}/contacts"))
            .await
            .0,
        404
    );
    assert_eq!(
        get(&nora, &app, &format!("/locations/{harbor}/contacts"))
            .await
            .0,
        200
    );
}

#[actix_web::test]
async fn only_admins_manage_users_and_fields_are_checked() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let mut conn = app.db.conn();
    let agency = users::find_by_email(&mut conn, demo::AGENCY_USER)
        .unwrap()
        .unwrap()
        .agency_id;
    let hash = dnd::password::hash("plain-agency-user").unwrap();
    users::create(
        &mut conn,
        &users::NewUser {
            email: "plain@demo.test",
            password_hash: &hash,
            role: "agency",
            agency_id: agency,
            is_admin: false,
        },
        &[],
    )
    .unwrap();
    let fields = [("email", "x@example.com"), ("role", "agency")];
    let plain = browser(&app, "plain@demo.test", "plain-agency-user").await;
    assert_eq!(
        get(&plain, &app, "/agency/users").await.0,
        200,
        "non-admins read the list"
    );
    assert_eq!(post(&plain, &app, "/agency/users", &fields).await.0, 403);
    let location_user = browser(&app, demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(get(&location_user, &app, "/agency/users").await.0, 404);
    assert_eq!(
        post(&location_user, &app, "/agency/users", &fields).await.0,
        403
    );
    let support = browser(&app, demo::SUPPORT_USER, demo::PASSWORD).await;
    assert_eq!(get(&support, &app, "/agency/users").await.0, 404);
    assert_eq!(post(&support, &app, "/agency/users", &fields).await.0, 403);
    let admin_id = users::find_by_email(&mut conn, demo::AGENCY_USER)
        .unwrap()
        .unwrap()
        .id;
    for (who, client) in [("plain", &plain), ("location", &location_user)] {
        assert_eq!(
            post(
                client,
                &app,
                &format!("/agency/users/{admin_id}/deactivate"),
                &[]
            )
            .await
            .0,
            403,
            "{who}"
        );
        assert_eq!(
            post(
                client,
                &app,
                &format!("/agency/users/{admin_id}/reset"),
                &[]
            )
            .await
            .0,
            403,
            "{who}"
        );
    }
    assert!(users::find(&mut conn, admin_id)
        .unwrap()
        .unwrap()
        .is_active());
    assert!(users::find_by_email(&mut conn, "x@example.com")
        .unwrap()
        .is_none());

    let admin = browser(&app, demo::AGENCY_USER, demo::PASSWORD).await;
    // Another agency's location cannot be given.
    let other_agency = dnd::db::locations::create_agency(&mut conn, "Other").unwrap();
    let elsewhere = dnd::db::locations::create(&mut conn, other_agency, "Far", "UTC").unwrap();
    let downtown_text = downtown.to_string();
    let elsewhere_text = elsewhere.id.to_string();
    for (fields, field) in [
        (
            vec![("email", "not an email"), ("role", "agency")],
            "email-error",
        ),
        (
            vec![("email", "y@example.com"), ("role", "support")],
            "role-error",
        ),
        (
            vec![("email", "y@example.com"), ("role", "location")],
            "location_ids-error",
        ),
        (
            vec![
                ("email", "y@example.com"),
                ("role", "location"),
                ("location_ids", elsewhere_text.as_str()),
            ],
            "location_ids-error",
        ),
        (
            vec![
                ("email", demo::LOCATION_USER),
                ("role", "location"),
                ("location_ids", downtown_text.as_str()),
            ],
            "email-error",
        ),
    ] {
        let (status, page) = post(&admin, &app, "/agency/users", &fields).await;
        assert_eq!(status, 422, "{fields:?}");
        assert!(page.contains(field), "{fields:?}: {field}");
    }
    assert!(users::find_by_email(&mut conn, "y@example.com")
        .unwrap()
        .is_none());
    // Nor can an admin act on another agency's user (404), or on themselves.
    let stranger_hash = dnd::password::hash("someone-elsewhere").unwrap();
    let stranger = users::create(
        &mut conn,
        &users::NewUser {
            email: "far@other.test",
            password_hash: &stranger_hash,
            role: "agency",
            agency_id: Some(other_agency),
            is_admin: true,
        },
        &[],
    )
    .unwrap();
    assert_eq!(
        post(
            &admin,
            &app,
            &format!("/agency/users/{}/deactivate", stranger.id),
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        post(
            &admin,
            &app,
            &format!("/agency/users/{admin_id}/deactivate"),
            &[]
        )
        .await
        .0,
        403
    );
}

#[actix_web::test]
async fn deactivation_ends_a_live_session_and_sign_in() {
    let app = spawn_app().await;
    let mut conn = app.db.conn();
    let victim = users::find_by_email(&mut conn, demo::LOCATION_USER)
        .unwrap()
        .unwrap();
    let live = browser(&app, demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(get(&live, &app, "/locations").await.0, 200);
    let admin = browser(&app, demo::AGENCY_USER, demo::PASSWORD).await;
    let (status, to) = post(
        &admin,
        &app,
        &format!("/agency/users/{}/deactivate", victim.id),
        &[],
    )
    .await;
    assert_eq!((status, to.as_str()), (303, "/agency/users"));
    assert_eq!(
        get(&live, &app, "/locations").await,
        (303, "/login?next=%2Flocations".to_string())
    );
    let r = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("deactivated"));
    // A wrong password says nothing about it.
    let r = app.sign_in(demo::LOCATION_USER, "not-the-password").await;
    assert_eq!(r.status().as_u16(), 401);
    // No new password link for a deactivated user.
    assert_eq!(
        post(
            &admin,
            &app,
            &format!("/agency/users/{}/reset", victim.id),
            &[]
        )
        .await
        .0,
        403
    );
}

#[actix_web::test]
async fn signing_out_or_a_new_password_ends_every_earlier_cookie() {
    let app = spawn_app().await;
    let first = browser(&app, demo::LOCATION_USER, demo::PASSWORD).await;
    let second = browser(&app, demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(get(&second, &app, "/locations").await.0, 200);
    let (status, _) = post(&first, &app, "/logout", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(
        get(&second, &app, "/locations").await,
        (303, "/login?next=%2Flocations".to_string())
    );

    // A reset link: the old link stops working, and setting the new
    // password ends the sessions made with the old one.
    let live = browser(&app, demo::LOCATION_USER, demo::PASSWORD).await;
    let admin = browser(&app, demo::AGENCY_USER, demo::PASSWORD).await;
    let id = users::find_by_email(&mut app.db.conn(), demo::LOCATION_USER)
        .unwrap()
        .unwrap()
        .id;
    let (_, page) = post(&admin, &app, &format!("/agency/users/{id}/reset"), &[]).await;
    let old_link = link_in(&page);
    let (_, page) = post(&admin, &app, &format!("/agency/users/{id}/reset"), &[]).await;
    let link = link_in(&page);
    assert_ne!(old_link, link);
    assert_eq!(
        app.get_text(old_link.strip_prefix(&app.base).unwrap())
            .await
            .0,
        404,
        "a replaced link stops working"
    );
    assert_eq!(
        get(&live, &app, "/locations").await.0,
        200,
        "a reset alone ends nothing"
    );
    let (status, _) =
        set_password(&app, &link, "a brand new password", "a brand new password").await;
    assert_eq!(status, 303);
    assert_eq!(
        get(&live, &app, "/locations").await,
        (303, "/login?next=%2Flocations".to_string())
    );
    assert_eq!(
        app.sign_in(demo::LOCATION_USER, demo::PASSWORD)
            .await
            .status()
            .as_u16(),
        401
    );
    browser(&app, demo::LOCATION_USER, "a brand new password").await;
}

#[actix_web::test]
async fn an_expired_link_sets_nothing() {
    let app = spawn_app().await;
    let admin = browser(&app, demo::AGENCY_USER, demo::PASSWORD).await;
    let id = users::find_by_email(&mut app.db.conn(), demo::LOCATION_USER)
        .unwrap()
        .unwrap()
        .id;
    let (_, page) = post(&admin, &app, &format!("/agency/users/{id}/reset"), &[]).await;
    let link = link_in(&page);
    {
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE password_links SET expires_at = now() - interval '1 minute'")
            .execute(&mut app.db.conn())
            .unwrap();
    }
    let path = link.strip_prefix(&app.base).unwrap();
    assert_eq!(app.get_text(path).await.0, 404);
    // A POST straight at it (with a valid token of the session) changes nothing.
    let csrf = app.csrf_from("/login").await;
    let r = app
        .post_form(
            path,
            &[
                ("csrf_token", csrf.as_str()),
                ("password", "an expired attempt"),
                ("confirm", "an expired attempt"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);
    let r = app.sign_in(demo::LOCATION_USER, demo::PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303, "the old password still works");
}
