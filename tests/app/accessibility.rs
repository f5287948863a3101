//! Accessibility and phones, checked in Chromium (issue 14): axe-core runs on
//! every page each role can see, at 1280 px and at 390 px, and fails the
//! test on any `serious` or `critical` violation; at 390 px no page scrolls
//! sideways. axe-core is the npm package, which `.ci/run` installs into
//! `tests/browser-deps` for the tests only: it is injected through WebDriver
//! (not subject to the pages' CSP), never served by the app. Missing, it
//! fails the test under REQUIRE_BROWSER=1 and skips it otherwise, like a
//! missing browser.

use std::path::PathBuf;

use fantoccini::{Client, Locator};

use crate::browser::{click_submit, open_browser, sign_in};
use crate::common::{spawn_app, TestApp};
use dnd::db::demo;
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::Channel;

/// The two widths every page is checked at: a laptop and a phone.
const WIDE: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// axe-core's script, or `None` (with a note) when it is not installed and
/// the browser is not required.
fn axe_script() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser-deps/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(script) => Some(script),
        Err(e) => {
            assert!(
                std::env::var("REQUIRE_BROWSER").as_deref() != Ok("1"),
                "REQUIRE_BROWSER=1 but axe-core is missing at {} ({e}): run `npm ci --prefix tests/browser-deps`",
                path.display()
            );
            eprintln!(
                "skipping the accessibility test: axe-core is not installed (npm ci --prefix tests/browser-deps)"
            );
            None
        }
    }
}

/// Runs axe-core on the page shown and returns its serious and critical
/// violations, one line each (rule, help, the elements).
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(r => {
  done(r.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
      v.nodes.slice(0, 8).map(n => n.target.join(' ')).join(' | ') +
      (v.nodes.length > 8 ? ' (and ' + (v.nodes.length - 8) + ' more)' : '')));
}, e => done(['axe failed: ' + e]));
"#;

/// How wide the page is against the window, and what sticks out.
const MEASURE: &str = r#"
const doc = document.documentElement;
const wide = [];
if (doc.scrollWidth > window.innerWidth) {
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    // The innermost elements that stick out say best what is too wide.
    if (r.right > window.innerWidth + 0.5 && el.children.length === 0 && wide.length < 6) {
      wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
        ' "' + (el.textContent || '').trim().slice(0, 40) + '" ' + Math.round(r.right) + 'px');
    }
  }
}
return {scroll: doc.scrollWidth, inner: window.innerWidth, wide: wide};
"#;

/// One signed-in (or signed-out) person going through pages.
struct Audit<'a> {
    c: &'a Client,
    axe: &'a str,
    who: &'static str,
    problems: Vec<String>,
    pages: usize,
}

impl<'a> Audit<'a> {
    fn new(c: &'a Client, axe: &'a str, who: &'static str) -> Self {
        Audit {
            c,
            axe,
            who,
            problems: Vec::new(),
            pages: 0,
        }
    }

    /// Checks the page shown now, at the window's present width.
    async fn check_here(&mut self, name: &str, width: u32) {
        self.pages += 1;
        let at = format!("{} on {name} at {width} px", self.who);
        // A page may show a heading only once it is there: wait for <main>.
        self.c
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .unwrap_or_else(|e| panic!("{at}: no <main>: {e}"));
        self.c
            .execute(self.axe, vec![])
            .await
            .unwrap_or_else(|e| panic!("{at}: inject axe-core: {e}"));
        let found = self
            .c
            .execute_async(RUN_AXE, vec![])
            .await
            .unwrap_or_else(|e| panic!("{at}: run axe-core: {e}"));
        for v in found.as_array().cloned().unwrap_or_default() {
            self.problems
                .push(format!("{at}: {}", v.as_str().unwrap_or_default()));
        }
        // DND_SCREENSHOTS=dir keeps a picture of each page, to look at.
        if let Ok(dir) = std::env::var("DND_SCREENSHOTS") {
            let png = self.c.screenshot().await.unwrap();
            let file: String = at
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let _ = std::fs::write(PathBuf::from(dir).join(file + ".png"), png);
        }
        if width == PHONE.0 {
            let m = self.c.execute(MEASURE, vec![]).await.unwrap();
            let scroll = m["scroll"].as_u64().unwrap_or(u64::MAX);
            let inner = m["inner"].as_u64().unwrap_or(0);
            assert!(
                inner <= u64::from(PHONE.0) + 20,
                "{at}: the window is {inner} px wide, not a phone's"
            );
            if scroll > inner {
                self.problems.push(format!(
                    "{at}: scrolls sideways: {scroll} px wide in a {inner} px window; wider: {}",
                    m["wide"]
                ));
            }
        }
    }

