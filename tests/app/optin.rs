//! Opt-in evidence requests through the pages and the API, against a real
//! database: who may file and decide, what an approval lifts (exactly the
//! permanent reasons of the channel on the request's address), and the
//! ways around it we could think of (another role, another location, stale
//! or overtaken evidence, a moved address, a second decision, a rewrite in
//! SQL) refused on the server.

use chrono::{DateTime, Duration, Utc};
use diesel::RunQueryDsl;
use serde_json::Value;

use crate::common::{location, spawn_app, TestApp};
use dnd::db::contacts::{self, ContactInput};
use dnd::db::dnd as store;
use dnd::db::{demo, users};
use dnd::domain::dnd::{Action, Actor, ActorKind, DndState, Reason};
use dnd::domain::{Channel, EmailAddress, PhoneNumber};

const RECORDING: &str = "https://recordings.example.com/v/8812";

fn new_contact(app: &TestApp, location_id: i64, phone: &str, email: &str) -> i64 {
    contacts::upsert(
        &mut app.db.conn(),
        location_id,
        &ContactInput {
            name: Some(format!("Evidence {phone}")),
            phone: Some(PhoneNumber::parse_international(phone).unwrap()),
            email: Some(EmailAddress::parse(email).unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

/// Sets a reason as its rightful setter would, at `at`.
fn set_at(
    app: &TestApp,
    location_id: i64,
    contact_id: i64,
    channel: Channel,
    reason: Reason,
    at: DateTime<Utc>,
) {
    let actor = if reason == Reason::Manual {
        Actor::new(ActorKind::Api, None, "API key test")
    } else {
        Actor::new(ActorKind::Provider, None, "Twilio")
    };
    store::apply(&mut app.db.conn(), location_id, contact_id, |s| {
        s.set(channel, reason, &actor, at, None, Some("SM-test".into()))
    })
    .unwrap();
}

fn set(app: &TestApp, location_id: i64, contact_id: i64, channel: Channel, reason: Reason) {
    set_at(app, location_id, contact_id, channel, reason, Utc::now());
}

fn state_of(app: &TestApp, location_id: i64, contact_id: i64) -> DndState {
    store::load_state(&mut app.db.conn(), location_id, contact_id)
        .unwrap()
        .unwrap()
}

fn reasons(state: &DndState, channel: Channel) -> Vec<Reason> {
    state.reasons(channel).iter().map(|a| a.reason).collect()
}

fn count(app: &TestApp, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<N>(&mut app.db.conn())
        .unwrap()
        .n
}

fn good_evidence(opted_in_on: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "relationship_numbers",
            "+1 415 555 0100, +1 415 555 0199".into(),
        ),
        ("recording_url", RECORDING.into()),
        ("opted_in_on", opted_in_on.into()),
        (
            "note",
            "Asked at the front desk to hear from us again.".into(),
        ),
    ]
}

fn today() -> String {
    Utc::now().date_naive().to_string()
}

/// Files a request through the form, as the signed-in user.
async fn file(
    app: &TestApp,
    location_id: i64,
    contact_id: i64,
    channel: &str,
    fields: &[(&'static str, String)],
) -> (u16, String) {
    let page = format!("/locations/{location_id}/contacts/{contact_id}");
    let csrf = app.csrf_from("/locations").await;
    let mut all: Vec<(&str, &str)> = vec![("csrf_token", &csrf), ("channel", channel)];
    all.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    let r = app.post_form(&format!("{page}/optin-requests"), &all).await;
    let status = r.status().as_u16();
    let body = if status == 303 {
        location(&r)
    } else {
        r.text().await.unwrap()
    };
    (status, body)
}

/// Approves (`approve`) or rejects (`reject`) as the signed-in user.
async fn decide(
    app: &TestApp,
    request_id: i64,
    what: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let csrf = app.csrf_from("/locations").await;
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    let r = app
        .post_form(&format!("/support/requests/{request_id}/{what}"), &all)
        .await;
    let status = r.status().as_u16();
    let body = if status == 303 {
        location(&r)
    } else {
        r.text().await.unwrap()
    };
    (status, body)
}

fn open_request(app: &TestApp, location_id: i64, contact_id: i64, channel: Channel) -> Option<i64> {
    dnd::db::optin::open_request(&mut app.db.conn(), location_id, contact_id, channel).unwrap()
}

fn user_id(app: &TestApp, email: &str) -> i64 {
    users::find_by_email(&mut app.db.conn(), email)
        .unwrap()
        .unwrap()
        .id
}

#[actix_web::test]
async fn approval_lifts_only_the_permanent_reasons_and_names_support_and_the_request() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550111", "ev111@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    set(&app, downtown, id, Channel::Sms, Reason::CarrierBlocked);
    set(&app, downtown, id, Channel::Sms, Reason::CarrierUnreachable);
    set(
        &app,
        downtown,
        id,
        Channel::Email,
        Reason::EmailSpamComplaint,
    );
    set(&app, downtown, id, Channel::Call, Reason::Manual);

    app.switch_to(demo::LOCATION_USER).await;
    // The contact page offers the request next to the locked switch.
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(page.contains(&format!(
        "/locations/{downtown}/contacts/{id}/optin-requests/new?channel=sms"
    )));
    let (status, form) = app
        .get_text(&format!(
            "/locations/{downtown}/contacts/{id}/optin-requests/new?channel=sms"
        ))
        .await;
    assert_eq!(status, 200);
    assert!(form.contains("Opted out by SMS") && form.contains("Carrier: unreachable"));

    let (status, to) = file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    assert_eq!(status, 303, "{to}");
    assert_eq!(
        to,
        format!("/locations/{downtown}/contacts/{id}#optin-requests")
    );
    let request = open_request(&app, downtown, id, Channel::Sms).expect("an open request");
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(page.contains(&format!("id=\"optin-{request}\"")));
    assert!(page.contains("Waiting for support"));
    // Filing changed nothing yet.
    assert!(state_of(&app, downtown, id).is_blocked(Channel::Sms));

    app.switch_to(demo::SUPPORT_USER).await;
    let (status, queue) = app.get_text("/support/requests").await;
    assert_eq!(status, 200);
    assert!(queue.contains(&format!("/support/requests/{request}")));
    let (status, review) = app.get_text(&format!("/support/requests/{request}")).await;
    assert_eq!(status, 200);
    assert!(review.contains(&format!(
        "href=\"{RECORDING}\" target=\"_blank\" rel=\"noopener noreferrer\""
    )));
    assert!(review.contains("+14155550100") && review.contains("+14155550199"));
    assert!(review.contains("SM-test"), "the source events are shown");
    assert!(!review.contains("stale-warning"));

    let (status, to) = decide(&app, request, "approve", &[("note", "Recording is clear.")]).await;
    assert_eq!(status, 303, "{to}");
    let state = state_of(&app, downtown, id);
    assert_eq!(
        reasons(&state, Channel::Sms),
        vec![Reason::CarrierUnreachable]
    );
    assert_eq!(
        reasons(&state, Channel::Email),
        vec![Reason::EmailSpamComplaint]
    );
    assert_eq!(reasons(&state, Channel::Call), vec![Reason::Manual]);
    let (_, review) = app.get_text(&format!("/support/requests/{request}")).await;
    assert!(review.contains("approved") && review.contains("Recording is clear."));

    let support = user_id(&app, demo::SUPPORT_USER);
    let lifted: Vec<_> = store::history(&mut app.db.conn(), downtown, id, 100)
        .unwrap()
        .into_iter()
        .filter(|h| h.action == Action::Lifted)
        .collect();
    let mut which: Vec<Reason> = lifted.iter().filter_map(|h| h.reason).collect();
    which.sort();
    assert_eq!(which, vec![Reason::SmsOptOut, Reason::CarrierBlocked]);
    for h in &lifted {
        assert_eq!(h.actor_kind, ActorKind::Support);
        assert_eq!(h.actor_id, Some(support));
        assert_eq!(h.actor_label, demo::SUPPORT_USER);
        assert_eq!(h.source.as_deref(), Some(request.to_string().as_str()));
        assert_eq!(h.address.as_deref(), Some("+14155550111"));
    }

    // The API's history says the same: actor support, source the request.
    let (_, body) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            &format!("/api/v1/contacts/{id}/dnd/history"),
        )
        .await;
    let by_support: Vec<&Value> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["actor"]["kind"] == "support")
        .collect();
    assert_eq!(by_support.len(), 2);
    for h in by_support {
        assert_eq!(h["source"], request.to_string());
        assert_eq!(h["actor"]["label"], demo::SUPPORT_USER);
        assert_eq!(h["action"], "lifted");
    }

    // The requester sees the decision, and the history names the request.
    app.switch_to(demo::LOCATION_USER).await;
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(page.contains("approved") && page.contains("Recording is clear."));
    assert!(page.contains(&format!("(opt-in request #{request})")));
    let (status, list) = app
        .get_text(&format!("/locations/{downtown}/optin-requests"))
        .await;
    assert_eq!(status, 200);
    assert!(list.contains(&format!("#optin-{request}")) && list.contains("approved"));
}

#[actix_web::test]
async fn approving_a_spam_complaint_request_unblocks_email() {
    let mut app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    let id = new_contact(&app, harbor, "+14155550112", "ev112@example.com");
    set(&app, harbor, id, Channel::Email, Reason::EmailSpamComplaint);
    assert!(state_of(&app, harbor, id).is_blocked(Channel::Email));

    // An agency user files (Harbor is one of the agency's locations).
    app.switch_to(demo::AGENCY_USER).await;
    let (status, _) = file(&app, harbor, id, "email", &good_evidence(&today())).await;
    assert_eq!(status, 303);
    let request = open_request(&app, harbor, id, Channel::Email).unwrap();

    app.switch_to(demo::SUPPORT_USER).await;
    let (status, _) = decide(&app, request, "approve", &[]).await;
    assert_eq!(status, 303);
    let state = state_of(&app, harbor, id);
    assert!(!state.is_blocked(Channel::Email), "{state:?}");

    // The gate agrees: an email now goes out to the queue.
    let (status, body) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/messages",
            serde_json::json!({"contact_id": id, "channel": "email", "subject": "Hi", "body": "Welcome back"}),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {body}");
    assert_ne!(body["status"], "blocked", "{body}");
}

#[actix_web::test]
async fn rejection_keeps_everything_and_the_requester_reads_the_reason() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550113", "ev113@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    app.switch_to(demo::LOCATION_USER).await;
    file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    let request = open_request(&app, downtown, id, Channel::Sms).unwrap();
    let before = state_of(&app, downtown, id);

    app.switch_to(demo::SUPPORT_USER).await;
    // A rejection says why.
    let (status, page) = decide(&app, request, "reject", &[("reason", "   ")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("reason-error"));
    assert_eq!(count(&app, "optin_decisions"), 0);
    let reason = "The recording does not show the contact's number.";
    let (status, _) = decide(&app, request, "reject", &[("reason", reason)]).await;
    assert_eq!(status, 303);
    assert_eq!(state_of(&app, downtown, id), before, "DND stays as it was");

    app.switch_to(demo::LOCATION_USER).await;
    let (_, page) = app
        .get_text(&format!("/locations/{downtown}/contacts/{id}"))
        .await;
    assert!(page.contains("rejected") && page.contains("does not show the contact"));
    // The API tells automations the same.
    let (status, body) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            &format!("/api/v1/contacts/{id}/optin-requests"),
        )
        .await;
    assert_eq!(status, 200);
    let list = body["optin_requests"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], request);
    assert_eq!(list[0]["channel"], "sms");
    assert_eq!(list[0]["state"], "rejected");
    assert_eq!(list[0]["decision_note"], reason);
    assert!(list[0]["created_at"].is_string() && list[0]["decided_at"].is_string());

    // A rejected request can be followed by a new one.
    let (status, _) = file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    assert_eq!(status, 303);
    let (_, body) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            &format!("/api/v1/contacts/{id}/optin-requests"),
        )
        .await;
    let list = body["optin_requests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["state"], "open", "newest first");
    assert_eq!(list[0]["decided_at"], Value::Null);
    assert_eq!(list[0]["decision_note"], Value::Null);
    // Another location's key does not reach this contact.
    let (status, _) = app
        .api_get(
            demo::API_KEY_HARBOR,
            &format!("/api/v1/contacts/{id}/optin-requests"),
        )
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn stale_evidence_is_refused_and_same_day_evidence_counts() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let stop_at = Utc::now() - Duration::days(3);
    let stale = new_contact(&app, downtown, "+14155550114", "ev114@example.com");
    set_at(
        &app,
        downtown,
        stale,
        Channel::Sms,
        Reason::SmsOptOut,
        stop_at,
    );
    let same_day = new_contact(&app, downtown, "+14155550115", "ev115@example.com");
    set_at(
        &app,
        downtown,
        same_day,
        Channel::Sms,
        Reason::SmsOptOut,
        stop_at,
    );

    app.switch_to(demo::LOCATION_USER).await;
    let day_before = (stop_at - Duration::days(1)).date_naive().to_string();
    assert_eq!(
        file(&app, downtown, stale, "sms", &good_evidence(&day_before))
            .await
            .0,
        303
    );
    let stop_day = stop_at.date_naive().to_string();
    assert_eq!(
        file(&app, downtown, same_day, "sms", &good_evidence(&stop_day))
            .await
            .0,
        303
    );
    let stale_request = open_request(&app, downtown, stale, Channel::Sms).unwrap();
    let same_day_request = open_request(&app, downtown, same_day, Channel::Sms).unwrap();

    app.switch_to(demo::SUPPORT_USER).await;
    let (_, review) = app
        .get_text(&format!("/support/requests/{stale_request}"))
        .await;
    assert!(
        review.contains("stale-warning") && review.contains(&stop_day),
        "{review}"
    );
    assert!(
        !review.contains("id=\"approve\""),
        "no approve button on stale evidence"
    );
    let (status, page) = decide(&app, stale_request, "approve", &[]).await;
    assert_eq!(status, 409);
    assert!(page.contains("before the newest opt-out"), "{page}");
    assert!(state_of(&app, downtown, stale).is_blocked(Channel::Sms));
    assert_eq!(
        open_request(&app, downtown, stale, Channel::Sms),
        Some(stale_request)
    );

    let (status, _) = decide(&app, same_day_request, "approve", &[]).await;
    assert_eq!(status, 303);
    assert!(!state_of(&app, downtown, same_day).is_blocked(Channel::Sms));

    // A second STOP after the evidence was filed makes it stale too.
    let again = new_contact(&app, downtown, "+14155550116", "ev116@example.com");
    set_at(
        &app,
        downtown,
        again,
        Channel::Sms,
        Reason::SmsOptOut,
        stop_at,
    );
    app.switch_to(demo::LOCATION_USER).await;
    file(&app, downtown, again, "sms", &good_evidence(&stop_day)).await;
    let request = open_request(&app, downtown, again, Channel::Sms).unwrap();
    set(&app, downtown, again, Channel::Sms, Reason::SmsOptOut); // received again today
    app.switch_to(demo::SUPPORT_USER).await;
    assert_eq!(decide(&app, request, "approve", &[]).await.0, 409);
    assert!(state_of(&app, downtown, again).is_blocked(Channel::Sms));
}

