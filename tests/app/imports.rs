//! CSV imports through the API: contacts upserted with their DND flags
//! (which never clear DND), suppression lists kept by address, and files
//! refused as a whole.

use chrono::Utc;
use serde_json::{json, Value};

use crate::common::{spawn_app, TestApp};
use crate::dnd::{history_len, new_contact, set_reason, state_of};
use dnd::db::contacts;
use dnd::db::demo;
use dnd::db::dnd as store;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::{Channel, PhoneNumber};

async fn import(
    app: &TestApp,
    key: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn by_phone(app: &TestApp, location_id: i64, phone: &str) -> Option<contacts::Contact> {
    contacts::find_by_phone(
        &mut app.db.conn(),
        location_id,
        &PhoneNumber::parse_international(phone).unwrap(),
    )
    .unwrap()
}

#[actix_web::test]
async fn a_contacts_file_upserts_reports_bad_rows_by_line_and_never_clears_dnd() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    // Already there: one who texted STOP, one to be renamed.
    let stopped = new_contact(&app, harbor, "+14155550201");
    set_reason(&app, harbor, stopped, Channel::Sms, Reason::SmsOptOut);
    let renamed = new_contact(&app, harbor, "+14155550202");
    let stopped_history = history_len(&app, harbor, stopped);

    // A byte order mark, CRLF line ends, a quoted comma, a bad phone, a
    // repeated phone, a row with an extra cell, and DND flags.
    let file = "\u{feff}name,phone,email,whatsapp_id,facebook_id,dnd_sms,dnd_email\r\n\
                \"Brown, Aaliyah\",(415) 555-0203,aaliyah@example.com,,,,yes\r\n\
                Test +14155550201,+1 415 555 0201,,,,no,\r\n\
                Renamed Person,+14155550202,,,,,\r\n\
                Bad Phone,12,bad@example.com,,,,\r\n\
                Twice,+14155550203,twice@example.com,,,,\r\n\
                Extra,+14155550204,extra@example.com,,,,,surplus\r\n\
                \r\n\
                Email Only,,only@example.com,,,TRUE,\r\n";
    let (status, dry) = import(
        &app,
        demo::API_KEY_HARBOR,
        "/api/v1/imports/contacts?dry_run=true",
        "text/csv",
        file.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    // A dry run counts the same and writes nothing.
    assert!(by_phone(&app, harbor, "+14155550203").is_none());
    assert_eq!(dry["import_id"], Value::Null);

    let (status, body) = import(
        &app,
        demo::API_KEY_HARBOR,
        "/api/v1/imports/contacts",
        "text/csv; charset=utf-8",
        file.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for field in ["rows", "created", "updated", "unchanged", "errors"] {
        assert_eq!(dry[field], body[field], "dry run and run differ on {field}");
    }
    assert_eq!(body["rows"], 7, "{body}");
    assert_eq!(body["created"], 2, "{body}");
    assert_eq!(body["updated"], 1, "{body}");
    assert_eq!(body["unchanged"], 1, "{body}");
    let errors = body["errors"].as_array().unwrap();
    let lines: Vec<(i64, &str)> = errors
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        vec![(5, "phone"), (6, "phone"), (7, "row")],
        "{body}"
    );
    assert!(errors[1]["message"].as_str().unwrap().contains("line 2"));

    // The national number was read in the location's region; the name kept
    // its comma; the email flag turned email DND on (manual, by the key).
    let aaliyah = by_phone(&app, harbor, "+14155550203").expect("created");
    assert_eq!(aaliyah.name, "Brown, Aaliyah");
    let state = state_of(&app, harbor, aaliyah.id);
    assert!(state.is_blocked(Channel::Email) && !state.is_blocked(Channel::Sms));
    let last = &store::history(&mut app.db.conn(), harbor, aaliyah.id, 1).unwrap()[0];
    assert_eq!(last.actor_kind, ActorKind::Api);
    assert_eq!(
        last.source.as_deref(),
        Some(format!("import #{}", body["import_id"]).as_str())
    );
    // "no" leaves the STOP as it was: nothing lifted, nothing written.
    assert!(state_of(&app, harbor, stopped).is_blocked(Channel::Sms));
    assert_eq!(history_len(&app, harbor, stopped), stopped_history);
    assert_eq!(
        contacts::find(&mut app.db.conn(), harbor, renamed)
            .unwrap()
            .unwrap()
            .name,
        "Renamed Person"
    );
    let only = contacts::find_by_email(
        &mut app.db.conn(),
        harbor,
        &dnd::domain::EmailAddress::parse("only@example.com").unwrap(),
    )
    .unwrap()
    .unwrap();
    assert!(state_of(&app, harbor, only.id).is_blocked(Channel::Sms));

    // The same file again changes nothing.
    let (_, again) = import(
        &app,
        demo::API_KEY_HARBOR,
        "/api/v1/imports/contacts",
        "text/csv",
        file.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(
        (again["created"].clone(), again["updated"].clone()),
        (json!(0), json!(0)),
        "{again}"
    );
    assert_eq!(again["unchanged"], 4, "{again}");
}

#[actix_web::test]
async fn files_refused_as_a_whole_import_nothing() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let before: i64 = count_contacts(&app, harbor);
    let row = "Refused,+14155550299,refused@example.com\n";
    let mut big = format!("name,phone,email\n{row}").into_bytes();
    big.resize(10 * 1024 * 1024 + 1, b'\n');
    for (content_type, body, says) in [
        (
            "text/csv",
            format!("name,email\n{row}").into_bytes(),
            "missing: phone",
        ),
        (
            "text/csv",
            format!("name,phone,email,dnd_smss\n{row}").into_bytes(),
            "dnd_smss",
        ),
        (
            "text/csv",
            b"name,phone,email\nJos\xe9,+14155550299,j@example.com\n".to_vec(),
            "not UTF-8",
        ),
        ("text/csv", big, "larger than 10 MiB"),
        (
            "application/json",
            format!("name,phone,email\n{row}").into_bytes(),
            "text/csv",
        ),
    ] {
        let (status, body) = import(
            &app,
            demo::API_KEY_HARBOR,
            "/api/v1/imports/contacts",
            content_type,
            body,
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["field"], "file", "{body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }
    assert_eq!(count_contacts(&app, harbor), before);
    // Exactly 10 MiB is taken.
    let mut fits = format!("name,phone,email\n{row}").into_bytes();
    fits.resize(10 * 1024 * 1024, b'\n');
    let (status, body) = import(
        &app,
        demo::API_KEY_HARBOR,
        "/api/v1/imports/contacts",
        "text/csv",
        fits,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], 1);
    let (status, _) = import(
        &app,
        "no-such-key",
        "/api/v1/imports/contacts",
        "text/csv",
        b"name,phone,email\n".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
}

fn count_contacts(app: &TestApp, location_id: i64) -> i64 {
    use diesel::prelude::*;
    dnd::db::schema::contacts::table
        .filter(dnd::db::schema::contacts::location_id.eq(location_id))
        .count()
        .get_result(&mut app.db.conn())
        .unwrap()
}

#[actix_web::test]
async fn a_suppression_list_blocks_the_address_now_and_whoever_takes_it_later() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let downtown = app.location_id(demo::DOWNTOWN);
    let held = new_contact(&app, harbor, "+14155550301");
    let elsewhere = new_contact(&app, downtown, "+14155550302");
    let file = "address,note\n\
                (415) 555-0301,old CRM opt-outs\n\
                +1 415 555 0302,\n\
                +14155550302,\n\
                not a number,\n";
    let (status, body) = import(
        &app,
        demo::API_KEY_HARBOR,
        "/api/v1/imports/suppressions?channel=sms",
        "text/csv",
        file.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], 4);
    assert_eq!(body["created"], 2, "{body}");
    assert_eq!(body["unchanged"], 1, "the repeated number: {body}");
    assert_eq!(body["errors"][0]["line"], 5);
    assert_eq!(body["errors"][0]["field"], "address");

    // The contact who holds the number is blocked, with the reason, kept on
    // the address; the history names the import and the key.
    let state = state_of(&app, harbor, held);
    let reasons = state.reasons(Channel::Sms);
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].reason, Reason::ImportedOptOut);
    assert_eq!(reasons[0].address.as_deref(), Some("+14155550301"));
    let last = &store::history(&mut app.db.conn(), harbor, held, 1).unwrap()[0];
    assert_eq!(
        last.source.as_deref(),
        Some(format!("import #{}: old CRM opt-outs", body["import_id"]).as_str())
    );
    assert_eq!(last.actor_label, "API key Demo automation");
    // Another location's contact with that number is not touched.
    assert!(!state_of(&app, downtown, elsewhere).is_blocked(Channel::Sms));
    // A contact created later with the suppressed number is blocked at once.
    let (status, created) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/contacts",
            json!({"name": "Later", "phone": "+14155550302"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{created}");
    let later = by_phone(&app, harbor, "+14155550302").unwrap();
    assert!(state_of(&app, harbor, later.id).is_blocked(Channel::Sms));
    // Permanent: the API cannot lift it; the contact's own START can.
    let (status, _) = app
        .api_put(
            demo::API_KEY_HARBOR,
            &format!("/api/v1/contacts/{}/dnd", later.id),
            json!({"channels": {"sms": false}}),
        )
        .await;
    assert_eq!(status, 403);
    store::apply(&mut app.db.conn(), harbor, later.id, |s| {
        s.lift_only(
            Channel::Sms,
            &Actor::new(ActorKind::Contact, None, "the contact"),
            Utc::now(),
            Some("SMSTART".into()),
            Reason::lifted_by_opt_in,
        )
    })
    .unwrap();
    assert!(!state_of(&app, harbor, later.id).is_blocked(Channel::Sms));

    // Channels without suppression lists are refused.
    for bad in [
        "/api/v1/imports/suppressions?channel=call",
        "/api/v1/imports/suppressions",
    ] {
        let (status, body) = import(
            &app,
            demo::API_KEY_HARBOR,
            bad,
            "text/csv",
            file.as_bytes().to_vec(),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["field"], "channel");
    }
}

/// Uploads a file through the imports page's form as the signed-in user.
async fn upload(app: &TestApp, location_id: i64, kind: &str, csv: &str) -> (u16, String) {
    let csrf = app
        .csrf_from(&format!("/locations/{location_id}/imports"))
        .await;
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", csrf)
        .text("kind", kind.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                .file_name("people.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let r = app
        .client
        .post(app.url(&format!("/locations/{location_id}/imports")))
        .header("Origin", &app.base)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let to = crate::common::location(&r);
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
async fn the_imports_page_previews_then_imports_on_confirmation() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::LOCATION_USER).await;
    let csv = "name,phone,email\nPage Person,+1 917 555 0401,page@example.com\nBroken,+1 917,broken@example.com\n";
    let (status, to) = upload(&app, downtown, "contacts", csv).await;
    assert_eq!(status, 303, "{to}");
    assert!(
        to.starts_with(&format!("/locations/{downtown}/imports/")),
        "{to}"
    );
    let (status, preview) = app.get_text(&to).await;
    assert_eq!(status, 200);
    assert!(
        preview.contains("Preview: nothing has been imported yet"),
        "{preview}"
    );
    assert!(
        preview.contains(r#"<dd id="import-created">1</dd>"#),
        "{preview}"
    );
    assert!(
        preview.contains("<tr><td>3</td><td>phone</td>"),
        "{preview}"
    );
    assert!(
        by_phone(&app, downtown, "+19175550401").is_none(),
        "nothing before confirming"
    );

    let (status, back) = app.submit(&format!("{to}/confirm"), &[]).await;
    assert_eq!(status, 303);
    assert_eq!(back, to);
    // It runs after the answer: its page says how far it got, then done.
    let mut page = String::new();
    for _ in 0..100 {
        page = app.get_text(&to).await.1;
        if page.contains("<h2 id=\"state-title\">Imported</h2>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        page.contains("<h2 id=\"state-title\">Imported</h2>"),
        "{page}"
    );
    assert!(page.contains("<tr><td>3</td><td>phone</td>"), "{page}");
    let created = by_phone(&app, downtown, "+19175550401").expect("imported");
    assert_eq!(created.name, "Page Person");
    // Confirming again imports nothing twice.
    let (status, _) = app.submit(&format!("{to}/confirm"), &[]).await;
    assert_eq!(status, 409);

    // A file refused as a whole comes back to the form, kept nothing.
    let (status, page) = upload(&app, downtown, "contacts", "name,email\nX,x@example.com\n").await;
    assert_eq!(status, 422);
    assert!(page.contains("missing: phone"), "{page}");
    // Refusals: another location (404), no token (403), support (403).
    let harbor = app.location_id(demo::HARBOR);
    let (status, _) = app.get_text(&format!("/locations/{harbor}/imports")).await;
    assert_eq!(status, 404);
    let r = app
        .client
        .post(app.url(&format!("/locations/{downtown}/imports")))
        .header("Origin", &app.base)
        .multipart(
            reqwest::multipart::Form::new()
                .text("kind", "contacts")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("a.csv"),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    app.switch_to(demo::SUPPORT_USER).await;
    let (status, _) = app.get_text(&to).await;
    assert_eq!(status, 200, "support reads it");
    let (status, _) = upload(
        &app,
        downtown,
        "suppressions:sms",
        "address\n+19175550409\n",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = app.submit(&format!("{to}/confirm"), &[]).await;
    assert_eq!(status, 403);
}

#[actix_web::test]
async fn rows_in_different_chunks_matching_one_contact_are_refused_in_the_preview_and_the_run() {
    let app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let existing = new_contact(&app, harbor, "+14155550250");
    let email = format!("t{}@example.com", "14155550250");
    // Line 2 matches it by phone; line 1502, far in another chunk, by
    // email with another phone: it would move the person's number.
    let mut file = String::from("name,phone,email\nBy Phone,+14155550250,\n");
    for i in 0..1499 {
        file.push_str(&format!("Filler {i},+1628777{i:04},\n"));
    }
    file.push_str(&format!("By Email,+14155550251,{email}\n"));
    for dry in [true, false] {
        let (status, body) = import(
            &app,
            demo::API_KEY_HARBOR,
            &format!("/api/v1/imports/contacts?dry_run={dry}"),
            "text/csv",
            file.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body["errors"][0]["line"], 1502, "{body}");
        assert_eq!(body["created"], 1499);
    }
    let kept = contacts::find(&mut app.db.conn(), harbor, existing)
        .unwrap()
        .unwrap();
    assert_eq!(kept.phone.as_deref(), Some("+14155550250"));
    assert_eq!(kept.name, "By Phone");
}
