//! The three signature checks with arbitrary URLs, parameters, bodies,
//! secrets and headers: no panic, and what the signer signs is accepted.
//! Input: lines (URL, secret, header, then `name=value` parameters); the
//! whole input is also the raw body.

#![no_main]

use dnd::webhooks::signatures::{
    mailgun_is_valid, meta_is_valid, sign, twilio_is_valid, twilio_signature,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or("");
    let secret = lines.next().unwrap_or("");
    let header = lines.next().unwrap_or("");
    let params: Vec<(String, String)> = lines
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
    let _ = twilio_is_valid(url, &params, data, secret, header);
    let _ = mailgun_is_valid(secret, url, header, header);
    let _ = meta_is_valid(secret, data, header);
    // Round trips: a request signed as the provider signs it is accepted.
    if !url.contains("bodySHA256=") {
        let good = twilio_signature(url, &params, secret);
        assert!(
            twilio_is_valid(url, &params, data, secret, &good),
            "{url:?} {params:?}"
        );
        assert!(!twilio_is_valid(url, &params, data, secret, ""));
    }
    let good = sign::mailgun(secret, url, header);
    assert!(mailgun_is_valid(secret, url, header, &good));
    let good = sign::meta(secret, data);
    assert!(meta_is_valid(secret, data, &good));
    assert!(
        !meta_is_valid(secret, data, &good[7..]),
        "the sha256= prefix is required"
    );
});
