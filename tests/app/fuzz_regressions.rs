//! What the fuzz targets (`scripts/fuzz`, `scripts/fuzz-targets/`) check,
//! run briefly in every `cargo test`: a few hundred generated inputs per
//! parser, and each input a fuzzer found a fault with, as a named test. No
//! database: the parsers are pure ([`prepare`] is the webhooks' verify and
//! read step, before anything is stored).

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use dnd::db::events::Delivery;
use dnd::db::locations::Location;
use dnd::db::webhooks::{Signer, SmsSettings, WebhookContext};
use dnd::domain::address::{canonical_spelling, masked, platform_id, whatsapp_id};
use dnd::domain::dnd::{match_keyword, voice_twiml, KeywordMatch, Keywords};
use dnd::domain::import::{contacts, suppressions};
use dnd::domain::{Channel, EmailAddress, PhoneNumber};
use dnd::webhooks::pipeline::{prepare, Reply, Route, WebhookJob};
use dnd::webhooks::signatures::{sign, twilio_signature};
use dnd::webhooks::WebhookError;

const TWILIO_TOKEN: &str = "fuzz-twilio-auth-token";
const MAILGUN_KEY: &str = "fuzz-mailgun-signing-key";
const WHATSAPP_SECRET: &str = "fuzz-whatsapp-app-secret";
const FACEBOOK_SECRET: &str = "fuzz-facebook-app-secret";
const NOW: i64 = 1_700_000_000;
const TWILIO_URL: &str = "https://dnd.example.com/webhooks/twilio/1/sms";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
}

/// A location with every provider connected, as the webhooks see it (the
/// fuzz targets' own, in `scripts/fuzz-targets/src/lib.rs`).
fn context(region: &str) -> WebhookContext {
    let signer = |channel, provider: &str, secret: &str| Signer {
        channel,
        provider: provider.into(),
        secret: Some(secret.into()),
    };
    WebhookContext {
        location: Location {
            id: 1,
            agency_id: 1,
            name: "Fuzz".into(),
            time_zone: "America/New_York".into(),
            created_at: now(),
            default_region: region.into(),
        },
        signers: vec![
            signer(Channel::Sms, "twilio", TWILIO_TOKEN),
            signer(Channel::Call, "twilio", TWILIO_TOKEN),
            signer(Channel::Email, "mailgun", MAILGUN_KEY),
            signer(Channel::Whatsapp, "meta", WHATSAPP_SECRET),
            signer(Channel::Facebook, "meta", FACEBOOK_SECRET),
        ],
        settings: SmsSettings::defaults("Fuzz & <Co>\r\nX-Injected: 1"),
    }
}

fn run(
    route: Route,
    url: &str,
    signature: Option<String>,
    body: &[u8],
) -> Result<(Delivery, Reply), WebhookError> {
    let job = WebhookJob {
        route,
        location_id: 1,
        url: url.into(),
        signature,
        body: actix_web::web::Bytes::copy_from_slice(body),
        received_at: now(),
    };
    let result = prepare(&context("US"), &job);
    if let Ok((delivery, reply)) = &result {
        check_delivery(delivery);
        if let Reply::Twiml(Some(text)) = reply {
            check_twiml(&reply_twiml(text));
        }
    }
    result
}

/// A Twilio form, signed over its parameters as Twilio's signers decode
/// them.
fn twilio(route: Route, body: &[u8]) -> Result<(Delivery, Reply), WebhookError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let signature = twilio_signature(TWILIO_URL, &params, TWILIO_TOKEN);
    run(route, TWILIO_URL, Some(signature), body)
}

/// A Mailgun event, signed with this timestamp (as a JSON value).
fn mailgun(timestamp: &str, event_data: &str) -> Result<(Delivery, Reply), WebhookError> {
    let signed = match serde_json::from_str::<serde_json::Value>(timestamp) {
        Ok(serde_json::Value::String(s)) => s,
        _ => timestamp.to_string(),
    };
    let token = "fuzz-token-0123456789";
    let signature = sign::mailgun(MAILGUN_KEY, &signed, token);
    let body = format!(
        "{{\"signature\":{{\"timestamp\":{timestamp},\"token\":\"{token}\",\"signature\":\"{signature}\"}},\"event-data\":{event_data}}}"
    );
    run(
        Route::Mailgun,
        "https://dnd.example.com/webhooks/mailgun/1",
        None,
        body.as_bytes(),
    )
}

