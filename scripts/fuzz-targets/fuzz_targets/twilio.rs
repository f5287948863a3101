//! Twilio's inbound SMS and status callbacks: the strict form parser, the
//! signature check (URL port variants, `bodySHA256`), phone parsing,
//! keywords and the TwiML reply. Input: a flags byte, the URL after
//! `https://` up to the first newline, then the form body.

#![no_main]

use dnd::webhooks::pipeline::{prepare, Reply, Route};
use dnd::webhooks::signatures::twilio_signature;
use dnd::webhooks::WebhookError;
use dnd_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libphonenumber's tables load on first use: once, not in a unit's
        // time.
        let _ = dnd::domain::PhoneNumber::parse("+14155550100", "US");
    },
    |data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (url, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b"dnd.example.com/webhooks/twilio/1/sms"[..], rest),
    };
    let url = format!("https://{}", String::from_utf8_lossy(url));
    let route = if flags & 1 == 0 {
        Route::TwilioSms
    } else {
        Route::TwilioStatus
    };
    let signed = flags & 2 != 0;
    let signature = if signed {
        Some(twilio_signature(&url, &form_params(body), TWILIO_TOKEN))
    } else if flags & 4 != 0 {
        None
    } else {
        Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=".to_string())
    };
    let keywords = if flags & 0x80 != 0 {
        odd_keywords()
    } else {
        Default::default()
    };
    let context = context(region(flags >> 3), keywords);
    let result = prepare(&context, &job(route, &url, signature, body));
    match &result {
        Ok((delivery, reply)) => {
            assert!(signed, "an unsigned request was taken: {url} {body:?}");
            check_delivery(delivery);
            if let Reply::Twiml(Some(text)) = reply {
                check_twiml(&reply_twiml(text));
            }
        }
        Err(e) => {
            let _ = e.to_string();
            // A body both decoders read alike (ASCII, nothing
            // percent-encoded), signed over the URL it came to, is never
            // refused as unsigned.
            let plain = body.is_ascii() && !body.contains(&b'%') && !url.contains("bodySHA256");
            if signed && plain {
                assert!(
                    !matches!(e, WebhookError::Refused { .. }),
                    "a signed request was refused ({e}): {url} {body:?}"
                );
            }
        }
    }
});
