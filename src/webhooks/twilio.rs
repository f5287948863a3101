//! Twilio: inbound SMS (opt-out, opt-in and help keywords) and message
//! status callbacks (carrier error codes).

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::Connection;

use super::signatures::twilio_is_valid;
use super::{called_url, counted, read_body, set_reason, Provider, WebhookError};
use crate::db;
use crate::db::webhooks::{self as store, NewEvent, TwilioContext};
use crate::domain::dnd::{twilio_error_reason, Actor, ActorKind, Reason};
use crate::domain::{Channel, PhoneNumber};
use crate::web::AppState;

type Params = Vec<(String, String)>;

pub(super) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, WebhookError> {
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

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Orders message statuses so a late callback never moves one backwards
/// (a `sent` arriving after `delivered` is ignored).
pub fn status_rank(status: &str) -> u8 {
    match status {
        "accepted" | "scheduled" | "queued" => 1,
        "sending" => 2,
        "sent" => 3,
        "undelivered" | "failed" | "canceled" => 4,
        "delivered" | "partially_delivered" => 5,
        "read" => 6,
        // Unknown (new) statuses never overwrite a known one.
        _ => 0,
    }
}

/// Parses and verifies a Twilio form POST; returns what the location
/// needs to act on it, and the parameters.
fn verified(
    conn: &mut diesel::PgConnection,
    location_id: i64,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(TwilioContext, Params), WebhookError> {
    let context = store::twilio_context(conn, location_id)?
        .ok_or(WebhookError::UnknownLocation(location_id))?;
    let params = verify(&context, url, body, signature)?;
    Ok((context, params))
}

/// Checks a Twilio form POST against the location's auth token and
/// returns its parameters; an unsigned request is interpreted no further.
pub(super) fn verify(
    context: &TwilioContext,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Params, WebhookError> {
    let refused = |why: &str| WebhookError::Refused {
        provider: Provider::Twilio,
        why: why.to_string(),
    };
    let token = match &context.auth_token {
        None => return Err(WebhookError::NoIntegration("Twilio SMS")),
        Some(None) => return Err(refused("no auth token is set for this integration")),
        Some(Some(token)) => token,
    };
    let signature = signature.ok_or_else(|| refused("the X-Twilio-Signature header is missing"))?;
    let params = parse_form(body)?;
    if !twilio_is_valid(url, &params, body, token, signature) {
        return Err(refused("the X-Twilio-Signature does not match"));
    }
    Ok(params)
}

/// Message status callback: carrier error codes set SMS DND on the
/// recipient; the message's status only ever moves forward.
pub async fn receive_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    payload: web::Payload,
) -> Result<HttpResponse, WebhookError> {
    let location_id = path.into_inner();
    let url = called_url(&req, &state);
    let signature = header(&req, "X-Twilio-Signature");
    let result = async {
        let body = read_body(payload).await?;
        db::run(&state.pool, move |conn| {
            let (TwilioContext { location, .. }, params) =
                verified(conn, location_id, &url, &body, signature.as_deref())?;
            let sid = required(&params, "MessageSid")?.to_string();
            let status = required(&params, "MessageStatus")?.to_ascii_lowercase();
            let to =
                PhoneNumber::parse_in_region(required(&params, "To")?, &location.default_region)
                    .map_err(|e| WebhookError::Malformed(format!("To: {}", e.message)))?;
            let from = param(&params, "From").unwrap_or("").to_string();
            let error_code = match param(&params, "ErrorCode").filter(|c| !c.is_empty()) {
                None => None,
                Some(code) => Some(code.parse::<u32>().map_err(|_| {
                    WebhookError::Malformed(format!("ErrorCode \"{code}\" is not a number"))
                })?),
            };
            let key = format!("{sid}:{status}");
            let payload = String::from_utf8_lossy(&body).to_string();
            let reason = error_code.and_then(twilio_error_reason);
            conn.transaction(|conn| -> Result<bool, WebhookError> {
                let contact = store::contact_for_phone(conn, location.id, &to)?;
                let event = NewEvent {
                    provider: "twilio",
                    kind: "status",
                    key: &key,
                    payload: &payload,
                    contact_id: Some(contact.id),
                    outcome: reason.map(Reason::as_str).unwrap_or("recorded"),
                };
                if store::record_event(conn, location.id, &event)?.is_none() {
                    return Ok(true);
                }
                store::update_outbound_status(
                    conn,
                    location.id,
                    contact.id,
                    &sid,
                    &status,
                    error_code.map(|c| c as i32),
                    to.as_str(),
                    &from,
                    status_rank,
                )?;
                if let Some(reason) = reason {
                    let actor = Actor::new(ActorKind::Provider, None, "Twilio");
                    let source = format!("{sid} error {}", error_code.unwrap_or_default());
                    set_reason(
                        conn,
                        &contact,
                        Channel::Sms,
                        reason,
                        &actor,
                        to.as_str(),
                        &source,
                    )?;
                }
                Ok(false)
            })
        })
        .await
    }
    .await;
    counted(
        &state.metrics,
        location_id,
        result.map(|duplicate| ((), duplicate)),
    )?;
    Ok(twiml(None))
}

pub(super) fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(status_rank("delivered") > status_rank("sent"));
        assert!(status_rank("sent") > status_rank("queued"));
        assert!(status_rank("undelivered") > status_rank("sent"));
        assert!(status_rank("read") > status_rank("delivered"));
        assert_eq!(status_rank("something-new"), 0);
    }

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
}