#[actix_web::test]
async fn one_open_request_per_contact_and_channel_and_a_decision_is_final() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550117", "ev117@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    set(
        &app,
        downtown,
        id,
        Channel::Email,
        Reason::EmailSpamComplaint,
    );
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(
        file(&app, downtown, id, "sms", &good_evidence(&today()))
            .await
            .0,
        303
    );
    let request = open_request(&app, downtown, id, Channel::Sms).unwrap();
    let (status, page) = file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    assert_eq!(status, 409);
    assert!(
        page.contains(&format!("#optin-{request}")),
        "links to the open one"
    );
    assert_eq!(count(&app, "optin_requests"), 1);
    // Another channel of the same contact is its own request.
    assert_eq!(
        file(&app, downtown, id, "email", &good_evidence(&today()))
            .await
            .0,
        303
    );
    assert_eq!(count(&app, "optin_requests"), 2);

    app.switch_to(demo::SUPPORT_USER).await;
    assert_eq!(decide(&app, request, "approve", &[]).await.0, 303);
    let (status, page) = decide(&app, request, "approve", &[]).await;
    assert_eq!(status, 409);
    assert!(page.contains("already approved"), "{page}");
    let (status, _) = decide(&app, request, "reject", &[("reason", "changed my mind")]).await;
    assert_eq!(status, 409);
    assert_eq!(count(&app, "optin_decisions"), 1);
    let (_, review) = app.get_text(&format!("/support/requests/{request}")).await;
    assert!(
        !review.contains("id=\"reject\""),
        "a decided request offers no decision"
    );
}

