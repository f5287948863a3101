//! Meta's WhatsApp and Messenger webhooks. Input: a flags byte (which app
//! secret signs, if any), then the body.

#![no_main]

use dnd::domain::Channel;
use dnd::webhooks::pipeline::{prepare, Route};
use dnd::webhooks::signatures::sign;
use dnd_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libphonenumber's tables load on first use: once, not in a unit's
        // time.
        let _ = dnd::domain::PhoneNumber::parse("+14155550100", "US");
    },
    |data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let url = "https://dnd.example.com/webhooks/meta/1";
    let signed_by = match flags & 3 {
        0 => None,
        1 => Some((Channel::Whatsapp, WHATSAPP_SECRET)),
        2 => Some((Channel::Facebook, FACEBOOK_SECRET)),
        _ => Some((Channel::Whatsapp, "not the secret")),
    };
    let signature = match signed_by {
        Some((_, secret)) => Some(sign::meta(secret, body)),
        None if flags & 4 != 0 => Some("sha256=zz".to_string()),
        None => None,
    };
    let context = context(region(flags >> 3), Default::default());
    match prepare(&context, &job(Route::Meta, url, signature, body)) {
        Ok((delivery, _)) => {
            check_delivery(&delivery);
            // Only the app whose secret signed the body speaks for its users.
            let Some((channel, secret)) = signed_by else {
                panic!("an unsigned Meta webhook was taken: {body:?}");
            };
            assert_ne!(secret, "not the secret");
            for e in &delivery.events {
                assert_eq!(e.channel, channel, "{body:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
