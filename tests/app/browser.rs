//! Headless Chromium through chromedriver, driven like a person would.
//! Skipped (with a note) when Chromium or chromedriver is missing, unless
//! REQUIRE_BROWSER=1, as in CI, where a missing browser fails the test.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::common::{run_dir, spawn_app};
use dnd::db::demo;

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in a process group of its own, with the
        // Chromium it started: killing only chromedriver left a Chromium
        // (about 200 MB) behind per test for the rest of the run.
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.driver.id() as i32), Signal::SIGKILL);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver on a free port and a headless Chromium session.
pub async fn open_browser() -> Option<Browser> {
    let chromium = find(&[
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]);
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            std::env::var("REQUIRE_BROWSER").as_deref() != Ok("1"),
            "REQUIRE_BROWSER=1 but Chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping the browser test: Chromium or chromedriver is not installed");
        return None;
    };
    // A free port is picked and then handed to chromedriver: another test
    // may take it in between. chromedriver then exits at once, and what
    // answers on the port is not ours: so each try checks that its own
    // chromedriver is still running once the port answers, and tries
    // another port if not.
    let (mut driver, url) = {
        let mut started = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&driver)
                .process_group(0)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            let ours = loop {
                if child.try_wait().ok().flatten().is_some() {
                    break false;
                }
                if reqwest::get(format!("{url}/status")).await.is_ok() {
                    break child.try_wait().ok().flatten().is_none();
                }
                assert!(Instant::now() < deadline, "chromedriver did not start");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if ours {
                started = Some((child, url));
                break;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        started.expect("chromedriver could not get a port in five tries")
    };
    let profile = run_dir("chromium-profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let http = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = match ClientBuilder::new(http)
        .capabilities(caps)
        .connect(&url)
        .await
    {
        Ok(client) => client,
        Err(e) => {
            let _ = driver.kill();
            panic!("open a Chromium session: {e}");
        }
    };
    Some(Browser { client, driver })
}

/// Clicks something that submits a form. The click may race the navigation
/// it starts (chromedriver then reports the element stale); what counts is
/// the page that follows, which the caller waits for.
pub(crate) async fn click_submit(c: &Client, locator: Locator<'_>) {
    let element = c.find(locator).await.unwrap();
    if let Err(e) = element.click().await {
        let stale = matches!(
            &e,
            fantoccini::error::CmdError::Standard(w)
                if w.error == fantoccini::error::ErrorStatus::StaleElementReference
        );
        assert!(stale, "click failed: {e}");
    }
}

/// Signs in through the form and waits for the locations page.
pub(crate) async fn sign_in(c: &Client, base: &str, email: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(demo::PASSWORD)
        .await
        .unwrap();
    click_submit(c, Locator::Css("button[type=submit]")).await;
    // Signed in: the locations, or a location user's only location's
    // contacts; both have the account navigation.
    c.wait()
        .for_element(Locator::Css("nav.user"))
        .await
        .unwrap();
}

/// Signs in as the demo location user and opens a contact's page.
async fn open_contact_as_location_user(
    c: &Client,
    app: &crate::common::TestApp,
    location_id: i64,
    id: i64,
) {
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    c.goto(&app.url(&format!("/locations/{location_id}/contacts/{id}")))
        .await
        .unwrap();
}

#[actix_web::test]
async fn a_location_user_signs_in_and_sees_the_contact_list() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let c = &browser.client;
    let downtown = app.location_id(demo::DOWNTOWN);
    let asked = format!("/locations/{downtown}/contacts");
    c.goto(&app.url(&asked)).await.unwrap();
    // Signed out: sent to the sign-in page, which returns to the list.
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    fill_in(c, "#email", demo::LOCATION_USER).await;
    fill_in(c, "#password", demo::PASSWORD).await;
    click_submit(c, Locator::Css("button[type=submit]")).await;
    let table = c
        .wait()
        .for_element(Locator::Css("table#contacts"))
        .await
        .unwrap();
    let rows = table.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 50, "a full first page of contacts");
    let text = table.text().await.unwrap();
    assert!(text.contains("+1212555"), "phones shown: {text}");

    // Search narrows the list.
    c.find(Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("+1 212 555 0100")
        .await
        .unwrap();
    click_submit(c, Locator::Css("form.search button")).await;
    c.wait()
        .for_element(Locator::XPath("//table[@id='contacts']/tbody[count(tr)=1]"))
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("table#contacts tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    let png = c.screenshot().await.unwrap();
    assert!(png.len() > 1000, "a real screenshot");
    let _ = std::fs::write(run_dir("contacts").with_extension("png"), png);
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn turning_on_sms_dnd_shows_partial_keeps_it_and_explains_a_permanent_reason() {
    use chrono::Utc;
    use dnd::domain::dnd::{Actor, ActorKind, Reason};
    use dnd::domain::Channel;

    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let mut conn = app.db.conn();
    let contact = |phone: &str| {
        dnd::db::contacts::find_by_phone(
            &mut app.db.conn(),
            downtown,
            &dnd::domain::PhoneNumber::parse_international(phone).unwrap(),
        )
        .unwrap()
        .unwrap()
        .id
    };
    let plain = contact("+12125550100");
    let opted_out = contact("+12125550101");
    let twilio = Actor::new(ActorKind::Contact, None, "+12125550101");
    dnd::db::dnd::apply(&mut conn, downtown, opted_out, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &twilio,
            Utc::now(),
            Some("+12125550101".into()),
            Some("STOP".into()),
        )
    })
    .unwrap();

    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;

    let page = app.url(&format!("/locations/{downtown}/contacts/{plain}"));
    c.goto(&page).await.unwrap();
    let badge = c.find(Locator::Css("#dnd-status")).await.unwrap();
    assert_eq!(badge.text().await.unwrap(), "DND Off");
    assert_eq!(
        c.find_all(Locator::Css("#history tbody tr"))
            .await
            .unwrap()
            .len(),
        0
    );

    click_submit(c, Locator::Css("#switch-sms")).await;
    c.wait()
        .for_element(Locator::Css("#dnd-result"))
        .await
        .unwrap();
    let badge = c.find(Locator::Css("#dnd-status")).await.unwrap();
    assert_eq!(badge.text().await.unwrap(), "DND Partial");
    let switch = c.find(Locator::Css("#switch-sms")).await.unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    let rows = c.find_all(Locator::Css("#history tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "the history grew");
    assert!(rows[0].text().await.unwrap().contains("SMS"));

    // Reload: kept.
    c.refresh().await.unwrap();
    let badge = c
        .wait()
        .for_element(Locator::Css("#dnd-status"))
        .await
        .unwrap();
    assert_eq!(badge.text().await.unwrap(), "DND Partial");
    assert!(
        c.find_all(Locator::Css("#dnd-result"))
            .await
            .unwrap()
            .is_empty(),
        "the notice shows once"
    );
    let switch = c.find(Locator::Css("#switch-sms")).await.unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );

    // A permanent opt-out: the switch is on, disabled, and says why and
    // what to do.
    c.goto(&app.url(&format!("/locations/{downtown}/contacts/{opted_out}")))
        .await
        .unwrap();
    let switch = c
        .wait()
        .for_element(Locator::Css("#switch-sms"))
        .await
        .unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(
        switch.attr("aria-disabled").await.unwrap().as_deref() == Some("true"),
        "locked for a location user"
    );
    let why = c
        .find(Locator::Css("#channel-sms .why"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        why.contains("only a START reply from the contact or support can lift it"),
        "{why}"
    );
    assert!(
        why.contains("Ask support to review opt-in evidence"),
        "{why}"
    );
    let png = c.screenshot().await.unwrap();
    let _ = std::fs::write(run_dir("contact-dnd").with_extension("png"), png);
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn a_blocked_email_composer_is_disabled_and_an_sms_lands_on_the_timeline() {
    use chrono::Utc;
    use dnd::domain::dnd::{Actor, ActorKind, Reason};
    use dnd::domain::Channel;

    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+12125550140").unwrap(),
    )
    .unwrap()
    .unwrap()
    .id;
    dnd::db::dnd::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            Channel::Email,
            Reason::EmailUnsubscribed,
            &Actor::new(ActorKind::Provider, None, "Mailgun"),
            Utc::now(),
            None,
            None,
        )
    })
    .unwrap();
    let c = &browser.client;
    open_contact_as_location_user(c, &app, downtown, id).await;
    let send_email = c
        .wait()
        .for_element(Locator::Css("#send-email"))
        .await
        .unwrap();
    assert!(
        send_email.attr("aria-disabled").await.unwrap().as_deref() == Some("true"),
        "email composer closed"
    );
    let why = c
        .find(Locator::Css("#composer-email .why"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(why.contains("unsubscribed from email"), "{why}");

    c.find(Locator::Css("#body-sms"))
        .await
        .unwrap()
        .send_keys("Reminder: your appointment is at 10:00")
        .await
        .unwrap();
    click_submit(c, Locator::Css("#send-sms")).await;
    c.wait()
        .for_element(Locator::Css("#send-result"))
        .await
        .unwrap();
    let timeline = c
        .find(Locator::Css("table#messages"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        timeline.contains("Reminder: your appointment is at 10:00"),
        "{timeline}"
    );
    assert!(timeline.contains("outbound"));
    let png = c.screenshot().await.unwrap();
    let _ = std::fs::write(run_dir("compose").with_extension("png"), png);
    c.clone().close().await.unwrap();
}

/// A number texts STOP; its contact moves to another number, and the API
/// creates a new contact with the opted-out one. A location user opening
/// the new contact sees it blocked on SMS, with the reason and the number
/// it is kept on, and the SMS composer closed.
#[actix_web::test]
async fn a_contact_created_with_an_opted_out_number_shows_blocked_with_reason_and_address() {
    use crate::webhooks::{inbound, twilio_post};

    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let upsert = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.api_post(demo::API_KEY_DOWNTOWN, "/api/v1/contacts", body)
                .await
        }
    };
    let (code, _) = upsert(serde_json::json!(
        {"name": "Opal Newman", "email": "opal@example.com", "phone": "+13125550777"}
    ))
    .await;
    assert_eq!(code, 201);
    let (code, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMBROWSER1", "+13125550777", "STOP"),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) =
        upsert(serde_json::json!({"email": "opal@example.com", "phone": "+13125550778"})).await;
    assert_eq!(code, 200);
    let (code, made) = upsert(serde_json::json!(
        {"name": "Paz Ortega", "email": "paz@example.com", "phone": "(312) 555-0777"}
    ))
    .await;
    assert_eq!(code, 201, "{made}");
    let id = made["id"].as_i64().unwrap();

    let c = &browser.client;
    open_contact_as_location_user(c, &app, downtown, id).await;
    let badge = c
        .wait()
        .for_element(Locator::Css("#dnd-status"))
        .await
        .unwrap();
    assert_eq!(badge.text().await.unwrap(), "DND Partial");
    let switch = c.find(Locator::Css("#switch-sms")).await.unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        switch.attr("aria-disabled").await.unwrap().as_deref(),
        Some("true")
    );
    let reasons = c
        .find(Locator::Css("#channel-sms .reasons"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reasons.contains("Opted out by SMS"), "{reasons}");
    assert!(reasons.contains("on +13125550777"), "{reasons}");
    let send = c.find(Locator::Css("#send-sms")).await.unwrap();
    assert!(
        send.attr("aria-disabled").await.unwrap().as_deref() == Some("true"),
        "the SMS composer is closed"
    );
    // The contact list says the same.
    c.goto(&app.url(&format!("/locations/{downtown}/contacts?q=Paz&channel=sms")))
        .await
        .unwrap();
    let row = c
        .wait()
        .for_element(Locator::Css("#contacts tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("Paz Ortega") && row.contains("Partial") && row.to_lowercase().contains("sms"),
        "{row}"
    );
    c.clone().close().await.unwrap();
}

/// Signs out through the navigation's button and waits for the sign-in
/// page.
async fn sign_out(c: &Client) {
    click_submit(c, Locator::Css("nav.user button.link")).await;
    c.wait().for_element(Locator::Css("#email")).await.unwrap();
}

async fn fill(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

#[actix_web::test]
async fn a_stopped_contact_is_unblocked_after_support_approves_the_evidence() {
    use crate::webhooks::{inbound, twilio_post};

    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (code, made) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            serde_json::json!({"name": "Quinn Reyes", "phone": "+13125550901"}),
        )
        .await;
    assert_eq!(code, 201, "{made}");
    let id = made["id"].as_i64().unwrap();
    let (code, _) = twilio_post(
        &app,
        downtown,
        "sms",
        &inbound("SMEVIDENCE1", "+13125550901", "STOP"),
    )
    .await;
    assert_eq!(code, 200);

    // The location user files the evidence from the locked switch.
    let c = &browser.client;
    open_contact_as_location_user(c, &app, downtown, id).await;
    let switch = c
        .wait()
        .for_element(Locator::Css("#switch-sms"))
        .await
        .unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    c.find(Locator::Css("#request-removal-sms"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#relationship_numbers"))
        .await
        .unwrap();
    fill(c, "#relationship_numbers", "+1 212 555 0000").await;
    fill(c, "#recording_url", "https://recordings.example.com/quinn").await;
    // A date input takes keys in the browser's locale; set its value.
    let today = chrono::Utc::now().date_naive().to_string();
    c.execute(
        "document.getElementById('opted_in_on').value = arguments[0]",
        vec![serde_json::json!(today)],
    )
    .await
    .unwrap();
    fill(
        c,
        "#note",
        "Quinn asked at the desk to get reminders again.",
    )
    .await;
    click_submit(c, Locator::Css("#file-request")).await;
    let flash = c
        .wait()
        .for_element(Locator::Css("#flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("sent to support"), "{flash}");
    let request =
        dnd::db::optin::open_request(&mut app.db.conn(), downtown, id, dnd::domain::Channel::Sms)
            .unwrap()
            .expect("the request is stored");
    let row = c
        .find(Locator::Css(&format!("#optin-{request}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("open"), "{row}");
    assert!(c.find(Locator::Css("#request-open-sms")).await.is_ok());
    sign_out(c).await;

    // Support finds it in the queue and approves.
    sign_in(c, &app.base, demo::SUPPORT_USER).await;
    c.find(Locator::LinkText("Opt-in review queue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css(&format!("#review-{request}")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let recording = c
        .wait()
        .for_element(Locator::Css("#recording-link"))
        .await
        .unwrap();
    assert_eq!(
        recording.attr("target").await.unwrap().as_deref(),
        Some("_blank")
    );
    assert!(recording
        .attr("rel")
        .await
        .unwrap()
        .is_some_and(|r| r.contains("noopener")));
    let events = c
        .find(Locator::Css("#source-events"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        events.contains("SMEVIDENCE1"),
        "the inbound STOP is shown: {events}"
    );
    fill(c, "#note", "Recording shows consent.").await;
    click_submit(c, Locator::Css("#approve")).await;
    let flash = c
        .wait()
        .for_element(Locator::Css("#flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("approved"), "{flash}");
    assert_eq!(
        c.find(Locator::Css("#request-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "approved"
    );
    sign_out(c).await;

    // The location user sees SMS unblocked, and who lifted it and why.
    open_contact_as_location_user(c, &app, downtown, id).await;
    let switch = c
        .wait()
        .for_element(Locator::Css("#switch-sms"))
        .await
        .unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("false")
    );
    assert_eq!(
        c.find(Locator::Css("#dnd-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "DND Off"
    );
    let history = c
        .find(Locator::Css("#history"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        history.contains(demo::SUPPORT_USER)
            && history.contains(&format!("opt-in request #{request}")),
        "{history}"
    );
    let row = c
        .find(Locator::Css(&format!("#optin-{request}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("approved") && row.contains("Recording shows consent."),
        "{row}"
    );
    assert_eq!(
        c.find(Locator::Css("#send-sms"))
            .await
            .unwrap()
            .attr("aria-disabled")
            .await
            .unwrap(),
        None,
        "the SMS composer is open again"
    );
    c.clone().close().await.unwrap();
}

async fn fill_in(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn flash_text(c: &Client) -> String {
    c.wait()
        .for_element(Locator::Css("#flash"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[actix_web::test]
async fn an_agency_admin_sets_up_a_location_and_its_first_user() {
    use crate::integrations::{provider_double, SID, TOKEN};

    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let double = provider_double().await;
    let c = &browser.client;
    sign_in(c, &app.base, demo::AGENCY_USER).await;

    // A new location, from the agency overview.
    c.find(Locator::LinkText("Agency overview"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#location-name"))
        .await
        .unwrap();
    fill_in(c, "#location-name", "Lakeside Physio").await;
    fill_in(c, "#location-time-zone", "America/Denver").await;
    click_submit(c, Locator::Css("#create-location")).await;
    c.wait()
        .for_element(Locator::Css("#connect-sms"))
        .await
        .unwrap();
    let lakeside = app.location_id("Lakeside Physio");

    // Connect SMS, point it at the provider double, and test it.
    fill_in(c, "#sms-account_sid", SID).await;
    fill_in(c, "#sms-auth_token", TOKEN).await;
    fill_in(c, "#sms-sending_number", "+1 303 555 0100").await;
    click_submit(c, Locator::Css("#connect-button-sms")).await;
    assert!(flash_text(c).await.contains("SMS is connected"));
    c.goto(&app.url(&format!("/locations/{lakeside}/settings")))
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#transport-base-sms"))
        .await
        .unwrap();
    fill_in(c, "#transport-base-sms", &double).await;
    click_submit(c, Locator::Css("#transport-sms button[type=submit]")).await;
    flash_text(c).await;
    c.goto(&app.url(&format!("/locations/{lakeside}/integrations")))
        .await
        .unwrap();
    click_submit(c, Locator::Css("#test-sms")).await;
    let said = flash_text(c).await;
    assert!(said.contains("Test passed"), "{said}");
    assert_eq!(
        c.find(Locator::Css("#state-sms"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "connected"
    );

    // A location user for it, through a one-time link.
    c.goto(&app.url("/agency/users")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#new-email"))
        .await
        .unwrap();
    fill_in(c, "#new-email", "lee@lakeside.example").await;
    c.find(Locator::Css("#role-location"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css(&format!("#location-{lakeside}")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_submit(c, Locator::Css("#add-user-button")).await;
    let link = c
        .wait()
        .for_element(Locator::Css("#new-link"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(link.contains("/set-password/"), "{link}");
    sign_out(c).await;

    c.goto(&link).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#new-password"))
        .await
        .unwrap();
    fill_in(c, "#new-password", "lakeside-front-desk").await;
    fill_in(c, "#confirm-password", "lakeside-front-desk").await;
    click_submit(c, Locator::Css("#set-password")).await;
    c.wait().for_element(Locator::Css("#notice")).await.unwrap();
    fill_in(c, "#email", "lee@lakeside.example").await;
    fill_in(c, "#password", "lakeside-front-desk").await;
    click_submit(c, Locator::Css("button[type=submit]")).await;
    // A location user with one location lands on its contacts.
    c.wait()
        .for_element(Locator::Css("#no-match, p.empty, table#contacts"))
        .await
        .unwrap();
    let crumbs = c
        .find(Locator::Css("p.crumbs"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(crumbs.contains("Lakeside Physio"), "{crumbs}");
    assert!(c.current_url().await.unwrap().path().ends_with("/contacts"));
    c.goto(&app.url("/locations")).await.unwrap();
    let table = c
        .wait()
        .for_element(Locator::Css("table#locations"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains("Lakeside Physio"), "{table}");
    assert!(
        !table.contains(demo::DOWNTOWN) && !table.contains(demo::HARBOR),
        "{table}"
    );
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn whatsapp_dnd_is_kept_read_only_while_disconnected_and_offered_again_on_reconnect() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = dnd::db::contacts::upsert(
        &mut app.db.conn(),
        downtown,
        &dnd::db::contacts::ContactInput {
            name: Some("Wes Whatsapp".into()),
            whatsapp_id: Some("+14155550999".into()),
            email: Some(dnd::domain::EmailAddress::parse("wes@example.com").unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id;
    dnd::db::dnd::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            dnd::domain::Channel::Whatsapp,
            dnd::domain::dnd::Reason::ChannelOptOut,
            &dnd::domain::dnd::Actor::new(
                dnd::domain::dnd::ActorKind::Contact,
                None,
                "+14155550999",
            ),
            chrono::Utc::now(),
            None,
            Some("wamid.stop".into()),
        )
    })
    .unwrap();
    let c = &browser.client;
    sign_in(c, &app.base, demo::AGENCY_USER).await;
    let contact = app.url(&format!("/locations/{downtown}/contacts/{id}"));
    let integrations = app.url(&format!("/locations/{downtown}/integrations"));

    c.goto(&integrations).await.unwrap();
    click_submit(c, Locator::Css("#disconnect-whatsapp")).await;
    assert!(flash_text(c).await.contains("WhatsApp is disconnected"));
    c.goto(&contact).await.unwrap();
    let panel = c
        .wait()
        .for_element(Locator::Css("#channel-whatsapp"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        panel.contains("Kept while WhatsApp is disconnected."),
        "{panel}"
    );
    assert!(panel.contains("Opted out on this channel"), "{panel}");
    assert!(
        c.find(Locator::Css("#switch-whatsapp")).await.is_err(),
        "no switch"
    );

    c.goto(&integrations).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#whatsapp-access_token"))
        .await
        .unwrap();
    fill_in(c, "#whatsapp-account_id", "1098765432").await;
    fill_in(c, "#whatsapp-access_token", "EAAB-browser-token").await;
    click_submit(c, Locator::Css("#connect-button-whatsapp")).await;
    assert!(flash_text(c).await.contains("WhatsApp is connected"));
    c.goto(&contact).await.unwrap();
    let switch = c
        .wait()
        .for_element(Locator::Css("#switch-whatsapp"))
        .await
        .unwrap();
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(
        switch.attr("aria-disabled").await.unwrap().as_deref() == Some("true"),
        "a permanent reason stays locked"
    );
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn a_bulk_dnd_change_on_a_filtered_list_blocks_exactly_those_contacts() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    c.goto(&app.url(&format!(
        "/locations/{downtown}/contacts?q=%2B1+212+555+010"
    )))
    .await
    .unwrap();
    let rows = c
        .find_all(Locator::Css("table#contacts tbody tr"))
        .await
        .unwrap();
    let listed = rows.len();
    assert!(listed > 1 && listed < 50, "a filtered list: {listed} rows");
    c.find(Locator::Css("#scope-list"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("#bulk-target option[value=email]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(c, "#bulk-note", "Asked at the front desk").await;
    click_submit(c, Locator::Css("#bulk-apply")).await;
    let result = c
        .wait()
        .for_element(Locator::Css("#bulk-result"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let figure = |id: &'static str| async move {
        c.find(Locator::Css(id))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let (changed, unchanged, skipped) = (
        figure("#bulk-changed").await,
        figure("#bulk-unchanged").await,
        figure("#bulk-skipped").await,
    );
    assert_eq!(changed + unchanged + skipped, listed, "{result}");
    assert!(changed > 0, "{result}");
    // Back on the same filtered list, every row is blocked on email; a
    // contact outside the filter is not.
    click_submit(c, Locator::Css("#back-to-list")).await;
    c.wait()
        .for_element(Locator::Css("table#contacts"))
        .await
        .unwrap();
    for cell in c
        .find_all(Locator::Css("table#contacts td.dnd-cell"))
        .await
        .unwrap()
    {
        let text = cell.text().await.unwrap();
        assert!(
            text.to_lowercase().contains("email"),
            "still allowed on email: {text}"
        );
    }
    // One history row per changed contact, with the note, and no others.
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let noted: Count = diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT count(*) AS n FROM dnd_history WHERE location_id = $1 AND detail = $2",
        )
        .bind::<diesel::sql_types::BigInt, _>(downtown)
        .bind::<diesel::sql_types::Text, _>("Asked at the front desk"),
        &mut app.db.conn(),
    )
    .unwrap();
    assert_eq!(noted.n as usize, changed);
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn an_imported_csv_with_a_bad_row_shows_the_row_in_the_preview_and_imports_the_rest() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let c = &browser.client;
    let file = run_dir("import").with_extension("csv");
    std::fs::write(
        &file,
        "name,phone,email,dnd_sms\nBrowser Import,+1 917 555 0501,browser@example.com,yes\nNo Number,+1 917,nonumber@example.com,\n",
    )
    .unwrap();
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    c.goto(&app.url(&format!("/locations/{downtown}/contacts")))
        .await
        .unwrap();
    click_submit(c, Locator::Css("#imports-link")).await;
    c.wait()
        .for_element(Locator::Css("#import-file"))
        .await
        .unwrap()
        .send_keys(file.canonicalize().unwrap().to_str().unwrap())
        .await
        .unwrap();
    click_submit(c, Locator::Css("#preview")).await;
    let errors = c
        .wait()
        .for_element(Locator::Css("#import-row-errors"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(errors.contains("3") && errors.contains("phone"), "{errors}");
    let created = c
        .find(Locator::Css("#import-created"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(created, "1");
    click_submit(c, Locator::Css("#confirm-import")).await;
    c.wait()
        .for_element(Locator::XPath(
            "//h2[@id='state-title' and text()='Imported']",
        ))
        .await
        .unwrap();
    let contact = dnd::db::contacts::find_by_phone(
        &mut app.db.conn(),
        downtown,
        &dnd::domain::PhoneNumber::parse_international("+19175550501").unwrap(),
    )
    .unwrap()
    .expect("imported");
    let state = dnd::db::dnd::load_state(&mut app.db.conn(), downtown, contact.id)
        .unwrap()
        .unwrap();
    assert!(state.is_blocked(dnd::domain::Channel::Sms));
    c.clone().close().await.unwrap();
}
