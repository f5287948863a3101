//! The SMS keyword lists and confirmation replies.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{render, require_edit, Drafts, FLASH};
use crate::db::webhooks::{self as store, SmsSettings};
use crate::db::{self, DbError};
use crate::domain::dnd::{match_keyword, KeywordMatch, Keywords};
use crate::web::auth::{CsrfForm, VisibleLocation};
use crate::web::error::PageError;
use crate::web::pages::session::redirect;
use crate::web::AppState;

#[derive(Debug, Deserialize)]
pub struct SmsForm {
    #[serde(default)]
    opt_out_keywords: String,
    #[serde(default)]
    opt_in_keywords: String,
    #[serde(default)]
    help_keywords: String,
    #[serde(default)]
    opt_out_reply: String,
    #[serde(default)]
    opt_in_reply: String,
    #[serde(default)]
    help_reply: String,
}

fn words(list: &str) -> Vec<String> {
    list.split([',', '\n'])
        .map(|w| {
            w.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The form as settings, normalised (not yet checked).
fn from_form(form: &SmsForm) -> SmsSettings {
    SmsSettings {
        keywords: Keywords {
            opt_out: words(&form.opt_out_keywords),
            opt_in: words(&form.opt_in_keywords),
            help: words(&form.help_keywords),
        },
        opt_out_reply: form.opt_out_reply.trim().to_string(),
        opt_in_reply: form.opt_in_reply.trim().to_string(),
        help_reply: form.help_reply.trim().to_string(),
    }
}

/// The lists must keep the words carriers and the FCC treat as opt-outs,
/// and no word may mean two things.
fn check(settings: &SmsSettings) -> Result<(), String> {
    let required = [
        "STOP",
        "QUIT",
        "END",
        "REVOKE",
        "OPT OUT",
        "CANCEL",
        "UNSUBSCRIBE",
    ];
    let fail = Err;
    for word in required {
        if match_keyword(word, &settings.keywords) != Some(KeywordMatch::OptOut) {
            return fail(format!(
                "Opt-out keywords must keep {word}: the FCC treats it as an opt-out whatever the list says."
            ));
        }
    }
    if settings.keywords.opt_in.is_empty() {
        return fail("Give at least one opt-in keyword (START is the usual one).".into());
    }
    for w in &settings.keywords.opt_in {
        if settings.keywords.opt_out.contains(w) || settings.keywords.help.contains(w) {
            return fail(format!(
                "\"{w}\" is on two lists; a keyword must mean one thing."
            ));
        }
    }
    if let Some(w) = settings
        .keywords
        .opt_out
        .iter()
        .chain(&settings.keywords.opt_in)
        .chain(&settings.keywords.help)
        .find(|w| w.chars().count() > 30)
    {
        return fail(format!(
            "\"{w}\" is longer than 30 characters; keywords are single words or short phrases."
        ));
    }
    for (name, reply) in [
        ("opt-out", &settings.opt_out_reply),
        ("opt-in", &settings.opt_in_reply),
        ("help", &settings.help_reply),
    ] {
        let n = reply.chars().count();
        if n == 0 || n > 320 {
            return fail(format!(
                "The {name} reply must have 1 to 320 characters (it has {n})."
            ));
        }
    }
    Ok(())
}

pub async fn save_sms_settings(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<i64>,
    at: VisibleLocation,
    CsrfForm(form): CsrfForm<SmsForm>,
) -> Result<HttpResponse, PageError> {
    let location_id = path.into_inner();
    let location = require_edit(&at)?.clone();
    let settings = from_form(&form);
    if let Err(why) = check(&settings) {
        let drafts = Drafts {
            sms: Some((settings, why)),
            ..Drafts::default()
        };
        return render(&state, &req, &session, at, drafts).await;
    }
    db::run(&state.pool, move |conn| -> Result<_, PageError> {
        store::save_sms_settings(conn, location.id, &settings).map_err(DbError::from)?;
        Ok(())
    })
    .await?;
    session.insert(FLASH, "Keywords and replies saved.")?;
    Ok(redirect(&format!("/locations/{location_id}/settings")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(opt_out: &str, opt_in: &str) -> SmsForm {
        SmsForm {
            opt_out_keywords: opt_out.into(),
            opt_in_keywords: opt_in.into(),
            help_keywords: "HELP, INFO".into(),
            opt_out_reply: "Bye.".into(),
            opt_in_reply: "Welcome back.".into(),
            help_reply: "Reply STOP to stop.".into(),
        }
    }

    const FCC: &str = "stop, quit, end, revoke, opt  out, cancel, unsubscribe";

    #[test]
    fn keeps_the_fcc_words_and_normalises() {
        let validate = |f: SmsForm| {
            let s = from_form(&f);
            check(&s).map(|()| s)
        };
        let s = validate(form(&format!("{FCC}, basta"), "start")).unwrap();
        assert!(s.keywords.opt_out.contains(&"OPT OUT".to_string()));
        assert!(s.keywords.opt_out.contains(&"BASTA".to_string()));
        let why = validate(form("quit, end", "start")).unwrap_err();
        assert!(why.contains("STOP"), "{why}");
        let why = validate(form(FCC, "")).unwrap_err();
        assert!(why.contains("opt-in"), "{why}");
        let why = validate(form(&format!("{FCC}, yes"), "yes")).unwrap_err();
        assert!(why.contains("two lists"), "{why}");
    }
}