fn meta(secret: &str, body: &[u8]) -> Result<(Delivery, Reply), WebhookError> {
    run(
        Route::Meta,
        "https://dnd.example.com/webhooks/meta/1",
        Some(sign::meta(secret, body)),
        body,
    )
}

fn no_nul(what: &str, s: &str) {
    assert!(
        !s.contains('\0'),
        "{what} would be stored with a NUL: {s:?}"
    );
}

/// What a delivery stores must be storable (PostgreSQL keeps no NUL in
/// text: one fails the whole batch), on the event's own address.
fn check_delivery(delivery: &Delivery) {
    if let Some(nonce) = &delivery.nonce {
        no_nul("nonce", nonce);
    }
    for e in &delivery.events {
        no_nul("kind", &e.kind);
        no_nul("key", &e.key);
        no_nul("payload", &e.payload);
        if let Some(c) = &e.consent {
            no_nul("consent.address", &c.address);
            no_nul("consent.source", &c.source);
            no_nul("actor", &c.actor.label);
            assert_eq!(Some(&c.address), e.address.as_ref());
        }
        if let Some(t) = &e.inbound {
            for s in [&t.body, &t.from, &t.to, &t.sid] {
                no_nul("inbound", s);
            }
        }
        if let Some(s) = &e.status {
            for s in [&s.sid, &s.status, &s.to, &s.from] {
                no_nul("status", s);
            }
        }
    }
}

/// The TwiML a reply is answered with: its body, and that it sets no
/// header but its content type.
fn reply_twiml(text: &str) -> String {
    use actix_web::body::MessageBody;
    let response = dnd::webhooks::twiml(Some(text));
    assert_eq!(response.headers().len(), 1, "{:?}", response.headers());
    let bytes = response
        .into_body()
        .try_into_bytes()
        .unwrap_or_else(|_| panic!("a TwiML body in one piece"));
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A character XML 1.0 allows in a document.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Well-formed TwiML: `<Response>` holding at most one element, which
/// holds text only (every `&` an entity), in characters XML allows.
pub fn check_twiml(doc: &str) {
    let body = doc
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>")
        .and_then(|d| d.strip_suffix("</Response>"))
        .unwrap_or_else(|| panic!("not a TwiML response: {doc:?}"));
    assert!(
        doc.chars().all(xml_char),
        "a character XML forbids: {doc:?}"
    );
    let text = match body {
        "" | "<Reject/>" => "",
        _ => ["Message", "Say", "Dial"]
            .iter()
            .find_map(|tag| {
                body.strip_prefix(&format!("<{tag}>"))
                    .and_then(|b| b.strip_suffix(&format!("</{tag}>")))
            })
            .unwrap_or_else(|| panic!("not one element: {doc:?}")),
    };
    assert!(!text.contains(['<', '>']), "markup in the text: {doc:?}");
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        rest = &rest[at + 1..];
        assert!(
            ["amp;", "lt;", "gt;", "quot;", "apos;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "a bare & in the text: {doc:?}"
        );
    }
}

// ---- Inputs the fuzz targets found faults with, by name. ----

/// twilio, crash-e24dec1d: a raw NUL byte in a signed status callback
/// went into the stored payload (PostgreSQL refuses it: a 500).
#[test]
fn fuzz_twilio_a_raw_nul_in_a_signed_body_is_not_stored() {
    let body = b"SmsSid=SM4&MessageStatus=undelivered&To=%2B16505551366&MessageSid=SM4&From=%2B1650&ErrorCode=\x001610";
    let _ = twilio(Route::TwilioStatus, body);
    let (delivery, _) = twilio(
        Route::TwilioSms,
        b"MessageSid=SM1&From=%2B16505558893&Body=ST\x00OP",
    )
    .unwrap();
    assert_eq!(delivery.events[0].outcome, "opt_out");
}

/// twilio (proptest): a reply holding U+FFFE, which XML 1.0 forbids, made
/// TwiML Twilio cannot read.
#[test]
fn proptest_twiml_drops_the_characters_xml_forbids() {
    for text in [
        "\u{c9}\u{FFFE}\u{202E}",
        "a\u{FFFF}b",
        "\u{0}\u{7}\u{1b}[0m",
    ] {
        check_twiml(&reply_twiml(text));
        check_twiml(&voice_twiml(false, None, text));
    }
    assert_eq!(reply_twiml("a\u{FFFE}b\u{FFFF}"), reply_twiml("ab"));
}

/// import, crash-1: rows of a file whose lines end with a lone CR (old Mac
/// spreadsheets) were all reported on line 1.
#[test]
fn fuzz_import_rows_ended_by_a_lone_cr_carry_their_line() {
    let file = b"address,note\r+12125550100,from the old CRM\n,\n\"\",x\nana@eggggggggggggggggggggggggggggggg,\"a \"\"quoted\"\" note\"\n";
    let parsed = suppressions(file).unwrap();
    let lines: Vec<u64> = parsed.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 5]);
    assert_eq!(
        parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [4]
    );
}