#[actix_web::test]
async fn bad_fields_rerender_the_form_and_store_nothing() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550118", "ev118@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    app.switch_to(demo::LOCATION_USER).await;
    let future = (Utc::now() + Duration::days(3)).date_naive().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("recording_url", "not a link".into(), "recording_url-error"),
        (
            "recording_url",
            "javascript:alert(document.cookie)".into(),
            "recording_url-error",
        ),
        (
            "recording_url",
            format!("https://example.com/{}", "a".repeat(2000)),
            "recording_url-error",
        ),
        ("recording_url", String::new(), "recording_url-error"),
        ("opted_in_on", future, "opted_in_on-error"),
        ("opted_in_on", "yesterday".into(), "opted_in_on-error"),
        (
            "relationship_numbers",
            "+1 415 555 0100, call me".into(),
            "relationship_numbers-error",
        ),
        (
            "relationship_numbers",
            String::new(),
            "relationship_numbers-error",
        ),
        ("note", "n".repeat(2001), "note-error"),
    ];
    for (field, value, marker) in cases {
        let mut fields = good_evidence(&today());
        for f in fields.iter_mut() {
            if f.0 == field {
                f.1 = value.clone();
            }
        }
        let (status, page) = file(&app, downtown, id, "sms", &fields).await;
        assert_eq!(status, 422, "{field}={value:.40}");
        assert!(
            page.contains(marker),
            "{field}: no message next to the field"
        );
        // What was typed is kept.
        if field != "note" {
            assert!(
                page.contains("Asked at the front desk"),
                "the note was lost"
            );
        }
    }
    assert_eq!(count(&app, "optin_requests"), 0);

    // Nothing permanent on the channel: nothing for support to lift.
    let manual = new_contact(&app, downtown, "+14155550119", "ev119@example.com");
    set(&app, downtown, manual, Channel::Sms, Reason::Manual);
    set(
        &app,
        downtown,
        manual,
        Channel::Sms,
        Reason::CarrierUnreachable,
    );
    let (status, page) = file(&app, downtown, manual, "sms", &good_evidence(&today())).await;
    assert_eq!(status, 422);
    assert!(page.contains("nothing for support to lift"), "{page}");
    let (status, _) = app
        .get_text(&format!(
            "/locations/{downtown}/contacts/{manual}/optin-requests/new?channel=sms"
        ))
        .await;
    assert_eq!(status, 422);
    assert_eq!(count(&app, "optin_requests"), 0);
}

