//! A location's API keys in the browser: made by agency users, shown once,
//! stored hashed, revoked; read-only for support; nothing for others.

use crate::common::spawn_app;
use dnd::db::demo;

fn shown_key(html: &str) -> String {
    let marker = "id=\"new-api-key\">";
    let start = html.find(marker).expect("the new key is shown") + marker.len();
    html[start..start + html[start..].find('<').unwrap()].to_string()
}

#[actix_web::test]
async fn an_agency_user_makes_a_key_that_works_once_shown_and_revokes_it() {
    let mut app = spawn_app().await;
    let harbor = app.location_id(demo::HARBOR);
    app.switch_to(demo::AGENCY_USER).await;
    let page = format!("/locations/{harbor}/api-keys");
    let (status, html) = app.submit(&page, &[("name", "Zapier")]).await;
    assert_eq!(status, 201);
    let key = shown_key(&html);
    assert!(key.starts_with("dnd_") && key.len() > 60, "{key}");
    // It works, for this location only.
    let (status, me) = app.api_get(&key, "/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["location_id"], harbor);
    // Never shown again, never stored in clear.
    let (_, list) = app.get_text(&page).await;
    assert!(list.contains("Zapier") && !list.contains(&key));
    {
        use diesel::prelude::*;
        use dnd::db::schema::api_keys;
        let stored: Vec<String> = api_keys::table
            .select(api_keys::key_sha256)
            .load(&mut app.db.conn())
            .unwrap();
        assert!(!stored.contains(&key));
        assert!(stored.contains(&dnd::db::api_keys::hash_key(&key)));
    }
    let zapier_row = &list[list.find("Zapier").unwrap()..];
    let zapier_row = &zapier_row[..zapier_row.find("</tr>").unwrap()];
    assert!(
        !zapier_row.contains("never"),
        "last use shown: {zapier_row}"
    );
    // A name is needed.
    assert_eq!(app.submit(&page, &[("name", "  ")]).await.0, 422);
    let id = {
        use diesel::prelude::*;
        use dnd::db::schema::api_keys;
        api_keys::table
            .filter(api_keys::key_sha256.eq(dnd::db::api_keys::hash_key(&key)))
            .select(api_keys::id)
            .first::<i64>(&mut app.db.conn())
            .unwrap()
    };
    let (status, to) = app.submit(&format!("{page}/{id}/revoke"), &[]).await;
    assert_eq!((status, to.as_str()), (303, page.as_str()));
    assert_eq!(app.api_get(&key, "/api/v1/me").await.0, 401);
    assert_eq!(
        app.submit(&format!("{page}/{id}/revoke"), &[]).await.0,
        404,
        "revoked once"
    );
}

#[actix_web::test]
async fn only_the_locations_agency_users_manage_keys() {
    let mut app = spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let page = format!("/locations/{downtown}/api-keys");
    app.switch_to(demo::SUPPORT_USER).await;
    assert_eq!(app.get_text(&page).await.0, 200, "support reads the list");
    assert_eq!(app.submit(&page, &[("name", "mine")]).await.0, 403);
    app.switch_to(demo::LOCATION_USER).await;
    assert_eq!(app.get_text(&page).await.0, 403);
    assert_eq!(app.submit(&page, &[("name", "mine")]).await.0, 403);
    // Another agency's user does not see the location at all.
    app.switch_to_other_agency().await;
    assert_eq!(app.get_text(&page).await.0, 404);
    assert_eq!(app.submit(&page, &[("name", "mine")]).await.0, 404);
    assert_eq!(app.submit(&format!("{page}/1/revoke"), &[]).await.0, 404);
    {
        use diesel::prelude::*;
        use dnd::db::schema::api_keys;
        let names: Vec<String> = api_keys::table
            .select(api_keys::name)
            .load(&mut app.db.conn())
            .unwrap();
        assert!(!names.contains(&"mine".to_string()));
    }
    // The demo key still works: nobody revoked it.
    assert_eq!(
        app.api_get(demo::API_KEY_DOWNTOWN, "/api/v1/me").await.0,
        200
    );
}
