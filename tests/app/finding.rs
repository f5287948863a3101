//! Finding people (issue 14): numbers found however they are written,
//! names in any word order, an empty list that says what was searched and
//! how to search, a pager that counts, a title for a contact without a name.

use diesel::RunQueryDsl;
use dnd::db::{contacts, demo, locations};

use crate::common::{spawn_app, TestApp};

/// The rows of the contact list (its other links left out).
fn rows_of(html: &str) -> &str {
    let body = html.split("<tbody>").nth(1).unwrap_or("");
    body.split("</tbody>").next().unwrap_or("")
}

fn count_rows(html: &str) -> usize {
    rows_of(html).matches("<tr>").count()
}

/// Adds a contact to a location as a test's own set-up.
fn add_contact(app: &TestApp, location_id: i64, name: &str, phone: Option<&str>, email: &str) {
    diesel::insert_into(dnd::db::schema::contacts::table)
        .values(&contacts::NewContact {
            location_id,
            name,
            phone,
            email: Some(email),
            facebook_id: None,
            whatsapp_id: None,
            gmb_id: None,
        })
        .execute(&mut app.db.conn())
        .unwrap();
}

async fn search(app: &TestApp, location_id: i64, q: &str) -> String {
    let (code, html) = app
        .get_text(&format!(
            "/locations/{location_id}/contacts?q={}",
            urlencoding::encode(q)
        ))
        .await;
    assert_eq!(code, 200, "{q}");
    html
}

#[actix_web::test]
async fn a_number_is_found_however_it_is_written() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::LOCATION_USER).await;

    // The demo has +1 212 555 0196 and +1 646 555 0196.
    for q in [
        "212 555 0196",
        "(212) 555-0196",
        "1-212-555-0196",
        "+1 212 555 0196",
        "2125550196",
    ] {
        let html = search(&app, downtown, q).await;
        assert_eq!(count_rows(&html), 1, "{q}");
        assert!(rows_of(&html).contains("+12125550196"), "{q}");
    }
    for q in ["555-0196", "0196", "5550196"] {
        let html = search(&app, downtown, q).await;
        let rows = rows_of(&html);
        assert_eq!(count_rows(&html), 2, "{q}: {rows}");
        assert!(
            rows.contains("+12125550196") && rows.contains("+16465550196"),
            "{q}"
        );
        // In number order.
        assert!(
            rows.find("+1212").unwrap() < rows.find("+1646").unwrap(),
            "{q}"
        );
    }
    // The start of a national number, read in the location's region (US).
    let html = search(&app, downtown, "(646) 555-01").await;
    assert_eq!(count_rows(&html), 50, "a page of +1 646 555 01xx");
    assert!(!rows_of(&html).contains("+1212"));
    // Three digits are an area code, not the end of a number.
    let html = search(&app, downtown, "212").await;
    assert!(rows_of(&html).contains("+12125550100"));
    assert!(!rows_of(&html).contains("+1646"));
}

#[actix_web::test]
async fn a_number_is_read_in_the_country_of_the_location() {
    let app = spawn_app().await;
    let london = {
        let mut conn = app.db.conn();
        let agency = locations::find_agency_by_name(&mut conn, demo::AGENCY)
            .unwrap()
            .unwrap();
        locations::create(&mut conn, agency, "Soho Studio", "Europe/London").unwrap()
    };
    // Its time zone's country until someone sets another.
    assert_eq!(london.default_region, "GB");
    add_contact(
        &app,
        london.id,
        "Olivia Hart",
        Some("+442079460958"),
        "olivia@example.co.uk",
    );
    add_contact(
        &app,
        london.id,
        "Noah Bell",
        Some("+12125550123"),
        "noah@example.com",
    );
    app.sign_in_as(demo::AGENCY_USER).await;

    for q in [
        "020 7946 0958",
        "(020) 7946",
        "7946 0958",
        "+44 20 7946 0958",
    ] {
        let html = search(&app, london.id, q).await;
        assert_eq!(count_rows(&html), 1, "{q}");
        assert!(rows_of(&html).contains("Olivia Hart"), "{q}");
    }
    // A national US number means nothing in GB; its end still matches, and
    // with its country code it is found.
    let html = search(&app, london.id, "+1 212 555").await;
    assert!(rows_of(&html).contains("Noah Bell"));
    let html = search(&app, london.id, "212 555").await;
    assert_eq!(count_rows(&html), 0);
}