/// phone, crash-3b7db2c8: `00010 09820` in `DE` was read as
/// `+4901009820`, which reads back as `+491009820`: consent kept against
/// one string, the provider's events arriving for the other.
#[test]
fn fuzz_phone_a_number_reads_back_as_itself_or_is_refused() {
    assert!(PhoneNumber::parse("00010 09820", "DE").is_err());
    for (text, region) in [("00010 09820", "GB"), ("+49 010 09820", "US")] {
        if let Ok(n) = PhoneNumber::parse(text, region) {
            assert_eq!(PhoneNumber::parse(n.as_str(), "US"), Ok(n.clone()));
        }
    }
}

/// mailgun (review, then the proptest below): a `\u0000` in a signed
/// event's id or kind reached the stored event (a 500 for the batch).
#[test]
fn mailgun_a_nul_in_a_signed_event_is_dropped_not_stored() {
    let data =
        r#"{"event": "unsub\u0000scribed", "id": "ev\u0000", "recipient": "Ana@Example.com"}"#;
    let (delivery, _) = mailgun("\"1700000000\"", data).unwrap();
    assert_eq!(delivery.events[0].key, "ev");
    assert_eq!(delivery.events[0].outcome, "email_unsubscribed");
}

/// mailgun (review): a signed timestamp near i64::MIN overflowed the
/// five-minute check (a panic in a debug build, on the batch's writer).
#[test]
fn mailgun_a_timestamp_near_the_end_of_time_is_refused() {
    for ts in ["\"-9223372036854775808\"", "\"9223372036854775807\""] {
        let data = r#"{"event": "failed", "id": "ev1", "recipient": "a@example.com"}"#;
        assert!(matches!(
            mailgun(ts, data),
            Err(WebhookError::Refused { .. })
        ));
    }
}

// ---- Generated inputs, a few hundred per parser. ----

