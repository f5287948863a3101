//! The contact page with the keyboard alone (issue 14): a person Tabs to the
//! SMS switch, presses Space, and after the page comes back finds focus on
//! the confirmation in the DND card, in view; the same for a send. A
//! locked switch is reached with Tab and does nothing when pressed. The SMS
//! counter in the browser counts as the server does.

use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};

use crate::browser::{open_browser, sign_in};
use crate::common::{run_dir, spawn_app};
use crate::dnd::{new_contact, set_reason};
use dnd::db::demo;
use dnd::domain::dnd::Reason;
use dnd::domain::message::sms_size;
use dnd::domain::Channel;

/// Presses one key on whatever has focus, as a keyboard does.
async fn press(c: &Client, key: Key) {
    let actions = KeyActions::new("keyboard".to_string())
        .then(KeyAction::Down { value: key.into() })
        .then(KeyAction::Up { value: key.into() });
    c.perform_actions(actions).await.unwrap();
}

/// The id of the focused element ("" for one without, "BODY" for none).
async fn focused(c: &Client) -> String {
    let v = c
        .execute(
            "const e = document.activeElement; return e ? (e.id || e.tagName) : '';",
            vec![],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or_default().to_string()
}

/// Presses Tab until the element `id` has focus; fails after 80 presses.
async fn tab_to(c: &Client, id: &str) {
    let mut seen = Vec::new();
    for _ in 0..80 {
        press(c, Key::Tab).await;
        let now = focused(c).await;
        if now == id {
            return;
        }
        seen.push(now);
    }
    panic!("Tab never reached #{id}; focus went through {seen:?}");
}

/// Waits (up to 10 s) until the element `id` has focus once a page loads.
async fn wait_for_focus_on(c: &Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = focused(c).await;
        if now == id {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "focus is on {now:?}, not #{id}, after the page came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the element `id` is inside the window (the confirmation must
/// not be scrolled out of view).
async fn in_view(c: &Client, id: &str) -> bool {
    let v = c
        .execute(
            "const r = document.getElementById(arguments[0]).getBoundingClientRect();
             return [r.top, r.bottom, window.innerHeight];",
            vec![serde_json::json!(id)],
        )
        .await
        .unwrap();
    let n = |i: usize| v[i].as_f64().unwrap();
    n(0) >= 0.0 && n(1) <= n(2)
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[actix_web::test]
async fn sms_dnd_is_toggled_and_a_message_sent_with_the_keyboard_alone() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550501");
    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    let page = app.url(&format!("/locations/{downtown}/contacts/{id}"));
    c.goto(&page).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#switch-sms"))
        .await
        .unwrap();
    assert_eq!(text(c, "#state-sms").await, "Allowed");

    // Tab to the switch and press Space.
    tab_to(c, "switch-sms").await;
    press(c, Key::Space).await;
    c.wait()
        .for_element(Locator::Css("#dnd-result"))
        .await
        .unwrap();
    wait_for_focus_on(c, "dnd-result").await;
    let said = text(c, "#dnd-result").await;
    assert!(said.contains("SMS is blocked"), "{said}");
    assert!(
        in_view(c, "dnd-result").await,
        "the confirmation is in view"
    );
    let inside = c
        .execute(
            "return document.getElementById('dnd').contains(document.activeElement);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inside, serde_json::json!(true), "in the DND card");
    assert_eq!(text(c, "#state-sms").await, "Blocked");
    assert_eq!(
        c.find(Locator::Css("#switch-sms"))
            .await
            .unwrap()
            .attr("aria-checked")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    let _ = std::fs::write(
        run_dir("keyboard-dnd").with_extension("png"),
        c.screenshot().await.unwrap(),
    );

    // SMS is blocked now: turn it back off the same way, then write an
    // email... SMS first: the switch is next in Tab order from the notice.
    tab_to(c, "switch-sms").await;
    press(c, Key::Enter).await;
    c.wait()
        .for_element(Locator::XPath(
            "//p[@id='dnd-result'][contains(., 'SMS is allowed')]",
        ))
        .await
        .unwrap();
    wait_for_focus_on(c, "dnd-result").await;

    // Write an SMS: the counter follows the typing.
    tab_to(c, "body-sms").await;
    c.active_element()
        .await
        .unwrap()
        .send_keys("See you at 10 {Room 2}")
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::XPath(
            "//p[@id='count-sms'][.='22 characters · 1 SMS segment (GSM-7)']",
        ))
        .await
        .unwrap();
    tab_to(c, "send-sms").await;
    press(c, Key::Enter).await;
    c.wait()
        .for_element(Locator::Css("#send-result"))
        .await
        .unwrap();
    wait_for_focus_on(c, "send-result").await;
    let said = text(c, "#send-result").await;
    assert!(said.contains("SMS message queued for sending"), "{said}");
    assert!(
        in_view(c, "send-result").await,
        "the confirmation is in view"
    );
    let timeline = text(c, "table#messages").await;
    assert!(timeline.contains("See you at 10 {Room 2}"), "{timeline}");
    let _ = std::fs::write(
        run_dir("keyboard-send").with_extension("png"),
        c.screenshot().await.unwrap(),
    );
    c.clone().close().await.unwrap();
}

#[actix_web::test]
async fn a_locked_switch_is_reached_with_tab_and_does_nothing() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550502");
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    c.goto(&app.url(&format!("/locations/{downtown}/contacts/{id}")))
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#switch-sms"))
        .await
        .unwrap();
    // A mark that a reload would wipe.
    c.execute("window.stayed = true;", vec![]).await.unwrap();
    tab_to(c, "switch-sms").await;
    let why = c
        .execute(
            "const ids = document.activeElement.getAttribute('aria-describedby');
             return ids.split(' ').map(i => document.getElementById(i).textContent).join(' ');",
            vec![],
        )
        .await
        .unwrap();
    let why = why.as_str().unwrap();
    assert!(
        why.contains("only a START reply from the contact or support can lift it"),
        "{why}"
    );
    // The lock is in normal text: at least 4.5:1 against the card.
    let colour = c
        .execute(
            "return getComputedStyle(document.getElementById('state-sms')).color;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        colour,
        serde_json::json!("rgb(179, 38, 30)"),
        "the danger red, 6.4:1"
    );
    press(c, Key::Space).await;
    press(c, Key::Enter).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        c.execute("return window.stayed === true;", vec![])
            .await
            .unwrap(),
        serde_json::json!(true),
        "the page did not submit"
    );
    assert!(c
        .find_all(Locator::Css("#dnd-result"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(focused(c).await, "switch-sms", "focus stays on the switch");

    // All channels on: every channel switch is on and locked, reached with
    // Tab, and says why.
    tab_to(c, "switch-all").await;
    press(c, Key::Space).await;
    c.wait()
        .for_element(Locator::Css("#dnd-result"))
        .await
        .unwrap();
    wait_for_focus_on(c, "dnd-result").await;
    tab_to(c, "switch-email").await;
    let email = c.active_element().await.unwrap();
    assert_eq!(
        email.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        email.attr("aria-describedby").await.unwrap().as_deref(),
        Some("locked-email")
    );
    assert_eq!(text(c, "#state-email").await, "Blocked (All channels)");
    let _ = std::fs::write(
        run_dir("keyboard-locked").with_extension("png"),
        c.screenshot().await.unwrap(),
    );
    c.clone().close().await.unwrap();
}

/// The counter in the browser says what the server's count says, for
/// GSM-7, its extension characters, Unicode, emoji and line breaks.
#[actix_web::test]
async fn the_sms_counter_in_the_browser_counts_as_the_server_does() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550503");
    let c = &browser.client;
    sign_in(c, &app.base, demo::LOCATION_USER).await;
    c.goto(&app.url(&format!("/locations/{downtown}/contacts/{id}")))
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#body-sms"))
        .await
        .unwrap();
    assert_eq!(
        text(c, "#count-sms").await,
        "0 characters · 0 SMS segments (GSM-7)"
    );
    let samples = [
        "Hello".to_string(),
        "a".repeat(160),
        "a".repeat(161),
        format!("{}€{}", "a".repeat(152), "a".repeat(152)),
        "Price: 5€ {promo} [x] ~ | ^ \\".to_string(),
        "Zoë ć".to_string(),
        "It’s 👍".to_string(),
        format!("{}👍{}", "a".repeat(66), "a".repeat(66)),
        "Line one\nLine two".to_string(),
        "Café à 10h? ¿Qué!".to_string(),
    ];
    for sample in samples {
        let shown = c
            .execute(
                "const f = document.getElementById('body-sms');
                 f.value = arguments[0];
                 f.dispatchEvent(new Event('input'));
                 return document.getElementById('count-sms').textContent;",
                vec![serde_json::json!(sample)],
            )
            .await
            .unwrap();
        // The form sends a line break as CR LF; the server counts that.
        let expected = sms_size(&sample.replace('\n', "\r\n")).describe();
        assert_eq!(shown, serde_json::json!(expected), "{sample:?}");
    }
    c.clone().close().await.unwrap();
}
