//! The access matrix: every route the app registers (taken from the app
//! itself, `dnd::web::route_list`), asked by every kind of actor, against
//! a table of the answers DESIGN.md calls for. A route without a row fails,
//! and so does a row for a route that is gone, so a new route cannot ship
//! without someone deciding who may use it.
//!
//! Each route's subject is location A (Downtown Dental) and its things; B
//! is Harbor Fitness, the same agency's other location. State-changing
//! requests carry a valid CSRF token and this site's Origin (so what is
//! tested is the role check, not CSRF) and a minimal body, mostly empty:
//! allowed actors may then get 400/422, but denied actors must be denied,
//! with nothing in the database changed, and no answer to an actor who
//! has nothing to do with A may show A's contact. The CSRF part checks the
//! other way round: an allowed actor's form without the token, or from a
//! foreign Origin, is refused and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use diesel::{PgConnection, RunQueryDsl};
use serde_json::json;

use crate::common::{csrf_in, location, new_client, spawn_app_with, TestApp};
use dnd::db::{api_keys, contacts, demo, imports, locations, optin, subscriptions, users};
use dnd::domain::dnd::{Actor as DndActor, ActorKind, Reason};
use dnd::domain::{Channel, PhoneNumber};

/// Who asks. The table's columns, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    Anonymous,
    /// A location user of A only (the demo one).
    LocationUserA,
    /// A location user of B only.
    LocationUserB,
    /// An agency user of A's agency, not an admin.
    AgencyUser,
    /// An admin of A's agency (the demo agency user).
    AgencyAdmin,
    /// An admin of another agency.
    OtherAgency,
    Support,
    /// A's API key (sent as a bearer token; no one is signed in).
    KeyA,
    /// B's API key.
    KeyB,
}

const ACTORS: [Actor; 9] = [
    Actor::Anonymous,
    Actor::LocationUserA,
    Actor::LocationUserB,
    Actor::AgencyUser,
    Actor::AgencyAdmin,
    Actor::OtherAgency,
    Actor::Support,
    Actor::KeyA,
    Actor::KeyB,
];

impl Actor {
    fn signed_in(self) -> bool {
        !matches!(self, Actor::Anonymous | Actor::KeyA | Actor::KeyB)
    }

    /// Who has nothing to do with location A: no answer to them may show
    /// its contact, whatever its status.
    fn outsider(self) -> bool {
        matches!(
            self,
            Actor::LocationUserB | Actor::OtherAgency | Actor::KeyB
        )
    }

    fn key(self) -> Option<&'static str> {
        match self {
            Actor::KeyA => Some(demo::API_KEY_DOWNTOWN),
            Actor::KeyB => Some(demo::API_KEY_HARBOR),
            _ => None,
        }
    }
}

/// One route as registered and what each actor gets for it.
struct Row {
    method: &'static str,
    /// The path pattern as registered (with its scope).
    pattern: &'static str,
    /// The path asked, when it is not the pattern with the usual subjects
    /// filled in (see [`Subjects::fill`]): another channel, a query.
    request: Option<&'static str>,
    /// What a state-changing request sends besides the CSRF token: form
    /// fields (`a=1&b=2`) to a page, JSON to the API. Most send nothing;
    /// some routes read their form before they look at who asks, and
    /// would answer everyone 400 without one.
    body: &'static str,
    /// The status per actor, in [`ACTORS`] order.
    expect: [u16; 9],
}

impl Row {
    fn body(self, body: &'static str) -> Row {
        Row { body, ..self }
    }
}

fn at(method: &'static str, pattern: &'static str, expect: [u16; 9]) -> Row {
    Row {
        method,
        pattern,
        request: None,
        body: "",
        expect,
    }
}

fn via(
    method: &'static str,
    pattern: &'static str,
    request: &'static str,
    expect: [u16; 9],
) -> Row {
    Row {
        method,
        pattern,
        request: Some(request),
        body: "",
        expect,
    }
}

