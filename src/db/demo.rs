//! The documented demo tenant, seeded once by the embedded default (and by
//! `dnd demo`). Everything here is fictional: 555-01xx numbers and
//! example.* mail domains reach nobody.

use diesel::prelude::*;

use super::integrations::{self, NewIntegration};
use super::users::{self, NewUser};
use super::{api_keys, contacts, locations, DbError};
use crate::domain::{Channel, IntegrationStatus, Role};
use crate::password;

pub const AGENCY: &str = "Demo Agency";
pub const DOWNTOWN: &str = "Downtown Dental";
pub const HARBOR: &str = "Harbor Fitness";
pub const PASSWORD: &str = "demo-password";
pub const LOCATION_USER: &str = "location@demo.test";
pub const AGENCY_USER: &str = "agency@demo.test";
pub const SUPPORT_USER: &str = "support@demo.test";
pub const TWILIO_AUTH_TOKEN: &str = "demo-twilio-auth-token";
pub const MAILGUN_SIGNING_KEY: &str = "demo-mailgun-signing-key";
pub const META_APP_SECRET: &str = "demo-meta-app-secret";
pub const META_VERIFY_TOKEN: &str = "demo-meta-verify-token";
pub const API_KEY_DOWNTOWN: &str = "demo-api-key-downtown";
pub const API_KEY_HARBOR: &str = "demo-api-key-harbor";
pub const CONTACTS_PER_LOCATION: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    Now,
    Already,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
}

impl From<diesel::result::Error> for DemoError {
    fn from(e: diesel::result::Error) -> Self {
        DemoError::Db(e.into())
    }
}

const FIRST: [&str; 40] = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Amir",
    "Charlotte",
    "Kenji",
    "Amelia",
    "Diego",
    "Harper",
    "Ravi",
    "Evelyn",
    "Samuel",
    "Chloé",
    "Omar",
    "Grace",
    "Tomás",
    "Zoe",
    "Wei",
    "Nora",
    "Kwame",
    "Lily",
    "Sebastián",
    "Hannah",
    "Yusuf",
    "Aaliyah",
    "Jonas",
    "Priya",
    "Felix",
    "Leah",
    "Mohammed",
    "Ingrid",
    "Caleb",
];
const LAST: [&str; 40] = [
    "Smith",
    "Johnson",
    "Garcia",
    "Nguyen",
    "Patel",
    "Kim",
    "Müller",
    "Rossi",
    "Okafor",
    "Silva",
    "Brown",
    "Martinez",
    "Cohen",
    "Tanaka",
    "Lopez",
    "O'Brien",
    "Hernández",
    "Wilson",
    "Kowalski",
    "Anderson",
    "Dubois",
    "Chen",
    "Ivanova",
    "Thompson",
    "Haddad",
    "Moore",
    "Santos",
    "Jackson",
    "Novak",
    "Clark",
    "Fischer",
    "Rahman",
    "Lewis",
    "Andersen",
    "Walker",
    "Costa",
    "Young",
    "Mensah",
    "Hall",
    "Schmidt",
];

