//! What the fuzz targets share: a location's webhook context built without
//! a database, a webhook job for the pipeline's pure part, and the checks
//! every parsed delivery and every TwiML answer must pass.

use chrono::{DateTime, TimeZone, Utc};
use dnd::db::events::Delivery;
use dnd::db::locations::Location;
use dnd::db::webhooks::{Signer, SmsSettings, WebhookContext};
use dnd::domain::dnd::Keywords;
use dnd::domain::Channel;
use dnd::webhooks::pipeline::{Route, WebhookJob};

pub const TWILIO_TOKEN: &str = "fuzz-twilio-auth-token";
pub const MAILGUN_KEY: &str = "fuzz-mailgun-signing-key";
pub const WHATSAPP_SECRET: &str = "fuzz-whatsapp-app-secret";
pub const FACEBOOK_SECRET: &str = "fuzz-facebook-app-secret";

/// The server's clock in every target (Mailgun's window is checked
/// against it).
pub const NOW: i64 = 1_700_000_000;

/// Regions a location may be set to, and some it may not.
pub const REGIONS: [&str; 8] = ["US", "GB", "DE", "IN", "ZZ", "", "us", "X\u{0}"];

pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
}

/// One byte picks a region.
pub fn region(byte: u8) -> &'static str {
    REGIONS[byte as usize % REGIONS.len()]
}

/// Keyword lists a location may set, odd ones included (empty, only
/// punctuation, non-ASCII, a word on two lists).
pub fn odd_keywords() -> Keywords {
    let list = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
    Keywords {
        opt_out: list(&["STOP", "", "  ", "!", "ARRÊT", "opt   out", "ß"]),
        opt_in: list(&["ARRÊT", "START", "\u{130}"]),
        help: list(&["?", "HELP ME", "\t"]),
    }
}

/// A location with every provider connected, as the webhooks see it.
pub fn context(region: &str, keywords: Keywords) -> WebhookContext {
    let signer = |channel, provider: &str, secret: &str| Signer {
        channel,
        provider: provider.into(),
        secret: Some(secret.into()),
    };
    let mut settings = SmsSettings::defaults("Fuzz & <Co>\r\nX-Injected: 1");
    settings.keywords = keywords;
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
        settings,
    }
}

pub fn job(route: Route, url: &str, signature: Option<String>, body: &[u8]) -> WebhookJob {
    WebhookJob {
        route,
        location_id: 1,
        url: url.into(),
        signature,
        body: bytes::Bytes::copy_from_slice(body),
        received_at: now(),
    }
}

/// A form body's parameters as Twilio's signers decode them (lossily: a
/// body that is not UTF-8 gets a signature the app must refuse).
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn no_nul(what: &str, s: &str) {
    assert!(
        !s.contains('\0'),
        "{what} would be stored with a NUL: {s:?}"
    );
}

/// What a delivery stores must be storable: PostgreSQL keeps no NUL in
/// text (one would fail the whole batch as a 500, and the provider would
/// retry it for ever), and the address consent is kept on is the event's.
pub fn check_delivery(delivery: &Delivery) {
    assert_eq!(delivery.location_id, 1);
    if let Some(nonce) = &delivery.nonce {
        no_nul("nonce", nonce);
    }
    for e in &delivery.events {
        no_nul("kind", &e.kind);
        no_nul("key", &e.key);
        no_nul("payload", &e.payload);
        if let Some(a) = &e.address {
            no_nul("address", a);
            assert!(!a.is_empty(), "an empty address");
        }
        if let Some(c) = &e.consent {
            no_nul("consent.address", &c.address);
            no_nul("consent.source", &c.source);
            no_nul("actor", &c.actor.label);
            assert_eq!(
                Some(&c.address),
                e.address.as_ref(),
                "consent on another address"
            );
            assert_eq!(c.channel, e.channel);
            assert!(c.occurred_at <= c.received_at, "an event from the future");
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

/// A TwiML document must be well-formed XML with one `<Response>` root,
/// whatever text went into it.
pub fn check_twiml(doc: &str) {
    let parsed = roxmltree::Document::parse(doc)
        .unwrap_or_else(|e| panic!("TwiML is not well-formed ({e}): {doc:?}"));
    let root = parsed.root_element();
    assert_eq!(root.tag_name().name(), "Response");
    assert!(
        root.children().filter(|n| n.is_element()).count() <= 1,
        "text made an element of its own: {doc:?}"
    );
    for child in root.children().filter(|n| n.is_element()) {
        assert!(
            child.children().all(|n| n.is_text()),
            "text made an element of its own: {doc:?}"
        );
    }
}

/// The TwiML a reply text is answered with, as the app builds it.
pub fn reply_twiml(text: &str) -> String {
    use actix_web::body::MessageBody;
    let response = dnd::webhooks::twiml(Some(text));
    assert_eq!(response.headers().len(), 1, "{:?}", response.headers());
    let bytes = response
        .into_body()
        .try_into_bytes()
        .unwrap_or_else(|_| panic!("a TwiML body in one piece"));
    String::from_utf8(bytes.to_vec()).expect("TwiML in UTF-8")
}
