//! Twilio: inbound SMS (opt-out, opt-in and help keywords, and every
//! message for the timeline) and message status callbacks (carrier error
//! codes). Verification and parsing only; storing is the common path.

use actix_web::HttpResponse;
use chrono::{DateTime, Utc};

use super::signatures::twilio_is_valid;
use super::{Provider, WebhookError};
use crate::db::events::{InboundText, ProviderEvent, StatusReport};
use crate::db::webhooks::WebhookContext;
use crate::domain::dnd::{
    match_keyword, twilio_error_reason, xml_escape, Actor, ActorKind, ConsentEvent, Effect,
    KeywordMatch, Reason,
};
use crate::domain::{Channel, PhoneNumber};

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, WebhookError> {
    param(params, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| WebhookError::Malformed(format!("the {name} parameter is missing")))
}

/// Decodes a form body strictly: a value that is not UTF-8 once
/// percent-decoded is refused rather than silently replaced (the signature
/// is over the exact values).
fn parse_form(body: &[u8]) -> Result<Params, WebhookError> {
    let malformed =
        |why: String| WebhookError::Malformed(format!("the body is not a valid form: {why}"));
    let decode = |part: &[u8]| -> Result<String, WebhookError> {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = part
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| malformed("a % is not followed by two hex digits".into()))?;
                    out.push(hex);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| malformed("a value is not UTF-8".into()))
    };
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let key = decode(kv.next().unwrap_or_default())?;
            let value = decode(kv.next().unwrap_or_default())?;
            Ok((key, value))
        })
        .collect()
}

/// The body as stored: text, without NULs (a raw one in a signed body
/// would fail the insert with a 500, and the STOP it carries be lost).
fn payload(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', "")
}

