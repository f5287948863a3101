//! The settings page as its readers meet it (issue 14): a banner when the
//! webhook URLs point at this machine, each secret under its provider's
//! name, Meta's verify token for who manages the integrations, only the
//! location's connected integrations, and each URL as a block with a copy
//! button.

use crate::common::{csrf_in, new_client, spawn_app, spawn_app_with, TestApp};
use dnd::db::demo;

/// The settings page's address.
fn settings(location_id: i64) -> String {
    format!("/locations/{location_id}/settings")
}

/// Signs in from `origin` (an app behind a `DND_PUBLIC_URL`, whose forms
/// must come from it).
async fn sign_in_from(app: &TestApp, origin: &str, email: &str) {
    let (_, html) = app.get_text("/login").await;
    let csrf = csrf_in(&html).unwrap();
    let r = app
        .client
        .post(app.url("/login"))
        .header("Origin", origin)
        .form(&[
            ("email", email),
            ("password", demo::PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "sign-in of {email}");
}

/// The banner, or `None` when the page has none.
fn banner(html: &str) -> Option<&str> {
    let id = html.find("id=\"public-url-warning\"")?;
    let start = html[..id].rfind("<div")?;
    let end = html[start..].find("</div>")? + start;
    Some(&html[start..end])
}

/// Every URL block of a page: its id, the text shown, and what its copy
/// button copies.
fn url_blocks(html: &str) -> Vec<(String, String, String)> {
    let attr = |s: &str, name: &str| -> String {
        let marker = format!("{name}=\"");
        let from = s.find(&marker).unwrap() + marker.len();
        s[from..from + s[from..].find('"').unwrap()].to_string()
    };
    html.split("<div class=\"url-block\"")
        .skip(1)
        .map(|block| {
            let block = &block[..block.find("</div>").unwrap()];
            let code = &block[block.find("<code>").unwrap() + 6..block.find("</code>").unwrap()];
            let button = &block[block.find("<button").unwrap()..];
            assert!(
                button.starts_with("<button type=\"button\" class=\"copy\""),
                "{block}"
            );
            (
                attr(block, "id"),
                code.to_string(),
                attr(button, "data-copy"),
            )
        })
        .collect()
}

#[actix_web::test]
async fn urls_on_this_machine_get_a_banner_that_says_what_to_set() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let (code, html) = app.get_text(&settings(downtown)).await;
    assert_eq!(code, 200);
    // The tests' server answers on http://127.0.0.1:<port>, and no
    // DND_PUBLIC_URL is set.
    let said = banner(&html).expect("a banner for a loopback address");
    assert!(said.contains("role=\"alert\""), "{said}");
    assert!(said.contains("class=\"notice warning\""), "{said}");
    assert!(said.contains("Providers cannot reach"), "{said}");
    assert!(
        said.contains(&format!("<code>{}</code>", app.base)),
        "{said}"
    );
    assert!(said.contains("loopback"), "{said}");
    assert!(said.contains("is not set"), "{said}");
    assert!(
        said.contains("DND_PUBLIC_URL=https://your-host"),
        "says what to set: {said}"
    );
    // Support reads the same page, and the same warning.
    app.switch_to(demo::SUPPORT_USER).await;
    let (code, html) = app.get_text(&settings(downtown)).await;
    assert_eq!(code, 200);
    assert!(banner(&html).is_some(), "support sees it too");
}

#[actix_web::test]
async fn a_public_url_on_a_real_host_has_no_banner_and_starts_every_url() {
    const SITE: &str = "http://dnd.example.com";
    let app = spawn_app_with(|c| c.public_url = Some(SITE.into())).await;
    let downtown = app.location_id(demo::DOWNTOWN);
    sign_in_from(&app, SITE, demo::AGENCY_USER).await;
    let (code, html) = app.get_text(&settings(downtown)).await;
    assert_eq!(code, 200);
    assert!(banner(&html).is_none(), "no banner for a real host");
    assert!(!html.contains("DND_PUBLIC_URL=https://your-host"));
    let blocks = url_blocks(&html);
    let urls: Vec<&(String, String, String)> =
        blocks.iter().filter(|b| b.0.starts_with("url-")).collect();
    assert!(!urls.is_empty());
    for (id, shown, _) in urls {
        assert!(
            shown.starts_with(&format!("{SITE}/webhooks/")),
            "{id}: {shown}"
        );
    }
}

#[actix_web::test]
async fn a_public_url_set_to_a_loopback_address_gets_the_banner_too() {
    let app = spawn_app_with(|c| c.public_url = Some("http://127.0.0.1:8080".into())).await;
    let downtown = app.location_id(demo::DOWNTOWN);
    sign_in_from(&app, "http://127.0.0.1:8080", demo::AGENCY_USER).await;
    let (_, html) = app.get_text(&settings(downtown)).await;
    let said = banner(&html).expect("a banner");
    assert!(
        said.contains("<code>http://127.0.0.1:8080</code>"),
        "{said}"
    );
    assert!(said.contains("is set to it"), "{said}");
    assert!(
        html.contains("data-copy=\"http://127.0.0.1:8080/webhooks/mailgun/"),
        "the URLs are the configured ones"
    );
}

#[actix_web::test]
async fn each_secret_is_named_as_its_provider_names_it() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let page = settings(downtown);
    let (_, html) = app.get_text(&page).await;
    for label in [
        "New Auth Token for SMS",
        "New Auth Token for Calls",
        "New HTTP webhook signing key for Email",
        "New App Secret for WhatsApp",
        "New App Secret for Facebook Messenger",
    ] {
        assert!(html.contains(label), "{label}");
    }
    assert!(!html.contains("New secret"), "no generic name left");
    assert!(!html.contains("Webhook secret"));

    // A refused secret is named in the error, and a replaced one in the
    // confirmation.
    let (code, html) = app
        .submit(
            &format!("{page}/integrations/email/secret"),
            &[("secret", "short")],
        )
        .await;
    assert_eq!(code, 422);
    assert!(
        html.contains("The new HTTP webhook signing key must have at least 8 characters"),
        "{html}"
    );
    let (code, _) = app
        .submit(
            &format!("{page}/integrations/facebook/secret"),
            &[("secret", "rotated-app-secret-1")],
        )
        .await;
    assert_eq!(code, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains("The Facebook Messenger App Secret was replaced."));

    // The integrations page's connect forms and their errors.
    let integrations = format!("/locations/{downtown}/integrations");
    let (_, html) = app.get_text(&integrations).await;
    for label in [
        ">Auth Token (stored; blank keeps it)</label>",
        ">HTTP webhook signing key (stored; blank keeps it)</label>",
        ">App Secret (stored; blank keeps it)</label>",
        ">Verify token (stored; blank keeps it)</label>",
    ] {
        assert!(html.contains(label), "{label}");
    }
    // A new location: nothing stored, so each secret is asked for by name.
    let lakeside = {
        let mut conn = app.db.conn();
        let agency = dnd::db::locations::find_agency_by_name(&mut conn, demo::AGENCY)
            .unwrap()
            .unwrap();
        dnd::db::locations::create(&mut conn, agency, "Lakeside Physio", "America/Denver")
            .unwrap()
            .id
    };
    let connect = |channel: &str| format!("/locations/{lakeside}/integrations/{channel}/connect");
    for (channel, said) in [
        ("sms", "give the Auth Token"),
        ("email", "give the HTTP webhook signing key"),
        ("whatsapp", "give the App Secret"),
        ("whatsapp", "give the Verify token"),
    ] {
        let (code, html) = app.submit(&connect(channel), &[]).await;
        assert_eq!(code, 422, "{channel}");
        assert!(html.contains(said), "{channel}: {said}");
    }
}

