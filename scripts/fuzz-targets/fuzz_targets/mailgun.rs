//! Mailgun's events. Input: a flags byte, then either the whole body
//! (flag 1: as sent, unsigned) or the signature's timestamp up to the
//! first newline and the `event-data` JSON after it, wrapped in a body
//! signed with the location's key.

#![no_main]

use dnd::webhooks::pipeline::{prepare, Route};
use dnd::webhooks::signatures::sign;
use dnd_fuzz::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let url = "https://dnd.example.com/webhooks/mailgun/1";
    let body = if flags & 1 != 0 {
        rest.to_vec()
    } else {
        let (timestamp, event) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (
                String::from_utf8_lossy(&rest[..i]).to_string(),
                &rest[i + 1..],
            ),
            None => (NOW.to_string(), rest),
        };
        // As a JSON string, or (flag 2) as written: a number, or anything.
        let (json_ts, signed_ts) = if flags & 2 == 0 {
            (
                serde_json::to_string(&timestamp).unwrap(),
                timestamp.clone(),
            )
        } else {
            let as_app = match serde_json::from_str::<serde_json::Value>(&timestamp) {
                Ok(serde_json::Value::Number(n)) => n.to_string(),
                Ok(serde_json::Value::String(s)) => s,
                _ => timestamp.clone(),
            };
            (timestamp.clone(), as_app)
        };
        let token = "fuzz-token-0123456789";
        let signature = sign::mailgun(MAILGUN_KEY, &signed_ts, token);
        let mut body = format!(
            "{{\"signature\":{{\"timestamp\":{json_ts},\"token\":\"{token}\",\"signature\":\"{signature}\"}},\"event-data\":"
        )
        .into_bytes();
        body.extend_from_slice(event);
        body.push(b'}');
        body
    };
    let context = context(region(flags >> 2), Default::default());
    match prepare(&context, &job(Route::Mailgun, url, None, &body)) {
        Ok((delivery, _)) => {
            assert!(
                flags & 1 == 0,
                "an unsigned Mailgun event was taken: {body:?}"
            );
            check_delivery(&delivery);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
