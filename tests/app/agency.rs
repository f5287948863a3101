//! The agency overview, the search for one person across locations, and
//! new and renamed locations, for each role.

use crate::common::{location, spawn_app};
use dnd::db::demo;

#[actix_web::test]
async fn the_overview_counts_each_location_and_support_sees_every_agency() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    app.switch_to(demo::AGENCY_USER).await;
    let (status, html) = app.get_text("/agency").await;
    assert_eq!(status, 200);
    for id in [downtown, harbor] {
        assert!(html.contains(&format!("id=\"overview-{id}\"")), "{id}");
    }
    // The figures are the database's own.
    let contacts: i64 = {
        use diesel::prelude::*;
        use dnd::db::schema::contacts;
        contacts::table
            .filter(contacts::location_id.eq(downtown))
            .count()
            .get_result(&mut app.db.conn())
            .unwrap()
    };
    let row = &html[html.find(&format!("id=\"overview-{downtown}\"")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(&format!("<td>{contacts}</td>")), "{row}");
    assert!(row.contains("SMS: connected"), "{row}");

    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(app.get_text("/agency").await.0, 404);
    assert_eq!(
        app.get_text("/agency/contacts?q=%2B12125550100").await.0,
        404
    );

    // Support: every agency, read-only, filtered by agency on request.
    let other = {
        let mut conn = app.db.conn();
        let agency = dnd::db::locations::create_agency(&mut conn, "Other Agency").unwrap();
        dnd::db::locations::create(&mut conn, agency, "Far Away Spa", "Europe/Paris").unwrap();
        agency
    };
    app.switch_to(demo::SUPPORT_USER).await;
    let (_, all) = app.get_text("/agency").await;
    assert!(all.contains("Far Away Spa") && all.contains(demo::DOWNTOWN));
    assert!(
        !all.contains("id=\"create-location\""),
        "support creates nothing"
    );
    let (_, one) = app.get_text(&format!("/agency?agency={other}")).await;
    assert!(one.contains("Far Away Spa") && !one.contains(demo::DOWNTOWN));
    assert_eq!(
        app.submit(
            "/agency/locations",
            &[("name", "Mine"), ("time_zone", "UTC")]
        )
        .await
        .0,
        403
    );
    // The demo agency's user does not see the other agency.
    app.switch_to(demo::AGENCY_USER).await;
    let (_, html) = app.get_text("/agency").await;
    assert!(!html.contains("Far Away Spa"));
}

#[actix_web::test]
async fn an_agency_user_creates_and_renames_a_location() {
    let mut app = spawn_app().await;
    app.switch_to(demo::AGENCY_USER).await;
    for (fields, marker) in [
        (vec![("name", ""), ("time_zone", "UTC")], "name-error"),
        (
            vec![("name", "Uptown"), ("time_zone", "Mars/Olympus")],
            "time_zone-error",
        ),
        (
            vec![("name", "downtown dental"), ("time_zone", "UTC")],
            "already has a location",
        ),
    ] {
        let (status, html) = app.submit("/agency/locations", &fields).await;
        assert_eq!(status, 422, "{fields:?}");
        assert!(html.contains(marker), "{fields:?}");
    }
    let (status, to) = app
        .submit(
            "/agency/locations",
            &[("name", "Uptown Clinic"), ("time_zone", "America/Chicago")],
        )
        .await;
    assert_eq!(status, 303);
    let id = app.location_id("Uptown Clinic");
    assert_eq!(to, format!("/locations/{id}/integrations"));
    // Default keywords and replies are stored for it.
    let settings = dnd::db::webhooks::sms_settings(&mut app.db.conn(), id, "x").unwrap();
    assert!(settings.keywords.opt_out.contains(&"STOP".to_string()));
    let (_, html) = app.get_text(&format!("/locations/{id}/settings")).await;
    assert!(html.contains("Uptown Clinic"));
    let (status, _) = app
        .submit(
            &format!("/locations/{id}/settings/name"),
            &[("name", "Uptown Dental")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(app.location_id("Uptown Dental"), id);
    assert_eq!(
        app.submit(&format!("/locations/{id}/settings/name"), &[("name", " ")])
            .await
            .0,
        422
    );
    // A location user is not in it, and cannot rename or create.
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(
        app.get_text(&format!("/locations/{id}/contacts")).await.0,
        404
    );
    assert_eq!(
        app.submit(
            &format!("/locations/{id}/settings/name"),
            &[("name", "Mine")]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.submit(
            "/agency/locations",
            &[("name", "Mine"), ("time_zone", "UTC")]
        )
        .await
        .0,
        403
    );
}

#[actix_web::test]
async fn a_person_is_found_across_the_agencys_locations_by_phone_or_email() {
    let mut app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let downtown = app.location_id(demo::DOWNTOWN);
    // The same person is a contact in both locations.
    for location_id in [downtown, harbor] {
        dnd::db::contacts::upsert(
            &mut app.db.conn(),
            location_id,
            &dnd::db::contacts::ContactInput {
                name: Some("Sam Both".into()),
                phone: Some(dnd::domain::PhoneNumber::parse_international("+14155558888").unwrap()),
                email: Some(dnd::domain::EmailAddress::parse("sam.both@example.com").unwrap()),
                ..Default::default()
            },
            &crate::common::test_actor(),
        )
        .unwrap();
    }
    app.switch_to(demo::AGENCY_USER).await;
    for q in [
        "%2B1%20415%20555%208888",
        "(415)%20555-8888",
        "Sam.Both%40Example.com",
    ] {
        let (status, html) = app.get_text(&format!("/agency/contacts?q={q}")).await;
        assert_eq!(status, 200);
        assert!(
            html.contains(demo::DOWNTOWN)
                && html.contains(demo::HARBOR)
                && html.contains("Sam Both"),
            "{q}: {html}"
        );
    }
    let (_, none) = app
        .get_text("/agency/contacts?q=nobody%40example.com")
        .await;
    assert!(none.contains("id=\"no-match\""));
    let (_, bad) = app.get_text("/agency/contacts?q=12").await;
    assert!(bad.contains("whole phone number"));
}

#[actix_web::test]
async fn location_pages_carry_a_switcher_to_the_users_other_locations() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    app.switch_to(demo::AGENCY_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    assert!(html.contains("id=\"location-switcher\""));
    assert!(html.contains(&format!("<option value=\"{harbor}\"")));
    assert!(html.contains(&format!("<option value=\"{downtown}\" selected")));
    let r = app.get(&format!("/locations/switch?to={harbor}")).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), format!("/locations/{harbor}/contacts"));
    assert_eq!(app.get_text("/locations/switch?to=abc").await.0, 400);
    // One location: nothing to switch to.
    app.switch_to(demo::LOCATION_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    assert!(!html.contains("id=\"location-switcher\""));
    // Switching to a location not theirs lands on a 404.
    let r = app.get(&format!("/locations/switch?to={harbor}")).await;
    assert_eq!(app.get_text(&location(&r)).await.0, 404);
}
