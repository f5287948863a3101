//! Reading the contact page's state (issue 14): switches that say what they
//! do and their state in words, who can lift a reason, read-only controls
//! that stay readable and focusable with the reason they point at, the
//! confirmation of a change in the card that changed, and a composer that
//! counts SMS segments and asks an email for its subject.

use crate::common::{location, new_client, spawn_app, TestApp};
use crate::dnd::{new_contact, set_reason};
use dnd::db::demo;
use dnd::domain::dnd::Reason;
use dnd::domain::Channel;

/// The opening tag of the element with `id`, as served.
fn tag<'a>(html: &'a str, id: &str) -> &'a str {
    let needle = format!("id=\"{id}\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no element #{id} on the page"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

/// The text of the element with `id` (up to its closing tag, tags removed).
fn text_of(html: &str, id: &str) -> String {
    let open = tag(html, id);
    let start = html.find(open).unwrap() + open.len();
    let name: String = open[1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    // Its closing tag, past those of the same name nested in it.
    let (open_tag, close_tag) = (format!("<{name}"), format!("</{name}>"));
    let mut depth = 1;
    let mut at = start;
    let end = loop {
        let close = at + html[at..].find(&close_tag).unwrap();
        depth += html[at..close].matches(&open_tag).count();
        depth -= 1;
        if depth == 0 {
            break close;
        }
        at = close + close_tag.len();
    };
    visible(&html[start..end]).trim().to_string()
}

/// The text of some HTML, tags removed.
fn visible(html: &str) -> String {
    let mut text = String::new();
    let mut inside = false;
    for c in html.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => text.push(c),
            _ => {}
        }
    }
    text
}

/// The part of the page that is the card with `id` (a `<section>`).
fn card<'a>(html: &'a str, id: &str) -> &'a str {
    let open = tag(html, id);
    let start = html.find(open).unwrap();
    let end = start + html[start..].find("</section>").unwrap();
    &html[start..end]
}

async fn post(
    app: &TestApp,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf_from(page).await;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    app.post_form(&format!("{page}/{action}"), &all).await
}

fn message_count(app: &TestApp, contact_id: i64) -> i64 {
    use diesel::prelude::*;
    use dnd::db::schema::messages;
    messages::table
        .filter(messages::contact_id.eq(contact_id))
        .count()
        .get_result(&mut app.db.conn())
        .unwrap()
}

