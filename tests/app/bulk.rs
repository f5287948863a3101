//! Bulk DND: one change for many contacts, from the API and from the
//! contact list, under the same rules as a single change.

use serde_json::json;

use crate::common::spawn_app;
use crate::dnd::{history_len, new_contact, set_reason, state_of};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::Reason;
use dnd::domain::Channel;

#[actix_web::test]
async fn the_api_changes_many_contacts_and_skips_what_it_may_not_lift() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let downtown = app.location_id(demo::DOWNTOWN);
    let a = new_contact(&app, harbor, "+14155550101");
    let b = new_contact(&app, harbor, "+14155550102");
    let stopped = new_contact(&app, harbor, "+14155550103");
    set_reason(&app, harbor, stopped, Channel::Sms, Reason::SmsOptOut);
    let foreign = new_contact(&app, downtown, "+14155550104");
    let before_b = history_len(&app, harbor, b);

    let (status, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [a, b, stopped, foreign, a], "channels": {"sms": true},
                   "note": "Spring campaign list cleanup"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], 3, "{body}");
    assert_eq!(body["unchanged"], 0);
    assert_eq!(
        body["skipped"],
        json!([{"contact_id": foreign, "reason": "not_found",
                "message": format!("No contact {foreign} in this location.")}])
    );
    // The other location's contact is untouched.
    assert!(!state_of(&app, downtown, foreign).is_blocked(Channel::Sms));
    assert!(state_of(&app, harbor, a).is_blocked(Channel::Sms));
    // One history row per changed contact, carrying the note.
    assert_eq!(history_len(&app, harbor, b), before_b + 1);
    let last = &store::history(&mut app.db.conn(), harbor, b, 1).unwrap()[0];
    assert_eq!(last.reason, Some(Reason::Manual));
    assert_eq!(last.detail.as_deref(), Some("Spring campaign list cleanup"));
    assert_eq!(last.actor_kind, dnd::domain::dnd::ActorKind::Api);

    // Again: nothing changes and no history is written.
    let (_, again) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [a, b], "channels": {"sms": true}, "note": "again"}),
        )
        .await;
    assert_eq!(
        (again["changed"].clone(), again["unchanged"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(history_len(&app, harbor, b), before_b + 1);

    // Off: the manual reasons go; the contact's own STOP stays, and says so.
    let (status, off) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [a, b, stopped], "channels": {"sms": false}, "note": "undo"}),
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["changed"], 3, "{off}");
    assert_eq!(off["still_blocked"][0]["contact_id"], stopped);
    assert_eq!(off["still_blocked"][0]["reason"], "sms_opt_out");
    assert!(!state_of(&app, harbor, a).is_blocked(Channel::Sms));
    assert!(state_of(&app, harbor, stopped).is_blocked(Channel::Sms));

    // Off once more: a contact whose only reason is its STOP is skipped,
    // with that reason; nothing is written for it.
    let stopped_history = history_len(&app, harbor, stopped);
    let (_, skipped) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [a, stopped], "channels": {"sms": false}, "note": "undo"}),
        )
        .await;
    assert_eq!(skipped["changed"], 0, "{skipped}");
    assert_eq!(skipped["unchanged"], 1);
    assert_eq!(skipped["skipped"][0]["contact_id"], stopped);
    assert_eq!(skipped["skipped"][0]["reason"], "sms_opt_out");
    assert!(skipped["skipped"][0]["message"]
        .as_str()
        .unwrap()
        .contains("SMS DND stays on"));
    assert_eq!(history_len(&app, harbor, stopped), stopped_history);
}

#[actix_web::test]
async fn the_api_switches_all_channels_and_refuses_bad_requests() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let a = new_contact(&app, harbor, "+14155550111");
    let (status, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [a], "all": true, "channels": {"email": true}, "note": "asked"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let s = state_of(&app, harbor, a);
    assert!(s.all && s.is_blocked(Channel::Email));

    for (bad, field) in [
        (json!({"contact_ids": [a], "all": false}), "note"),
        (
            json!({"contact_ids": [a], "all": false, "note": "   "}),
            "note",
        ),
        (json!({"contact_ids": [a], "note": "x"}), "channels"),
        (
            json!({"contact_ids": [a], "channels": {"fax": true}, "note": "x"}),
            "channels",
        ),
        (
            json!({"contact_ids": [], "all": false, "note": "x"}),
            "contact_ids",
        ),
        (
            json!({"contact_ids": (0..100_001).collect::<Vec<i64>>(), "all": false, "note": "x"}),
            "contact_ids",
        ),
    ] {
        let (status, body) = app
            .api_post(demo::API_KEY_HARBOR, "/api/v1/dnd/bulk", bad.clone())
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }
    // Nothing of those was applied.
    assert!(state_of(&app, harbor, a).all);
    let (status, _) = app
        .api_post(
            "not-a-key",
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [a], "all": false, "note": "x"}),
        )
        .await;
    assert_eq!(status, 401);
    assert!(state_of(&app, harbor, a).all);
}

