//! The ways a message leaves: the providers' HTTP APIs, or `log`.

use serde::Deserialize;

/// How one integration sends.
#[derive(Clone)]
pub enum Transport {
    /// Recorded as sent without leaving the machine (the demo's default).
    Log,
    /// Twilio Messages API, basic auth with the account SID and auth token.
    Twilio {
        base_url: String,
        account_sid: String,
        auth_token: String,
        from: String,
        status_callback: Option<String>,
    },
    /// Mailgun messages API, basic auth `api:<key>`.
    Mailgun {
        base_url: String,
        domain: String,
        api_key: String,
        from: String,
    },
    /// WhatsApp Cloud API (`/{phone-number-id}/messages`), bearer token.
    WhatsApp {
        base_url: String,
        phone_number_id: String,
        access_token: String,
    },
    /// Messenger Send API (`/{page-id}/messages`), bearer page token.
    Messenger {
        base_url: String,
        page_id: String,
        access_token: String,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a log line.
        match self {
            Transport::Log => f.write_str("Log"),
            Transport::Twilio { base_url, .. } => write!(f, "Twilio({base_url})"),
            Transport::Mailgun {
                base_url, domain, ..
            } => write!(f, "Mailgun({base_url}, {domain})"),
            Transport::WhatsApp {
                base_url,
                phone_number_id,
                ..
            } => write!(f, "WhatsApp({base_url}, {phone_number_id})"),
            Transport::Messenger {
                base_url, page_id, ..
            } => write!(f, "Messenger({base_url}, {page_id})"),
        }
    }
}

pub const TWILIO_API: &str = "https://api.twilio.com";
pub const MAILGUN_API: &str = "https://api.mailgun.net";
pub const META_API: &str = "https://graph.facebook.com";
/// The Graph API version requests name.
pub const GRAPH_VERSION: &str = "v21.0";

/// One message to hand over.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Unique per message, sent along with it (Twilio does not promise to
    /// drop a duplicate on it: a request that may have been taken is never
    /// sent again instead, see [`Outcome::Unknown`]).
    pub idempotency_key: String,
    pub to: String,
    pub body: String,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        provider_sid: String,
    },
    /// The provider refused it for good (with its error code, if any).
    Rejected {
        code: Option<u32>,
        message: String,
    },
    /// Not taken, provably: worth another try later (the provider could
    /// not be reached, or said 429 or 503).
    Transient(String),
    /// Maybe taken: the request went out and no clear answer came back (a
    /// timeout, a broken connection, a 5xx, a 2xx without an id). Never
    /// sent again: a status report from the provider settles it.
    Unknown(String),
}

/// What a request that got no answer means: a connection that was never
/// made sent nothing; anything later may have reached the provider.
fn no_answer(provider: &str, e: &reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Transient(format!("{provider} unreachable: {e}"))
    } else {
        Outcome::Unknown(format!(
            "{provider} did not answer ({e}); the message may have gone out, so it is not sent again"
        ))
    }
}

/// What a status that is neither success nor the provider's refusal
/// means: 429 and 503 say the request was not taken; any other 5xx leaves
/// it open.
fn server_trouble(provider: &str, status: reqwest::StatusCode) -> Option<Outcome> {
    match status.as_u16() {
        429 | 503 => Some(Outcome::Transient(format!("{provider} answered {status}"))),
        500..=599 => Some(Outcome::Unknown(format!(
            "{provider} answered {status}; the message may have gone out, so it is not sent again"
        ))),
        _ => None,
    }
}

