//! The contact page reads everything in one statement (`db::contact_page`)
//! where it used to make one read per part. These tests hold it to the
//! per-read functions, which the API and every other page still use: for
//! every actor and contact, the one statement must find the same user,
//! location, switcher and contact data, and nothing where they find
//! nothing.

use chrono::{Duration, Utc};
use diesel::{PgConnection, RunQueryDsl};

use crate::common::TestDb;
use dnd::db::contact_page::{self, ContactPageReads, Shown};
use dnd::db::{contacts, demo, dnd as dnd_store, integrations, locations, optin, users, webhooks};
use dnd::domain::dnd::{Actor, ActorKind, Reason};
use dnd::domain::{Channel, PhoneNumber};

const SHOWN: Shown = Shown {
    switcher: 200,
    history: 200,
    messages: 100,
};

fn new_user(conn: &mut PgConnection, email: &str, role: &str, agency: i64, at: &[i64]) -> i64 {
    users::create(
        conn,
        &users::NewUser {
            email,
            password_hash: "not-a-hash",
            role,
            agency_id: Some(agency),
            is_admin: false,
        },
        at,
    )
    .unwrap()
    .id
}

fn new_contact(conn: &mut PgConnection, location: i64, name: &str, phone: &str) -> i64 {
    contacts::upsert(
        conn,
        location,
        &contacts::ContactInput {
            name: Some(name.into()),
            phone: Some(PhoneNumber::parse_international(phone).unwrap()),
            email: Some(
                dnd::domain::EmailAddress::parse(&format!("{}@page.test", name.to_lowercase()))
                    .unwrap(),
            ),
            ..Default::default()
        },
        &crate::common::test_actor(),
    )
    .unwrap()
    .0
    .id
}

/// A contact with everything the page shows: its own reason, reasons and
/// history kept on its number from the person who held it before, an
/// opt-in request with a decision, and messages.
fn rich_contact(conn: &mut PgConnection, location: i64) -> i64 {
    let twilio = Actor::new(ActorKind::Provider, None, "Twilio");
    let staff = crate::common::test_actor();
    let now = Utc::now();
    // The number's earlier holder texted STOP, then gave the number up.
    let before = new_contact(conn, location, "Earlier", "+14155550177");
    dnd_store::apply(conn, location, before, |s| {
        s.set(
            Channel::Sms,
            Reason::SmsOptOut,
            &twilio,
            now,
            None,
            Some("SM-1".into()),
        )
    })
    .unwrap();
    diesel::sql_query("UPDATE contacts SET phone = NULL WHERE id = $1")
        .bind::<diesel::sql_types::BigInt, _>(before)
        .execute(conn)
        .unwrap();
    let id = new_contact(conn, location, "Rich", "+14155550177");
    for channel in [Channel::Email, Channel::Whatsapp] {
        dnd_store::apply(conn, location, id, |s| {
            s.set(channel, Reason::Manual, &staff, now, None, None)
        })
        .unwrap();
    }
    let admin = users::find_by_email(conn, demo::AGENCY_USER)
        .unwrap()
        .unwrap();
    let evidence = dnd::domain::optin::EvidenceDraft {
        relationship_numbers: "+14155550100".into(),
        recording_url: "https://recordings.example.com/v/1".into(),
        opted_in_on: (now.date_naive() - Duration::days(1)).to_string(),
        note: "Asked in the shop".into(),
    }
    .validate("US", now.date_naive())
    .unwrap();
    optin::file(conn, location, id, Channel::Sms, &evidence, &admin).unwrap();
    for (n, status) in ["sent", "blocked", "delivered"].iter().enumerate() {
        diesel::sql_query(
            "INSERT INTO messages (location_id, contact_id, channel, direction, body,
                 to_address, status, blocked_reasons, subject, origin)
             VALUES ($1, $2, 'email', 'outbound', $3, 'rich@page.test', $4, '{manual}', 'Hello',
                     'manual')",
        )
        .bind::<diesel::sql_types::BigInt, _>(location)
        .bind::<diesel::sql_types::BigInt, _>(id)
        .bind::<diesel::sql_types::Text, _>(format!("Message {n}"))
        .bind::<diesel::sql_types::Text, _>(*status)
        .execute(conn)
        .unwrap();
    }
    id
}