/// TwiML: one reply message, or an empty response.
pub fn twiml(reply: Option<&str>) -> HttpResponse {
    let body = match reply {
        Some(text) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            xml_escape(text)
        ),
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_string(),
    };
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// Checks a Twilio form POST against the location's SMS auth token and
/// returns its parameters; an unsigned request is interpreted no further.
fn verify(
    context: &WebhookContext,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Params, WebhookError> {
    let integration = context
        .integration(Channel::Sms, "twilio")
        .ok_or(WebhookError::NoIntegration(Provider::Twilio, "Twilio SMS"))?;
    verify_with(integration, url, body, signature)
}

fn verify_with(
    integration: &crate::db::webhooks::Signer,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Params, WebhookError> {
    let refused = |why: &str| WebhookError::Refused {
        provider: Provider::Twilio,
        why: why.to_string(),
    };
    let token = integration
        .secret
        .as_deref()
        .ok_or_else(|| refused("no auth token is set for this integration"))?;
    let signature = signature.ok_or_else(|| refused("the X-Twilio-Signature header is missing"))?;
    // A body that cannot be read cannot be verified: refused like a bad
    // signature (a 400 here, before the check, would tell an unsigned
    // caller that this location has a Twilio integration).
    let params =
        parse_form(body).map_err(|e| refused(&format!("the body could not be verified: {e}")))?;
    if !twilio_is_valid(url, &params, body, token, signature) {
        return Err(refused("the X-Twilio-Signature does not match"));
    }
    // Verified over the values as sent; a NUL (which no text column
    // stores) is dropped now, so a signed STOP that carries one still
    // counts instead of being refused and lost (Twilio does not retry a
    // 4xx).
    Ok(params
        .into_iter()
        .map(|(k, v)| (k.replace('\0', ""), v.replace('\0', "")))
        .collect())
}

/// A verified incoming call (signed with the Calls integration's auth
/// token, or the SMS one's when calls have none): the caller's number,
/// when it is one (a withheld number is not).
pub fn incoming_call(
    context: &WebhookContext,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Option<PhoneNumber>, WebhookError> {
    let integration = context
        .integration(Channel::Call, "twilio")
        .or_else(|| context.integration(Channel::Sms, "twilio"))
        .ok_or(WebhookError::NoIntegration(Provider::Twilio, "Twilio"))?;
    let params = verify_with(integration, url, body, signature)?;
    required(&params, "CallSid")?;
    Ok(param(&params, "From")
        .and_then(|from| PhoneNumber::parse(from, &context.location.default_region).ok()))
}

fn phone(params: &Params, name: &str, region: &str) -> Result<PhoneNumber, WebhookError> {
    PhoneNumber::parse(required(params, name)?, region)
        .map_err(|e| WebhookError::Malformed(format!("{name}: {}", e.message)))
}

/// A verified inbound SMS: its event, and the TwiML reply it gets. The
/// outcome is decided from the message alone, so a retry gets the same
/// answer.
pub fn inbound(
    context: &WebhookContext,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<(ProviderEvent, Option<String>), WebhookError> {
    let params = verify(context, url, body, signature)?;
    let sid = required(&params, "MessageSid")?.to_string();
    let from = phone(&params, "From", &context.location.default_region)?;
    let text = param(&params, "Body").unwrap_or("").to_string();
    // Twilio's Advanced Opt-Out verdict wins; otherwise the location's own
    // keyword lists.
    let matched = match param(&params, "OptOutType")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("STOP") => Some(KeywordMatch::OptOut),
        Some("START") => Some(KeywordMatch::OptIn),
        Some("HELP") => Some(KeywordMatch::Help),
        _ => match_keyword(&text, &context.settings.keywords),
    };
    let settings = &context.settings;
    let (outcome, effect, reply) = match matched {
        Some(KeywordMatch::OptOut) => (
            "opt_out",
            Some(Effect::Set(Reason::SmsOptOut)),
            Some(&settings.opt_out_reply),
        ),
        Some(KeywordMatch::OptIn) => ("opt_in", Some(Effect::OptIn), Some(&settings.opt_in_reply)),
        Some(KeywordMatch::Help) => ("help", None, Some(&settings.help_reply)),
        None => ("message", None, None),
    };
    // Twilio's inbound webhook carries no time: when it reached us is the
    // time of the person's act.
    let consent = effect.map(|effect| {
        ConsentEvent::new(
            Channel::Sms,
            from.as_str().to_string(),
            effect,
            Actor::new(ActorKind::Contact, None, from.as_str()),
            None,
            received_at,
            format!("{sid} \"{}\"", text.trim()),
        )
    });
    let event = ProviderEvent {
        provider: Provider::Twilio.as_str(),
        kind: "inbound_sms".into(),
        key: sid.clone(),
        payload: payload(body),
        channel: Channel::Sms,
        address: Some(from.as_str().to_string()),
        consent,
        outcome,
        inbound: Some(InboundText {
            body: text,
            from: from.into_inner(),
            to: param(&params, "To").unwrap_or("").to_string(),
            sid,
        }),
        status: None,
    };
    Ok((event, reply.cloned()))
}

/// A verified message status callback: carrier error codes that mean DND
/// set it on the recipient's number; the message's status moves forward.
pub fn status(
    context: &WebhookContext,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<ProviderEvent, WebhookError> {
    let params = verify(context, url, body, signature)?;
    let sid = required(&params, "MessageSid")?.to_string();
    let status = required(&params, "MessageStatus")?.to_ascii_lowercase();
    let to = phone(&params, "To", &context.location.default_region)?;
    let error_code = match param(&params, "ErrorCode").filter(|c| !c.is_empty()) {
        None => None,
        Some(code) => Some(code.parse::<u32>().map_err(|_| {
            WebhookError::Malformed(format!("ErrorCode \"{code}\" is not a number"))
        })?),
    };
    let reason = error_code.and_then(twilio_error_reason);
    let consent = reason.map(|reason| {
        ConsentEvent::new(
            Channel::Sms,
            to.as_str().to_string(),
            Effect::Set(reason),
            Actor::new(ActorKind::Provider, None, "Twilio"),
            None,
            received_at,
            format!("{sid} error {}", error_code.unwrap_or_default()),
        )
    });
    Ok(ProviderEvent {
        provider: Provider::Twilio.as_str(),
        kind: "status".into(),
        key: format!("{sid}:{status}"),
        payload: payload(body),
        channel: Channel::Sms,
        address: Some(to.as_str().to_string()),
        consent,
        outcome: reason.map(Reason::as_str).unwrap_or("recorded"),
        inbound: None,
        status: Some(StatusReport {
            sid,
            status,
            error_code: error_code.map(|c| c as i32),
            from: param(&params, "From").unwrap_or("").to_string(),
            to: to.into_inner(),
            message_id: message_id_in(url),
        }),
    })
}

/// Our message id in a status callback URL (`...?m=123`), which the
/// dispatcher asks Twilio to call back.
fn message_id_in(url: &str) -> Option<i64> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("m="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_strictly() {
        let params = parse_form(b"Body=hi+there%2C+2%2B3%3D4&From=%2B16505558893&Empty=").unwrap();
        assert_eq!(params[0], ("Body".into(), "hi there, 2+3=4".into()));
        assert_eq!(params[1].1, "+16505558893");
        assert_eq!(params[2].1, "");
        assert!(parse_form(b"Body=%FF").is_err());
        assert!(parse_form(b"Body=\xff").is_err());
        assert!(parse_form(b"Body=%G1").is_err());
        assert!(parse_form(b"Body=%4").is_err());
        assert_eq!(parse_form(b"Body=caf%C3%A9").unwrap()[0].1, "café");
    }

    #[test]
    fn replies_are_escaped_in_twiml() {
        assert_eq!(
            xml_escape("A&B <x> \"q\" 'a'"),
            "A&amp;B &lt;x&gt; &quot;q&quot; &apos;a&apos;"
        );
    }

    #[test]
    fn the_message_id_comes_from_the_callback_url() {
        assert_eq!(
            message_id_in("https://h/webhooks/twilio/1/status?m=42"),
            Some(42)
        );
        assert_eq!(
            message_id_in("https://h/webhooks/twilio/1/status?x=1&m=7"),
            Some(7)
        );
        assert_eq!(message_id_in("https://h/webhooks/twilio/1/status"), None);
        assert_eq!(message_id_in("https://h/s?m=abc"), None);
    }
}