/// The expected answers. Columns: anonymous, location user of A, location
/// user of B, agency user, agency admin, other agency's admin, support,
/// A's API key, B's API key.
///
/// Reading it: pages send the signed-out (and API keys, which are no
/// sign-in) to /login (303); a location or contact one may not see is 404,
/// like one that does not exist; a page one sees but may not act on is
/// 403. The API answers 401 without a key and 404 for another location's
/// things. Webhooks are refused without a provider's signature whoever
/// asks (Twilio and Meta 403, Mailgun 406).
#[rustfmt::skip]
fn table() -> Vec<Row> {
    const GMB_TEST: &str = "/locations/{location_id}/integrations/gmb/test";
    const GMB_OFF: &str = "/locations/{location_id}/integrations/gmb/disconnect";
    const META_WRONG: &str =
        "/webhooks/meta/{location_id}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=42";
    vec![
        // Public, or nobody's.                                                        anon  locA  locB  agcy  admn  othr  supp  keyA  keyB
        at("GET", "/healthz",                                                          [200,  200,  200,  200,  200,  200,  200,  200,  200]),
        at("GET", "/static/{file}",                                                    [200,  200,  200,  200,  200,  200,  200,  200,  200]),
        // Behind a public URL, only DND_METRICS_TOKEN opens it: no session or key does.
        at("GET", "/metrics",                                                          [404,  404,  404,  404,  404,  404,  404,  404,  404]),
        at("GET", "/",                                                                 [303,  303,  303,  303,  303,  303,  303,  303,  303]),
        at("GET", "/login",                                                            [200,  303,  303,  303,  303,  303,  303,  200,  200]),
        // An empty sign-in form is a wrong email or password, whoever sends it.
        at("POST", "/login",                                                           [401,  401,  401,  401,  401,  401,  401,  401,  401]),
        at("POST", "/logout",                                                          [303,  303,  303,  303,  303,  303,  303,  303,  303]),
        // The link is the credential: anyone holding it sees the form.
        at("GET", "/set-password/{token}",                                             [200,  200,  200,  200,  200,  200,  200,  200,  200]),
        at("POST", "/set-password/{token}",                                            [422,  422,  422,  422,  422,  422,  422,  422,  422]),

        // Provider webhooks: refused without the provider's signature.
        at("POST", "/webhooks/twilio/{location_id}/sms",                               [403,  403,  403,  403,  403,  403,  403,  403,  403]),
        at("POST", "/webhooks/twilio/{location_id}/status",                            [403,  403,  403,  403,  403,  403,  403,  403,  403]),
        at("POST", "/webhooks/twilio/{location_id}/voice",                             [403,  403,  403,  403,  403,  403,  403,  403,  403]),
        at("POST", "/webhooks/mailgun/{location_id}",                                  [406,  406,  406,  406,  406,  406,  406,  406,  406]),
        via("GET", "/webhooks/meta/{location_id}", META_WRONG,                         [403,  403,  403,  403,  403,  403,  403,  403,  403]),
        at("POST", "/webhooks/meta/{location_id}",                                     [403,  403,  403,  403,  403,  403,  403,  403,  403]),

        // The agency's pages: its users (the other agency sees its own);
        // support reads every agency; location users get 404, and 403 on
        // a change. Users are managed by admins only.
        at("GET", "/agency",                                                           [303,  404,  404,  200,  200,  200,  200,  303,  303]),
        at("GET", "/agency/contacts",                                                  [303,  404,  404,  200,  200,  200,  200,  303,  303]),
        at("POST", "/agency/locations",                                                [303,  403,  403,  422,  422,  422,  403,  303,  303]),
        at("GET", "/agency/users",                                                     [303,  404,  404,  200,  200,  200,  404,  303,  303]),
        at("POST", "/agency/users",                                                    [303,  403,  403,  403,  422,  422,  403,  303,  303]),
        at("POST", "/agency/users/{user_id}/reset",                                    [303,  403,  403,  403,  200,  404,  403,  303,  303]),
        at("POST", "/agency/users/{user_id}/deactivate",                               [303,  403,  403,  403,  303,  404,  403,  303,  303]),

        // Location A's pages: its location user, its agency's users and
        // support see them; B's user and the other agency get 404.
        at("GET", "/locations",                                                        [303,  200,  200,  200,  200,  200,  200,  303,  303]),
        // Only a redirect to the chosen location's list, which checks.
        via("GET", "/locations/switch", "/locations/switch?to={location_id}",          [303,  303,  303,  303,  303,  303,  303,  303,  303]),
        at("GET", "/locations/{location_id}",                                          [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        at("GET", "/locations/{location_id}/contacts",                                 [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        at("GET", "/locations/{location_id}/contacts/{contact_id}",                    [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        at("GET", "/locations/{location_id}/dnd/export.csv",                           [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        at("GET", "/locations/{location_id}/optin-requests",                           [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        at("GET", "/locations/{location_id}/imports",                                  [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        at("GET", "/locations/{location_id}/imports/{import_id}",                      [303,  200,  404,  200,  200,  404,  200,  303,  303]),
        // Changes: support is read-only (403).
        at("GET", "/locations/{location_id}/contacts/new",                             [303,  200,  404,  200,  200,  404,  403,  303,  303]),
        at("POST", "/locations/{location_id}/contacts",                                [303,  422,  404,  422,  422,  404,  403,  303,  303]),
        at("GET", "/locations/{location_id}/contacts/{contact_id}/edit",               [303,  200,  404,  200,  200,  404,  403,  303,  303]),
        // Blank fields are kept: a valid edit that changes nothing.
        at("POST", "/locations/{location_id}/contacts/{contact_id}/edit",              [303,  303,  404,  303,  303,  404,  403,  303,  303]),
        at("POST", "/locations/{location_id}/contacts/bulk-dnd",                       [303,  422,  404,  422,  422,  404,  403,  303,  303]),
        // Lifting the all-channels switch, which is off: nothing changes.
        at("POST", "/locations/{location_id}/contacts/{contact_id}/dnd",               [303,  303,  404,  303,  303,  404,  403,  303,  303])
            .body("target=all&turn=off"),
        // SMS to a contact who texted STOP: recorded as blocked (409).
        at("POST", "/locations/{location_id}/contacts/{contact_id}/messages",          [303,  409,  404,  409,  409,  404,  403,  303,  303])
            .body("channel=sms&body=hello"),
        via("GET", "/locations/{location_id}/contacts/{contact_id}/optin-requests/new",
            "/locations/{location_id}/contacts/{contact_id}/optin-requests/new?channel=sms",
                                                                                       [303,  200,  404,  200,  200,  404,  403,  303,  303]),
        at("POST", "/locations/{location_id}/contacts/{contact_id}/optin-requests",    [303,  422,  404,  422,  422,  404,  403,  303,  303])
            .body("channel=sms"),
        // A multipart upload without its file.
        at("POST", "/locations/{location_id}/imports",                                 [303,  422,  404,  422,  422,  404,  403,  303,  303])
            .body("kind=contacts"),
        // The import has run: confirming it again is a conflict.
        at("POST", "/locations/{location_id}/imports/{import_id}/confirm",             [303,  409,  404,  409,  409,  404,  403,  303,  303]),

        // A's settings, integrations and keys: the agency's users change
        // them, support reads them, the location user gets 403.
        at("GET", "/locations/{location_id}/settings",                                 [303,  403,  404,  200,  200,  404,  200,  303,  303]),
        at("POST", "/locations/{location_id}/settings/name",                           [303,  403,  404,  422,  422,  404,  403,  303,  303]),
        at("POST", "/locations/{location_id}/settings/sms",                            [303,  403,  404,  422,  422,  404,  403,  303,  303]),
        // Every field may be blank (no forwarding, the default message).
        at("POST", "/locations/{location_id}/settings/voice",                          [303,  403,  404,  303,  303,  404,  403,  303,  303]),
        // A refused form is the settings page again, with why (422).
        at("POST", "/locations/{location_id}/settings/integrations/{channel}/secret",   [303,  403,  404,  422,  422,  404,  403,  303,  303]),
        at("POST", "/locations/{location_id}/settings/integrations/{channel}/transport",[303,  403,  404,  422,  422,  404,  403,  303,  303]),
        at("POST", "/locations/{location_id}/settings/region",                         [303,  403,  404,  422,  422,  404,  403,  303,  303]),
        at("GET", "/locations/{location_id}/integrations",                             [303,  403,  404,  200,  200,  404,  200,  303,  303]),
        at("POST", "/locations/{location_id}/integrations/{channel}/connect",          [303,  403,  404,  422,  422,  404,  403,  303,  303]),
        // GMB: already disconnected, and a legacy channel no test reaches.
        via("POST", "/locations/{location_id}/integrations/{channel}/disconnect", GMB_OFF,
                                                                                       [303,  403,  404,  303,  303,  404,  403,  303,  303]),
        via("POST", "/locations/{location_id}/integrations/{channel}/test", GMB_TEST,  [303,  403,  404,  303,  303,  404,  403,  303,  303]),
        at("GET", "/locations/{location_id}/api-keys",                                 [303,  403,  404,  200,  200,  404,  200,  303,  303]),
        at("POST", "/locations/{location_id}/api-keys",                                [303,  403,  404,  422,  422,  404,  403,  303,  303]),
        // Each actor asks to revoke a key of its own (see `Subjects`).
        at("POST", "/locations/{location_id}/api-keys/{key_id}/revoke",                [303,  403,  404,  303,  303,  404,  403,  303,  303]),

        // Support's review: 404 to others, 403 on a decision. The evidence
        // is stale, so even support's approval changes nothing (409).
        at("GET", "/support/requests",                                                 [303,  404,  404,  404,  404,  404,  200,  303,  303]),
        at("GET", "/support/requests/{request_id}",                                    [303,  404,  404,  404,  404,  404,  200,  303,  303]),
        at("POST", "/support/requests/{request_id}/approve",                           [303,  403,  403,  403,  403,  403,  409,  303,  303]),
        at("POST", "/support/requests/{request_id}/reject",                            [303,  403,  403,  403,  403,  403,  422,  303,  303]),

        // The API: a key, and only its own location's things (404).
        at("GET", "/api/v1/me",                                                        [401,  401,  401,  401,  401,  401,  401,  200,  200]),
        at("POST", "/api/v1/contacts",                                                 [401,  401,  401,  401,  401,  401,  401,  422,  422]),
        // B's key finds nobody with A's contact's number (an empty list).
        via("GET", "/api/v1/contacts", "/api/v1/contacts?phone=%2B14155557788",        [401,  401,  401,  401,  401,  401,  401,  200,  200]),
        at("GET", "/api/v1/contacts/{contact_id}",                                     [401,  401,  401,  401,  401,  401,  401,  200,  404]),
        // Lifting the all-channels switch, which is off: nothing changes.
        at("PUT", "/api/v1/contacts/{contact_id}/dnd",                                 [401,  401,  401,  401,  401,  401,  401,  200,  404])
            .body(r#"{"all": false}"#),
        at("GET", "/api/v1/contacts/{contact_id}/dnd/history",                         [401,  401,  401,  401,  401,  401,  401,  200,  404]),
        via("GET", "/api/v1/contacts/{contact_id}/dnd/check",
            "/api/v1/contacts/{contact_id}/dnd/check?channel=sms",                     [401,  401,  401,  401,  401,  401,  401,  200,  404]),
        at("GET", "/api/v1/contacts/{contact_id}/optin-requests",                      [401,  401,  401,  401,  401,  401,  401,  200,  404]),
        at("POST", "/api/v1/dnd/bulk",                                                 [401,  401,  401,  401,  401,  401,  401,  400,  400]),
        at("GET", "/api/v1/dnd/export.csv",                                            [401,  401,  401,  401,  401,  401,  401,  200,  200]),
        at("POST", "/api/v1/imports/contacts",                                         [401,  401,  401,  401,  401,  401,  401,  422,  422]),
        at("POST", "/api/v1/imports/suppressions",                                     [401,  401,  401,  401,  401,  401,  401,  422,  422]),
        at("POST", "/api/v1/messages",                                                 [401,  401,  401,  401,  401,  401,  401,  400,  400]),
        at("POST", "/api/v1/messages/bulk",                                            [401,  401,  401,  401,  401,  401,  401,  400,  400]),
        at("GET", "/api/v1/messages/{message_id}",                                     [401,  401,  401,  401,  401,  401,  401,  200,  404]),
        at("POST", "/api/v1/webhook-subscriptions",                                    [401,  401,  401,  401,  401,  401,  401,  400,  400]),
        at("GET", "/api/v1/webhook-subscriptions",                                     [401,  401,  401,  401,  401,  401,  401,  200,  200]),
        at("DELETE", "/api/v1/webhook-subscriptions/{id}",                             [401,  401,  401,  401,  401,  401,  401,  204,  404]),
    ]
}

/// The things the table's requests are about, all of location A unless
/// named otherwise.
struct Subjects {
    location_a: i64,
    contact: i64,
    import: i64,
    /// API keys of A for the revoke route, one per actor (in [`ACTORS`]
    /// order), so each revokes a key of its own. Not A's demo key, which
    /// is an actor.
    keys: Vec<i64>,
    /// A location user of A, for the reset and deactivate routes.
    user: i64,
    /// A new user's password link.
    token: String,
    /// An open opt-in request on `contact`, whose evidence is stale (so
    /// that support's approval, allowed, changes nothing: 409).
    request: i64,
    /// A message to `contact`, blocked by its DND (so no dispatcher
    /// touches it while the matrix runs).
    message: i64,
    subscription: i64,
}

impl Subjects {
    /// The path asked by the actor at `actor` in [`ACTORS`].
    fn fill(&self, path: &str, actor: usize) -> String {
        path.replace("{location_id}", &self.location_a.to_string())
            .replace("{contact_id}", &self.contact.to_string())
            .replace("{import_id}", &self.import.to_string())
            .replace("{key_id}", &self.keys[actor].to_string())
            .replace("{user_id}", &self.user.to_string())
            .replace("{token}", &self.token)
            .replace("{request_id}", &self.request.to_string())
            .replace("{message_id}", &self.message.to_string())
            .replace("{id}", &self.subscription.to_string())
            .replace("{channel}", "sms")
            .replace("{file}", "app.css")
    }
}

const PASSWORD: &str = "matrix-password-long";

/// How A's contact shows on a page or in JSON: its name, and its number
/// however it is written.
const SUBJECT_MARKS: [&str; 3] = ["Matrix Person", "5557788", "555-7788"];

/// The app's public URL (`DND_PUBLIC_URL`): the Origin of its own forms.
const SITE: &str = "http://dnd.example";

fn new_user(
    conn: &mut PgConnection,
    hash: &str,
    email: &str,
    role: &str,
    agency: i64,
    admin: bool,
    location_ids: &[i64],
) -> i64 {
    users::create(
        conn,
        &users::NewUser {
            email,
            password_hash: hash,
            role,
            agency_id: Some(agency),
            is_admin: admin,
        },
        location_ids,
    )
    .unwrap()
    .id
}

/// The actors' accounts and the subjects, written straight to the
/// database.
async fn set_up(app: &TestApp) -> Subjects {
    let mut conn = app.db.conn();
    let a = app.location_id(demo::DOWNTOWN);
    let b = app.location_id(demo::HARBOR);
    let agency = locations::find_agency_by_name(&mut conn, demo::AGENCY)
        .unwrap()
        .unwrap();
    let hash = dnd::password::hash(PASSWORD).unwrap();
    let other = locations::create_agency(&mut conn, "Other Agency").unwrap();
    locations::create(&mut conn, other, "Other Clinic", "Europe/Paris").unwrap();
    // The actors the demo has no account for.
    for (email, role, agency, admin, location_ids) in [
        ("harbor@matrix.test", "location", agency, false, vec![b]),
        ("staff@matrix.test", "agency", agency, false, vec![]),
        ("boss@other.test", "agency", other, true, vec![]),
    ] {
        new_user(&mut conn, &hash, email, role, agency, admin, &location_ids);
    }
    // Location users of A: one the agency's routes reset and deactivate,
    // one with a password link.
    let [user, newcomer] = ["victim@matrix.test", "newcomer@matrix.test"]
        .map(|email| new_user(&mut conn, &hash, email, "location", agency, false, &[a]));
    let admin = users::find_by_email(&mut conn, demo::AGENCY_USER)
        .unwrap()
        .unwrap();
    let token = users::new_password_link(&mut conn, newcomer, admin.id, Utc::now()).unwrap();

    // A contact who texted STOP: a permanent reason, so an opt-in request
    // can be filed, with evidence from the day before (stale).
    let contact = contacts::upsert(
        &mut conn,
        a,
        &contacts::ContactInput {
            name: Some(SUBJECT_MARKS[0].into()),
            phone: Some(PhoneNumber::parse_international("+14155557788").unwrap()),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id;
    let twilio = DndActor::new(ActorKind::Provider, None, "Twilio");
    dnd::db::dnd::apply(&mut conn, a, contact, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &twilio,
            Utc::now(),
            None,
            Some("SM-matrix".into()),
        )
    })
    .unwrap();
    let evidence = dnd::domain::optin::EvidenceDraft {
        relationship_numbers: "+14155550100".into(),
        recording_url: "https://recordings.example.com/v/1".into(),
        opted_in_on: (Utc::now().date_naive() - Duration::days(1)).to_string(),
        note: String::new(),
    }
    .validate("US", Utc::now().date_naive())
    .unwrap();
    let request = optin::file(&mut conn, a, contact, Channel::Sms, &evidence, &admin)
        .unwrap()
        .id;
    let import = imports::create(
        &mut conn,
        &imports::NewImport {
            location_id: a,
            kind: "contacts",
            channel: None,
            file_name: "matrix.csv",
            file: None,
            actor: &crate::common::test_actor(),
            // Done already: confirming it again changes nothing (409).
            state: "done",
            rows_total: 0,
        },
    )
    .unwrap()
    .id;
    let keys = ACTORS
        .iter()
        .map(|actor| {
            let name = format!("revoked by {actor:?}");
            api_keys::create(&mut conn, a, &name, &api_keys::generate()).unwrap()
        })
        .collect();
    let (subscription, _) =
        subscriptions::create(&mut conn, a, "https://hooks.example.com/dnd", "matrix").unwrap();
    drop(conn);
    let (status, blocked) = app
        .api_post(
            demo::API_KEY_DOWNTOWN,
            "/api/v1/messages",
            json!({"contact_id": contact, "channel": "sms", "body": "hello"}),
        )
        .await;
    assert_eq!(status, 409, "{blocked}");
    Subjects {
        location_a: a,
        contact,
        import,
        keys,
        user,
        token,
        request,
        message: blocked["id"].as_i64().expect("the blocked message's id"),
        subscription: subscription.id,
    }
}

/// One actor's browser (or API client): its own cookies, and the CSRF
/// token of its session.
struct Client {
    actor: Actor,
    http: reqwest::Client,
    csrf: String,
}

async fn client_for(app: &TestApp, actor: Actor) -> Client {
    let http = new_client();
    let email = match actor {
        Actor::LocationUserA => Some((demo::LOCATION_USER, demo::PASSWORD)),
        Actor::LocationUserB => Some(("harbor@matrix.test", PASSWORD)),
        Actor::AgencyUser => Some(("staff@matrix.test", PASSWORD)),
        Actor::AgencyAdmin => Some((demo::AGENCY_USER, demo::PASSWORD)),
        Actor::OtherAgency => Some(("boss@other.test", PASSWORD)),
        Actor::Support => Some((demo::SUPPORT_USER, demo::PASSWORD)),
        Actor::Anonymous | Actor::KeyA | Actor::KeyB => None,
    };
    let token_of = |html: String| csrf_in(&html).expect("a CSRF token on the page");
    let login = http.get(app.url("/login")).send().await.unwrap();
    let mut csrf = token_of(login.text().await.unwrap());
    if let Some((email, password)) = email {
        let r = http
            .post(app.url("/login"))
            .header("Origin", SITE)
            .form(&[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        // The locations, or a location user's only location's contacts.
        assert!(location(&r).starts_with("/locations"), "sign-in of {email}");
        // Signing in starts a new session with a new token.
        let page = http.get(app.url("/locations")).send().await.unwrap();
        csrf = token_of(page.text().await.unwrap());
    }
    Client { actor, http, csrf }
}

/// How a browser form says where it comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Csrf {
    /// The session's token and this site's Origin.
    Valid,
    /// No token (this site's Origin).
    Missing,
    /// The token, from another site's page.
    ForeignOrigin,
}

fn is_api(pattern: &str) -> bool {
    pattern.starts_with("/api/")
}

fn is_webhook(pattern: &str) -> bool {
    pattern.starts_with("/webhooks/")
}

fn is_browser(pattern: &str) -> bool {
    !is_api(pattern) && !is_webhook(pattern)
}

fn changes_state(method: &str) -> bool {
    method != "GET"
}

/// Sends one request as `client`: the row's body, in the kind the route
/// reads (a form, the import upload's multipart form, JSON, or CSV for the
/// API's imports; nothing to webhooks, which are refused unsigned anyway).
async fn send(
    app: &TestApp,
    client: &Client,
    request: &Request<'_>,
    csrf: Csrf,
) -> reqwest::Response {
    let Request {
        method,
        pattern,
        path,
        body,
    } = *request;
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.http.request(method.clone(), app.url(path));
    if let Some(key) = client.actor.key() {
        request = request.bearer_auth(key);
    }
    if method == reqwest::Method::GET || is_webhook(pattern) {
        return request.send().await.unwrap();
    }
    if is_api(pattern) {
        request = if pattern.starts_with("/api/v1/imports/") {
            request
                .header("content-type", "text/csv")
                .body(body.to_string())
        } else {
            request
                .header("content-type", "application/json")
                .body(if body.is_empty() { "{}" } else { body }.to_string())
        };
        return request.send().await.unwrap();
    }
    let origin = match csrf {
        Csrf::ForeignOrigin => "https://evil.example",
        Csrf::Valid | Csrf::Missing => SITE,
    };
    let token = match csrf {
        Csrf::Missing => None,
        Csrf::Valid | Csrf::ForeignOrigin => Some(client.csrf.clone()),
    };
    request = request.header("Origin", origin);
    request = if pattern == "/locations/{location_id}/imports" {
        let mut form = reqwest::multipart::Form::new();
        if let Some(token) = token {
            form = form.text("csrf_token", token);
        }
        for (name, value) in body.split('&').filter_map(|pair| pair.split_once('=')) {
            form = form.text(name.to_string(), value.to_string());
        }
        request.multipart(form)
    } else {
        let mut fields: Vec<String> = token
            .map(|t| format!("csrf_token={t}"))
            .into_iter()
            .collect();
        fields.extend((!body.is_empty()).then(|| body.to_string()));
        request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fields.join("&"))
    };
    request.send().await.unwrap()
}

/// One request of the matrix, before it is sent as an actor.
#[derive(Clone, Copy)]
struct Request<'a> {
    method: &'a str,
    pattern: &'a str,
    path: &'a str,
    body: &'a str,
}

/// A digest per table of everything stored, but for what changes by
/// itself: sign-in attempts (sign-ins), replay tokens, and a key's last
/// use (asked by any route it is sent to).
fn fingerprint(conn: &mut PgConnection) -> BTreeMap<String, String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Digest {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        digest: String,
    }
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
         AND table_name NOT IN ('login_failures', 'mailgun_seen_tokens', \
                                '__diesel_schema_migrations') \
         ORDER BY 1",
    )
    .load(conn)
    .unwrap();
    let query = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT '{0}'::text AS name, \
                 md5(coalesce(string_agg(r, ',' ORDER BY r), '')) AS digest \
                 FROM (SELECT (to_jsonb(t) - 'last_used_at')::text AS r FROM \"{0}\" t) s",
                t.name
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    diesel::sql_query(query)
        .load::<Digest>(conn)
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.digest))
        .collect()
}

fn changed_tables(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    before
        .iter()
        .filter(|(table, digest)| after.get(*table) != Some(*digest))
        .map(|(table, _)| table.clone())
        .collect()
}

/// Whether an expected answer refuses the actor (run before the allowed
/// actors, against an untouched subject, and checked to change nothing).
/// A wrong sign-in's 401 is an answer to the form, not a refusal.
fn is_denial(actor: Actor, pattern: &str, status: u16) -> bool {
    if is_api(pattern) {
        matches!(status, 401 | 403 | 404)
    } else if is_webhook(pattern) {
        matches!(status, 403 | 406)
    } else {
        matches!(status, 403 | 404) || (status == 303 && !actor.signed_in())
    }
}

struct Answer {
    status: u16,
    to: String,
    body: String,
}

async fn ask(app: &TestApp, client: &Client, request: &Request<'_>) -> Answer {
    let r = send(app, client, request, Csrf::Valid).await;
    Answer {
        status: r.status().as_u16(),
        to: location(&r),
        body: r.text().await.unwrap_or_default(),
    }
}

#[actix_web::test]
async fn every_route_answers_every_actor_as_the_table_says() {
    // As deployed: behind a public URL, which forms must come from (and
    // which closes /metrics to all but its token).
    let app = spawn_app_with(|c| c.public_url = Some(SITE.into())).await;
    let subjects = set_up(&app).await;
    let mut clients = Vec::new();
    for actor in ACTORS {
        clients.push(client_for(&app, actor).await);
    }
    let mut conn = app.db.conn();
    let mut failures: Vec<String> = Vec::new();

    // The table against the app's own list of routes.
    let routes: Vec<(String, String)> = dnd::web::route_list()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_string(), p))
        .collect();
    let registered: BTreeSet<(String, String)> = routes.iter().cloned().collect();
    assert_eq!(registered.len(), routes.len(), "a route registered twice");
    let rows = table();
    let mut listed = BTreeSet::new();
    for row in &rows {
        let key = (row.method.to_string(), row.pattern.to_string());
        if !listed.insert(key.clone()) {
            failures.push(format!("two rows for {} {}", row.method, row.pattern));
        }
        if !registered.contains(&key) {
            failures.push(format!(
                "a row for {} {}, which the app no longer has: remove it",
                row.method, row.pattern
            ));
        }
    }
    let mut unlisted: Vec<&(String, String)> =
        routes.iter().filter(|r| !listed.contains(*r)).collect();
    // Signing out ends the actors' sessions: last.
    unlisted.sort_by_key(|(_, pattern)| pattern == "/logout");
    for (method, pattern) in unlisted {
        // What each actor gets today, as a row to judge before copying.
        let mut got = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let path = subjects.fill(pattern, i);
            let request = Request {
                method,
                pattern,
                path: &path,
                body: "",
            };
            got.push(ask(&app, client, &request).await.status);
        }
        failures.push(format!(
            "no row for {method} {pattern}: decide who may use it and add it to the table \
             (answered today: at(\"{method}\", \"{pattern}\", {got:?}))"
        ));
    }
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| registered.contains(&(r.method.to_string(), r.pattern.to_string())))
        .collect();

    // CSRF: every state-changing browser route refuses an allowed actor's
    // form without the token, or sent from another site, and nothing
    // changes.
    for row in rows
        .iter()
        .filter(|r| is_browser(r.pattern) && changes_state(r.method))
    {
        let allowed = ACTORS
            .iter()
            .zip(row.expect)
            .position(|(actor, status)| !is_denial(*actor, row.pattern, status));
        let Some(allowed) = allowed else {
            failures.push(format!(
                "{} {}: nobody may use it, so its CSRF check cannot be tested",
                row.method, row.pattern
            ));
            continue;
        };
        let client = &clients[allowed];
        let path = subjects.fill(row.request.unwrap_or(row.pattern), allowed);
        let request = Request {
            method: row.method,
            pattern: row.pattern,
            path: &path,
            body: row.body,
        };
        let before = fingerprint(&mut conn);
        for csrf in [Csrf::Missing, Csrf::ForeignOrigin] {
            let r = send(&app, client, &request, csrf).await;
            let status = r.status().as_u16();
            let page = r.text().await.unwrap_or_default();
            let refused = status == 403
                && (page.contains("did not come from this site")
                    || page.contains("not sent from a page of this site"));
            if !refused {
                let how = match csrf {
                    Csrf::Missing => "without the CSRF token",
                    Csrf::Valid | Csrf::ForeignOrigin => "from https://evil.example",
                };
                failures.push(format!(
                    "{} {path} as {:?} {how}: {status}, not the CSRF refusal",
                    row.method, client.actor
                ));
            }
        }
        let changed = changed_tables(&before, &fingerprint(&mut conn));
        if !changed.is_empty() {
            failures.push(format!(
                "{} {path}: refused forms changed {changed:?}",
                row.method
            ));
        }
    }

    // The matrix. Per route, the actors who must be refused go first, on
    // an untouched subject, and must change nothing; then the others, in
    // the table's order. Signing out goes last: it ends the sessions.
    let mut order = rows;
    order.sort_by_key(|r| r.pattern == "/logout");
    for row in order {
        let (denied, allowed): (Vec<usize>, Vec<usize>) =
            (0..ACTORS.len()).partition(|&i| is_denial(ACTORS[i], row.pattern, row.expect[i]));
        let checked = changes_state(row.method) && !denied.is_empty();
        let before = checked.then(|| fingerprint(&mut conn));
        for (batch, actors) in [denied, allowed].into_iter().enumerate() {
            for i in actors {
                let client = &clients[i];
                let actor = client.actor;
                let expected = row.expect[i];
                let path = subjects.fill(row.request.unwrap_or(row.pattern), i);
                let request = Request {
                    method: row.method,
                    pattern: row.pattern,
                    path: &path,
                    body: row.body,
                };
                let got = ask(&app, client, &request).await;
                if actor.outsider() && SUBJECT_MARKS.iter().any(|m| got.body.contains(m)) {
                    failures.push(format!(
                        "{} {path} as {actor:?}: the answer shows A's contact",
                        row.method
                    ));
                }
                let signed_out = !actor.signed_in() && is_browser(row.pattern);
                if got.status != expected {
                    failures.push(format!(
                        "{} {path} as {actor:?}: {} (to {:?}), expected {expected}",
                        row.method, got.status, got.to
                    ));
                } else if got.status == 303 && signed_out && !got.to.starts_with("/login") {
                    failures.push(format!(
                        "{} {path} as {actor:?}: sent to {:?}, not /login",
                        row.method, got.to
                    ));
                } else if got.status == 303
                    && !signed_out
                    && got.to.starts_with("/login")
                    && row.pattern != "/logout"
                {
                    failures.push(format!(
                        "{} {path} as {actor:?}: signed out (sent to /login)",
                        row.method
                    ));
                }
            }
            if let (0, Some(before)) = (batch, &before) {
                let changed = changed_tables(before, &fingerprint(&mut conn));
                if !changed.is_empty() {
                    failures.push(format!(
                        "{} {}: refused actors changed {changed:?}",
                        row.method, row.pattern
                    ));
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