#[actix_web::test]
async fn every_word_of_a_name_is_found_in_any_order() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    add_contact(&app, downtown, "Aaliyah Brown", None, "a.b-2@example.test");
    add_contact(&app, downtown, "Xiomara Quill", None, "xq-2@example.test");
    add_contact(&app, downtown, "Mary-Jane Watson", None, "mj@example.test");
    app.sign_in_as(demo::LOCATION_USER).await;

    for q in ["brown aaliyah", "Aaliyah Brown", "BROW aal", "aal"] {
        let html = search(&app, downtown, q).await;
        assert!(rows_of(&html).contains("Aaliyah Brown"), "{q}");
    }
    // Each word must start a word of the name.
    for q in ["quill xio", "QUI xi"] {
        let html = search(&app, downtown, q).await;
        assert!(rows_of(&html).contains("Xiomara Quill"), "{q}");
    }
    for q in ["iomara", "quill zed", "uill"] {
        let html = search(&app, downtown, q).await;
        assert!(!rows_of(&html).contains("Xiomara Quill"), "{q}");
    }
    // A hyphen starts a word too; the email is still searched.
    for q in ["jane", "watson mary", "mj@example"] {
        let html = search(&app, downtown, q).await;
        assert!(rows_of(&html).contains("Mary-Jane Watson"), "{q}");
    }
}

#[actix_web::test]
async fn an_empty_list_says_what_was_searched_and_how_to_search() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::LOCATION_USER).await;

    let (_, html) = app
        .get_text(&format!(
            "/locations/{downtown}/contacts?q=zzqx+nobody&status=on&channel=sms"
        ))
        .await;
    assert_eq!(count_rows(&html), 0);
    assert!(
        html.contains("No contact matches “zzqx nobody”, with DND status On, blocked on SMS."),
        "{html}"
    );
    assert!(html.contains("How to search"));
    assert!(html.contains("in any order"));
    assert!(html.contains("as dialled in US (read as +1)"));
    assert!(html.contains(&format!(
        "href=\"/locations/{downtown}/contacts\" id=\"clear-search\""
    )));
    // The search box keeps what was typed.
    assert!(html.contains("value=\"zzqx nobody\""));

    let html = search(&app, downtown, "999 999 9999").await;
    assert!(html.contains("This search was read as a phone number."));
}

#[actix_web::test]
async fn the_pager_says_where_the_page_is_in_the_list() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::LOCATION_USER).await;

    let count = |html: &str| {
        html.split("id=\"list-count\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or_default()
            .to_string()
    };
    let next = |html: &str| {
        html.split("rel=\"next\" href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&")
            .replace("&amp;", "&")
    };
    let prev = |html: &str| {
        html.split("rel=\"prev\" href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&")
            .replace("&amp;", "&")
    };
    let (_, page1) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    assert_eq!(count(&page1), "1–50 of 200");
    let (_, page2) = app.get_text(&next(&page1)).await;
    assert_eq!(count(&page2), "51–100 of 200");
    let (_, page3) = app.get_text(&next(&page2)).await;
    let (_, page4) = app.get_text(&next(&page3)).await;
    assert_eq!(count(&page3), "101–150 of 200");
    assert_eq!(count(&page4), "151–200 of 200");
    let (_, back) = app.get_text(&prev(&page4)).await;
    assert_eq!(count(&back), "101–150 of 200");

    // A search counts its own matches.
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts?q=%2B1646"))
        .await;
    assert_eq!(count(&html), "1–50 of 100");
    let html = search(&app, downtown, "0196").await;
    assert_eq!(count(&html), "1–2 of 2");
}

#[actix_web::test]
async fn a_contact_without_a_name_is_called_by_its_number_or_email() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    add_contact(
        &app,
        downtown,
        "",
        Some("+12125550999"),
        "nameless@example.test",
    );
    add_contact(&app, downtown, "  ", None, "only-email@example.test");
    app.sign_in_as(demo::LOCATION_USER).await;

    let html = search(&app, downtown, "0999").await;
    assert!(
        rows_of(&html).contains("<span class=\"unnamed\">+12125550999</span>"),
        "{html}"
    );
    let id = rows_of(&html)
        .split("/contacts/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let (code, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert_eq!(code, 200);
    assert!(
        page.contains("<title>+12125550999 · Downtown Dental"),
        "{page}"
    );
    assert!(page.contains("<h1>+12125550999"));

    let html = search(&app, downtown, "only-email").await;
    assert!(rows_of(&html).contains("only-email@example.test</span>"));
}