/// ASCII letters of a name, for mail addresses.
fn mailbox(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'é' | 'É' => Some('e'),
            'á' => Some('a'),
            'ü' => Some('u'),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Seeds the demo tenant unless it is there already (so a restart never
/// reseeds nor duplicates it).
pub fn seed(conn: &mut PgConnection) -> Result<Seeded, DemoError> {
    if locations::find_agency_by_name(conn, AGENCY)?.is_some() {
        return Ok(Seeded::Already);
    }
    // Hash before the transaction: it is the slow part, and needs no lock.
    let hash = password::hash(PASSWORD)?;
    conn.transaction(|conn| {
        let agency_id = locations::create_agency(conn, AGENCY)?;
        let downtown = locations::create(conn, agency_id, DOWNTOWN, "America/New_York")?;
        let harbor = locations::create(conn, agency_id, HARBOR, "America/Los_Angeles")?;

        users::create(
            conn,
            &NewUser {
                email: LOCATION_USER,
                password_hash: &hash,
                role: Role::Location.as_str(),
                agency_id: Some(agency_id),
                is_admin: false,
            },
            &[downtown.id],
        )?;
        users::create(
            conn,
            &NewUser {
                email: AGENCY_USER,
                password_hash: &hash,
                role: Role::Agency.as_str(),
                agency_id: Some(agency_id),
                is_admin: true,
            },
            &[],
        )?;
        users::create(
            conn,
            &NewUser {
                email: SUPPORT_USER,
                password_hash: &hash,
                role: Role::Support.as_str(),
                agency_id: None,
                is_admin: false,
            },
            &[],
        )?;

        let connected = |channel, provider, account, secret| NewIntegration {
            channel,
            provider,
            status: IntegrationStatus::Connected,
            account,
            secret,
            verify_token: (provider == "meta").then_some(META_VERIFY_TOKEN),
        };
        for integration in [
            connected(
                Channel::Sms,
                "twilio",
                Some("AC00000000000000000000000000000001"),
                Some(TWILIO_AUTH_TOKEN),
            ),
            connected(
                Channel::Email,
                "mailgun",
                Some("mg.downtown-dental.example"),
                Some(MAILGUN_SIGNING_KEY),
            ),
            connected(
                Channel::Call,
                "twilio",
                Some("AC00000000000000000000000000000001"),
                Some(TWILIO_AUTH_TOKEN),
            ),
            connected(
                Channel::Facebook,
                "meta",
                Some("downtown-dental-page"),
                Some(META_APP_SECRET),
            ),
            connected(
                Channel::Whatsapp,
                "meta",
                Some("downtown-dental-waba"),
                Some(META_APP_SECRET),
            ),
            NewIntegration {
                channel: Channel::Gmb,
                provider: "google",
                status: IntegrationStatus::Disconnected,
                account: Some("downtown-dental-gmb"),
                secret: None,
                verify_token: None,
            },
        ] {
            integrations::create(conn, downtown.id, &integration)?;
        }
        for integration in [
            connected(
                Channel::Sms,
                "twilio",
                Some("AC00000000000000000000000000000002"),
                Some(TWILIO_AUTH_TOKEN),
            ),
            connected(
                Channel::Email,
                "mailgun",
                Some("mg.harbor-fitness.example"),
                Some(MAILGUN_SIGNING_KEY),
            ),
        ] {
            integrations::create(conn, harbor.id, &integration)?;
        }

        api_keys::create(conn, downtown.id, "Demo automation", API_KEY_DOWNTOWN)?;
        api_keys::create(conn, harbor.id, "Demo automation", API_KEY_HARBOR)?;

        // Area codes per location; 555-0100..0199 is the fictional range.
        for (location, area_codes, offset) in [
            (&downtown, ["212", "646"], 0usize),
            (&harbor, ["415", "628"], 7usize),
        ] {
            let rows: Vec<_> = (0..CONTACTS_PER_LOCATION)
                .map(|i| {
                    let first = FIRST[(i * 7 + offset) % FIRST.len()];
                    let last = LAST[(i * 13 + offset * 3 + i / 40) % LAST.len()];
                    let phone = format!("+1{}5550{}", area_codes[i / 100], 100 + i % 100);
                    let domain = ["example.com", "example.net", "example.org"][i % 3];
                    let email = format!("{}.{}{}@{}", mailbox(first), mailbox(last), i + 1, domain);
                    let facebook =
                        (i % 4 == 0).then(|| format!("fb-{}-{}", location.id, 100_000 + i));
                    // WhatsApp ids are E.164, like phones.
                    let whatsapp = (i % 5 == 0).then(|| phone.clone());
                    (format!("{first} {last}"), phone, email, facebook, whatsapp)
                })
                .collect();
            let values: Vec<_> = rows
                .iter()
                .map(
                    |(name, phone, email, facebook, whatsapp)| contacts::NewContact {
                        location_id: location.id,
                        name,
                        phone: Some(phone),
                        email: Some(email),
                        facebook_id: facebook.as_deref(),
                        whatsapp_id: whatsapp.as_deref(),
                        gmb_id: None,
                    },
                )
                .collect();
            diesel::insert_into(super::schema::contacts::table)
                .values(&values)
                .execute(conn)?;
        }
        Ok(Seeded::Now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EmailAddress, PhoneNumber};

    #[test]
    fn demo_addresses_are_valid() {
        assert_eq!(mailbox("Chloé"), "chloe");
        assert_eq!(mailbox("O'Brien"), "obrien");
        assert_eq!(
            PhoneNumber::parse("+12125550100", "US").unwrap().as_str(),
            "+12125550100"
        );
        assert!(EmailAddress::parse("chloe.obrien1@example.com").is_ok());
    }
}
