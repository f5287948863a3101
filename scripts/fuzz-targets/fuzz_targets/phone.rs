//! Phone numbers, WhatsApp ids and platform ids as people and providers
//! write them. Input: a byte picking the location's region, then the text.
//! A number parsed is in E.164 and parses to itself again: consent is kept
//! against that string.

#![no_main]

use dnd::domain::address::{canonical_spelling, kept_spellings, masked, platform_id, whatsapp_id};
use dnd::domain::{Channel, PhoneNumber};
use dnd_fuzz::region;
use libfuzzer_sys::fuzz_target;

fn check(number: &PhoneNumber, input: &str) {
    let s = number.as_str();
    let digits = &s[1..];
    assert!(
        s.starts_with('+')
            && digits.chars().all(|c| c.is_ascii_digit())
            && (8..=15).contains(&digits.len())
            && !digits.starts_with('0'),
        "{input:?} became {s:?}"
    );
    for region in ["US", "GB", "ZZ"] {
        assert_eq!(
            PhoneNumber::parse(s, region).as_ref(),
            Ok(number),
            "{input:?} became {s:?}, which does not parse to itself in {region}"
        );
    }
    assert_eq!(PhoneNumber::parse_international(s).as_ref(), Ok(number));
    assert_eq!(
        PhoneNumber::parse_international(&s[1..]).as_ref(),
        Ok(number)
    );
}

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
    let input = String::from_utf8_lossy(rest);
    let region = region(flags);
    if let Ok(n) = PhoneNumber::parse(&input, region) {
        check(&n, &input);
    }
    if let Ok(n) = PhoneNumber::parse_international(&input) {
        check(&n, &input);
    }
    if let Ok(id) = whatsapp_id(&input, region) {
        assert_eq!(whatsapp_id(&id, "ZZ"), Ok(id.clone()));
    }
    if let Ok(id) = platform_id("facebook_id", &input) {
        assert_eq!(platform_id("facebook_id", &id), Ok(id.clone()));
    }
    for channel in [Channel::Sms, Channel::Whatsapp, Channel::Email] {
        let canonical = canonical_spelling(channel, &input);
        assert_eq!(canonical_spelling(channel, &canonical), canonical);
        assert_eq!(kept_spellings(channel, &input)[0], input);
    }
    let _ = masked(&input);
});