    /// Opens a page and checks it.
    async fn visit(&mut self, base: &str, name: &str, path: &str, width: u32) {
        self.c.goto(&format!("{base}{path}")).await.unwrap();
        self.check_here(name, width).await;
    }

    /// Every page of the list at both widths.
    async fn visit_all(&mut self, base: &str, pages: &[(&str, String)]) {
        for (w, h) in [WIDE, PHONE] {
            self.c.set_window_size(w, h).await.unwrap();
            for (name, path) in pages {
                self.visit(base, name, path, w).await;
            }
        }
    }

    fn finish(self) {
        assert!(self.pages > 0);
        assert!(
            self.problems.is_empty(),
            "{} problem(s) found in {} page views:\n{}",
            self.problems.len(),
            self.pages,
            self.problems.join("\n")
        );
    }
}

/// What the pages show: a contact with reasons and messages, an open
/// opt-in request, an import's preview. Returns (downtown, contact,
/// request, import).
async fn prepare(app: &TestApp) -> (i64, i64, i64, i64) {
    use crate::webhooks::{inbound, twilio_post};

    let downtown = app.location_id(demo::DOWNTOWN);
    let contact = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+12125550101").unwrap(),
    )
    .unwrap()
    .unwrap()
    .id;
    // Messages in and a permanent SMS opt-out (STOP), a manual email block.
    for (sid, body) in [("SMA11Y1", "Is my appointment at 10?"), ("SMA11Y2", "STOP")] {
        let (code, _) =
            twilio_post(app, downtown, "sms", &inbound(sid, "+12125550101", body)).await;
        assert_eq!(code, 200);
    }
    dnd::db::dnd::apply(&mut app.db.conn(), downtown, contact, |s| {
        s.set(
            Channel::Email,
            Reason::Manual,
            &Actor::new(ActorKind::LocationUser, None, demo::LOCATION_USER),
            chrono::Utc::now(),
            None,
            Some("Asked at the front desk".into()),
        )
    })
    .unwrap();

    app.sign_in_as(demo::LOCATION_USER).await;
    // An opt-in request, filed through the form.
    let csrf = app.csrf_from("/locations").await;
    let today = chrono::Utc::now().date_naive().to_string();
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/{contact}/optin-requests"),
            &[
                ("csrf_token", &csrf),
                ("channel", "sms"),
                ("relationship_numbers", "+1 212 555 0101"),
                ("recording_url", "https://recordings.example.com/v/8812"),
                ("opted_in_on", &today),
                ("note", "Asked at the front desk to hear from us again."),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
    let request = dnd::db::optin::open_request(&mut app.db.conn(), downtown, contact, Channel::Sms)
        .unwrap()
        .expect("the request is open");
    // An import's preview, with a bad row.
    let csrf = app
        .csrf_from(&format!("/locations/{downtown}/imports"))
        .await;
    let csv = "name,phone,email,dnd_sms\nBrowser Import,+1 917 555 0501,browser-import-with-a-rather-long-address@example.com,yes\nNo Number,+1 917,nonumber@example.com,\n";
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", csrf)
        .text("kind", "contacts")
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                .file_name("people.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let r = app
        .client
        .post(app.url(&format!("/locations/{downtown}/imports")))
        .header("Origin", &app.base)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let to = crate::common::location(&r);
    let import = to
        .rsplit('/')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("import page {to}"));
    (downtown, contact, request, import)
}

/// The pages every signed-in role sees of a location.
fn location_pages(downtown: i64, contact: i64) -> Vec<(&'static str, String)> {
    vec![
        ("the locations", "/locations".into()),
        ("the dashboard", format!("/locations/{downtown}")),
        ("the contacts", format!("/locations/{downtown}/contacts")),
        (
            "a filtered contact list",
            format!("/locations/{downtown}/contacts?q=zzqx+nobody&status=on&channel=sms"),
        ),
        (
            "a contact with reasons and messages",
            format!("/locations/{downtown}/contacts/{contact}"),
        ),
        (
            "the opt-in requests",
            format!("/locations/{downtown}/optin-requests"),
        ),
        ("the imports", format!("/locations/{downtown}/imports")),
    ]
}

