//! Testing an integration against its provider: one harmless read with
//! the stored credentials (Twilio's account, Mailgun's domain, Meta's
//! `me`), at the configured base URL, on an allowed host only. The answer
//! is said in words; it never echoes a credential.

use serde::Deserialize;

use super::hosts::HostPolicy;
use super::transport::{scrub, MAILGUN_API, TWILIO_API};
use crate::db::integrations::Integration;
use crate::domain::integration::META_GRAPH;

#[derive(Deserialize)]
struct TwilioAccount {
    friendly_name: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct MailgunDomain {
    domain: MailgunDomainInner,
}

#[derive(Deserialize)]
struct MailgunDomainInner {
    name: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct MetaMe {
    id: Option<String>,
    name: Option<String>,
}

fn need<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, String> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the integration has no {what}: connect it again with it"))
}

/// What the provider says of the integration's credentials: `Ok` with a
/// sentence when they work, `Err` with why not.
pub async fn probe(
    client: &reqwest::Client,
    hosts: &HostPolicy,
    i: &Integration,
) -> Result<String, String> {
    let base = |default: &str| -> Result<String, String> {
        let base = i
            .api_base_url
            .clone()
            .unwrap_or_else(|| default.to_string());
        hosts
            .check(&base)
            .map_err(|e| format!("the API URL is refused: {e}"))?;
        Ok(base.trim_end_matches('/').to_string())
    };
    match i.provider.as_str() {
        "twilio" => {
            let sid = need(&i.account, "account SID")?;
            let token = need(&i.secret, "auth token")?;
            let url = format!("{}/2010-04-01/Accounts/{sid}.json", base(TWILIO_API)?);
            let r = client
                .get(url)
                .basic_auth(sid, Some(token))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "Twilio could not be reached: {}",
                        scrub(&e.to_string(), sid, token)
                    )
                })?;
            match r.status().as_u16() {
                200 => {
                    let a: TwilioAccount = r
                        .json()
                        .await
                        .map_err(|_| "Twilio answered, but not with an account".to_string())?;
                    let status = a.status.unwrap_or_else(|| "unknown".into());
                    if status != "active" {
                        return Err(format!("the Twilio account is {status}, not active"));
                    }
                    Ok(format!(
                        "Twilio account “{}” is active.",
                        a.friendly_name.unwrap_or_else(|| sid.to_string())
                    ))
                }
                401 | 403 => Err("Twilio refused the account SID or auth token".into()),
                404 => Err(format!("Twilio has no account {sid}")),
                code => Err(format!("Twilio answered HTTP {code}")),
            }
        }
        "mailgun" => {
            let domain = need(&i.account, "Mailgun domain")?;
            let key = need(&i.api_key, "Mailgun API key")?;
            let url = format!("{}/v3/domains/{domain}", base(MAILGUN_API)?);
            let r = client
                .get(url)
                .basic_auth("api", Some(key))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "Mailgun could not be reached: {}",
                        scrub(&e.to_string(), "api", key)
                    )
                })?;
            match r.status().as_u16() {
                200 => {
                    let d: MailgunDomain = r
                        .json()
                        .await
                        .map_err(|_| "Mailgun answered, but not with a domain".to_string())?;
                    Ok(format!(
                        "Mailgun domain {} is {}.",
                        d.domain.name.unwrap_or_else(|| domain.to_string()),
                        d.domain.state.unwrap_or_else(|| "known".into())
                    ))
                }
                401 | 403 => Err("Mailgun refused the API key".into()),
                404 => Err(format!(
                    "Mailgun has no domain {domain} on this account (or it is in the other region)"
                )),
                code => Err(format!("Mailgun answered HTTP {code}")),
            }
        }
        "meta" => {
            let token = need(&i.api_key, "access token")?;
            let url = format!("{}/v19.0/me", base(META_GRAPH)?);
            let r = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "Meta could not be reached: {}",
                        scrub(&e.to_string(), "", token)
                    )
                })?;
            match r.status().as_u16() {
                200 => {
                    let me: MetaMe = r
                        .json()
                        .await
                        .map_err(|_| "Meta answered, but not with an account".to_string())?;
                    Ok(format!(
                        "Meta accepts the access token ({}{}).",
                        me.name.map(|n| format!("{n}, ")).unwrap_or_default(),
                        me.id.unwrap_or_default()
                    ))
                }
                400 | 401 | 403 => {
                    Err("Meta refused the access token (expired or revoked?)".into())
                }
                code => Err(format!("Meta answered HTTP {code}")),
            }
        }
        other => Err(format!("{other} integrations cannot be tested")),
    }
}