#[actix_web::test]
async fn switches_say_what_they_do_and_their_state_and_a_change_is_confirmed_in_the_card() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550401");
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    assert_eq!(text_of(&html, "switch-all"), "Block all channels");
    assert_eq!(text_of(&html, "switch-sms"), "Block SMS");
    assert_eq!(text_of(&html, "switch-email"), "Block email");
    assert_eq!(text_of(&html, "switch-call"), "Block calls");
    assert_eq!(text_of(&html, "state-all"), "Off");
    assert_eq!(text_of(&html, "state-sms"), "Allowed");
    assert_eq!(text_of(&html, "state-inbound_sms"), "Not muted");
    assert_eq!(text_of(&html, "state-inbound_calls"), "Accepted");
    let sms = tag(&html, "switch-sms");
    assert!(sms.contains("type=\"submit\""), "{sms}");
    assert!(sms.contains("role=\"switch\" id=\"switch-sms\" aria-checked=\"false\""));
    assert!(!sms.contains("aria-disabled"), "{sms}");
    assert!(!html.contains("id=\"dnd-result\""), "no confirmation yet");

    let r = post(&app, &page, "dnd", &[("target", "sms"), ("turn", "on")]).await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        location(&r).ends_with(&format!("{page}#dnd-result")),
        "back to the confirmation, not the card's top: {}",
        location(&r)
    );
    let (_, html) = app.get_text(&page).await;
    let result = tag(&html, "dnd-result");
    assert!(
        result.contains("tabindex=\"-1\"") && result.contains("role=\"status\""),
        "focusable by the fragment, announced: {result}"
    );
    assert_eq!(
        text_of(&html, "dnd-result"),
        "SMS DND turned on. SMS is blocked."
    );
    assert!(
        card(&html, "dnd").contains("id=\"dnd-result\""),
        "shown in the DND card"
    );
    assert!(!html.contains("id=\"flash\""), "not at the page's top");
    assert_eq!(text_of(&html, "state-sms"), "Blocked");
    assert!(tag(&html, "switch-sms").contains("aria-checked=\"true\""));
    // The reason says who can lift it, not its kind.
    let sms_row = text_of(&html, "channel-sms");
    assert!(
        sms_row.contains("location or agency users, or the API, can lift"),
        "{sms_row}"
    );
    let (_, again) = app.get_text(&page).await;
    assert!(!again.contains("id=\"dnd-result\""), "shown once");

    // Off again: the words follow.
    let r = post(&app, &page, "dnd", &[("target", "sms"), ("turn", "off")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    assert_eq!(
        text_of(&html, "dnd-result"),
        "SMS DND turned off. SMS is allowed."
    );
    assert_eq!(text_of(&html, "state-sms"), "Allowed");

    // Inbound switches say their state too.
    post(
        &app,
        &page,
        "dnd",
        &[("target", "inbound_sms"), ("turn", "on")],
    )
    .await;
    let (_, html) = app.get_text(&page).await;
    assert_eq!(text_of(&html, "state-inbound_sms"), "Muted");
    assert!(text_of(&html, "dnd-result").starts_with("Inbound SMS muted"));
}

#[actix_web::test]
async fn all_channels_locks_each_channel_on_and_says_what_its_own_dnd_will_do() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550402");
    set_reason(&app, downtown, id, Channel::Sms, Reason::Manual);
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let r = post(&app, &page, "dnd", &[("target", "all"), ("turn", "on")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    assert_eq!(text_of(&html, "state-all"), "Blocked");
    assert_eq!(
        text_of(&html, "dnd-result"),
        "DND on all channels turned on. Every channel is blocked."
    );

    // Email has no DND of its own: on and locked, and says it comes back.
    let email = tag(&html, "switch-email");
    assert!(
        email.contains(
            "type=\"button\" class=\"switch\" role=\"switch\" id=\"switch-email\" \
             aria-checked=\"true\" aria-disabled=\"true\" aria-describedby=\"locked-email\""
        ),
        "{email}"
    );
    assert!(!email.contains(" disabled"), "focusable: {email}");
    assert_eq!(text_of(&html, "state-email"), "Blocked (All channels)");
    let why = text_of(&html, "locked-email");
    assert!(why.starts_with("Blocked by All channels."), "{why}");
    assert!(
        why.contains("Email is allowed again when All channels is turned off"),
        "{why}"
    );
    // SMS has its own: the truth about it is shown too.
    let sms = tag(&html, "switch-sms");
    assert!(
        sms.contains(
            "aria-checked=\"true\" aria-disabled=\"true\" aria-describedby=\"locked-sms\""
        ),
        "{sms}"
    );
    assert_eq!(
        text_of(&html, "state-sms"),
        "Blocked (its own DND and All channels)"
    );
    assert!(text_of(&html, "locked-sms")
        .contains("SMS is still blocked when All channels is turned off"));
    assert!(
        !card(&html, "dnd").contains("Turning it off keeps"),
        "a locked switch offers no lift"
    );

    // All off: each channel is what its own DND says.
    let r = post(&app, &page, "dnd", &[("target", "all"), ("turn", "off")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    assert_eq!(text_of(&html, "state-email"), "Allowed");
    assert_eq!(text_of(&html, "state-sms"), "Blocked");
    let email = tag(&html, "switch-email");
    assert!(email.contains("aria-checked=\"false\"") && !email.contains("aria-disabled"));
    assert!(tag(&html, "switch-sms").contains("aria-checked=\"true\""));
    assert!(!html.contains("id=\"locked-sms\""));
}

/// Locked under All channels, a channel whose own DND is off can still be
/// kept blocked first: turning All off then leaves no moment when the
/// contact could be messaged on it.
#[actix_web::test]
async fn under_all_channels_a_channel_can_be_kept_blocked_before_all_is_turned_off() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550403");
    set_reason(&app, downtown, id, Channel::Sms, Reason::Manual);
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let r = post(&app, &page, "dnd", &[("target", "all"), ("turn", "on")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    // Email's own DND is off: offered. SMS's is on already: not offered.
    assert!(
        html.contains("id=\"keep-blocked-email\">Keep Email blocked after All channels"),
        "{html}"
    );
    assert!(!html.contains("id=\"keep-blocked-sms\""));

    let r = post(&app, &page, "dnd", &[("target", "email"), ("turn", "on")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    assert_eq!(
        text_of(&html, "state-email"),
        "Blocked (its own DND and All channels)"
    );
    assert!(!html.contains("id=\"keep-blocked-email\""));
    let r = post(&app, &page, "dnd", &[("target", "all"), ("turn", "off")]).await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, html) = app.get_text(&page).await;
    assert_eq!(text_of(&html, "state-email"), "Blocked");
    assert_eq!(text_of(&html, "state-sms"), "Blocked");

    // Support sees no such offer: their panel is read-only.
    let r = post(&app, &page, "dnd", &[("target", "all"), ("turn", "on")]).await;
    assert_eq!(r.status().as_u16(), 303);
    app.client = new_client();
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (status, html) = app.get_text(&page).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"locked-email\""), "{html}");
    assert!(!html.contains("keep-blocked-"), "{html}");
}

#[actix_web::test]
async fn reasons_say_who_can_lift_them_and_a_locked_switch_points_at_why() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550403");
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    set_reason(&app, downtown, id, Channel::Email, Reason::Manual);
    set_reason(&app, downtown, id, Channel::Whatsapp, Reason::ChannelOptOut);
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;

    let sms_row = text_of(&html, "channel-sms");
    assert!(
        sms_row.contains("Opted out by SMS only the contact (START) or support can lift"),
        "{sms_row}"
    );
    let email_row = text_of(&html, "channel-email");
    assert!(
        email_row.contains("Turned on by hand location or agency users, or the API, can lift"),
        "{email_row}"
    );
    assert!(text_of(&html, "channel-whatsapp")
        .contains("only the contact (resume) or support can lift"));
    // No kind anywhere: "temporary" read as if it expired.
    let lower = visible(&html).to_lowercase();
    assert!(!lower.contains("temporary"), "no kind shown");
    assert!(!lower.contains("permanent"), "no kind shown");
    let history = card(&html, "history");
    assert!(history.contains("only the contact (START) or support can lift"));
    assert!(history.contains("location or agency users, or the API, can lift"));

    // The switch the user cannot lift: focusable, does not submit, and
    // points at why and what to do, in normal text.
    let sms = tag(&html, "switch-sms");
    assert!(
        sms.contains("type=\"button\"")
            && sms.contains(
                "aria-checked=\"true\" aria-disabled=\"true\" aria-describedby=\"why-sms-0\""
            ),
        "{sms}"
    );
    assert!(!sms.contains(" disabled"), "{sms}");
    let why = text_of(&html, "why-sms-0");
    assert!(
        why.starts_with("The contact replied with an opt-out keyword (STOP) on"),
        "{why}"
    );
    assert!(
        why.contains("Ask support to review opt-in evidence"),
        "{why}"
    );
    // The server still refuses it.
    let r = post(&app, &page, "dnd", &[("target", "sms"), ("turn", "off")]).await;
    assert_eq!(r.status().as_u16(), 403);

    // A channel closed for sending: its Send button is the same.
    let send = tag(&html, "send-email");
    assert!(
        send.contains("type=\"button\" id=\"send-email\" aria-disabled=\"true\" aria-describedby=\"blocked-email-0\""),
        "{send}"
    );
    let blocked = text_of(&html, "blocked-email-0");
    assert!(blocked.starts_with("Turned on by "), "{blocked}");
    assert!(!blocked.to_lowercase().contains("temporary"), "{blocked}");
}

#[actix_web::test]
async fn support_reads_the_whole_panel_locked_but_focusable_with_why() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550404");
    set_reason(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    // A request for support to read.
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let today = chrono::Utc::now().date_naive().to_string();
    let r = post(
        &app,
        &page,
        "optin-requests",
        &[
            ("channel", "sms"),
            ("relationship_numbers", "+1 415 555 0100"),
            ("recording_url", "https://recordings.example.com/v/4404"),
            ("opted_in_on", &today),
            ("note", ""),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
    let request = dnd::db::optin::open_request(&mut app.db.conn(), downtown, id, Channel::Sms)
        .unwrap()
        .unwrap();

    let mut app = app;
    app.client = new_client();
    app.sign_in_as(demo::SUPPORT_USER).await;
    let (_, html) = app.get_text(&page).await;
    let note = text_of(&html, "dnd-read-only");
    assert!(note.starts_with("Support sees DND read-only"), "{note}");
    let panel = card(&html, "dnd");
    let switches: Vec<&str> = panel
        .split('<')
        .filter(|t| t.contains("role=\"switch\""))
        .collect();
    assert_eq!(switches.len(), 1 + 5 + 2, "all, five channels, two inbound");
    for s in &switches {
        assert!(
            s.starts_with("button type=\"button\""),
            "cannot submit: {s}"
        );
        assert!(s.contains("aria-disabled=\"true\""), "{s}");
        assert!(s.contains("aria-describedby=\"dnd-read-only"), "{s}");
        assert!(!s.contains(" disabled"), "stays focusable: {s}");
    }
    assert_eq!(text_of(&html, "state-sms"), "Blocked");
    assert_eq!(text_of(&html, "state-email"), "Allowed");
    assert!(text_of(&html, "channel-sms").contains("only the contact (START) or support can lift"));
    let r = post(&app, &page, "dnd", &[("target", "all"), ("turn", "on")]).await;
    assert_eq!(r.status().as_u16(), 403, "the server refuses it too");

    // The request's page says what approval lifts, by who lifts it.
    let (code, html) = app.get_text(&format!("/support/requests/{request}")).await;
    assert_eq!(code, 200);
    let lifts = text_of(&html, "lifts");
    assert!(
        lifts.contains("Opted out by SMS only the contact (START) or support can lift"),
        "{lifts}"
    );
    assert!(!lifts.to_lowercase().contains("permanent"));
}

#[actix_web::test]
async fn an_email_needs_a_subject_and_comes_back_as_typed() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550405");
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    let subject = tag(&html, "subject-email");
    assert!(subject.contains(" required"), "{subject}");

    let r = post(
        &app,
        &page,
        "messages",
        &[
            ("channel", "email"),
            ("subject", "   "),
            ("body", "Your crown is ready."),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(
        text_of(&html, "subject-error-email").starts_with("An email needs a subject"),
        "next to the field"
    );
    let subject = tag(&html, "subject-email");
    assert!(
        subject.contains("aria-invalid=\"true\" aria-describedby=\"subject-error-email\""),
        "{subject}"
    );
    assert_eq!(text_of(&html, "body-email"), "Your crown is ready.", "kept");
    assert_eq!(message_count(&app, id), 0, "nothing recorded");

    // With a subject it goes.
    let r = post(
        &app,
        &page,
        "messages",
        &[
            ("channel", "email"),
            ("subject", "Crown"),
            ("body", "Your crown is ready."),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(message_count(&app, id), 1);
}

#[actix_web::test]
async fn the_sms_composer_counts_segments_and_a_send_is_confirmed_in_its_card() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550406");
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    let (_, html) = app.get_text(&page).await;
    let count = tag(&html, "count-sms");
    assert!(count.contains("aria-live=\"polite\""), "{count}");
    assert_eq!(
        text_of(&html, "count-sms"),
        "0 characters · 0 SMS segments (GSM-7)"
    );
    assert!(text_of(&html, "count-hint-sms").contains("160 GSM-7 characters"));
    let body = tag(&html, "body-sms");
    assert!(
        body.contains("aria-describedby=\"count-sms count-hint-sms\"")
            && body.contains("data-sms-counter=\"count-sms\""),
        "{body}"
    );
    assert!(html.contains("<script src=\"/static/compose.js\" defer></script>"));
    let script = app.get("/static/compose.js").await;
    assert_eq!(script.status().as_u16(), 200);
    assert!(script
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("data-sms-counter"));

    // A refused message comes back counted: too long, with one € (two
    // septets) — 10,001 characters, 66 segments.
    let long = format!("€{}", "a".repeat(10_000));
    let r = post(
        &app,
        &page,
        "messages",
        &[("channel", "sms"), ("body", &long)],
    )
    .await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert_eq!(
        text_of(&html, "count-sms"),
        "10001 characters · 66 SMS segments (GSM-7)"
    );
    assert!(tag(&html, "body-sms")
        .contains("aria-describedby=\"body-error-sms count-sms count-hint-sms\""));
    // A blank one of em spaces: Unicode.
    let r = post(
        &app,
        &page,
        "messages",
        &[("channel", "sms"), ("body", "\u{2003}\u{2003}")],
    )
    .await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert_eq!(
        text_of(&html, "count-sms"),
        "2 characters · 1 SMS segment (Unicode)"
    );

    // Sent: the confirmation is in the composer's card, and the redirect
    // names it.
    let r = post(
        &app,
        &page,
        "messages",
        &[("channel", "sms"), ("body", "See you at 10")],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        location(&r).ends_with(&format!("{page}#send-result")),
        "{}",
        location(&r)
    );
    let (_, html) = app.get_text(&page).await;
    let result = tag(&html, "send-result");
    assert!(result.contains("tabindex=\"-1\"") && result.contains("role=\"status\""));
    assert!(text_of(&html, "send-result").starts_with("SMS message queued for sending"));
    assert!(card(&html, "compose").contains("id=\"send-result\""));
    assert!(!html.contains("id=\"flash\""));
}
