//! The location dashboard: changes per day as server-drawn SVG, reasons,
//! blocked messages and waiting requests, for whoever may see the location.

use chrono::Utc;
use serde_json::json;

use crate::common::spawn_app;
use crate::dnd::{new_contact, set_reason};
use dnd::db::demo;
use dnd::domain::dnd::Reason;
use dnd::domain::Channel;

#[actix_web::test]
async fn the_dashboard_counts_todays_changes_reasons_and_blocked_messages() {
    let mut app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let a = new_contact(&app, harbor, "+14155550901");
    let b = new_contact(&app, harbor, "+14155550902");
    app.api_post(
        demo::API_KEY_HARBOR,
        "/api/v1/dnd/bulk",
        json!({"contact_ids": [a, b], "channels": {"email": true}, "note": "dashboard"}),
    )
    .await;
    set_reason(&app, harbor, a, Channel::Sms, Reason::SmsOptOut);
    // A send the gate refuses is recorded as blocked.
    let (code, _) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/messages",
            json!({"contact_id": a, "channel": "sms", "body": "hello"}),
        )
        .await;
    assert_eq!(code, 409);

    app.sign_in_as(demo::AGENCY_USER).await;
    let (status, page) = app.get_text(&format!("/locations/{harbor}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<svg") && !page.contains("<script"), "{page}");
    let today = dnd::domain::optin::local_today("America/Los_Angeles", Utc::now());
    assert!(
        page.contains(&format!("<title>{today}: SMS 1, Email 2</title>")),
        "{page}"
    );
    assert!(page.contains(r#"<dd id="blocked-total">1</dd>"#), "{page}");
    assert!(page.contains("Opted out by SMS") || page.contains(Reason::SmsOptOut.label()));
    assert!(page.contains(r#"id="changes-table""#));
    // The reasons in force say who can lift them, not a "kind" that reads
    // as if it expired.
    assert!(
        page.contains(&format!(
            "<td>{}</td><td>only the contact (START) or support can lift</td>",
            Reason::SmsOptOut.label()
        )),
        "{page}"
    );
    assert!(!page.contains("<td>permanent</td>") && !page.contains("<td>temporary</td>"));
    // Another agency's admin cannot see it.
    app.switch_to_other_agency().await;
    let (status, _) = app.get_text(&format!("/locations/{harbor}")).await;
    assert_eq!(status, 404);
}
