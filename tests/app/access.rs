//! Every role against locations and contacts that are not theirs: 404, the
//! same answer as for something that does not exist.

use crate::common::{spawn_app, TestApp};
use dnd::db::{contacts, demo, locations};

/// Another agency with one location and one contact, nobody of the demo
/// agency's.
fn other_agency(app: &TestApp) -> (i64, i64) {
    let mut conn = app.db.conn();
    let agency = locations::create_agency(&mut conn, "Other Agency").unwrap();
    let location = locations::create(&mut conn, agency, "Other Clinic", "Europe/Paris").unwrap();
    let (contact, _) = contacts::upsert(
        &mut conn,
        location.id,
        &contacts::ContactInput {
            name: Some("Secret Person".into()),
            phone: Some(dnd::domain::PhoneNumber::parse_international("+33142685300").unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap();
    (location.id, contact.id)
}

fn first_contact(app: &TestApp, location_id: i64) -> i64 {
    contacts::list(
        &mut app.db.conn(),
        location_id,
        &Default::default(),
        &contacts::Cursor::First,
        1,
        &Default::default(),
    )
    .unwrap()
    .contacts[0]
        .id
}

async fn status(app: &TestApp, path: &str) -> u16 {
    app.get(path).await.status().as_u16()
}

#[actix_web::test]
async fn a_location_user_sees_only_their_locations() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let (other, other_contact) = other_agency(&app);
    let harbor_contact = first_contact(&app, harbor);
    app.sign_in_as(demo::LOCATION_USER).await;

    let (_, html) = app.get_text("/locations").await;
    assert!(html.contains(demo::DOWNTOWN));
    assert!(
        !html.contains(demo::HARBOR),
        "not a member of Harbor Fitness"
    );
    assert!(!html.contains("Other Clinic"));

    assert_eq!(
        status(&app, &format!("/locations/{downtown}/contacts")).await,
        200
    );
    for path in [
        format!("/locations/{harbor}"),
        format!("/locations/{harbor}/contacts"),
        format!("/locations/{harbor}/contacts/{harbor_contact}"),
        format!("/locations/{other}/contacts"),
        format!("/locations/{other}/contacts/{other_contact}"),
        // A foreign contact through one's own location.
        format!("/locations/{downtown}/contacts/{harbor_contact}"),
        format!("/locations/{downtown}/contacts/{other_contact}"),
        // And things that do not exist at all look the same.
        "/locations/999999/contacts".to_string(),
        format!("/locations/{downtown}/contacts/999999"),
    ] {
        let (code, html) = app.get_text(&path).await;
        assert_eq!(code, 404, "{path}");
        assert!(!html.contains("Secret Person"), "{path}");
        assert!(
            html.contains("does not exist, or you do not have access"),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn an_agency_user_sees_every_location_of_their_agency_only() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let (other, other_contact) = other_agency(&app);
    let harbor_contact = first_contact(&app, harbor);
    app.sign_in_as(demo::AGENCY_USER).await;

    let (_, html) = app.get_text("/locations").await;
    assert!(html.contains(demo::DOWNTOWN) && html.contains(demo::HARBOR));
    assert!(!html.contains("Other Clinic"));
    assert_eq!(
        status(&app, &format!("/locations/{downtown}/contacts")).await,
        200
    );
    assert_eq!(
        status(
            &app,
            &format!("/locations/{harbor}/contacts/{harbor_contact}")
        )
        .await,
        200
    );
    assert_eq!(
        status(&app, &format!("/locations/{other}/contacts")).await,
        404
    );
    assert_eq!(
        status(
            &app,
            &format!("/locations/{other}/contacts/{other_contact}")
        )
        .await,
        404
    );
    assert_eq!(
        status(
            &app,
            &format!("/locations/{downtown}/contacts/{harbor_contact}")
        )
        .await,
        404,
        "a contact is reached only through its own location"
    );
}

#[actix_web::test]
async fn support_sees_every_location_read_only() {
    let app = spawn_app().await;
    let (other, other_contact) = other_agency(&app);
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (_, html) = app.get_text("/locations").await;
    assert!(
        html.contains(demo::DOWNTOWN)
            && html.contains(demo::HARBOR)
            && html.contains("Other Clinic")
    );
    assert!(html.contains("read-only") || html.contains("Support access"));
    let (code, html) = app
        .get_text(&format!("/locations/{other}/contacts/{other_contact}"))
        .await;
    assert_eq!(code, 200);
    assert!(html.contains("Secret Person"));
    assert_eq!(status(&app, "/locations/999999/contacts").await, 404);
}

#[actix_web::test]
async fn signed_out_visitors_are_sent_to_sign_in() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    for path in [
        "/",
        "/locations".to_string().as_str(),
        &format!("/locations/{downtown}/contacts"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status().as_u16(), 303, "{path}");
        // Sent to sign in, and back to the page afterwards.
        let back = match path {
            "/" => "/login".to_string(),
            _ => format!("/login?next={}", urlencoding::encode(path)),
        };
        assert_eq!(crate::common::location(&r), back, "{path}");
    }
}