#[actix_web::test]
async fn each_role_reaches_only_its_part() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let id = new_contact(&app, downtown, "+14155550120", "ev120@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    let elsewhere = new_contact(&app, harbor, "+14155550121", "ev121@example.com");
    set(&app, harbor, elsewhere, Channel::Sms, Reason::SmsOptOut);

    // Support cannot file.
    app.switch_to(demo::SUPPORT_USER).await;
    let (status, _) = app
        .get_text(&format!(
            "/locations/{downtown}/contacts/{id}/optin-requests/new?channel=sms"
        ))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        file(&app, downtown, id, "sms", &good_evidence(&today()))
            .await
            .0,
        403
    );
    assert_eq!(count(&app, "optin_requests"), 0);
    // ... and still cannot change DND from the contact record.
    let csrf = app.csrf_from("/locations").await;
    let r = app
        .post_form(
            &format!("/locations/{downtown}/contacts/{id}/dnd"),
            &[("csrf_token", &csrf), ("target", "sms"), ("turn", "off")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    // Support reads a location's list (read-only).
    assert_eq!(
        app.get_text(&format!("/locations/{downtown}/optin-requests"))
            .await
            .0,
        200
    );

    // The location user files in their location, not in another.
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(
        file(&app, downtown, id, "sms", &good_evidence(&today()))
            .await
            .0,
        303
    );
    assert_eq!(
        file(&app, harbor, elsewhere, "sms", &good_evidence(&today()))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get_text(&format!("/locations/{harbor}/optin-requests"))
            .await
            .0,
        404
    );
    // A contact of another location through this location's URL: 404.
    assert_eq!(
        file(&app, downtown, elsewhere, "sms", &good_evidence(&today()))
            .await
            .0,
        404
    );
    let request = open_request(&app, downtown, id, Channel::Sms).unwrap();

    for user in [demo::LOCATION_USER, demo::AGENCY_USER] {
        app.switch_to(user).await;
        assert_eq!(app.get_text("/support/requests").await.0, 404, "{user}");
        assert_eq!(
            app.get_text(&format!("/support/requests/{request}"))
                .await
                .0,
            404,
            "{user}"
        );
        assert_eq!(decide(&app, request, "approve", &[]).await.0, 403, "{user}");
        assert_eq!(
            decide(&app, request, "reject", &[("reason", "no")]).await.0,
            403,
            "{user}"
        );
    }
    assert_eq!(count(&app, "optin_decisions"), 0);
    assert!(state_of(&app, downtown, id).is_blocked(Channel::Sms));

    // Signed out: sent to sign in; a forged decision without the token: 403.
    let stranger = crate::common::new_client();
    let r = stranger
        .get(app.url("/support/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    app.switch_to(demo::SUPPORT_USER).await;
    let r = app
        .post_form(
            &format!("/support/requests/{request}/approve"),
            &[("note", "")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(count(&app, "optin_decisions"), 0);
}

#[actix_web::test]
async fn approval_is_refused_when_the_address_moved_on() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550122", "ev122@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    app.switch_to(demo::LOCATION_USER).await;
    file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    let request = open_request(&app, downtown, id, Channel::Sms).unwrap();
    // The contact now has another number; the opted-out one went to a new
    // contact. Approving would free the wrong person.
    diesel::sql_query(format!(
        "UPDATE contacts SET phone = '+14155550123' WHERE location_id = {downtown} AND id = {id}"
    ))
    .execute(&mut app.db.conn())
    .unwrap();
    let other = new_contact(&app, downtown, "+14155550122", "ev122b@example.com");
    assert!(state_of(&app, downtown, other).is_blocked(Channel::Sms));

    app.switch_to(demo::SUPPORT_USER).await;
    let (status, page) = decide(&app, request, "approve", &[]).await;
    assert_eq!(status, 409);
    assert!(page.contains("address changed"), "{page}");
    assert!(state_of(&app, downtown, other).is_blocked(Channel::Sms));
    assert_eq!(count(&app, "optin_decisions"), 0);
}

#[actix_web::test]
async fn requests_and_decisions_are_append_only_in_the_database() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let decided = new_contact(&app, downtown, "+14155550124", "ev124@example.com");
    set(&app, downtown, decided, Channel::Sms, Reason::SmsOptOut);
    let waiting = new_contact(&app, downtown, "+14155550126", "ev126@example.com");
    set(&app, downtown, waiting, Channel::Sms, Reason::SmsOptOut);
    app.switch_to(demo::LOCATION_USER).await;
    file(&app, downtown, decided, "sms", &good_evidence(&today())).await;
    file(&app, downtown, waiting, "sms", &good_evidence(&today())).await;
    let rejected = open_request(&app, downtown, decided, Channel::Sms).unwrap();
    let open = open_request(&app, downtown, waiting, Channel::Sms).unwrap();
    app.switch_to(demo::SUPPORT_USER).await;
    decide(&app, rejected, "reject", &[("reason", "blurry")]).await;

    // The triggers refuse every rewrite, of an open request as of a decided
    // one (a foreign key alone would let an open request be deleted).
    let mut conn = app.db.conn();
    for sql in [
        format!("UPDATE optin_requests SET opted_in_on = current_date + 30 WHERE id = {open}"),
        format!("DELETE FROM optin_requests WHERE id = {open}"),
        format!(
            "UPDATE optin_requests SET recording_url = 'https://x.example' WHERE id = {rejected}"
        ),
        "TRUNCATE optin_requests CASCADE".to_string(),
        format!("UPDATE optin_decisions SET decision = 'approved' WHERE request_id = {rejected}"),
        format!("DELETE FROM optin_decisions WHERE request_id = {rejected}"),
        "TRUNCATE optin_decisions".to_string(),
    ] {
        let refused = diesel::sql_query(&sql).execute(&mut conn).unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{sql}: {refused}"
        );
    }
    // A decided request is decided once: a second decision is refused.
    let second = diesel::sql_query(format!(
        "INSERT INTO optin_decisions (location_id, request_id, decision, note, decided_by, decided_by_label)
         SELECT location_id, id, 'approved', '', requested_by, 'x' FROM optin_requests WHERE id = {rejected}"
    ))
    .execute(&mut conn)
    .unwrap_err();
    assert!(
        second.to_string().contains("optin_decisions_pkey"),
        "{second}"
    );
    // A second open request for the same contact and channel is refused by
    // the database too, whatever path inserts it.
    let twin = diesel::sql_query(format!(
        "INSERT INTO optin_requests (location_id, contact_id, channel, address, relationship_numbers,
             recording_url, opted_in_on, requested_by, requested_by_label)
         SELECT location_id, contact_id, channel, address, relationship_numbers, recording_url,
             opted_in_on, requested_by, 'x' FROM optin_requests WHERE id = {open}"
    ))
    .execute(&mut conn)
    .unwrap_err();
    assert!(
        twin.to_string()
            .contains("optin_open_one_per_contact_channel"),
        "{twin}"
    );
    assert_eq!(count(&app, "optin_decisions"), 1);
    assert_eq!(count(&app, "optin_requests"), 2);
}

#[actix_web::test]
async fn an_opt_out_after_the_request_was_filed_wins() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550127", "ev127@example.com");
    set_at(
        &app,
        downtown,
        id,
        Channel::Sms,
        Reason::SmsOptOut,
        Utc::now() - Duration::days(5),
    );
    app.switch_to(demo::LOCATION_USER).await;
    file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    let request = open_request(&app, downtown, id, Channel::Sms).unwrap();
    // The contact texts STOP again (same day as the evidence) after filing.
    let (code, _) = crate::webhooks::twilio_post(
        &app,
        downtown,
        "sms",
        &crate::webhooks::inbound("SMAFTERFILING", "+14155550127", "STOP"),
    )
    .await;
    assert_eq!(code, 200);

    app.switch_to(demo::SUPPORT_USER).await;
    let (_, review) = app.get_text(&format!("/support/requests/{request}")).await;
    assert!(review.contains("after this request was filed"), "{review}");
    let (status, page) = decide(&app, request, "approve", &[]).await;
    assert_eq!(status, 409);
    assert!(page.contains("after this request was filed"));
    assert!(state_of(&app, downtown, id).is_blocked(Channel::Sms));
    assert_eq!(count(&app, "optin_decisions"), 0);
}