/// The bulk change's result is the answer to a POST: it is reached through
/// the contact list's form, at the window's width.
async fn check_bulk_result(audit: &mut Audit<'_>, base: &str, downtown: i64, width: u32) {
    let c = audit.c;
    c.goto(&format!("{base}/locations/{downtown}/contacts"))
        .await
        .unwrap();
    let first = c
        .wait()
        .for_element(Locator::Css("table#contacts tbody input[type=checkbox]"))
        .await
        .unwrap();
    first.click().await.unwrap();
    c.find(Locator::Css("#bulk-note"))
        .await
        .unwrap()
        .send_keys("Accessibility check")
        .await
        .unwrap();
    click_submit(c, Locator::Css("#bulk-apply")).await;
    c.wait()
        .for_element(Locator::XPath("//main//h1[contains(., 'DND')]"))
        .await
        .unwrap();
    audit.check_here("the bulk change's result", width).await;
}

#[actix_web::test]
async fn a_location_user_s_pages_pass_axe_and_fit_a_phone() {
    let Some(axe) = axe_script() else { return };
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let (downtown, contact, _request, import) = prepare(&app).await;
    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    let mut pages = location_pages(downtown, contact);
    pages.extend([
        (
            "the contact form",
            format!("/locations/{downtown}/contacts/{contact}/edit"),
        ),
        (
            "a new contact",
            format!("/locations/{downtown}/contacts/new"),
        ),
        (
            "an opt-in request form",
            format!("/locations/{downtown}/contacts/{contact}/optin-requests/new?channel=email"),
        ),
        (
            "an import's preview",
            format!("/locations/{downtown}/imports/{import}"),
        ),
        (
            "a page not allowed (error)",
            format!("/locations/{downtown}/settings"),
        ),
        ("a page that is not there", "/no/such/page".into()),
    ]);
    let mut audit = Audit::new(c, &axe, "the location user");
    audit.visit_all(&app.base, &pages).await;
    for (w, h) in [WIDE, PHONE] {
        c.set_window_size(w, h).await.unwrap();
        check_bulk_result(&mut audit, &app.base, downtown, w).await;
    }
    audit.finish();
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn an_agency_admin_s_pages_pass_axe_and_fit_a_phone() {
    let Some(axe) = axe_script() else { return };
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let (downtown, contact, _request, _import) = prepare(&app).await;
    let c = &browser.client;
    sign_in(c, &app.base, demo::AGENCY_USER).await;
    let mut pages = location_pages(downtown, contact);
    pages.extend([
        (
            "the contact form",
            format!("/locations/{downtown}/contacts/{contact}/edit"),
        ),
        ("the settings", format!("/locations/{downtown}/settings")),
        (
            "the integrations",
            format!("/locations/{downtown}/integrations"),
        ),
        ("the API keys", format!("/locations/{downtown}/api-keys")),
        ("the agency overview", "/agency".into()),
        ("the agency's contacts", "/agency/contacts?q=0101".into()),
        ("the agency's users", "/agency/users".into()),
        (
            "a page with a bad address (error)",
            "/locations/abc/contacts".into(),
        ),
    ]);
    let mut audit = Audit::new(c, &axe, "the agency admin");
    audit.visit_all(&app.base, &pages).await;
    audit.finish();
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn support_s_pages_pass_axe_and_fit_a_phone() {
    let Some(axe) = axe_script() else { return };
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let (downtown, contact, request, _import) = prepare(&app).await;
    let c = &browser.client;
    sign_in(c, &app.base, demo::SUPPORT_USER).await;
    let mut pages = location_pages(downtown, contact);
    pages.extend([
        ("the review queue", "/support/requests".into()),
        ("an opt-in request", format!("/support/requests/{request}")),
        ("the settings", format!("/locations/{downtown}/settings")),
        (
            "the integrations",
            format!("/locations/{downtown}/integrations"),
        ),
        ("the API keys", format!("/locations/{downtown}/api-keys")),
        ("the agency overview", "/agency".into()),
    ]);
    let mut audit = Audit::new(c, &axe, "support");
    audit.visit_all(&app.base, &pages).await;
    audit.finish();
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn signed_out_pages_pass_axe_and_fit_a_phone() {
    let Some(axe) = axe_script() else { return };
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let c = &browser.client;
    let pages = [
        ("the sign-in page", "/login".to_string()),
        ("a page that is not there", "/no/such/page".into()),
        (
            "a password link that is not valid",
            "/set-password/nope".into(),
        ),
    ];
    let mut audit = Audit::new(c, &axe, "someone signed out");
    audit.visit_all(&app.base, &pages).await;
    // A failed sign-in keeps what was typed and says why.
    c.goto(&app.url("/login")).await.unwrap();
    c.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("someone-with-a-long-address@example.com")
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("wrong")
        .await
        .unwrap();
    click_submit(c, Locator::Css("button[type=submit]")).await;
    c.wait().for_element(Locator::Css(".alert")).await.unwrap();
    audit.check_here("a failed sign-in", PHONE.0).await;
    audit.finish();
    c.clone().close().await.unwrap();
}

/// The axe-core check itself can fail: a page with an unlabelled field and
/// text at 1.6:1 is reported, and so is a page wider than a phone.
#[actix_web::test]
async fn the_check_reports_a_page_that_breaks_the_rules() {
    let Some(axe) = axe_script() else { return };
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let c = &browser.client;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    c.goto(&app.url("/login")).await.unwrap();
    // Break the page the way the issue found it broken.
    c.execute(
        r#"
        const main = document.querySelector('main');
        const p = document.createElement('p');
        p.textContent = 'Read-only text';
        p.style.color = '#c7ccd6';
        main.appendChild(p);
        const i = document.createElement('input');
        i.type = 'text';
        main.appendChild(i);
        const wide = document.createElement('div');
        wide.style.width = '900px';
        wide.textContent = 'wide';
        main.appendChild(wide);
        "#,
        vec![],
    )
    .await
    .unwrap();
    let mut audit = Audit::new(c, &axe, "a broken page");
    audit.check_here("the sign-in page, broken", PHONE.0).await;
    let all = audit.problems.join("\n");
    assert!(all.contains("color-contrast"), "{all}");
    assert!(all.contains("label"), "{all}");
    assert!(all.contains("scrolls sideways"), "{all}");
    c.clone().close().await.unwrap();
}

/// A US location's contact is found by its number written the way people
/// write it at home: without the country code, with brackets and dashes,
/// or only its end.
#[actix_web::test]
async fn national_format_searches_find_the_contact_in_the_browser() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    // The demo has +1 212 555 0196 (and +1 646 555 0196 in the same
    // location, which an end-only search finds as well).
    for q in ["212 555 0196", "(212) 555-0196", "555-0196", "0196"] {
        c.goto(&app.url(&format!("/locations/{downtown}/contacts")))
            .await
            .unwrap();
        let field = c.wait().for_element(Locator::Css("#q")).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(q).await.unwrap();
        click_submit(c, Locator::Css("form.search button")).await;
        wait_for_search(c).await;
        let table = c
            .wait()
            .for_element(Locator::Css("table#contacts"))
            .await
            .unwrap_or_else(|e| panic!("{q}: no list: {e}"));
        let rows = table.find_all(Locator::Css("tbody tr")).await.unwrap();
        let text = table.text().await.unwrap();
        assert!(
            text.contains("+12125550196"),
            "{q} lists the contact: {text}"
        );
        assert!(
            !rows.is_empty() && rows.len() <= 2,
            "{q}: only the numbers ending so ({} rows)",
            rows.len()
        );
        let asked = c.find(Locator::Css("#q")).await.unwrap();
        assert_eq!(
            asked.prop("value").await.unwrap().as_deref(),
            Some(q),
            "the search box keeps what was typed"
        );
    }
    c.clone().close().await.unwrap();
}

/// Waits until the list shown is the answer to a search.
async fn wait_for_search(c: &Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let url = c.current_url().await.unwrap();
        if url.query().is_some_and(|q| q.contains("q=")) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no search at {url}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