#[actix_web::test]
async fn a_name_deep_in_a_long_list_is_found_and_a_long_list_is_counted() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    // 12,000 names that sort before any other (more than a search walks
    // at once), then one after them all.
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, email) \
         SELECT $1, 'Aaa Filler ' || lpad(i::text, 5, '0'), 'filler' || i || '@example.test' \
         FROM generate_series(1, 12000) AS i",
    )
    .bind::<diesel::sql_types::BigInt, _>(downtown)
    .execute(&mut app.db.conn())
    .unwrap();
    add_contact(&app, downtown, "Zed Quincy", None, "zq@example.test");
    app.sign_in_as(demo::LOCATION_USER).await;

    let html = search(&app, downtown, "quincy zed").await;
    assert_eq!(count_rows(&html), 1);
    assert!(rows_of(&html).contains("Zed Quincy"));

    let html = search(&app, downtown, "filler").await;
    assert_eq!(count_rows(&html), 50);
    // A name search is not walked past the page (a million names would
    // be): it says what it knows.
    assert!(
        html.contains("id=\"list-count\">1–50 of at least 51<"),
        "{html}"
    );
    // Searched to the end, it knows them all.
    let html = search(&app, downtown, "quincy").await;
    assert!(html.contains("id=\"list-count\">1–1 of 1<"), "{html}");

    // A rarer name, after the stretch a search walks, pages as any list.
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, email) \
         SELECT $1, 'Zed Pagey ' || lpad(i::text, 2, '0'), 'pagey' || i || '@example.test' \
         FROM generate_series(1, 60) AS i",
    )
    .bind::<diesel::sql_types::BigInt, _>(downtown)
    .execute(&mut app.db.conn())
    .unwrap();
    let html = search(&app, downtown, "pagey zed").await;
    assert_eq!(count_rows(&html), 50);
    assert!(html.contains("id=\"list-count\">1–50 of 60<"), "{html}");
    assert!(rows_of(&html).contains("Zed Pagey 01") && !rows_of(&html).contains("Zed Pagey 51"));
    let next = html
        .split("rel=\"next\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    let (_, page2) = app.get_text(&next).await;
    assert_eq!(count_rows(&page2), 10);
    assert!(rows_of(&page2).contains("Zed Pagey 51") && rows_of(&page2).contains("Zed Pagey 60"));
    assert!(page2.contains("id=\"list-count\">51–60 of "), "{page2}");

    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    let counted = html
        .split("id=\"list-count\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_default()
        .to_string();
    // Past 1,000: the planner's estimate, or at least what was counted
    // when the statistics do not know the rows yet.
    assert!(
        counted.starts_with("1–50 of ≈") || counted == "1–50 of at least 1,001",
        "{counted}"
    );
}

/// The count a list page shows (`1–50 of 61`).
fn list_count(html: &str) -> String {
    html.split("id=\"list-count\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_default()
        .to_string()
}

/// The whole location's estimate is kept a minute, but a location small
/// enough to count is still counted on every view: a contact added or
/// deleted shows in the total at once.
#[actix_web::test]
async fn the_lists_total_follows_contacts_added_and_deleted_at_once() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, email) \
         SELECT $1, 'Counted ' || i, 'counted' || i || '@example.test' \
         FROM generate_series(1, 60) AS i",
    )
    .bind::<diesel::sql_types::BigInt, _>(downtown)
    .execute(&mut app.db.conn())
    .unwrap();
    app.sign_in_as(demo::LOCATION_USER).await;
    let path = format!("/locations/{downtown}/contacts");
    let (_, html) = app.get_text(&path).await;
    let before: i64 = list_count(&html)
        .strip_prefix("1–50 of ")
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("{}", list_count(&html)));
    assert!(before > 60, "{before}");

    add_contact(&app, downtown, "Counted Late", None, "late@example.test");
    let (_, html) = app.get_text(&path).await;
    assert_eq!(list_count(&html), format!("1–50 of {}", before + 1));

    diesel::sql_query("DELETE FROM contacts WHERE location_id = $1 AND name LIKE 'Counted 1%'")
        .bind::<diesel::sql_types::BigInt, _>(downtown)
        .execute(&mut app.db.conn())
        .unwrap();
    let (_, html) = app.get_text(&path).await;
    // Counted 1, 10–19, 100… : 11 of the 60.
    assert_eq!(list_count(&html), format!("1–50 of {}", before + 1 - 11));
}

/// The planner's estimate of a location's contacts is planned once a
/// minute, not on every view: kept, it is the same figure after the
/// statistics change; a pool of its own plans it again.
#[test]
fn a_locations_estimate_is_kept_not_planned_on_every_view() {
    let db = crate::common::TestDb::new();
    let mut conn = db.conn();
    let downtown = locations::find_by_name(&mut conn, demo::DOWNTOWN)
        .unwrap()
        .unwrap()
        .id;
    let grow = |conn: &mut diesel::PgConnection| {
        diesel::sql_query(
            "INSERT INTO contacts (location_id, name) \
             SELECT $1, 'Estimated ' || i FROM generate_series(1, 20000) AS i",
        )
        .bind::<diesel::sql_types::BigInt, _>(downtown)
        .execute(conn)
        .unwrap();
        diesel::sql_query("ANALYZE contacts").execute(conn).unwrap();
    };
    grow(&mut conn);
    let kept = contacts::Estimates::default();
    let first = kept.whole_location(&mut conn, downtown).unwrap();
    assert!((15_000..30_000).contains(&first), "{first}");
    grow(&mut conn);
    assert_eq!(kept.whole_location(&mut conn, downtown).unwrap(), first);
    let fresh = contacts::Estimates::default()
        .whole_location(&mut conn, downtown)
        .unwrap();
    assert!(fresh > first + 10_000, "{fresh} after {first}");
}
