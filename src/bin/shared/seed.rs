//! The benchmarks' shared seed: `count` contacts in one location, with
//! names that do not correlate with area codes, ~10% with some DND reason
//! and ~2% with the all-channels switch, reasons rows to match: `manual`
//! ones on the contacts, the others on the contacts' addresses, plus as
//! many reasons again on numbers no contact holds (people who moved on).

use std::time::Instant;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use dnd::db::locations::{self, Location};

/// The seeded location, reused when it is there already.
pub fn location(
    conn: &mut PgConnection,
    name: &str,
    count: i64,
) -> Result<Location, Box<dyn std::error::Error>> {
    match locations::find_by_name(conn, name)? {
        Some(l) => {
            println!("reusing the seeded location \"{name}\"");
            Ok(l)
        }
        None => seed(conn, name, count),
    }
}

/// `count` contacts in SQL (generate_series).
pub fn seed(
    conn: &mut PgConnection,
    name: &str,
    count: i64,
) -> Result<Location, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let agency = locations::create_agency(conn, "Bench Agency")?;
    let location = locations::create(conn, agency, name, "UTC")?;
    println!("seeding {count} contacts...");
    // Written as the app would have written them, but in bulk: the
    // triggers that keep each contact's mask are off for this session (a
    // million rows at once), and the mask is written with the rows; a
    // sample is checked against the triggers' own function below.
    diesel::sql_query("SET session_replication_role = replica").execute(conn)?;
    let first = "ARRAY['Olivia','Liam','Emma','Noah','Ava','Elijah','Sophia','Mateo','Isabella','Lucas','Mia','Amir','Charlotte','Kenji','Amelia','Diego','Harper','Ravi','Evelyn','Samuel','Chloe','Omar','Grace','Tomas','Zoe','Wei','Nora','Kwame','Lily','Sebastian','Hannah','Yusuf','Aaliyah','Jonas','Priya','Felix','Leah','Mohammed','Ingrid','Caleb','Ana','Marco','Sara','Ivan','Lena','Hugo','Maya','Theo','Alma','Rafael']";
    let last = "ARRAY['Smith','Johnson','Garcia','Nguyen','Patel','Kim','Muller','Rossi','Okafor','Silva','Brown','Martinez','Cohen','Tanaka','Lopez','OBrien','Hernandez','Wilson','Kowalski','Anderson','Dubois','Chen','Ivanova','Thompson','Haddad','Moore','Santos','Jackson','Novak','Clark','Fischer','Rahman','Lewis','Andersen','Walker','Costa','Young','Mensah','Hall','Schmidt','Baker','Reyes','Sato','Murphy','Nielsen','Popescu','Yilmaz','Kaur','Ali','Jensen']";
    let chunk = 100_000;
    for start in (0..count).step_by(chunk as usize) {
        diesel::sql_query(format!(
            "INSERT INTO contacts (location_id, name, phone, email, dnd_all, dnd_mask)
             SELECT $1,
                    f || ' ' || l,
                    '+1' || (ARRAY['212','646','415','628','312','617','305','713','206','503'])[1 + i % 10]
                         || lpad((200 + (i / 10) / 10000)::text, 3, '0') || lpad(((i / 10) % 10000)::text, 4, '0'),
                    lower(f) || '.' || lower(l) || i || '@example.' || (ARRAY['com','net','org'])[1 + i % 3],
                    i % 50 = 7,
                    CASE WHEN i % 10 = 3 THEN (ARRAY[1, 4, 5, 32, 1, 4, 2, 1, 8, 63])[1 + (i / 10) % 10] ELSE 0 END
             FROM (SELECT i, h,
                          ({first})[1 + (h / 10) % 50] AS f,
                          ({last})[1 + (h / 500) % 50] AS l
                   FROM (SELECT i, (hashint8(i)::bigint & 2147483647) AS h
                         FROM generate_series($2::bigint, $3::bigint) AS i) AS hashed) AS g"
        ))
        .bind::<BigInt, _>(location.id)
        .bind::<BigInt, _>(start)
        .bind::<BigInt, _>((start + chunk - 1).min(count - 1))
        .execute(conn)?;
    }
    // A reason row for every flagged channel, where the app keeps it.
    for (bit, channel, reason, kind, on_address) in [
        (1, "sms", "sms_opt_out", "permanent", Some("phone")),
        (2, "call", "manual", "temporary", None),
        (4, "email", "email_bounced", "temporary", Some("email")),
        (8, "facebook", "manual", "temporary", None),
        (16, "gmb", "manual", "temporary", None),
        (
            32,
            "whatsapp",
            "channel_opt_out",
            "permanent",
            Some("phone"),
        ),
    ] {
        let sql = match on_address {
            None => "INSERT INTO contact_dnd_reasons (location_id, contact_id, channel, reason, kind, set_at, actor_kind, actor_label)
                     SELECT location_id, id, $2, $3, $4, now(), 'api', 'bench' FROM contacts
                     WHERE location_id = $1 AND (dnd_mask & $5::smallint) <> 0"
                .to_string(),
            Some(column) => format!(
                "INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at, actor_kind, actor_label)
                 SELECT location_id, {column}, $2, $3, $4, now(), 'provider', 'bench' FROM contacts
                 WHERE location_id = $1 AND (dnd_mask & $5::smallint) <> 0"
            ),
        };
        diesel::sql_query(sql)
            .bind::<BigInt, _>(location.id)
            .bind::<Text, _>(channel)
            .bind::<Text, _>(reason)
            .bind::<Text, _>(kind)
            .bind::<diesel::sql_types::SmallInt, _>(bit as i16)
            .execute(conn)?;
    }
    // Opt-outs on numbers nobody holds now (their contacts moved on).
    diesel::sql_query(
        "INSERT INTO address_dnd_reasons (location_id, address, channel, reason, kind, set_at, actor_kind, actor_label)
         SELECT $1, '+1999' || lpad(i::text, 7, '0'), 'sms', 'sms_opt_out', 'permanent', now(), 'contact', 'bench'
         FROM generate_series(0, $2::bigint - 1) AS i",
    )
    .bind::<BigInt, _>(location.id)
    .bind::<BigInt, _>(count / 10)
    .execute(conn)?;
    diesel::sql_query("RESET session_replication_role").execute(conn)?;
    #[derive(QueryableByName)]
    struct Wrong {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let wrong: Wrong = diesel::sql_query(
        "SELECT count(*) AS n FROM contacts c
         WHERE location_id = $1 AND id % 100 = 0 AND c.dnd_mask <> dnd_mask_of(c)",
    )
    .bind::<BigInt, _>(location.id)
    .get_result(conn)?;
    if wrong.n != 0 {
        return Err(format!(
            "{} seeded contacts' masks disagree with their reasons",
            wrong.n
        )
        .into());
    }
    diesel::sql_query("VACUUM ANALYZE contacts").execute(conn)?;
    diesel::sql_query("VACUUM (FREEZE, ANALYZE) contact_dnd_reasons").execute(conn)?;
    diesel::sql_query("VACUUM (FREEZE, ANALYZE) address_dnd_reasons").execute(conn)?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(location)
}
