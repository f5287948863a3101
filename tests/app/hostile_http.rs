//! Hostile HTTP against the running app (issue 13): oversize bodies, wrong
//! content types and invalid UTF-8 answer a 4xx that says why and store
//! nothing; markup in every field a user (or a provider's sender) can fill
//! is rendered escaped wherever it shows; line breaks never make a header
//! nor break TwiML.

use serde_json::json;

use crate::common::{location, spawn_app, TestApp};
use crate::fuzz_regressions::check_twiml;
use crate::webhooks::{count, inbound, mailgun_body, mailgun_post, twilio_post};
use dnd::db::demo;
use dnd::webhooks::signatures::{sign, twilio_signature};

const SCRIPT: &str = "<script>alert(1)</script>";
/// As askama escapes: numeric entities.
const SCRIPT_ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";
const IMG: &str = "\"><img src=x onerror=alert(1)>";
const IMG_ESCAPED: &str = "&#34;&#62;&#60;img src=x onerror=alert(1)&#62;";

fn stored(app: &TestApp) -> (i64, i64, i64) {
    (
        count(app, "SELECT count(*) AS n FROM contacts"),
        count(app, "SELECT count(*) AS n FROM webhook_events"),
        count(app, "SELECT count(*) AS n FROM dnd_history"),
    )
}

/// No raw tag of either payload on the page.
fn assert_no_markup(page: &str, what: &str) {
    for raw in [
        "<script>alert(1)",
        "<img src=x onerror",
        "<SCRIPT>ALERT(1)",
        "<IMG SRC",
    ] {
        assert!(!page.contains(raw), "{what}: {raw} rendered unescaped");
    }
}