/// The demo's Downtown, with a contact that has something of every kind.
fn downtown_with_rich_contact(conn: &mut PgConnection) -> (locations::Location, i64) {
    let downtown = locations::find_by_name(conn, demo::DOWNTOWN)
        .unwrap()
        .unwrap();
    let rich = rich_contact(conn, downtown.id);
    (downtown, rich)
}

/// The demo's location user.
fn location_user(conn: &mut PgConnection) -> users::User {
    users::find_by_email(conn, demo::LOCATION_USER)
        .unwrap()
        .unwrap()
}

fn deactivate(conn: &mut PgConnection, user_id: i64) {
    diesel::sql_query("UPDATE users SET deactivated_at = now() WHERE id = $1")
        .bind::<diesel::sql_types::BigInt, _>(user_id)
        .execute(conn)
        .unwrap();
}

/// What the per-read functions find, in the same shape.
fn one_by_one(
    conn: &mut PgConnection,
    user_id: i64,
    location_id: i64,
    contact_id: i64,
) -> ContactPageReads {
    let found = locations::user_and_visible(conn, user_id, location_id).unwrap();
    let user = found.as_ref().map(|(u, _)| u.clone());
    let location = found.and_then(|(_, l)| l);
    let switcher = match (&user, &location) {
        (Some(user), Some(_)) => locations::first_visible(conn, user, SHOWN.switcher)
            .unwrap()
            .into_iter()
            .map(|l| (l.location.id, l.location.name))
            .collect(),
        _ => Vec::new(),
    };
    let contact = match location {
        Some(_) => contacts::find(conn, location_id, contact_id).unwrap(),
        None => None,
    };
    let contact = contact.map(|contact| contact_page::ContactReads {
        integrations: integrations::list(conn, location_id).unwrap(),
        state: dnd_store::state_of(conn, &contact).unwrap(),
        history: dnd_store::history_of(conn, &contact, SHOWN.history).unwrap(),
        requests: optin::for_contact(conn, location_id, contact.id).unwrap(),
        messages: webhooks::timeline(conn, location_id, contact.id, SHOWN.messages).unwrap(),
        contact,
    });
    ContactPageReads {
        user,
        location,
        switcher,
        contact,
    }
}

/// The list's first page, as the list asks for it.
fn first_page(
    user_id: i64,
    generation: Option<i32>,
    location_id: i64,
) -> dnd::db::list_page::ListAsked {
    dnd::db::list_page::ListAsked {
        user_id,
        generation,
        location_id,
        cursor: contacts::Cursor::First,
        page_size: 50,
        switcher: 200,
    }
}

/// Both reads as text (every struct is `Debug`; an integration's `Debug`
/// hides its secrets, so they are added).
fn described(reads: &ContactPageReads) -> String {
    let mut out = format!(
        "user {:?}\nlocation {:?}\nswitcher {:?}\n",
        reads.user, reads.location, reads.switcher
    );
    if let Some(c) = &reads.contact {
        out += &format!(
            "contact {:?}\nstate {:?}\nhistory {:?}\nrequests {:?}\nmessages {:?}\n",
            c.contact, c.state, c.history, c.requests, c.messages
        );
        for i in &c.integrations {
            out += &format!(
                "integration {i:?} {:?} {:?} {:?}\n",
                i.secret, i.api_key, i.verify_token
            );
        }
    }
    out
}

/// Downtown and Harbor (the demo's) and a location of another agency,
/// with actors the demo has no account for: a user of Harbor only, one
/// of both, one of none, and the other agency's user.
fn actors_and_locations(conn: &mut PgConnection) -> [locations::Location; 3] {
    let downtown = locations::find_by_name(conn, demo::DOWNTOWN)
        .unwrap()
        .unwrap();
    let harbor = locations::find_by_name(conn, demo::HARBOR)
        .unwrap()
        .unwrap();
    let other = locations::create_agency(conn, "Other Agency").unwrap();
    let elsewhere = locations::create(conn, other, "Other Clinic", "Europe/Paris").unwrap();
    let agency = downtown.agency_id;
    new_user(conn, "harbor@page.test", "location", agency, &[harbor.id]);
    new_user(
        conn,
        "both@page.test",
        "location",
        agency,
        &[downtown.id, harbor.id],
    );
    new_user(conn, "none@page.test", "location", agency, &[]);
    new_user(conn, "boss@other.test", "agency", other, &[]);
    [downtown, harbor, elsewhere]
}

