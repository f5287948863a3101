//! The DND exports: CSV a spreadsheet opens safely, streamed page by page,
//! the current state or the history of a date range, for each caller.

use chrono::Utc;

use crate::common::{spawn_app, TestApp};
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::Channel;

async fn export(
    app: &TestApp,
    key: &str,
    query: &str,
) -> (u16, Option<String>, Option<u64>, String) {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/dnd/export.csv{query}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let length = r.content_length();
    (status, kind, length, r.text().await.unwrap())
}

fn rows(csv: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn new_contact(app: &TestApp, location_id: i64, name: &str, phone: &str) -> i64 {
    dnd::db::contacts::upsert(
        &mut app.db.conn(),
        location_id,
        &dnd::db::contacts::ContactInput {
            name: Some(name.into()),
            phone: Some(dnd::domain::PhoneNumber::parse_international(phone).unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

fn stop(app: &TestApp, location_id: i64, id: i64) {
    store::apply(&mut app.db.conn(), location_id, id, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &Actor::new(ActorKind::Contact, None, "the contact"),
            Utc::now(),
            None,
            Some("SMEXPORT: STOP".into()),
        )
    })
    .unwrap();
}

#[actix_web::test]
async fn the_current_export_lists_every_active_reason_safely() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    // Harbor starts with its demo reasons: note them, then add ours.
    let (_, _, _, before) = export(&app, demo::API_KEY_HARBOR, "").await;
    let id = new_contact(
        &app,
        harbor,
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+14155550190",
    );
    stop(&app, harbor, id);
    app.api_put(
        demo::API_KEY_HARBOR,
        &format!("/api/v1/contacts/{id}/dnd"),
        serde_json::json!({"all": true}),
    )
    .await;
    let (status, kind, _, csv) = export(&app, demo::API_KEY_HARBOR, "").await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("text/csv; charset=utf-8"));
    let table = rows(&csv);
    assert_eq!(
        table[0],
        [
            "contact_id",
            "name",
            "channel",
            "address",
            "reason",
            "kind",
            "since",
            "source"
        ]
    );
    let ours: Vec<&Vec<String>> = table.iter().filter(|r| r[0] == id.to_string()).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours.iter().any(|r| r[2] == "all" && r[4] == "all_channels"));
    let sms = ours.iter().find(|r| r[2] == "sms").unwrap();
    assert_eq!(sms[3], "+14155550190", "an E.164 number stays a number");
    assert_eq!(sms[4], "sms_opt_out");
    assert_eq!(sms[5], "permanent");
    assert!(
        sms[1].starts_with("'=HYPERLINK"),
        "a formula is neutralised: {}",
        sms[1]
    );
    assert!(!csv.contains("\n=HYPERLINK") && !csv.contains(",=HYPERLINK"));
    assert_eq!(table.len(), rows(&before).len() + 2);
    // Another location's reasons are not in it.
    let (_, _, _, downtown) = export(&app, demo::API_KEY_DOWNTOWN, "").await;
    assert!(!downtown.contains("+14155550190"));
}

#[actix_web::test]
async fn the_export_streams_page_after_page_and_the_history_by_dates() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    // More contacts with DND than one page holds.
    let mut ids = Vec::new();
    for i in 0..250 {
        let id = new_contact(
            &app,
            downtown,
            &format!("Stream {i}"),
            &format!("+1415556{i:04}"),
        );
        stop(&app, downtown, id);
        ids.push(id);
    }
    let (status, _, length, csv) = export(&app, demo::API_KEY_DOWNTOWN, "").await;
    assert_eq!(status, 200);
    assert_eq!(length, None, "streamed, not built whole");
    let table = rows(&csv);
    for id in &ids {
        let n = table.iter().filter(|r| r[0] == id.to_string()).count();
        assert_eq!(n, 1, "contact {id} exactly once");
    }

    // The history of today holds the STOPs; a range in the past is empty.
    let today = Utc::now().date_naive();
    let (status, _, _, csv) = export(
        &app,
        demo::API_KEY_DOWNTOWN,
        &format!("?from={today}&to={today}"),
    )
    .await;
    assert_eq!(status, 200);
    let table = rows(&csv);
    assert_eq!(table[0][6], "action");
    let stops = table
        .iter()
        .filter(|r| r[4] == "sms_opt_out" && r[6] == "set" && r[9] == "SMEXPORT: STOP")
        .count();
    assert_eq!(stops, ids.len());
    let (_, _, _, old) = export(
        &app,
        demo::API_KEY_DOWNTOWN,
        "?from=2001-01-01&to=2001-12-31",
    )
    .await;
    assert_eq!(rows(&old).len(), 1, "only the header");
    // Either end may be left open.
    let (status, _, _, upto) = export(&app, demo::API_KEY_DOWNTOWN, &format!("?to={today}")).await;
    assert_eq!(status, 200);
    assert!(rows(&upto).len() > ids.len(), "everything up to today");
    let (_, _, _, since) = export(&app, demo::API_KEY_DOWNTOWN, &format!("?from={today}")).await;
    assert_eq!(rows(&since).len(), rows(&csv).len());
    assert_eq!(
        export(&app, demo::API_KEY_DOWNTOWN, "?from=last+week")
            .await
            .0,
        422
    );
    assert_eq!(export(&app, "not-a-key", "").await.0, 401);
}

#[actix_web::test]
async fn the_page_export_follows_who_may_see_the_location() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    app.switch_to(demo::LOCATION_USER).await;
    let r = app
        .get(&format!("/locations/{downtown}/dnd/export.csv"))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with("contact_id,name,channel"));
    assert_eq!(
        app.get(&format!("/locations/{harbor}/dnd/export.csv"))
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        app.get(&format!("/locations/{downtown}/dnd/export.csv?to=soon"))
            .await
            .status()
            .as_u16(),
        422
    );
    app.switch_to(demo::SUPPORT_USER).await;
    assert_eq!(
        app.get(&format!("/locations/{harbor}/dnd/export.csv"))
            .await
            .status()
            .as_u16(),
        200
    );
}
