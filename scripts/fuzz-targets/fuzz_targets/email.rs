//! Email addresses: whatever the text, no panic, and an address parsed is
//! its own normal form (one mailbox, one string).

#![no_main]

use dnd::domain::EmailAddress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(e) = EmailAddress::parse(&input) {
        let s = e.as_str();
        assert!(s.len() <= 254 && s.contains('@'), "{input:?} became {s:?}");
        assert!(
            !s.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{s:?}"
        );
        assert_eq!(
            EmailAddress::parse(s).as_ref(),
            Ok(&e),
            "{input:?} became {s:?}"
        );
    }
});
