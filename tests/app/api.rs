use serde_json::json;

use crate::common::spawn_app;
use dnd::db::{api_keys, demo};

#[actix_web::test]
async fn me_names_the_key_s_location() {
    let app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let (code, body) = app.api_get(demo::API_KEY_DOWNTOWN, "/api/v1/me").await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"location_id": downtown, "location_name": demo::DOWNTOWN})
    );
    let (_, body) = app.api_get(demo::API_KEY_HARBOR, "/api/v1/me").await;
    assert_eq!(body["location_name"], demo::HARBOR);
}

#[actix_web::test]
async fn bad_missing_and_revoked_keys_get_401() {
    let app = spawn_app().await;
    let (code, body) = app.api_get("not-a-key", "/api/v1/me").await;
    assert_eq!(code, 401);
    assert!(body["error"].as_str().unwrap().contains("not valid"));
    let r = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let harbor = app.location_id(demo::HARBOR);
    api_keys::revoke(&mut app.db.conn(), harbor, demo::API_KEY_HARBOR).unwrap();
    let (code, _) = app.api_get(demo::API_KEY_HARBOR, "/api/v1/me").await;
    assert_eq!(code, 401, "a revoked key stops working at once");
    let (code, _) = app.api_get(demo::API_KEY_DOWNTOWN, "/api/v1/me").await;
    assert_eq!(code, 200, "other keys keep working");
}

#[actix_web::test]
async fn a_key_reaches_only_its_own_location_s_contacts() {
    let app = spawn_app().await;
    let (code, created) = app
        .api_post(
            demo::API_KEY_HARBOR,
            "/api/v1/contacts",
            json!({"name": "Harbor Only", "phone": "+1 312 555 0199", "email": "harbor.only@example.com"}),
        )
        .await;
    assert_eq!(code, 201);
    let id = created["id"].as_i64().unwrap();

    let (code, body) = app
        .api_get(demo::API_KEY_HARBOR, &format!("/api/v1/contacts/{id}"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["name"], "Harbor Only");

    let (code, body) = app
        .api_get(demo::API_KEY_DOWNTOWN, &format!("/api/v1/contacts/{id}"))
        .await;
    assert_eq!(code, 404, "another location's key cannot read it");
    assert!(body.get("name").is_none());
    let (code, body) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts?email=harbor.only@example.com",
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["contacts"], json!([]), "nor find it");
    // Upserting the same phone with Downtown's key makes Downtown's own contact.
    let (code, other) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "+13125550199"}),
        )
        .await;
    assert_eq!(code, 201);
    assert_ne!(other["id"], created["id"]);
    let (_, body) = app
        .api_get(demo::API_KEY_HARBOR, &format!("/api/v1/contacts/{id}"))
        .await;
    assert_eq!(body["name"], "Harbor Only", "Harbor's contact is untouched");
}

#[actix_web::test]
async fn upsert_creates_then_updates_the_same_contact() {
    let app = spawn_app().await;
    let (code, created) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"name": "Ana Lopez", "phone": "+1 (917) 555-0142", "email": "Ana.Lopez@Example.com", "whatsapp_id": "19175550142"}),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(created["phone"], "+19175550142", "stored in E.164");
    assert_eq!(
        created["email"], "ana.lopez@example.com",
        "stored normalised"
    );

    // Matched by email this time; the phone and WhatsApp id are kept.
    let (code, updated) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"name": "Ana López", "email": "ana.lopez@example.com"}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["name"], "Ana López");
    assert_eq!(updated["phone"], "+19175550142");
    assert_eq!(
        updated["whatsapp_id"], "+19175550142",
        "WhatsApp ids in E.164"
    );

    let (code, found) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts?phone=%2B19175550142",
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(found["contacts"][0]["id"], created["id"]);
    assert_eq!(found["contacts"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn invalid_input_gets_a_422_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let before = dnd::db::contacts::list(
        &mut app.db.conn(),
        app.location_id(demo::DOWNTOWN),
        &Default::default(),
        &dnd::db::contacts::Cursor::First,
        1000,
        &Default::default(),
    )
    .unwrap()
    .contacts
    .len();

    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "555-0100", "email": "ok@example.com"}),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(body["field"], "phone");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a possible number"),
        "{body}"
    );

    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "+14155550123", "email": "not-an-email"}),
        )
        .await;
    assert_eq!(code, 422);
    assert_eq!(body["field"], "email");

    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"name": "Nobody"}),
        )
        .await;
    assert_eq!(code, 422, "a contact needs a phone or an email");
    assert_eq!(body["field"], "phone");

    let (code, body) = app
        .api_get(demo::API_KEY_DOWNTOWN, "/api/v1/contacts?email=nope")
        .await;
    assert_eq!(code, 422);
    assert_eq!(body["field"], "email");

    // A body that is not JSON, or has an unknown field: 400 with a message.
    let r = app
        .client
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(demo::API_KEY_DOWNTOWN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("JSON"));
    let (code, _) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "+14155550123", "dnd": false}),
        )
        .await;
    assert_eq!(
        code, 400,
        "unknown fields are refused, not silently ignored"
    );

    let after = dnd::db::contacts::list(
        &mut app.db.conn(),
        app.location_id(demo::DOWNTOWN),
        &Default::default(),
        &dnd::db::contacts::Cursor::First,
        1000,
        &Default::default(),
    )
    .unwrap()
    .contacts
    .len();
    assert_eq!(before, after, "nothing was stored");
}

#[actix_web::test]
async fn a_phone_and_an_email_of_two_different_contacts_conflict() {
    let app = spawn_app().await;
    // Matched on the phone of a demo contact: its email is replaced.
    let (code, first) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "+12125550100", "email": "new.address@example.com"}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(first["email"], "new.address@example.com");
    // Another demo contact's phone with that email: two people, refused.
    let (code, body) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts",
            json!({"phone": "+12125550101", "email": "new.address@example.com"}),
        )
        .await;
    assert_eq!(code, 409);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("update them separately"));
    let (_, still) = app
        .api_get(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/contacts?phone=%2B12125550101",
        )
        .await;
    assert_ne!(still["contacts"][0]["email"], "new.address@example.com");
}

#[actix_web::test]
async fn unknown_api_routes_and_ids_answer_json_404() {
    let app = spawn_app().await;
    let (code, body) = app
        .api_get(demo::API_KEY_DOWNTOWN, "/api/v1/contacts/999999")
        .await;
    assert_eq!(code, 404);
    assert!(body["error"].is_string());
    let (code, body) = app.api_get(demo::API_KEY_DOWNTOWN, "/api/v1/nothing").await;
    assert_eq!(code, 404);
    assert!(body["error"].is_string());
}