#[actix_web::test]
async fn the_list_page_changes_what_its_filters_match() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let a = new_contact(&app, downtown, "+19175550121");
    let b = new_contact(&app, downtown, "+19175550122");
    let other = new_contact(&app, downtown, "+13125550123");
    app.sign_in_as(demo::LOCATION_USER).await;
    // The list offers the form once, in the page's content.
    let (_, list) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    assert_eq!(list.matches(r#"id="bulk""#).count(), 1, "{list}");
    let title = &list[list.find("<title>").unwrap()..list.find("</title>").unwrap()];
    assert!(!title.contains("csrf"), "{title}");
    let path = format!("/locations/{downtown}/contacts/bulk-dnd");
    // The filters of a search for "+1 917 555 012" (a and b only).
    let (status, page) = app
        .submit(
            &path,
            &[
                ("scope", "list"),
                ("q", "+1 917 555 012"),
                ("target", "email"),
                ("turn", "on"),
                ("note", "Asked at the front desk"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<dd id="bulk-changed">2</dd>"#), "{page}");
    assert!(state_of(&app, downtown, a).is_blocked(Channel::Email));
    assert!(state_of(&app, downtown, b).is_blocked(Channel::Email));
    assert!(!state_of(&app, downtown, other).is_blocked(Channel::Email));

    // Ticked rows only, however wide the filter.
    let (status, page) = app
        .submit(
            &path,
            &[
                ("scope", "ticked"),
                ("contact_ids", &a.to_string()),
                ("target", "email"),
                ("turn", "off"),
                ("note", "Wants the newsletter back"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<dd id="bulk-changed">1</dd>"#), "{page}");
    assert!(!state_of(&app, downtown, a).is_blocked(Channel::Email));
    assert!(state_of(&app, downtown, b).is_blocked(Channel::Email));

    // Refusals change nothing: no note, nothing ticked, no CSRF token.
    for fields in [
        vec![("scope", "list"), ("target", "sms"), ("turn", "on")],
        vec![
            ("scope", "ticked"),
            ("target", "sms"),
            ("turn", "on"),
            ("note", "x"),
        ],
    ] {
        let (status, page) = app.submit(&path, &fields).await;
        assert_eq!(status, 422, "{page}");
    }
    let r = app
        .post_form(
            &path,
            &[
                ("scope", "list"),
                ("target", "sms"),
                ("turn", "on"),
                ("note", "x"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(!state_of(&app, downtown, other).is_blocked(Channel::Sms));

    // A location the user is not in is a 404; support is refused (403).
    let harbor = app.location_id(demo::HARBOR);
    let (status, _) = app
        .submit(
            &format!("/locations/{harbor}/contacts/bulk-dnd"),
            &[
                ("scope", "list"),
                ("target", "sms"),
                ("turn", "on"),
                ("note", "x"),
            ],
        )
        .await;
    assert_eq!(status, 404);
    app.switch_to(demo::SUPPORT_USER).await;
    let (status, _) = app
        .submit(
            &path,
            &[
                ("scope", "list"),
                ("target", "sms"),
                ("turn", "on"),
                ("note", "x"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert!(!state_of(&app, downtown, other).is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn ticked_ids_of_another_location_are_not_found() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let mine = new_contact(&app, downtown, "+19175550131");
    let theirs = new_contact(&app, harbor, "+19175550132");
    app.switch_to(demo::LOCATION_USER).await;
    let (status, page) = app
        .submit(
            &format!("/locations/{downtown}/contacts/bulk-dnd"),
            &[
                ("scope", "ticked"),
                ("contact_ids", &mine.to_string()),
                ("contact_ids", &theirs.to_string()),
                ("target", "all"),
                ("turn", "on"),
                ("note", "crafted"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<dd id="bulk-skipped">1</dd>"#), "{page}");
    assert!(page.contains("No longer in this location"), "{page}");
    assert!(state_of(&app, downtown, mine).all);
    assert!(!state_of(&app, harbor, theirs).all);
}

#[actix_web::test]
async fn a_change_larger_than_a_chunk_spreads_over_connections_and_misses_none() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let ids: Vec<i64> = diesel::sql_query(
        "INSERT INTO contacts (location_id, name, phone)
         SELECT $1, 'Bulk ' || i, '+1659555' || lpad(i::text, 4, '0')
         FROM generate_series(1, 2500) AS i RETURNING id",
    )
    .bind::<diesel::sql_types::BigInt, _>(harbor)
    .load::<Id>(&mut app.db.conn())
    .unwrap()
    .into_iter()
    .map(|r| r.id)
    .collect();
    // One of them opted out by address: setting is fine, lifting is not.
    set_reason(
        &app,
        harbor,
        ids[1234],
        Channel::Whatsapp,
        Reason::ChannelOptOut,
    );
    let (status, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": ids, "channels": {"whatsapp": true}, "note": "migration"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], 2500, "{body}");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = |sql: &str| {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::BigInt, _>(harbor)
            .get_result::<Count>(&mut app.db.conn())
            .unwrap()
            .n
    };
    // Every contact's mask (the list's filter and the bulk gate) and one
    // history row each.
    assert_eq!(
        count("SELECT count(*) AS n FROM contacts WHERE location_id = $1 AND name LIKE 'Bulk %' AND dnd_mask & 32 <> 0"),
        2500
    );
    assert_eq!(
        count(
            "SELECT count(*) AS n FROM dnd_history WHERE location_id = $1 AND detail = 'migration'"
        ),
        2500
    );
    let (_, off) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": ids, "channels": {"whatsapp": false}, "note": "undo migration"}),
        )
        .await;
    assert_eq!(off["changed"], 2500, "{off}");
    assert_eq!(off["still_blocked"].as_array().unwrap().len(), 1, "{off}");
    assert_eq!(
        count("SELECT count(*) AS n FROM contacts WHERE location_id = $1 AND name LIKE 'Bulk %' AND dnd_mask & 32 <> 0"),
        1
    );
}