/// Every user, the demo's and the test's.
fn everyone(conn: &mut PgConnection) -> Vec<users::User> {
    use diesel::{QueryDsl, SelectableHelper};
    dnd::db::schema::users::table
        .select(users::User::as_select())
        .load(conn)
        .unwrap()
}

#[test]
fn the_one_statement_reads_what_the_reads_one_by_one_read_for_every_actor() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let [downtown, harbor, elsewhere] = actors_and_locations(&mut conn);
    let rich = rich_contact(&mut conn, downtown.id);
    let plain = new_contact(&mut conn, harbor.id, "Plain", "+14155550199");
    let far = new_contact(&mut conn, elsewhere.id, "Far", "+33612345678");

    let everyone = everyone(&mut conn);
    assert!(everyone.len() >= 7, "{} users", everyone.len());
    let mut compared = 0;
    let mut with_contact = 0;
    for user in &everyone {
        for location in [downtown.id, harbor.id, elsewhere.id, i64::MAX] {
            for contact in [rich, plain, far, 0] {
                let one = contact_page::read(
                    &mut conn,
                    user.id,
                    Some(user.session_generation),
                    location,
                    contact,
                    &SHOWN,
                )
                .unwrap();
                let expected = one_by_one(&mut conn, user.id, location, contact);
                assert_eq!(
                    described(&one),
                    described(&expected),
                    "{} at location {location}, contact {contact}",
                    user.email
                );
                compared += 1;
                with_contact += usize::from(one.contact.is_some());
            }
        }
    }
    // Not a comparison of empty pages: support, the agency and the
    // members see the rich contact with all of it.
    assert!(with_contact >= 6, "{with_contact} of {compared}");
    let support = users::find_by_email(&mut conn, demo::SUPPORT_USER)
        .unwrap()
        .unwrap();
    let page = contact_page::read(
        &mut conn,
        support.id,
        Some(support.session_generation),
        downtown.id,
        rich,
        &SHOWN,
    )
    .unwrap();
    let c = page.contact.expect("support sees the contact");
    assert!(
        c.state.is_blocked(Channel::Sms),
        "the number's STOP is kept"
    );
    assert!(c.state.is_blocked(Channel::Email));
    assert!(
        c.history.iter().any(|h| h.contact_id != Some(rich)),
        "the number's history from its earlier holder"
    );
    assert_eq!(c.requests.len(), 1);
    assert_eq!(c.messages.len(), 3);
    assert!(!c.integrations.is_empty());
    assert!(page.switcher.len() >= 3, "support's switcher");
}

#[test]
fn a_stale_or_deactivated_session_reads_none_of_the_locations_data() {
    let db = TestDb::new();
    let mut conn = db.conn();
    let (downtown, rich) = downtown_with_rich_contact(&mut conn);
    let user = location_user(&mut conn);
    let read = |conn: &mut PgConnection, generation| {
        contact_page::read(conn, user.id, generation, downtown.id, rich, &SHOWN).unwrap()
    };
    assert!(read(&mut conn, Some(user.session_generation))
        .contact
        .is_some());
    // A cookie from before a sign-out elsewhere, or without a generation.
    assert!(read(&mut conn, Some(user.session_generation + 1))
        .contact
        .is_none());
    assert!(read(&mut conn, None).contact.is_none());
    deactivate(&mut conn, user.id);
    assert!(read(&mut conn, Some(user.session_generation))
        .contact
        .is_none());
    // A cookie naming a user who is not there (deleted): no user, nothing.
    let nobody =
        contact_page::read(&mut conn, i64::MAX, Some(0), downtown.id, rich, &SHOWN).unwrap();
    assert!(nobody.user.is_none() && nobody.location.is_none() && nobody.contact.is_none());
    assert!(nobody.switcher.is_empty());
    let nobody = dnd::db::who::read(&mut conn, i64::MAX, Some(0), downtown.id, 200).unwrap();
    assert!(nobody.user.is_none() && nobody.location.is_none() && nobody.switcher.is_empty());
    let nobody = dnd::db::list_page::read(
        &mut conn,
        &first_page(i64::MAX, Some(0), downtown.id),
        &Default::default(),
    )
    .unwrap();
    assert!(nobody.who.user.is_none() && nobody.who.location.is_none() && nobody.page.is_none());
}

