use crate::common::spawn_app;
use dnd::db::demo;

fn count_rows(html: &str) -> usize {
    rows_of(html).matches("/contacts/").count()
}

/// The list's rows (the page's other links to contacts, such as "New
/// contact", left out).
fn rows_of(html: &str) -> &str {
    let body = html.split("<tbody>").nth(1).unwrap_or("");
    body.split("</tbody>").next().unwrap_or("")
}

/// The target of the pager link `rel` ("next" or "prev"), unescaped.
fn href_of(html: &str, rel: &str) -> String {
    html.split(&format!("rel=\"{rel}\" href=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {rel} link"))
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

#[actix_web::test]
async fn the_contact_list_pages_through_every_contact_in_a_stable_order() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::LOCATION_USER).await;

    let mut path = format!("/locations/{downtown}/contacts");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (code, html) = app.get_text(&path).await;
        assert_eq!(code, 200);
        pages += 1;
        let names: Vec<String> = rows_of(&html)
            .split("/contacts/")
            .skip(1)
            .filter_map(|chunk| {
                chunk
                    .split_once("\">")
                    .map(|(_, rest)| rest.split('<').next().unwrap().to_string())
            })
            .collect();
        seen.extend(names);
        if !html.contains("rel=\"next\"") {
            break;
        }
        path = href_of(&html, "next");
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 4, "200 contacts, 50 a page");
    assert_eq!(seen.len(), demo::CONTACTS_PER_LOCATION);
    let mut sorted = seen.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(seen, sorted, "ordered by name");

    // Going back from page 2 gives page 1 again.
    let (_, first) = app
        .get_text(&format!("/locations/{downtown}/contacts"))
        .await;
    let (_, second) = app.get_text(&href_of(&first, "next")).await;
    let (_, back) = app.get_text(&href_of(&second, "prev")).await;
    assert_eq!(count_rows(&back), count_rows(&first));
    assert_eq!(
        back.split("<tbody>").nth(1),
        first.split("<tbody>").nth(1),
        "previous of page 2 is page 1"
    );
}

#[actix_web::test]
async fn search_finds_contacts_by_name_phone_or_email() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::LOCATION_USER).await;
    let base = format!("/locations/{downtown}/contacts");

    // By phone, written the way people write it.
    let (code, html) = app.get_text(&format!("{base}?q=%2B1+212+555+0100")).await;
    assert_eq!(code, 200);
    assert!(html.contains("+12125550100"));
    assert_eq!(count_rows(&html), 1);

    // By a prefix: all of one area code (100 demo contacts), paged by 50.
    let (_, html) = app.get_text(&format!("{base}?q=%2B1646")).await;
    assert_eq!(count_rows(&html), 50);
    assert!(!html.contains("+1212"));
    assert!(
        html.contains("rel=\"next\""),
        "a next page keeps the search"
    );
    // A phone search lists by number.
    let phones: Vec<&str> = html
        .split("<td>+1")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap())
        .collect();
    assert_eq!(phones.len(), 50);
    assert!(phones.windows(2).all(|w| w[0] < w[1]), "{phones:?}");
    assert_eq!(phones[0], "6465550100");
    let next = href_of(&html, "next");
    assert!(next.contains("q=%2B1646"), "{next}");
    let (_, page2) = app.get_text(&next).await;
    assert_eq!(count_rows(&page2), 50);
    assert!(!page2.contains("+1212"), "page 2 is still the search");
    assert!(page2.contains("+16465550150") && !page2.contains("+16465550149"));
    assert!(!page2.contains("rel=\"next\""), "and the last one");

    // By email, any case.
    let (_, html) = app.get_text(&format!("{base}?q=EXAMPLE.ORG")).await;
    let rows = html.split("<tbody>").nth(1).unwrap();
    assert!(rows.contains("@example.org") && !rows.contains("@example.com"));

    // By part of a name.
    let (_, html) = app.get_text(&format!("{base}?q=garc")).await;
    assert!(html.contains("Garcia"));
    assert!(!html.contains("Tanaka"));

    // Nothing found says so; wildcards are literal.
    let (_, html) = app.get_text(&format!("{base}?q=%25%25zz")).await;
    assert!(html.contains("No contact matches"));
    assert_eq!(count_rows(&html), 0);
}

#[actix_web::test]
async fn the_contact_record_shows_the_contact_and_the_location_channels() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let contact = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+12125550100").unwrap(),
    )
    .unwrap()
    .unwrap();
    app.sign_in_as(demo::LOCATION_USER).await;
    let (code, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{}", contact.id))
        .await;
    assert_eq!(code, 200);
    assert!(html.contains(&contact.name.replace('\'', "&#x27;")) || html.contains(&contact.name));
    assert!(html.contains("+12125550100"));
    assert!(html.contains(contact.email.as_deref().unwrap()));
    assert!(
        html.contains("id=\"switch-whatsapp\""),
        "WhatsApp is connected: offered"
    );
    assert!(
        !html.contains("id=\"switch-gmb\""),
        "GMB is disconnected: not offered"
    );
    // Secrets of the integrations never reach a page.
    assert!(!html.contains(demo::TWILIO_AUTH_TOKEN));
    assert!(!html.contains(demo::MAILGUN_SIGNING_KEY));
}

#[actix_web::test]
async fn pages_escape_what_contacts_contain() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (c, _) = dnd::db::contacts::upsert(
        &mut app.db.conn(),
        downtown,
        &dnd::db::contacts::ContactInput {
            name: Some("<script>alert(1)</script>".into()),
            email: Some(dnd::domain::EmailAddress::parse("x@example.com").unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap();
    app.sign_in_as(demo::LOCATION_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{}", c.id))
        .await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
}

#[actix_web::test]
async fn static_files_are_served_locally() {
    let app = spawn_app().await;
    let r = app.get("/static/app.css").await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(app.get("/static/nope.js").await.status().as_u16(), 404);
    // Every form input has a label: the sign-in page.
    let (_, html) = app.get_text("/login").await;
    for id in ["email", "password"] {
        assert!(
            html.contains(&format!("<label for=\"{id}\">")),
            "label for {id}"
        );
    }
    assert!(
        !html.contains("http://cdn") && !html.contains("https://"),
        "no CDN"
    );
}

#[actix_web::test]
async fn health_is_ok_with_the_database_and_503_without_it() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status().as_u16(), 200);
    app.db.drop_now();
    let r = app.get("/healthz").await;
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
}
