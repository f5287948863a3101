//! A form that cannot be used as typed comes back as typed, with why next
//! to the field, and the page's navigation (issue 14): 422, never a bare
//! error page that loses what was typed.

use dnd::db::demo;

use crate::common::spawn_app;

#[actix_web::test]
async fn a_blank_message_comes_back_to_its_composer_as_typed() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let contact = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse("+12125550111", "US").unwrap(),
    )
    .unwrap()
    .unwrap();
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{}", contact.id);

    let (code, html) = app
        .submit(
            &format!("{page}/messages"),
            &[("channel", "sms"), ("body", "  \n ")],
        )
        .await;
    assert_eq!(code, 422);
    assert!(
        html.contains("<nav class=\"user\""),
        "the page, with its navigation"
    );
    assert!(html.contains(&format!("<h1>{}", contact.name)));
    assert!(
        html.contains("id=\"body-error-sms\" role=\"alert\">The message is empty"),
        "{html}"
    );
    assert!(html.contains("aria-describedby=\"body-error-sms "));

    // An email whose subject is refused keeps its subject and body.
    let long = "S".repeat(1000);
    let (code, html) = app
        .submit(
            &format!("{page}/messages"),
            &[
                ("channel", "email"),
                ("subject", &long),
                ("body", "Dear Ana, see you at 3."),
            ],
        )
        .await;
    assert_eq!(code, 422);
    assert!(html.contains("id=\"subject-error-email\""), "{html}");
    assert!(html.contains(&format!("value=\"{long}\"")));
    assert!(html.contains(">Dear Ana, see you at 3.</textarea>"));
    // Nothing was recorded.
    let (_, html) = app.get_text(&page).await;
    assert!(!html.contains("Dear Ana"));
}

#[actix_web::test]
async fn a_bad_sender_or_url_comes_back_to_the_settings_form() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let settings = format!("/locations/{downtown}/settings");
    let transport = format!("{settings}/integrations/sms/transport");

    for (sender, base) in [
        ("Harbor Fitness Club", ""),
        ("12345", ""),
        ("Gym!", ""),
        ("+12125559999", "not a url"),
    ] {
        let (code, html) = app
            .submit(
                &transport,
                &[
                    ("transport", "twilio"),
                    ("sender", sender),
                    ("api_base_url", base),
                ],
            )
            .await;
        assert_eq!(code, 422, "{sender} {base}");
        assert!(html.contains("<nav class=\"user\""));
        assert!(
            html.contains("id=\"transport-error-sms\" role=\"alert\""),
            "{html}"
        );
        assert!(html.contains("Nothing was changed."));
        // As typed.
        assert!(
            html.contains(&format!("name=\"sender\" type=\"text\" value=\"{sender}\"")),
            "{sender}"
        );
    }
    // A sender id and a number are taken; the number in E.164.
    let (code, _) = app
        .submit(
            &transport,
            &[("transport", "twilio"), ("sender", "HarborGym")],
        )
        .await;
    assert_eq!(code, 303);
    let (code, _) = app
        .submit(
            &transport,
            &[("transport", "twilio"), ("sender", "(212) 555-9999")],
        )
        .await;
    assert_eq!(code, 303);
    let sms = dnd::db::integrations::find(&mut app.db.conn(), downtown, dnd::domain::Channel::Sms)
        .unwrap()
        .unwrap();
    assert_eq!(sms.sender.as_deref(), Some("+12125559999"));

    let (code, html) = app
        .submit(
            &format!("{settings}/integrations/email/transport"),
            &[
                ("transport", "mailgun"),
                ("sender", "Harbor <not-an-address>"),
            ],
        )
        .await;
    assert_eq!(code, 422);
    assert!(html.contains("id=\"transport-error-email\""));

    // A refused secret says why next to its row, and is not shown again.
    let (code, html) = app
        .submit(
            &format!("{settings}/integrations/sms/secret"),
            &[("secret", "a b c d e f")],
        )
        .await;
    assert_eq!(code, 422);
    assert!(html.contains("id=\"secret-error-sms\" role=\"alert\""));
    assert!(!html.contains("a b c d e f"));

    // A blank name keeps the form, with why.
    let (code, html) = app
        .submit(&format!("{settings}/name"), &[("name", "   ")])
        .await;
    assert_eq!(code, 422);
    assert!(html.contains("id=\"name-error\" role=\"alert\""));
}

#[actix_web::test]
async fn the_region_numbers_are_read_in_is_a_setting() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let settings = format!("/locations/{downtown}/settings");
    let (_, html) = app.get_text(&settings).await;
    assert!(
        html.contains("<option value=\"US\" selected>US (+1)</option>"),
        "{html}"
    );

    let (code, html) = app
        .submit(&format!("{settings}/region"), &[("region", "XX")])
        .await;
    assert_eq!(code, 422);
    assert!(html.contains("id=\"region-error\""));
    let (code, to) = app
        .submit(&format!("{settings}/region"), &[("region", "GB")])
        .await;
    assert_eq!((code, to.as_str()), (303, settings.as_str()));
    let (_, html) = app.get_text(&settings).await;
    assert!(html.contains("<option value=\"GB\" selected>GB (+44)</option>"));
    assert!(html.contains("read as GB numbers"));

    // Searches now read national numbers as British ones.
    let mut conn = app.db.conn();
    diesel::RunQueryDsl::execute(
        diesel::insert_into(dnd::db::schema::contacts::table).values(
            &dnd::db::contacts::NewContact {
                location_id: downtown,
                name: "Olivia Hart",
                phone: Some("+442079460958"),
                email: None,
                facebook_id: None,
                whatsapp_id: None,
                gmb_id: None,
            },
        ),
        &mut conn,
    )
    .unwrap();
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts?q=020+7946+0958"))
        .await;
    assert!(html.contains("Olivia Hart"));
    assert!(
        html.contains("as dialled in GB (read as +44)") || !html.contains("No contact matches")
    );
}
