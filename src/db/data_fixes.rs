//! Fixes of stored data that need the application's own rules, run once
//! after the migrations. SQL alone cannot spell a number the way
//! libphonenumber does.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::DbError;
use crate::domain::PhoneNumber;

#[derive(QueryableByName)]
struct Done {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Numbers {
    #[diesel(sql_type = BigInt)]
    location_id: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    whatsapp_id: Option<String>,
}

const PHONE_SPELLINGS: &str = "canonical phone spellings";

/// Runs the fixes not done yet; the names of those it ran.
pub fn run(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    let done: Done = diesel::sql_query("SELECT count(*) AS n FROM data_fixes WHERE name = $1")
        .bind::<Text, _>(PHONE_SPELLINGS)
        .get_result(conn)?;
    if done.n > 0 {
        return Ok(Vec::new());
    }
    conn.transaction(|conn| -> Result<(), DbError> {
        respell_numbers(conn)?;
        diesel::sql_query("INSERT INTO data_fixes (name) VALUES ($1)")
            .bind::<Text, _>(PHONE_SPELLINGS)
            .execute(conn)?;
        Ok(())
    })?;
    Ok(vec![PHONE_SPELLINGS.to_string()])
}

/// Numbers stored before every path used one parser: the API kept a trunk
/// prefix (`+44 (0)20 7946 0958` became `+4402079460958`) while that
/// person's STOP arrived as `+442079460958`. Each is rewritten in E.164 as
/// the parser spells it now, unless another contact of the location has
/// that spelling already (then it is left, and said in the log: the two
/// are one person for someone to merge).
fn respell_numbers(conn: &mut PgConnection) -> Result<(), DbError> {
    let mut after = 0i64;
    loop {
        let page: Vec<Numbers> = diesel::sql_query(
            "SELECT location_id, id, phone, whatsapp_id FROM contacts
             WHERE id > $1 AND (phone IS NOT NULL OR whatsapp_id IS NOT NULL)
             ORDER BY id LIMIT 5000",
        )
        .bind::<BigInt, _>(after)
        .load(conn)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.id;
        for c in page {
            for (column, value) in [("phone", &c.phone), ("whatsapp_id", &c.whatsapp_id)] {
                let Some(stored) = value else { continue };
                let Ok(canonical) = PhoneNumber::parse_international(stored) else {
                    continue;
                };
                if canonical.as_str() == stored {
                    continue;
                }
                let taken: Done = diesel::sql_query(format!(
                    "SELECT count(*) AS n FROM contacts WHERE location_id = $1 AND {column} = $2"
                ))
                .bind::<BigInt, _>(c.location_id)
                .bind::<Text, _>(canonical.as_str())
                .get_result(conn)?;
                if taken.n > 0 {
                    tracing::warn!(
                        location_id = c.location_id,
                        contact_id = c.id,
                        column,
                        "a stored number is another contact's in its canonical spelling; left as it is"
                    );
                    continue;
                }
                diesel::sql_query(format!(
                    "UPDATE contacts SET {column} = $3 WHERE location_id = $1 AND id = $2"
                ))
                .bind::<BigInt, _>(c.location_id)
                .bind::<BigInt, _>(c.id)
                .bind::<Text, _>(canonical.as_str())
                .execute(conn)?;
            }
        }
    }
}