/// Text made of the pieces parsers trip on: separators, escapes, NUL and
/// other controls, keywords, digits, non-ASCII, lone bytes.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"&".to_vec()),
        Just(b"=".to_vec()),
        Just(b"%".to_vec()),
        Just(b"%00".to_vec()),
        Just(b"%FF".to_vec()),
        Just(b"+".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",".to_vec()),
        Just(b"@".to_vec()),
        Just(b"STOP".to_vec()),
        Just(b"Body".to_vec()),
        Just(b"From".to_vec()),
        Just(b"MessageSid".to_vec()),
        Just(b"+1650555".to_vec()),
        Just("É\u{FFFE}\u{202E}".as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
        "[0-9]{1,20}".prop_map(String::into_bytes),
        "\\PC{0,6}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

fn hostile_text() -> impl Strategy<Value = String> {
    hostile_bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn twilio_form() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("MessageSid"),
        Just("From"),
        Just("To"),
        Just("Body"),
        Just("OptOutType"),
        Just("MessageStatus"),
        Just("ErrorCode"),
    ];
    let value = prop_oneof![
        Just("SM1".to_string()),
        Just("+16505558893".to_string()),
        Just("020 7946 0958".to_string()),
        Just("stop".to_string()),
        Just("undelivered".to_string()),
        Just("21610".to_string()),
        hostile_text(),
    ];
    prop::collection::vec((name, value), 0..8)
        .prop_map(|pairs| serde_urlencoded::to_string(&pairs).unwrap().into_bytes())
}