#[actix_web::test]
async fn the_meta_verify_token_is_shown_only_to_who_manages_the_integrations() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let page = settings(downtown);
    let token_block = format!("data-copy=\"{}\"", demo::META_VERIFY_TOKEN);

    // The agency's users manage the location's integrations: Meta's
    // Callback URL and Verify token, side by side, each to copy.
    app.sign_in_as(demo::AGENCY_USER).await;
    let r = app.get(&page).await;
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "a page with a secret is never cached"
    );
    let html = r.text().await.unwrap();
    let meta = &html[html.find("id=\"setup-meta\"").expect("Meta's set-up")..];
    let meta = &meta[..meta.find("</section>").unwrap()];
    let blocks = url_blocks(meta);
    assert_eq!(
        blocks,
        vec![
            (
                "url-meta".to_string(),
                app.url(&format!("/webhooks/meta/{downtown}")),
                app.url(&format!("/webhooks/meta/{downtown}")),
            ),
            (
                "verify-token-meta".to_string(),
                demo::META_VERIFY_TOKEN.to_string(),
                demo::META_VERIFY_TOKEN.to_string(),
            ),
        ],
        "one token for both channels: one block"
    );
    assert!(meta.contains(">Verify token</p>"));
    assert!(meta.contains(">Callback URL"));

    // Messenger given its own token: each channel's, named.
    let (code, _) = app
        .submit(
            &format!("/locations/{downtown}/integrations/facebook/connect"),
            &[
                ("verify_token", "messenger-verify-2"),
                ("account_id", "1234567890"),
                ("access_token", "EAAB-messenger-access"),
            ],
        )
        .await;
    assert_eq!(code, 303);
    let (_, html) = app.get_text(&page).await;
    assert!(html.contains(">Verify token (WhatsApp)</p>"));
    assert!(html.contains(">Verify token (Facebook Messenger)</p>"));
    assert!(html.contains(&token_block));
    assert!(html.contains("data-copy=\"messenger-verify-2\""));

    // Support reads the settings, not the token.
    app.switch_to(demo::SUPPORT_USER).await;
    let (code, html) = app.get_text(&page).await;
    assert_eq!(code, 200);
    assert!(html.contains("id=\"url-meta\""), "the URL, yes");
    assert!(!html.contains(demo::META_VERIFY_TOKEN), "the token, no");
    assert!(!html.contains("messenger-verify-2"));
    assert!(!html.contains(">Verify token"));

    // A location user has no settings page, and nothing of it.
    app.switch_to(demo::LOCATION_USER).await;
    let (code, html) = app.get_text(&page).await;
    assert_eq!(code, 403);
    assert!(!html.contains(demo::META_VERIFY_TOKEN));

    // Another agency's admin: not theirs, as if it did not exist.
    app.switch_to_other_agency().await;
    let (code, html) = app.get_text(&page).await;
    assert_eq!(code, 404);
    assert!(!html.contains(demo::META_VERIFY_TOKEN));
}