#[actix_web::test]
async fn a_page_view_leaves_the_session_cookie_alone_and_a_notice_shows_once() {
    let app = crate::common::spawn_app().await;
    let downtown = app.location_id(demo::DOWNTOWN);
    let id = rich_contact(&mut app.db.conn(), downtown);
    app.sign_in_as(demo::LOCATION_USER).await;
    let page = format!("/locations/{downtown}/contacts/{id}");
    app.get(&page).await;
    let again = app.get(&page).await;
    assert_eq!(again.status(), 200);
    assert!(
        again.headers().get("set-cookie").is_none(),
        "a page view re-issued the session cookie"
    );
    // A change leaves a notice: shown on the next view, then gone.
    let csrf = app.csrf_from(&page).await;
    let r = app
        .post_form(
            &format!("{page}/dnd"),
            &[("csrf_token", &csrf), ("target", "sms"), ("turn", "on")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, first) = app.get_text(&page).await;
    assert!(first.contains("id=\"dnd-result\""), "the notice is shown");
    let (_, second) = app.get_text(&page).await;
    assert!(
        !second.contains("id=\"dnd-result\""),
        "the notice shows once"
    );
}

/// The list's page as text (contacts, the pager and the total).
fn described_page(page: &contacts::ContactPage) -> String {
    format!(
        "{:?}\nnext {} prev {} total {:?}",
        page.contacts, page.has_next, page.has_prev, page.total
    )
}

#[test]
fn the_lists_one_statement_reads_what_who_and_the_list_read_for_every_actor_and_cursor() {
    use dnd::db::list_page::{self, ListAsked};
    use dnd::db::who;
    let db = TestDb::new();
    let mut conn = db.conn();
    let [downtown, harbor, elsewhere] = actors_and_locations(&mut conn);
    for n in 0..3 {
        new_contact(
            &mut conn,
            elsewhere.id,
            &format!("Far{n}"),
            &format!("+3361234567{n}"),
        );
    }
    let whole = contacts::ListFilter::from_query("", "", "").unwrap();
    let estimates = contacts::Estimates::default();
    // Anchors: a contact in the middle of Downtown's second page, one of
    // Harbor's, and none.
    let second = contacts::list(
        &mut conn,
        downtown.id,
        &whole,
        &contacts::Cursor::First,
        50,
        &estimates,
    )
    .unwrap();
    let middle = second.contacts[25].id;
    let last = second.contacts[49].id;
    let harbors = contacts::list(
        &mut conn,
        harbor.id,
        &whole,
        &contacts::Cursor::First,
        50,
        &estimates,
    )
    .unwrap()
    .contacts[3]
        .id;
    let everyone = everyone(&mut conn);
    let mut pages = 0;
    for user in &everyone {
        for location in [downtown.id, harbor.id, elsewhere.id, i64::MAX] {
            for cursor in [
                contacts::Cursor::First,
                contacts::Cursor::After(last),
                contacts::Cursor::After(middle),
                contacts::Cursor::Before(middle),
                contacts::Cursor::Before(last),
                contacts::Cursor::After(harbors),
                contacts::Cursor::After(i64::MAX),
            ] {
                let asked = ListAsked {
                    user_id: user.id,
                    generation: Some(user.session_generation),
                    location_id: location,
                    cursor,
                    page_size: 50,
                    switcher: 200,
                };
                let one = list_page::read(&mut conn, &asked, &estimates).unwrap();
                // Who, as the per-read functions find it, and as every other
                // location page reads it (`who::read`).
                let expected = one_by_one(&mut conn, user.id, location, i64::MAX);
                let who = who::read(
                    &mut conn,
                    user.id,
                    Some(user.session_generation),
                    location,
                    200,
                )
                .unwrap();
                let context = format!("{} at {location}, {cursor:?}", user.email);
                let expected = format!(
                    "{:?} {:?} {:?}",
                    expected.user, expected.location, expected.switcher
                );
                assert_eq!(
                    format!(
                        "{:?} {:?} {:?}",
                        one.who.user, one.who.location, one.who.switcher
                    ),
                    expected,
                    "{context}"
                );
                assert_eq!(
                    format!("{:?} {:?} {:?}", who.user, who.location, who.switcher),
                    expected,
                    "who::read: {context}"
                );
                if who.location.is_none() {
                    assert!(
                        one.page.is_none(),
                        "{context}: a page of a location not theirs"
                    );
                    continue;
                }
                let anchor_here = match cursor {
                    contacts::Cursor::First => true,
                    contacts::Cursor::After(id) | contacts::Cursor::Before(id) => {
                        contacts::find(&mut conn, location, id).unwrap().is_some()
                    }
                };
                assert_eq!(
                    one.page.is_some(),
                    anchor_here,
                    "{context}: the one statement's page"
                );
                let listed =
                    contacts::list(&mut conn, location, &whole, &cursor, 50, &estimates).unwrap();
                // No page: the cursor's contact is not in this location, and
                // the handler lists with `contacts::list` (from the start).
                let page = one.page.unwrap_or_else(|| {
                    contacts::list(&mut conn, location, &whole, &cursor, 50, &estimates).unwrap()
                });
                assert_eq!(described_page(&page), described_page(&listed), "{context}");
                pages += usize::from(!page.contacts.is_empty());
            }
        }
    }
    assert!(pages >= 20, "only {pages} pages with contacts compared");

    // A cookie from before a sign-out, or without a generation, and a
    // deactivated user read no rows and get no location.
    let user = location_user(&mut conn);
    let nothing = |conn: &mut PgConnection, generation: Option<i32>| {
        let list = list_page::read(
            conn,
            &first_page(user.id, generation, downtown.id),
            &estimates,
        )
        .unwrap();
        let who = who::read(conn, user.id, generation, downtown.id, 200).unwrap();
        list.page.is_none()
            && list.who.location.is_none()
            && list.who.switcher.is_empty()
            && who.location.is_none()
            && who.switcher.is_empty()
    };
    assert!(!nothing(&mut conn, Some(user.session_generation)));
    assert!(nothing(&mut conn, Some(user.session_generation + 1)));
    assert!(nothing(&mut conn, None));
    deactivate(&mut conn, user.id);
    assert!(nothing(&mut conn, Some(user.session_generation)));
}

#[derive(diesel::QueryableByName, Debug)]
struct Plans {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    custom_plans: i64,
}

/// A page's statement is large: planning it takes longer than running it.
/// After its first executions PostgreSQL must settle on one generic plan,
/// not plan it again for each request (as it did while the list's page
/// size was a bind).
#[test]
fn the_pages_statements_are_planned_once_not_on_every_request() {
    use dnd::db::list_page;
    let db = TestDb::new();
    let mut conn = db.conn();
    let (downtown, rich) = downtown_with_rich_contact(&mut conn);
    // A location of some size, as the planner sees it: with 200 contacts
    // a generic plan was cheap enough even while the page size was a bind.
    diesel::sql_query(
        "INSERT INTO contacts (location_id, name, email)
         SELECT $1, 'Bulk ' || i, 'bulk' || i || '@page.test'
         FROM generate_series(1, 30000) AS i",
    )
    .bind::<diesel::sql_types::BigInt, _>(downtown.id)
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("ANALYZE contacts")
        .execute(&mut conn)
        .unwrap();
    let user = location_user(&mut conn);
    for _ in 0..12 {
        contact_page::read(
            &mut conn,
            user.id,
            Some(user.session_generation),
            downtown.id,
            rich,
            &SHOWN,
        )
        .unwrap();
        list_page::read(
            &mut conn,
            &first_page(user.id, Some(user.session_generation), downtown.id),
            &Default::default(),
        )
        .unwrap();
    }
    let plans: Vec<Plans> = diesel::sql_query(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%FROM (SELECT ROW(u.id%' ORDER BY statement",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(plans.len(), 2, "{plans:?}");
    for p in &plans {
        assert!(
            p.generic_plans >= 6 && p.custom_plans <= 5,
            "planned for each request: {plans:?}"
        );
    }
}
