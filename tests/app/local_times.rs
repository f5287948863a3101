//! Times in the location's time zone and one label per channel and
//! provider (issue 14): Downtown Dental is in America/New_York, so a page
//! shows EST/EDT with the UTC instant in `title`, reason texts give the
//! local date, and the timeline and settings name channels and providers
//! as everywhere else ("SMS", "Twilio").

use chrono::{DateTime, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::common::spawn_app;
use crate::dnd::new_contact;
use dnd::db::dnd as store;
use dnd::db::outbound::{self, NewMessage};
use dnd::db::{demo, schema::contacts};
use dnd::domain::dnd::{Actor, ActorKind, Origin, Reason};
use dnd::domain::Channel;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[actix_web::test]
async fn a_new_york_location_shows_local_times_and_dates_with_the_utc_instant_in_the_title() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550701");
    // 02:00 UTC on the 28th is 21:00 on the 27th in New York (EST); the
    // 4th of July is in summer time (EDT).
    diesel::update(contacts::table.filter(contacts::id.eq(id)))
        .set((
            contacts::created_at.eq(utc(2026, 11, 28, 2, 0)),
            contacts::updated_at.eq(utc(2026, 7, 4, 16, 0)),
        ))
        .execute(&mut app.db.conn())
        .unwrap();
    // The contact texted STOP at that same instant.
    store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &Actor::new(ActorKind::Provider, None, "Twilio"),
            utc(2026, 11, 28, 2, 0),
            None,
            Some("SM701".into()),
        )
    })
    .unwrap();

    app.sign_in_as(demo::LOCATION_USER).await;
    let (status, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains(
            "<dt>Created</dt><dd><time datetime=\"2026-11-28T02:00:00Z\" \
             title=\"2026-11-28 02:00 UTC\">2026-11-27 21:00 EST</time></dd>"
        ),
        "created in local time with EST, UTC in the title"
    );
    assert!(
        html.contains(
            "<dt>Updated</dt><dd><time datetime=\"2026-07-04T16:00:00Z\" \
             title=\"2026-07-04 16:00 UTC\">2026-07-04 12:00 EDT</time></dd>"
        ),
        "summer time reads EDT"
    );
    // The reason: since the local time, and its explanation on the local
    // date (the 27th, though it was already the 28th in UTC).
    assert!(
        html.contains(
            "since <time datetime=\"2026-11-28T02:00:00Z\" title=\"2026-11-28 02:00 UTC\">\
             2026-11-27 21:00 EST</time>"
        ),
        "the reason's since is local"
    );
    assert!(
        html.contains("on 2026-11-27 (EST); "),
        "the reason text gives the local date"
    );
    assert!(
        !html.contains("on 2026-11-28"),
        "no UTC date in reason texts"
    );
    // The timeline's and the history's times are local, with seconds.
    assert!(html.contains(
        "<time datetime=\"2026-11-28T02:00:00Z\" title=\"2026-11-28 02:00:00 UTC\">\
         2026-11-27 21:00:00 EST</time>"
    ));
    assert!(!html.contains(":00 UTC</td>"), "no bare UTC time left");
}