#[actix_web::test]
async fn only_the_locations_connected_integrations_are_listed() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    app.sign_in_as(demo::AGENCY_USER).await;

    // Harbor connected SMS and email (Twilio, Mailgun) only.
    let (_, html) = app.get_text(&settings(harbor)).await;
    let shown: Vec<String> = url_blocks(&html).into_iter().map(|b| b.1).collect();
    assert_eq!(
        shown,
        vec![
            app.url(&format!("/webhooks/twilio/{harbor}/sms")),
            app.url(&format!("/webhooks/twilio/{harbor}/status")),
            app.url(&format!("/webhooks/mailgun/{harbor}")),
        ]
    );
    assert!(!html.contains("id=\"setup-meta\""));
    for channel in ["sms", "email"] {
        assert!(
            html.contains(&format!("id=\"settings-{channel}\"")),
            "{channel}"
        );
    }
    for channel in ["call", "facebook", "whatsapp", "gmb"] {
        assert!(
            !html.contains(&format!("id=\"settings-{channel}\"")),
            "{channel}"
        );
    }
    let others = &html[html.find("id=\"not-connected\"").expect("the others named")..];
    let others = &others[..others.find("</p>").unwrap()];
    assert!(
        others.contains("Not connected here: Calls, Facebook Messenger, WhatsApp."),
        "{others}"
    );
    assert!(
        others.contains(&format!("href=\"/locations/{harbor}/integrations\"")),
        "a way to connect them"
    );
    assert!(
        !others.contains("Google Business Messages"),
        "cannot be connected"
    );

    // Its integrations page: what it has first, then the others with
    // their connect forms.
    let (_, html) = app
        .get_text(&format!("/locations/{harbor}/integrations"))
        .await;
    let at = |marker: &str| {
        html.find(marker)
            .unwrap_or_else(|| panic!("{marker} missing"))
    };
    assert!(at("id=\"integration-sms\"") < at("id=\"integration-email\""));
    assert!(at("id=\"integration-email\"") < at("id=\"others-title\""));
    assert!(at("id=\"others-title\"") < at("id=\"integration-call\""));
    assert!(html.contains("id=\"connect-call\""), "still connectable");

    // Downtown's disconnected Google Business Messages is not on its
    // settings; a channel disconnected there leaves them too.
    let (status, _) = app
        .submit(
            &format!("/locations/{downtown}/integrations/whatsapp/disconnect"),
            &[],
        )
        .await;
    assert_eq!(status, 303);
    let (_, html) = app.get_text(&settings(downtown)).await;
    assert!(!html.contains("id=\"settings-gmb\""));
    assert!(!html.contains("id=\"settings-whatsapp\""));
    assert!(html.contains("id=\"settings-facebook\""));
    assert!(
        html.contains("id=\"url-meta\""),
        "Messenger still needs Meta's URL"
    );
    assert!(html.contains("Not connected here: WhatsApp."));

    // Support, reading, is told what is not connected, without a link to
    // connect it.
    app.client = new_client();
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (_, html) = app.get_text(&settings(harbor)).await;
    assert!(html.contains("Not connected here: Calls, Facebook Messenger, WhatsApp.</p>"));
}