#[actix_web::test]
async fn the_queue_filters_and_pages_oldest_first() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let harbor = app.location_id(demo::HARBOR);
    let filer = users::find_by_email(&mut app.db.conn(), demo::AGENCY_USER)
        .unwrap()
        .unwrap();
    let evidence = dnd::domain::optin::EvidenceDraft {
        relationship_numbers: "+14155550100".into(),
        recording_url: RECORDING.into(),
        opted_in_on: today(),
        note: String::new(),
    }
    .validate("US", Utc::now().date_naive())
    .unwrap();
    let mut filed = Vec::new();
    for i in 0..53 {
        let location_id = if i % 2 == 0 { downtown } else { harbor };
        let id = new_contact(
            &app,
            location_id,
            &format!("+1415555{:04}", 2000 + i),
            &format!("q{i}@example.com"),
        );
        let (channel, reason) = if i % 3 == 0 {
            (Channel::Email, Reason::EmailSpamComplaint)
        } else {
            (Channel::Sms, Reason::SmsOptOut)
        };
        set(&app, location_id, id, channel, reason);
        let r = dnd::db::optin::file(
            &mut app.db.conn(),
            location_id,
            id,
            channel,
            &evidence,
            &filer,
        )
        .unwrap();
        filed.push((r.id, location_id, channel));
    }
    // A request in another agency, filed last.
    let (elsewhere, foreign) = {
        let mut conn = app.db.conn();
        let agency = dnd::db::locations::create_agency(&mut conn, "Other Agency").unwrap();
        let elsewhere =
            dnd::db::locations::create(&mut conn, agency, "Elsewhere Spa", "Europe/Paris").unwrap();
        (elsewhere, agency)
    };
    let stranger = new_contact(&app, elsewhere.id, "+14155552999", "far@example.com");
    set(
        &app,
        elsewhere.id,
        stranger,
        Channel::Sms,
        Reason::SmsOptOut,
    );
    let foreign_request = dnd::db::optin::file(
        &mut app.db.conn(),
        elsewhere.id,
        stranger,
        Channel::Sms,
        &evidence,
        &filer,
    )
    .unwrap()
    .id;

    // The demo agency's users do not reach the other agency's location.
    for user in [demo::AGENCY_USER, demo::LOCATION_USER] {
        app.switch_to(user).await;
        assert_eq!(
            app.get_text(&format!("/locations/{}/optin-requests", elsewhere.id))
                .await
                .0,
            404,
            "{user}"
        );
        assert_eq!(
            file(
                &app,
                elsewhere.id,
                stranger,
                "sms",
                &good_evidence(&today())
            )
            .await
            .0,
            404,
            "{user}"
        );
    }

    app.switch_to(demo::SUPPORT_USER).await;
    let ids_in = |html: &str| -> Vec<i64> {
        html.match_indices("id=\"review-")
            .map(|(i, m)| {
                let rest = &html[i + m.len()..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    };
    let (_, first) = app.get_text("/support/requests").await;
    let page1 = ids_in(&first);
    assert_eq!(page1.len(), 50);
    assert_eq!(
        page1,
        filed.iter().take(50).map(|f| f.0).collect::<Vec<_>>(),
        "oldest first"
    );
    let next = format!("state=open&agency=&location=&channel=&after={}", page1[49]);
    assert!(
        first.replace("&#38;", "&").contains(&next),
        "a next link keeps the filters: {}",
        &first[first.find("pager").unwrap_or(0)..]
    );
    let (_, second) = app.get_text(&format!("/support/requests?{next}")).await;
    let mut rest: Vec<i64> = filed[50..].iter().map(|f| f.0).collect();
    rest.push(foreign_request);
    assert_eq!(ids_in(&second), rest);

    let (_, harbor_email) = app
        .get_text(&format!(
            "/support/requests?state=open&location={harbor}&channel=email"
        ))
        .await;
    let expected: Vec<i64> = filed
        .iter()
        .filter(|f| f.1 == harbor && f.2 == Channel::Email)
        .map(|f| f.0)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids_in(&harbor_email), expected);

    // Decided requests leave the open queue and show under their state.
    let (status, _) = decide(
        &app,
        filed[0].0,
        "reject",
        &[("reason", "no consent shown")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, open) = app.get_text("/support/requests").await;
    assert_eq!(ids_in(&open)[0], filed[1].0);
    let (_, rejected) = app.get_text("/support/requests?state=rejected").await;
    assert_eq!(ids_in(&rejected), vec![filed[0].0]);
    let agency = dnd::db::locations::find(&mut app.db.conn(), downtown)
        .unwrap()
        .unwrap()
        .agency_id;
    let (_, by_agency) = app
        .get_text(&format!(
            "/support/requests?state=&agency={agency}&channel=sms"
        ))
        .await;
    let demo_sms: Vec<i64> = filed
        .iter()
        .filter(|f| f.2 == Channel::Sms)
        .map(|f| f.0)
        .collect();
    assert_eq!(
        ids_in(&by_agency),
        demo_sms,
        "every state, SMS, this agency only"
    );
    let (_, other) = app
        .get_text(&format!("/support/requests?agency={foreign}"))
        .await;
    assert_eq!(ids_in(&other), vec![foreign_request]);
    let (status, none) = app
        .get_text(&format!("/support/requests?agency={}", foreign + 1000))
        .await;
    assert_eq!(status, 200);
    assert!(ids_in(&none).is_empty() && none.contains("queue-empty"));
    assert_eq!(app.get_text("/support/requests?state=closed").await.0, 400);
}

/// A second browser signed in as `email`, beside the app's own.
async fn second_session(app: &TestApp, email: &str) -> reqwest::Client {
    let client = crate::common::new_client();
    let login = client.get(app.url("/login")).send().await.unwrap();
    let csrf = crate::common::csrf_in(&login.text().await.unwrap()).unwrap();
    let r = client
        .post(app.url("/login"))
        .header("Origin", &app.base)
        .form(&[
            ("email", email),
            ("password", demo::PASSWORD),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    client
}

#[actix_web::test]
async fn two_reviewers_deciding_at_once_decide_once() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = new_contact(&app, downtown, "+14155550125", "ev125@example.com");
    set(&app, downtown, id, Channel::Sms, Reason::SmsOptOut);
    app.switch_to(demo::LOCATION_USER).await;
    file(&app, downtown, id, "sms", &good_evidence(&today())).await;
    let request = open_request(&app, downtown, id, Channel::Sms).unwrap();

    app.switch_to(demo::SUPPORT_USER).await;
    let other = second_session(&app, demo::SUPPORT_USER).await;
    let page = other
        .get(app.url(&format!("/support/requests/{request}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let other_csrf = crate::common::csrf_in(&page).unwrap();
    let approve = decide(&app, request, "approve", &[]);
    let reject = async {
        other
            .post(app.url(&format!("/support/requests/{request}/reject")))
            .header("Origin", &app.base)
            .form(&[
                ("csrf_token", other_csrf.as_str()),
                ("reason", "not convincing"),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let ((approved, _), rejected) = tokio::join!(approve, reject);
    let mut codes = [approved, rejected];
    codes.sort();
    assert_eq!(codes, [303, 409], "one decision wins, the other is refused");
    assert_eq!(count(&app, "optin_decisions"), 1);
    // The state matches the decision that won.
    assert_eq!(
        state_of(&app, downtown, id).is_blocked(Channel::Sms),
        approved == 409
    );
}