proptest! {
    // Signature checks and libphonenumber are slow in a debug build: fewer
    // cases here (scripts/fuzz runs them by the million).
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn twilio_forms_signed_or_not(form in twilio_form(), raw in hostile_bytes(), status: bool) {
        let route = if status { Route::TwilioStatus } else { Route::TwilioSms };
        // Signed: read, or refused as malformed, never a panic.
        if let Err(WebhookError::Refused { why, .. }) = twilio(route, &form) {
            panic!("refused a signed form: {why}");
        }
        let _ = twilio(route, &raw);
        // Unsigned or wrongly signed: refused.
        let forged = run(route, TWILIO_URL, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=".into()), &form);
        let refused = matches!(forged, Err(WebhookError::Refused { .. }));
        prop_assert!(refused, "a forged signature was taken");
        prop_assert!(run(route, TWILIO_URL, None, &raw).is_err());
    }

    #[test]
    fn mailgun_events(ts in prop_oneof![
            Just("\"1700000000\"".to_string()),
            Just("1700000000".to_string()),
            Just("\"-9223372036854775808\"".to_string()),
            "-?[0-9]{1,20}",
        ],
        event in prop_oneof![Just("failed"), Just("unsubscribed"), Just("complained"), Just("delivered")],
        id in hostile_text(),
        recipient in prop_oneof![Just("Ana@Example.com".to_string()), hostile_text()],
        stamp in prop_oneof![Just(serde_json::json!(1699999999.5)), Just(serde_json::json!(f64::MAX)), Just(serde_json::json!(-1e300)), Just(serde_json::json!(null))],
        raw in hostile_bytes(),
    ) {
        let data = serde_json::json!({
            "event": event, "id": id, "recipient": recipient,
            "severity": "permanent", "timestamp": stamp,
        });
        let _ = mailgun(&ts, &data.to_string());
        let _ = run(Route::Mailgun, "https://dnd.example.com/webhooks/mailgun/1", None, &raw);
    }

    #[test]
    fn meta_webhooks(wa_id in hostile_text(), psid in hostile_text(), stop: bool, ts in prop_oneof![Just(serde_json::json!(1700000000)), Just(serde_json::json!(i64::MIN)), Just(serde_json::json!("x")), Just(serde_json::json!(null))], raw in hostile_bytes()) {
        let value = if stop { "stop" } else { "resume" };
        let wa = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "user_preferences", "value": {"user_preferences": [{"wa_id": wa_id, "value": value, "timestamp": ts}]}}]}]});
        let status = if stop { "STOP NOTIFICATIONS" } else { "RESUME NOTIFICATIONS" };
        let fb = serde_json::json!({"object": "page", "entry": [{"messaging": [{"sender": {"id": psid}, "timestamp": ts, "optin": {"type": "notification_messages", "notification_messages_status": status}}]}]});
        for (secret, body) in [(WHATSAPP_SECRET, wa.to_string()), (FACEBOOK_SECRET, fb.to_string())] {
            let _ = meta(secret, body.as_bytes());
            // The other app's secret speaks for nobody here.
            let other = if secret == WHATSAPP_SECRET { FACEBOOK_SECRET } else { WHATSAPP_SECRET };
            prop_assert!(meta(other, body.as_bytes()).is_err());
        }
        let _ = meta(WHATSAPP_SECRET, &raw);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn keywords_match_whole_messages(message in hostile_text(), words in prop::collection::vec(hostile_text(), 0..4)) {
        let keywords = Keywords { opt_out: words.clone(), opt_in: vec!["START".into()], help: vec![] };
        let matched = match_keyword(&message, &keywords);
        prop_assert_eq!(matched, match_keyword(&message.to_ascii_lowercase(), &keywords));
        prop_assert_eq!(matched, match_keyword(&format!(" \t{message}!. "), &keywords));
        for w in words.iter().filter(|w| !w.chars().all(|c| c.is_whitespace() || c.is_ascii_punctuation())) {
            prop_assert_eq!(match_keyword(w, &keywords), Some(KeywordMatch::OptOut));
        }
        let _ = match_keyword(&message, &Keywords::default());
    }

    #[test]
    fn twiml_keeps_any_text_inside_its_element(text in hostile_text()) {
        check_twiml(&reply_twiml(&text));
        check_twiml(&voice_twiml(false, None, &text));
        check_twiml(&voice_twiml(false, Some(&text), "x"));
    }

    #[test]
    fn phones_and_ids_parse_to_themselves(text in prop_oneof![hostile_text(), "[+]?[0-9 ()-]{0,20}( ?(x|ext\\.?) ?[0-9]{0,5})?"], region in prop_oneof![Just("US"), Just("GB"), Just("DE"), Just("ZZ"), Just(""), Just("x\0")]) {
        let parsed = [PhoneNumber::parse(&text, region), PhoneNumber::parse_international(&text)];
        for n in parsed.into_iter().flatten() {
            let s = n.as_str();
            prop_assert!(s.starts_with('+') && s[1..].chars().all(|c| c.is_ascii_digit()), "{text:?} became {s:?}");
            prop_assert_eq!(PhoneNumber::parse(s, "GB"), Ok(n.clone()));
            prop_assert_eq!(PhoneNumber::parse_international(s), Ok(n.clone()));
        }
        if let Ok(id) = whatsapp_id(&text, region) {
            prop_assert_eq!(whatsapp_id(&id, "ZZ"), Ok(id.clone()));
        }
        if let Ok(id) = platform_id("facebook_id", &text) {
            prop_assert_eq!(platform_id("facebook_id", &id), Ok(id.clone()));
        }
        let canonical = canonical_spelling(Channel::Sms, &text);
        prop_assert_eq!(canonical_spelling(Channel::Sms, &canonical), canonical);
        let _ = masked(&text);
    }

    #[test]
    fn emails_are_their_own_normal_form(text in prop_oneof![hostile_text(), "[A-Za-zİß.+-]{1,10}@[a-zA-Z.-]{1,12}"]) {
        if let Ok(e) = EmailAddress::parse(&text) {
            prop_assert!(e.as_str().len() <= 254);
            prop_assert_eq!(EmailAddress::parse(e.as_str()), Ok(e.clone()));
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn import_files_never_panic(header in prop_oneof![Just("name,phone,email,dnd_sms"), Just("address,note"), Just("\u{feff}Name, Phone ,EMAIL")], rows in prop::collection::vec(hostile_bytes(), 0..8)) {
        let mut file = header.as_bytes().to_vec();
        for row in rows {
            file.extend_from_slice(b"\n");
            file.extend_from_slice(&row);
        }
        let lines = 2 + (0..file.len())
            .filter(|&i| file[i] == b'\n' || (file[i] == b'\r' && file.get(i + 1) != Some(&b'\n')))
            .count() as u64;
        if let Ok(parsed) = contacts(&file) {
            for row in parsed.rows {
                prop_assert!((2..=lines).contains(&row.line));
            }
        }
        if let Ok(parsed) = suppressions(&file) {
            for row in parsed.rows {
                prop_assert!((2..=lines).contains(&row.line) && !row.address.contains('\0'));
            }
        }
    }
}
