//! The settings page on a phone (390 × 844) in headless Chromium: nothing
//! scrolls sideways, each webhook URL wraps as a block (not one character
//! per line), and a URL's Copy button copies it and says "Copied".

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{open_browser, sign_in};
use crate::common::spawn_app;
use dnd::db::demo;

const PHONE: (u32, u32) = (390, 844);

async fn script(c: &Client, js: &str) -> serde_json::Value {
    c.execute(js, vec![]).await.unwrap()
}

/// The text of the copy buttons' live region, once it has some (or what it
/// has after 15 s: a loaded test machine can be slow).
async fn announced(c: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let said = script(
            c,
            "return document.getElementById('copy-status').textContent;",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
        if !said.is_empty() || Instant::now() > deadline {
            return said;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn on_a_phone_settings_fit_the_screen_and_a_url_is_copied_with_one_tap() {
    let Some(browser) = open_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let c = &browser.client;
    sign_in(c, &app.base, demo::AGENCY_USER).await;
    c.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    c.goto(&app.url(&format!("/locations/{downtown}/settings")))
        .await
        .unwrap();
    let button = c
        .wait()
        .for_element(Locator::Css("#url-twilio-status button.copy"))
        .await
        .unwrap();

    // Nothing wider than the screen.
    let sizes = script(
        c,
        "return [document.documentElement.scrollWidth, window.innerWidth];",
    )
    .await;
    let (scroll, inner) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
    assert!(inner <= u64::from(PHONE.0), "a phone's width: {inner}");
    assert!(
        scroll <= inner,
        "the page scrolls sideways: {scroll} px wide in {inner} px"
    );
    // Each URL wraps in a few lines across the card, not one character a
    // line (the page was 6,500 px tall), and its Copy button is shown.
    let blocks = script(
        c,
        r#"return Array.from(document.querySelectorAll('.url-block')).map(function (b) {
             var code = b.querySelector('code');
             var line = parseFloat(getComputedStyle(code).lineHeight);
             var button = b.querySelector('button.copy');
             return {
               id: b.id,
               lines: Math.round(code.getBoundingClientRect().height / line),
               width: b.getBoundingClientRect().width,
               card: b.parentElement.getBoundingClientRect().width,
               button: button.getBoundingClientRect().width > 0 && !button.hidden
             };
           });"#,
    )
    .await;
    let blocks = blocks.as_array().unwrap();
    assert!(blocks.len() >= 5, "{blocks:?}");
    for b in blocks {
        assert!(b["lines"].as_u64().unwrap() <= 3, "{b}");
        assert!(
            b["width"].as_f64().unwrap() >= b["card"].as_f64().unwrap() - 1.0,
            "the block is as wide as its card: {b}"
        );
        assert_eq!(b["button"], json!(true), "{b}");
    }

    // What the page hands the clipboard is recorded, then passed on.
    script(
        c,
        r#"window.copiedTexts = [];
           if (navigator.clipboard) {
             var write = navigator.clipboard.writeText.bind(navigator.clipboard);
             navigator.clipboard.writeText = function (text) {
               window.copiedTexts.push(text);
               return write(text);
             };
           }
           return null;"#,
    )
    .await;
    let url = app.url(&format!("/webhooks/twilio/{downtown}/status"));
    button.click().await.unwrap();
    assert_eq!(announced(c).await, "Copied");
    assert_eq!(button.text().await.unwrap(), "Copied", "said on the button");
    assert_eq!(
        script(c, "return window.copiedTexts;").await,
        json!([url]),
        "the URL, whole"
    );
    // Reading the clipboard back needs a permission headless Chromium may
    // not give; when it does, it holds the URL.
    let read = c
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
               navigator.clipboard.readText().then(done, function () { done(null); });"#,
            vec![],
        )
        .await
        .unwrap();
    if let Some(text) = read.as_str() {
        assert_eq!(text, url);
    }
}
