//! Sending on WhatsApp (Cloud API) and Messenger (Send API) through the real
//! client, against a local server speaking Meta's documented formats; the
//! WhatsApp errors that mean the person opted out set DND for real.

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::common::{spawn_app, test_hosts, TestApp};
use crate::dnd::state_of;
use dnd::db::contacts::{self, ContactInput};
use dnd::db::demo;
use dnd::domain::dnd::Reason;
use dnd::domain::{Channel, PhoneNumber, TransportKind};
use dnd::outbound::dispatcher::Dispatcher;

type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// Graph API `/{version}/{id}/messages`: WhatsApp numbers ending in 9 get
/// error 131050 (the user stopped marketing messages), others a wamid;
/// Messenger recipients get a message id.
async fn fake_graph() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let data = web::Data::new(seen.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/{version}/{account}/messages",
            web::post().to(|req: HttpRequest, body: web::Json<Value>, seen: web::Data<Seen>| async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                let body = body.into_inner();
                seen.lock().unwrap().push((req.path().to_string(), auth, body.clone()));
                if body["messaging_product"] == "whatsapp" {
                    let to = body["to"].as_str().unwrap_or_default();
                    if to.ends_with('9') {
                        return HttpResponse::BadRequest().json(json!({"error": {
                            "message": "(#131050) Unable to deliver message: user has stopped marketing messages",
                            "type": "OAuthException", "code": 131050, "fbtrace_id": "AbC"}}));
                    }
                    return HttpResponse::Ok().json(json!({
                        "messaging_product": "whatsapp",
                        "contacts": [{"input": to, "wa_id": to}],
                        "messages": [{"id": "wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI"}]}));
                }
                HttpResponse::Ok().json(json!({"recipient_id": body["recipient"]["id"], "message_id": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM"}))
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), seen)
}

fn person(app: &TestApp, location_id: i64, phone: &str, facebook: &str) -> i64 {
    contacts::upsert(
        &mut app.db.conn(),
        location_id,
        &ContactInput {
            phone: Some(PhoneNumber::parse_international(phone).unwrap()),
            facebook_id: Some(facebook.into()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

async fn queue(app: &TestApp, id: i64, channel: &str) -> (u16, Value) {
    app.api_post(
        demo::API_KEY_DOWNTOWN,
        "/api/v1/messages",
        json!({"contact_id": id, "channel": channel, "body": "Your appointment is at 10:00"}),
    )
    .await
}

#[actix_web::test]
async fn whatsapp_and_messenger_send_the_documented_requests_and_131050_sets_dnd() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (base, seen) = fake_graph().await;
    for channel in [Channel::Whatsapp, Channel::Facebook] {
        dnd::db::integrations::set_transport(
            &mut app.db.conn(),
            downtown,
            channel,
            TransportKind::Meta,
            Some(&base),
            Some("EAAG-meta-access-token"),
            None,
        )
        .unwrap();
    }
    let ana = person(&app, downtown, "+14155550800", "7001234567890123");
    let stopped = person(&app, downtown, "+14155550809", "7001234567890124");
    let (code, wa) = queue(&app, ana, "whatsapp").await;
    assert_eq!(code, 202, "{wa}");
    let (_, fb) = queue(&app, ana, "facebook").await;
    let (_, refused) = queue(&app, stopped, "whatsapp").await;
    let dispatcher = Dispatcher::new(app.db.pool(), None, test_hosts()).unwrap();
    while dispatcher.run_once().await.unwrap() > 0 {}

    let requests = seen.lock().unwrap().clone();
    let whatsapp = requests
        .iter()
        .find(|(_, _, b)| b["to"] == "14155550800")
        .expect("a Cloud API request");
    assert_eq!(whatsapp.0, "/v21.0/downtown-dental-waba/messages");
    assert_eq!(whatsapp.1, "Bearer EAAG-meta-access-token");
    assert_eq!(whatsapp.2["messaging_product"], "whatsapp");
    assert_eq!(whatsapp.2["type"], "text");
    assert_eq!(whatsapp.2["text"]["body"], "Your appointment is at 10:00");
    let messenger = requests
        .iter()
        .find(|(_, _, b)| b["recipient"]["id"] == "7001234567890123")
        .expect("a Send API request");
    assert_eq!(messenger.0, "/v21.0/downtown-dental-page/messages");
    assert_eq!(
        messenger.2["message"]["text"],
        "Your appointment is at 10:00"
    );

    let status = |id: &Value| {
        let path = format!("/api/v1/messages/{id}");
        let app = &app;
        async move { app.api_get(demo::API_KEY_DOWNTOWN, &path).await.1 }
    };
    let sent = status(&wa["id"]).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["provider_sid"], "wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI");
    assert_eq!(status(&fb["id"]).await["status"], "sent");
    let failed = status(&refused["id"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error_code"], 131050);
    // The person's opt-out is DND now, kept on their number: the next
    // WhatsApp message is refused at the gate, and no request goes out.
    let state = state_of(&app, downtown, stopped);
    assert!(state
        .reasons(Channel::Whatsapp)
        .iter()
        .any(|a| a.reason == Reason::ChannelOptOut));
    let before = seen.lock().unwrap().len();
    let (code, body) = queue(&app, stopped, "whatsapp").await;
    assert_eq!(code, 409, "{body}");
    while dispatcher.run_once().await.unwrap() > 0 {}
    assert_eq!(seen.lock().unwrap().len(), before);
    // The token never reaches a stored error.
    assert!(!failed.to_string().contains("EAAG-meta-access-token"));
}