#[derive(Deserialize)]
struct TwilioCreated {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct MailgunQueued {
    id: String,
}

/// `{"messages": [{"id": "wamid…"}]}` (WhatsApp) or `{"message_id": "m_…"}`
/// (Messenger).
#[derive(Deserialize)]
struct GraphSent {
    #[serde(default)]
    messages: Vec<GraphMessageId>,
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct GraphMessageId {
    id: String,
}

/// `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
#[derive(Deserialize)]
struct GraphError {
    error: GraphErrorBody,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    message: Option<String>,
    code: Option<u32>,
}

/// One request to Meta's Graph API, and what its answer means.
async fn graph_send(
    client: &reqwest::Client,
    provider: &str,
    url: String,
    access_token: &str,
    body: serde_json::Value,
) -> Outcome {
    let sent = client
        .post(url)
        .bearer_auth(access_token)
        .json(&body)
        .send()
        .await;
    match sent {
        Err(e) => no_answer(provider, &e),
        Ok(r) if r.status().is_success() => match r.json::<GraphSent>().await {
            Ok(GraphSent {
                messages,
                message_id,
            }) => match messages.into_iter().next().map(|m| m.id).or(message_id) {
                Some(id) => Outcome::Sent { provider_sid: id },
                None => Outcome::Unknown(format!(
                    "{provider} accepted the message but answered without its id"
                )),
            },
            Err(e) => Outcome::Unknown(format!(
                "{provider} accepted the message but its answer could not be read: {e}"
            )),
        },
        Ok(r) => match server_trouble(provider, r.status()) {
            Some(outcome) => outcome,
            None => {
                let status = r.status();
                let error = r.json::<GraphError>().await.ok().map(|e| e.error);
                // Meta says "slow down" with codes, not only with 429: the
                // message was not taken, it is tried again later.
                if let Some(code @ (4 | 17 | 32 | 613 | 80007 | 130429 | 131056)) =
                    error.as_ref().and_then(|e| e.code)
                {
                    return Outcome::Transient(format!(
                        "{provider} asked to slow down (error {code})"
                    ));
                }
                Outcome::Rejected {
                    code: error.as_ref().and_then(|e| e.code),
                    message: scrub(
                        &error
                            .and_then(|e| e.message)
                            .unwrap_or_else(|| format!("{provider} answered {status}")),
                        "",
                        access_token,
                    ),
                }
            }
        },
    }
}

pub async fn send(client: &reqwest::Client, transport: &Transport, m: &Outgoing) -> Outcome {
    match transport {
        Transport::Log => {
            tracing::info!(to = %crate::domain::address::masked(&m.to), key = %m.idempotency_key, "message recorded as sent (log transport)");
            Outcome::Sent {
                provider_sid: format!("log-{}", m.idempotency_key),
            }
        }
        Transport::Twilio {
            base_url,
            account_sid,
            auth_token,
            from,
            status_callback,
        } => {
            let url = format!(
                "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                base_url.trim_end_matches('/')
            );
            let mut form = vec![
                ("To", m.to.as_str()),
                ("From", from.as_str()),
                ("Body", m.body.as_str()),
            ];
            if let Some(cb) = status_callback {
                form.push(("StatusCallback", cb.as_str()));
            }
            let sent = client
                .post(url)
                .basic_auth(account_sid, Some(auth_token))
                .header("I-Twilio-Idempotency-Token", &m.idempotency_key)
                .form(&form)
                .send()
                .await;
            match sent {
                Err(e) => no_answer("Twilio", &e),
                Ok(r) if r.status().is_success() => match r.json::<TwilioCreated>().await {
                    Ok(created) => Outcome::Sent {
                        provider_sid: created.sid,
                    },
                    Err(e) => Outcome::Unknown(format!(
                        "Twilio accepted the message but answered without its SID: {e}"
                    )),
                },
                Ok(r) => match server_trouble("Twilio", r.status()) {
                    Some(outcome) => outcome,
                    None => {
                        let status = r.status();
                        let error = r.json::<TwilioError>().await.ok();
                        Outcome::Rejected {
                            code: error.as_ref().and_then(|e| e.code),
                            message: scrub(
                                &error
                                    .and_then(|e| e.message)
                                    .unwrap_or_else(|| format!("Twilio answered {status}")),
                                account_sid,
                                auth_token,
                            ),
                        }
                    }
                },
            }
        }
        Transport::Mailgun {
            base_url,
            domain,
            api_key,
            from,
        } => {
            let url = format!("{}/v3/{domain}/messages", base_url.trim_end_matches('/'));
            let subject = m.subject.as_deref().unwrap_or("");
            let form = [
                ("from", from.as_str()),
                ("to", m.to.as_str()),
                ("subject", subject),
                ("text", m.body.as_str()),
                ("v:dnd-message", m.idempotency_key.as_str()),
            ];
            let sent = client
                .post(url)
                .basic_auth("api", Some(api_key))
                .form(&form)
                .send()
                .await;
            match sent {
                Err(e) => no_answer("Mailgun", &e),
                Ok(r) if r.status().is_success() => match r.json::<MailgunQueued>().await {
                    Ok(q) => Outcome::Sent { provider_sid: q.id },
                    Err(e) => Outcome::Unknown(format!(
                        "Mailgun accepted the message but answered without its id: {e}"
                    )),
                },
                Ok(r) => match server_trouble("Mailgun", r.status()) {
                    Some(outcome) => outcome,
                    None => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        Outcome::Rejected {
                            code: Some(status.as_u16() as u32),
                            message: format!(
                                "Mailgun answered {status}: {}",
                                scrub(&text, "api", api_key)
                            ),
                        }
                    }
                },
            }
        }
        Transport::WhatsApp {
            base_url,
            phone_number_id,
            access_token,
        } => {
            // The Cloud API takes the number without its "+".
            let to = m.to.trim_start_matches('+');
            let body = serde_json::json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": false, "body": m.body},
                "biz_opaque_callback_data": m.idempotency_key,
            });
            graph_send(
                client,
                "WhatsApp",
                graph_url(base_url, phone_number_id),
                access_token,
                body,
            )
            .await
        }
        Transport::Messenger {
            base_url,
            page_id,
            access_token,
        } => {
            let body = serde_json::json!({
                "recipient": {"id": m.to},
                "messaging_type": "UPDATE",
                "message": {"text": m.body, "metadata": m.idempotency_key},
            });
            graph_send(
                client,
                "Messenger",
                graph_url(base_url, page_id),
                access_token,
                body,
            )
            .await
        }
    }
}

/// Meta's messages endpoint for an account (phone number id or page id).
fn graph_url(base_url: &str, account: &str) -> String {
    format!(
        "{}/{GRAPH_VERSION}/{account}/messages",
        base_url.trim_end_matches('/')
    )
}

/// A provider's error text as it is stored on the message: at most 300
/// characters, and never the credential (a proxy or a misbehaving double
/// could echo the request's Authorization back).
pub fn scrub(text: &str, user: &str, secret: &str) -> String {
    use base64::Engine;
    let mut clean = text.to_string();
    if secret.len() >= 4 {
        clean = clean.replace(secret, "••••");
        // Basic auth carries it base64-encoded with the user name.
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        clean = clean.replace(&encoded, "••••");
    }
    clean.chars().take(300).collect()
}

#[cfg(test)]
mod scrub_tests {
    use super::scrub;

    #[test]
    fn credentials_never_reach_the_stored_error() {
        let echoed = "bad request; you sent key-12345 (Basic YXBpOmtleS0xMjM0NQ==)";
        let clean = scrub(echoed, "api", "key-12345");
        assert!(
            !clean.contains("key-12345") && !clean.contains("YXBpOmtleS0xMjM0NQ=="),
            "{clean}"
        );
        assert_eq!(
            scrub(&"x".repeat(1000), "api", "secret").chars().count(),
            300
        );
    }
}