#[actix_web::test]
async fn channels_and_providers_are_named_by_their_labels() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+13125550702");
    outbound::send_one(
        &mut app.db.conn(),
        downtown,
        &NewMessage {
            contact_id: id,
            channel: Channel::Sms,
            origin: Origin::Manual,
            body: "See you at 3",
            subject: None,
        },
    )
    .unwrap();
    store::apply(&mut app.db.conn(), downtown, id, |s| {
        s.set(
            Channel::Gmb,
            Reason::Manual,
            &Actor::new(ActorKind::LocationUser, None, "someone@demo.test"),
            Utc::now(),
            None,
            None,
        )
    })
    .unwrap();

    app.sign_in_as(demo::AGENCY_USER).await;
    let (_, html) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    let timeline = &html[html.find("id=\"messages\"").expect("the timeline")..];
    let timeline = &timeline[..timeline.find("</table>").unwrap()];
    assert!(
        timeline.contains("<td>SMS</td>"),
        "the message's channel by its label"
    );
    assert!(!timeline.contains("<td>sms</td>"), "not the stored value");
    assert!(timeline.contains("<td>Google Business Messages</td>"));
    assert!(
        timeline.contains("<th scope=\"col\">Status or who can lift</th>"),
        "the heading says what a DND row's cell is"
    );
    assert!(timeline.contains(">location or agency users, or the API, can lift</span>"));

    // The list's markers: the label, not the code.
    let (_, list) = app
        .get_text(&format!("/locations/{downtown}/contacts?q=3125550702"))
        .await;
    assert!(
        list.contains(">Google Business Messages</span>"),
        "a marker by its label: {}",
        &list[list.find("<table").unwrap_or(0)..]
    );
    assert!(!list.contains(">gmb</span>"));

    // Providers by their names.
    let (status, page) = app
        .get_text(&format!("/locations/{downtown}/integrations"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Provider: Twilio"), "Twilio, not twilio");
    assert!(page.contains("Provider: Mailgun"));
    assert!(!page.contains("Provider: twilio"));
    let (status, settings) = app
        .get_text(&format!("/locations/{downtown}/settings"))
        .await;
    assert_eq!(status, 200);
    assert!(
        settings.contains(">Twilio API</option>"),
        "settings name it too"
    );
    assert!(!settings.contains(">twilio API</option>"));
}

#[actix_web::test]
async fn support_reads_each_request_in_its_own_location_s_time() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let mut filed = Vec::new();
    for (location, phone) in [(downtown, "+13125550703"), (harbor, "+13125550704")] {
        let id = new_contact(&app, location, phone);
        store::apply(&mut app.db.conn(), location, id, |s| {
            s.set(
                Channel::Sms,
                Reason::SmsOptOut,
                &Actor::new(ActorKind::Provider, None, "Twilio"),
                utc(2026, 11, 20, 12, 0),
                None,
                Some("SM703".into()),
            )
        })
        .unwrap();
        let user = if location == downtown {
            demo::LOCATION_USER
        } else {
            demo::AGENCY_USER
        };
        app.switch_to(user).await;
        let csrf = app.csrf_from("/locations").await;
        let r = app
            .post_form(
                &format!("/locations/{location}/contacts/{id}/optin-requests"),
                &[
                    ("csrf_token", csrf.as_str()),
                    ("channel", "sms"),
                    ("relationship_numbers", "+1 415 555 0100"),
                    (
                        "recording_url",
                        "https://recordings.example.com/optin/703.mp3",
                    ),
                    ("opted_in_on", "2026-11-21"),
                    ("note", "Asked at the front desk to hear from us again."),
                ],
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "the request is filed");
        filed.push(location);
    }
    // Both filed at 02:00 UTC on the 28th: the 27th at 21:00 in New York
    // (Downtown), 18:00 in Los Angeles (Harbor).
    // The table is append-only (a trigger): back-date the filing around it.
    app.db
        .conn()
        .batch_execute(
            "SET session_replication_role = replica; \
             UPDATE optin_requests SET created_at = '2026-11-28 02:00:00+00'; \
             SET session_replication_role = DEFAULT;",
        )
        .unwrap();
    let ids: Vec<(i64, i64)> = dnd::db::schema::optin_requests::table
        .select((
            dnd::db::schema::optin_requests::location_id,
            dnd::db::schema::optin_requests::id,
        ))
        .load(&mut app.db.conn())
        .unwrap();
    assert_eq!(ids.len(), 2);

    app.switch_to(demo::SUPPORT_USER).await;
    let (status, queue) = app.get_text("/support/requests").await;
    assert_eq!(status, 200);
    assert!(
        queue.contains("title=\"Filed 2026-11-27 21:00 EST\""),
        "Downtown's request in New York time"
    );
    assert!(
        queue.contains("title=\"Filed 2026-11-27 18:00 PST\""),
        "Harbor's in Los Angeles time"
    );
    let (_, downtown_request) = ids.iter().find(|(l, _)| *l == downtown).unwrap();
    let (status, page) = app
        .get_text(&format!("/support/requests/{downtown_request}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains(
            "<dt>Filed</dt><dd><time datetime=\"2026-11-28T02:00:00Z\" \
             title=\"2026-11-28 02:00 UTC\">2026-11-27 21:00 EST</time>"
        ),
        "the request page in its location's time"
    );
    assert_eq!(filed, [downtown, harbor]);
}
