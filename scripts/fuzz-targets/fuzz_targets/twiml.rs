//! TwiML: any reply text, voice message or forwarding number stays text
//! inside one element of a well-formed document.

#![no_main]

use dnd::domain::dnd::voice_twiml;
use dnd_fuzz::{check_twiml, reply_twiml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_twiml(&reply_twiml(&text));
    check_twiml(&voice_twiml(false, None, &text));
    check_twiml(&voice_twiml(false, Some(&text), "x"));
    check_twiml(&voice_twiml(true, Some(&text), &text));
});