/// The payloads as the page must show them: escaped, not dropped.
fn assert_escaped(page: &str, what: &str, escaped: &[&str]) {
    assert_no_markup(page, what);
    for e in escaped {
        assert!(page.contains(e), "{what}: {e} is not on the page");
    }
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut r = app.client.post(app.url(path));
    if let Some(t) = content_type {
        r = r.header("content-type", t);
    }
    for (name, value) in headers {
        r = r.header(*name, value);
    }
    let r = r.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[actix_web::test]
async fn oversize_bodies_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let before = stored(&app);
    let bearer = [(
        "authorization",
        format!("Bearer {}", demo::API_KEY_DOWNTOWN),
    )];
    // The API takes up to 4 MiB of JSON (a 100,000-recipient bulk send).
    let big = json!({"name": "x".repeat(4 * 1024 * 1024 + 1), "phone": "+14155551000"});
    let (status, body) = raw_post(
        &app,
        "/api/v1/contacts",
        Some("application/json"),
        &bearer,
        big.to_string().into_bytes(),
    )
    .await;
    assert!(matches!(status, 400 | 413), "{status} {body}");
    assert!(body.contains("4 MiB"), "{body}");
    // A page form: at most 256 KiB.
    app.sign_in_as(demo::AGENCY_USER).await;
    let csrf = app.csrf_from("/locations").await;
    let name = "x".repeat(300 * 1024);
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts"),
            &[
                ("csrf_token", &csrf),
                ("name", &name),
                ("phone", "+14155551001"),
            ],
        )
        .await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(matches!(status, 400 | 413), "{status}");
    assert!(body.contains("could not be read"), "{body}");
    // Webhooks: at most 64 KiB, refused unread.
    let padding = "x".repeat(65 * 1024);
    let mut params = inbound("SMbig", "+14155551002", "STOP");
    params.push(("Padding", &padding));
    let (status, body) = twilio_post(&app, downtown, "sms", &params).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("larger than 64 KiB"), "{body}");
    let event = json!({"event": "unsubscribed", "id": "big", "recipient": "big@example.com", "pad": padding});
    let now = chrono::Utc::now().timestamp();
    let (status, body) = mailgun_post(
        &app,
        downtown,
        &mailgun_body(demo::MAILGUN_SIGNING_KEY, "big-token", now, event),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let raw = json!({"object": "page", "entry": [], "pad": padding}).to_string();
    let (status, _) = raw_post(
        &app,
        &format!("/webhooks/meta/{downtown}"),
        Some("application/json"),
        &[(
            "x-hub-signature-256",
            sign::meta(demo::META_APP_SECRET, raw.as_bytes()),
        )],
        raw.into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(stored(&app), before, "something was stored");
}

#[actix_web::test]
async fn api_bodies_of_another_content_type_are_refused_with_a_message() {
    let app = spawn_app().await;
    let before = stored(&app);
    let contact = json!({"name": "Typed", "phone": "+14155551010"}).to_string();
    let dnd = json!({"channels": {"sms": true}}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/html"),
    ] {
        for (method, path, body) in [
            ("POST", "/api/v1/contacts".to_string(), &contact),
            ("PUT", "/api/v1/contacts/1/dnd".to_string(), &dnd),
            ("POST", "/api/v1/dnd/bulk".to_string(), &dnd),
        ] {
            let mut r = app
                .client
                .request(method.parse().unwrap(), app.url(&path))
                .bearer_auth(demo::API_KEY_DOWNTOWN)
                .body(body.clone());
            if let Some(t) = content_type {
                r = r.header("content-type", t);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let answer: serde_json::Value = r.json().await.unwrap();
            assert!(
                matches!(status, 400 | 415),
                "{method} {path} as {content_type:?}: {status} {answer}"
            );
            assert!(
                answer
                    .to_string()
                    .contains("Content-Type: application/json"),
                "{method} {path}: {answer}"
            );
        }
    }
    assert_eq!(stored(&app), before);
}

#[actix_web::test]
async fn invalid_utf8_answers_a_4xx_and_stores_nothing() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let before = stored(&app);
    let bearer = [(
        "authorization",
        format!("Bearer {}", demo::API_KEY_DOWNTOWN),
    )];
    // JSON.
    let (status, body) = raw_post(
        &app,
        "/api/v1/contacts",
        Some("application/json"),
        &bearer,
        b"{\"name\": \"Jos\xe9\", \"phone\": \"+14155551020\"}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("could not be read"), "{body}");
    // A page form: a raw byte, and a percent-encoded one.
    app.sign_in_as(demo::AGENCY_USER).await;
    let csrf = app.csrf_from("/locations").await;
    let origin = [("origin", app.base.clone())];
    for name in [&b"Jos\xe9"[..], b"Jos%E9", b"%FF%FE"] {
        let mut form = format!("csrf_token={csrf}&phone=%2B14155551021&name=").into_bytes();
        form.extend_from_slice(name);
        let (status, body) = raw_post(
            &app,
            &format!("/locations/{downtown}/contacts"),
            Some("application/x-www-form-urlencoded"),
            &origin,
            form,
        )
        .await;
        assert_eq!(status, 400, "{}: {body}", String::from_utf8_lossy(name));
        assert!(body.contains("UTF-8"), "{body}");
    }
    // Query strings and paths: never a 500.
    for path in [
        format!("/locations/{downtown}/contacts?q=%FF%FE"),
        format!("/locations/{downtown}/contacts?q=\u{e9}"),
        "/locations/%FF/contacts".to_string(),
        "/api/v1/contacts?phone=%FF".to_string(),
    ] {
        let (status, body) = app.get_text(&path).await;
        assert!(status < 500, "{path}: {status} {body}");
    }
    // Webhooks: a Twilio form that cannot be read cannot be verified
    // (403); Mailgun's likewise (406); a signed Meta body that is not JSON
    // is malformed (400).
    let form = b"MessageSid=SMutf&From=%2B14155551022&Body=ST%FFOP".to_vec();
    let params = vec![
        ("MessageSid".to_string(), "SMutf".to_string()),
        ("From".to_string(), "+14155551022".to_string()),
        ("Body".to_string(), "ST\u{fffd}OP".to_string()),
    ];
    let path = format!("/webhooks/twilio/{downtown}/sms");
    let signature = twilio_signature(&app.url(&path), &params, demo::TWILIO_AUTH_TOKEN);
    let (status, _) = raw_post(
        &app,
        &path,
        Some("application/x-www-form-urlencoded"),
        &[("x-twilio-signature", signature)],
        form,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = raw_post(
        &app,
        &format!("/webhooks/mailgun/{downtown}"),
        Some("application/json"),
        &[],
        b"{\"signature\": \"\xff\"}".to_vec(),
    )
    .await;
    assert_eq!(status, 406);
    let raw = b"{\"object\": \"page\xff\"}".to_vec();
    let (status, _) = raw_post(
        &app,
        &format!("/webhooks/meta/{downtown}"),
        Some("application/json"),
        &[(
            "x-hub-signature-256",
            sign::meta(demo::META_APP_SECRET, &raw),
        )],
        raw,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(stored(&app), before, "something was stored");
}

#[actix_web::test]
async fn markup_in_every_user_field_is_rendered_escaped() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let loc = format!("/locations/{downtown}");
    app.sign_in_as(demo::AGENCY_USER).await;
    let both = format!("{SCRIPT} {IMG}");
    let both_escaped = [SCRIPT_ESCAPED, IMG_ESCAPED];

    // The location's name.
    let (status, _) = app
        .submit(&format!("{loc}/settings/name"), &[("name", &both)])
        .await;
    assert_eq!(status, 303);
    // A contact typed in the form (a Messenger id takes no space: the
    // script alone).
    let (status, to) = app
        .submit(
            &format!("{loc}/contacts"),
            &[
                ("name", &both),
                ("phone", "+14155551030"),
                ("facebook_id", SCRIPT),
            ],
        )
        .await;
    assert_eq!(status, 303, "{to}");
    let contact = to
        .trim_start_matches(&format!("{loc}/contacts/"))
        .to_string();
    let contact_page = format!("{loc}/contacts/{contact}");
    // The form refused, shown again with what was typed.
    let (status, page) = app
        .submit(
            &format!("{loc}/contacts"),
            &[("name", &both), ("phone", IMG), ("email", IMG)],
        )
        .await;
    assert_eq!(status, 422);
    assert_escaped(&page, "the refused contact form", &both_escaped);
    // A contact by the API, and an inbound SMS from a new number.
    let (status, answer) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"name": both, "phone": "+14155551031", "facebook_id": format!("{SCRIPT}2")}),
        )
        .await;
    assert!(status < 300, "{answer}");
    let (status, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMxss", "+14155551032", &both),
    )
    .await;
    assert_eq!(status, 200);
    // SMS keywords and replies, the calls message, an API key's name.
    let (status, page) = app
        .submit(
            &format!("{loc}/settings/sms"),
            &[
                (
                    "opt_out_keywords",
                    &format!("STOP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE, {SCRIPT}"),
                ),
                ("opt_in_keywords", &format!("START\n{IMG}")),
                ("help_keywords", "HELP"),
                ("opt_out_reply", &both),
                ("opt_in_reply", &both),
                ("help_reply", &both),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let (status, page) = app
        .submit(
            &format!("{loc}/settings/voice"),
            &[("forward_to", ""), ("message", &both)],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let (status, page) = app
        .submit(&format!("{loc}/api-keys"), &[("name", &both)])
        .await;
    assert!(status < 400, "{page}");
    // A bulk change's note, shown in the contact's history.
    let (status, page) = app
        .submit(
            &format!("{loc}/contacts/bulk-dnd"),
            &[
                ("scope", "ticked"),
                ("contact_ids", &contact),
                ("target", "email"),
                ("turn", "on"),
                ("note", &both),
            ],
        )
        .await;
    assert!(status < 400, "{page}");
    assert_no_markup(&page, "the bulk result");
    // The API's bulk change note, and a webhook subscription's URL.
    let (status, answer) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/dnd/bulk",
            json!({"contact_ids": [contact.parse::<i64>().unwrap()], "channels": {"sms": true}, "note": both}),
        )
        .await;
    assert!(status < 300, "{answer}");
    let (status, answer) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/webhook-subscriptions",
            json!({"url": format!("http://127.0.0.1:9/hook?a={IMG}#{SCRIPT}")}),
        )
        .await;
    assert!(status < 500, "{answer}");
    // An import whose rows are refused with what they held.
    let file = format!(
        "name,phone,email\n\"{}\",{SCRIPT},{IMG}\n",
        both.replace('"', "\"\"")
    );
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", app.csrf_from(&format!("{loc}/imports")).await)
        .text("kind", "contacts")
        .part(
            "file",
            reqwest::multipart::Part::bytes(file.into_bytes()).file_name(format!("{SCRIPT}.csv")),
        );
    let r = app
        .client
        .post(app.url(&format!("{loc}/imports")))
        .header("origin", &app.base)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let import = location(&r);
    assert!(r.status().as_u16() < 400, "{}", r.text().await.unwrap());

    let mut pages = vec![
        ("/locations".to_string(), vec![SCRIPT_ESCAPED, IMG_ESCAPED]),
        (loc.clone(), vec![SCRIPT_ESCAPED, IMG_ESCAPED]),
        (format!("{loc}/contacts"), vec![SCRIPT_ESCAPED, IMG_ESCAPED]),
        (
            format!("{loc}/contacts?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            vec![SCRIPT_ESCAPED],
        ),
        (contact_page.clone(), vec![SCRIPT_ESCAPED, IMG_ESCAPED]),
        (
            format!("{contact_page}/edit"),
            vec![SCRIPT_ESCAPED, IMG_ESCAPED],
        ),
        (
            format!("{loc}/settings"),
            vec![
                SCRIPT_ESCAPED,
                IMG_ESCAPED,
                "&#60;SCRIPT&#62;ALERT(1)&#60;/SCRIPT&#62;",
                "&#34;&#62;&#60;IMG SRC=X ONERROR=ALERT(1)&#62;",
            ],
        ),
        (format!("{loc}/api-keys"), vec![SCRIPT_ESCAPED, IMG_ESCAPED]),
        (format!("{loc}/integrations"), vec![SCRIPT_ESCAPED]),
        (format!("{loc}/imports"), vec![SCRIPT_ESCAPED]),
        ("/agency".to_string(), vec![SCRIPT_ESCAPED]),
        (
            "/agency/contacts?q=%3Cscript%3E".to_string(),
            vec!["&#60;script&#62;"],
        ),
    ];
    if !import.is_empty() {
        pages.push((import.clone(), vec![SCRIPT_ESCAPED]));
    }
    for (path, escaped) in &pages {
        let (status, page) = app.get_text(path).await;
        assert_eq!(status, 200, "{path}");
        assert_escaped(&page, path, escaped);
    }
    // The contact the inbound SMS made, with the message in its timeline.
    let (_, list) = app
        .get_text(&format!("{loc}/contacts?q=%2B14155551032"))
        .await;
    let texter = list
        .split(&format!("{loc}/contacts/"))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the texter's contact");
    let (status, page) = app.get_text(&format!("{loc}/contacts/{texter}")).await;
    assert_eq!(status, 200);
    assert_escaped(&page, "the texter's timeline", &both_escaped);
    let _ = answer;
}

#[actix_web::test]
async fn line_breaks_never_make_a_header_nor_break_twiml() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let loc = format!("/locations/{downtown}");
    // Line breaks, markup, a control character and U+FFFE (which XML
    // forbids). The forms refuse a NUL (see hostile.rs) and the calls
    // message a control character; the rest is text.
    let injected = "Bye\r\nX-Injected: 1\r\n\r\n</Message><Redirect>https://evil.example/</Redirect><Message>&amp;\u{7}\u{FFFE}";
    app.sign_in_as(demo::AGENCY_USER).await;
    let (status, page) = app
        .submit(
            &format!("{loc}/settings/sms"),
            &[
                (
                    "opt_out_keywords",
                    "STOP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE",
                ),
                ("opt_in_keywords", "START"),
                ("help_keywords", "HELP"),
                ("opt_out_reply", injected),
                ("opt_in_reply", injected),
                ("help_reply", injected),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let (status, page) = app
        .submit(
            &format!("{loc}/settings/voice"),
            &[
                ("forward_to", ""),
                ("message", &injected.replace('\u{7}', "")),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let (status, _) = app
        .submit(&format!("{loc}/settings/name"), &[("name", injected)])
        .await;
    assert!(matches!(status, 303 | 400 | 422), "{status}");
    // Each keyword's reply is one <Message> of well-formed TwiML, and no
    // header of the answer came from it.
    for (sid, body) in [("SMcr1", "STOP"), ("SMcr2", "START"), ("SMcr3", "HELP")] {
        let path = format!("/webhooks/twilio/{downtown}/sms");
        let params = crate::webhooks::form(&inbound(sid, "+14155551040", body));
        let r = app
            .client
            .post(app.url(&path))
            .header(
                "X-Twilio-Signature",
                twilio_signature(&app.url(&path), &params, demo::TWILIO_AUTH_TOKEN),
            )
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{body}");
        assert!(r.headers().get("x-injected").is_none(), "{:?}", r.headers());
        let twiml = r.text().await.unwrap();
        check_twiml(&twiml);
        assert!(
            twiml.contains("&lt;/Message&gt;&lt;Redirect&gt;"),
            "{twiml}"
        );
    }
    // The voice answer.
    let path = format!("/webhooks/twilio/{downtown}/voice");
    let params = crate::webhooks::form(&[
        ("CallSid", "CAcr1"),
        ("From", "+14155551041"),
        ("To", "+12125559999"),
    ]);
    let r = app
        .client
        .post(app.url(&path))
        .header(
            "X-Twilio-Signature",
            twilio_signature(&app.url(&path), &params, demo::TWILIO_AUTH_TOKEN),
        )
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-injected").is_none());
    check_twiml(&r.text().await.unwrap());
    // Pages showing those texts set no header from them.
    for path in [format!("{loc}/settings"), "/locations".to_string()] {
        let r = app.get(&path).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.headers().get("x-injected").is_none(), "{path}");
    }
    // A line break in where sign-in goes back to is not a header either.
    let client = crate::common::new_client();
    let page = client
        .get(app.url("/login?next=%2Flocations%0D%0ASet-Cookie:%20injected=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::common::csrf_in(&page).unwrap();
    let r = client
        .post(app.url("/login"))
        .header("origin", &app.base)
        .form(&[
            ("email", demo::AGENCY_USER),
            ("password", demo::PASSWORD),
            ("csrf_token", &csrf),
            ("next", "/locations\r\nSet-Cookie: injected=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/locations");
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap_or("").contains("injected")));
}