#[actix_web::test]
async fn each_webhook_url_is_a_block_whose_copy_button_copies_it() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    app.sign_in_as(demo::AGENCY_USER).await;
    let (_, html) = app.get_text(&settings(downtown)).await;
    let blocks = url_blocks(&html);
    let urls: Vec<&(String, String, String)> =
        blocks.iter().filter(|b| b.0.starts_with("url-")).collect();
    let expected = [
        ("url-twilio-sms", format!("twilio/{downtown}/sms")),
        ("url-twilio-status", format!("twilio/{downtown}/status")),
        ("url-twilio-voice", format!("twilio/{downtown}/voice")),
        ("url-mailgun", format!("mailgun/{downtown}")),
        ("url-meta", format!("meta/{downtown}")),
    ];
    assert_eq!(urls.len(), expected.len(), "{urls:?}");
    for ((id, shown, copied), (want_id, path)) in urls.iter().zip(expected) {
        let url = app.url(&format!("/webhooks/{path}"));
        assert_eq!(id, want_id);
        assert_eq!(shown, &url, "{id} shown");
        assert_eq!(copied, &url, "{id} copied");
        // Its label names it for the copy button.
        assert!(html.contains(&format!("<p class=\"url-label\" id=\"{id}-label\">")));
        assert!(html.contains(&format!(
            "aria-describedby=\"{id}-label\" hidden>Copy</button>"
        )));
    }
    // Without JavaScript the buttons stay hidden; the script that shows
    // them is the app's own file (the CSP allows no inline script).
    assert!(html.contains("<script src=\"/static/copy.js\" defer></script>"));
    assert!(html.contains("id=\"copy-status\""), "the live region");
    let r = app.get("/static/copy.js").await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/javascript")));
    let js = r.text().await.unwrap();
    assert!(js.contains("navigator.clipboard.writeText"));
    assert!(js.contains("Copied"));
}
