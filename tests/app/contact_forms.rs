//! Contacts created and edited in the browser: the API's rules (canonical
//! addresses, one address one person), DND never cleared, a suppressed
//! address blocked the moment it is given.

use crate::common::{spawn_app, TestApp};
use dnd::db::demo;
use dnd::domain::Channel;

fn id_in(path: &str) -> i64 {
    path.rsplit('/').next().unwrap().parse().unwrap()
}

#[actix_web::test]
async fn a_location_user_creates_and_edits_contacts_under_the_apis_rules() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.switch_to(demo::LOCATION_USER).await;
    let new = format!("/locations/{downtown}/contacts");
    assert_eq!(app.get_text(&format!("{new}/new")).await.0, 200);
    let (status, to) = app
        .submit(
            &new,
            &[
                ("name", "Ivy Form"),
                ("phone", "(415) 555-0140"),
                ("email", "Ivy@Example.com"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{to}");
    let ivy = id_in(&to);
    let stored = dnd::db::contacts::find(&mut app.db.conn(), downtown, ivy)
        .unwrap()
        .unwrap();
    assert_eq!(stored.phone.as_deref(), Some("+14155550140"));
    assert_eq!(stored.email.as_deref(), Some("ivy@example.com"));

    // Bad fields, each next to its field, nothing stored.
    let before = count(&app);
    let (status, html) = app
        .submit(
            &new,
            &[
                ("name", "Bad"),
                ("phone", "call me"),
                ("email", "not-an-email"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("phone-error") && html.contains("email-error"));
    assert!(html.contains("value=\"call me\""), "what was typed is kept");
    // An address someone has: a conflict, not a merge.
    let (status, html) = app
        .submit(&new, &[("name", "Twin"), ("phone", "+1 415 555 0140")])
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("belongs to another contact"));
    assert_eq!(count(&app), before);

    // Edit: a blank field keeps; a new number is stored in E.164; another
    // contact's WhatsApp id is refused.
    let edit = format!("/locations/{downtown}/contacts/{ivy}/edit");
    assert_eq!(app.get_text(&edit).await.0, 200);
    let (status, _) = app
        .submit(
            &edit,
            &[
                ("name", "Ivy Edited"),
                ("phone", "415-555-0141"),
                ("email", ""),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let edited = dnd::db::contacts::find(&mut app.db.conn(), downtown, ivy)
        .unwrap()
        .unwrap();
    assert_eq!(edited.name, "Ivy Edited");
    assert_eq!(edited.phone.as_deref(), Some("+14155550141"));
    assert_eq!(
        edited.email.as_deref(),
        Some("ivy@example.com"),
        "blank keeps"
    );
    let (status, to) = app
        .submit(
            &new,
            &[
                ("name", "Wanda"),
                ("email", "wanda@example.com"),
                ("whatsapp_id", "+14155550150"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{to}");
    let (status, html) = app
        .submit(&edit, &[("whatsapp_id", "+1 415 555 0150")])
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("whatsapp_id-error"), "{html}");
}

fn count(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use dnd::db::schema::contacts;
    contacts::table
        .count()
        .get_result(&mut app.db.conn())
        .unwrap()
}

#[actix_web::test]
async fn a_suppressed_number_blocks_the_contact_it_is_given_to_at_once() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    // +14155550160 texted STOP (the webhook makes a contact for it).
    let (code, _) = crate::webhooks::twilio_post(
        &app,
        downtown,
        "sms",
        &crate::webhooks::inbound("SMFORMSTOP", "+14155550160", "STOP"),
    )
    .await;
    assert_eq!(code, 200);
    let holder = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+14155550160").unwrap(),
    )
    .unwrap()
    .unwrap();
    app.switch_to(demo::AGENCY_USER).await;
    // The number moves away from that contact: it stays opted out.
    let (status, _) = app
        .submit(
            &format!("/locations/{downtown}/contacts/{}/edit", holder.id),
            &[("phone", "+14155550161")],
        )
        .await;
    assert_eq!(status, 303);
    // Given to a new contact, it blocks SMS at once.
    let (status, to) = app
        .submit(
            &format!("/locations/{downtown}/contacts"),
            &[("name", "New Holder"), ("phone", "+14155550160")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, page) = app.get_text(&to).await;
    assert!(
        page.contains("Opted out by SMS") && page.contains("Its addresses carry DND"),
        "{page}"
    );
    let state = dnd::db::dnd::load_state(&mut app.db.conn(), downtown, id_in(&to))
        .unwrap()
        .unwrap();
    assert!(state.is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn support_has_no_contact_forms_and_other_locations_are_404() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    app.switch_to(demo::SUPPORT_USER).await;
    assert_eq!(
        app.get_text(&format!("/locations/{downtown}/contacts/new"))
            .await
            .0,
        403
    );
    let before = count(&app);
    assert_eq!(
        app.submit(
            &format!("/locations/{downtown}/contacts"),
            &[("phone", "+14155550170")]
        )
        .await
        .0,
        403
    );
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    assert!(!page.contains("id=\"new-contact\""));
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(
        app.get_text(&format!("/locations/{harbor}/contacts/new"))
            .await
            .0,
        404
    );
    assert_eq!(
        app.submit(
            &format!("/locations/{harbor}/contacts"),
            &[("phone", "+14155550171")]
        )
        .await
        .0,
        404
    );
    assert_eq!(count(&app), before);
}
