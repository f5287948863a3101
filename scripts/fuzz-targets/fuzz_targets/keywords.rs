//! Keyword matching. Input: the message up to the first newline, then a
//! location's keywords, one a line, dealt round the three lists.

#![no_main]

use dnd::domain::dnd::{match_keyword, KeywordMatch, Keywords};
use libfuzzer_sys::fuzz_target;

/// What carriers ignore around a keyword: nothing else is left.
fn blank(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_whitespace() || c.is_ascii_punctuation())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let message = lines.next().unwrap_or("");
    let mut keywords = Keywords {
        opt_out: vec![],
        opt_in: vec![],
        help: vec![],
    };
    for (i, word) in lines.enumerate() {
        match i % 3 {
            0 => keywords.opt_out.push(word.to_string()),
            1 => keywords.opt_in.push(word.to_string()),
            _ => keywords.help.push(word.to_string()),
        }
    }
    let matched = match_keyword(message, &keywords);
    let _ = match_keyword(message, &Keywords::default());
    // ASCII case, surrounding spaces and trailing punctuation never matter.
    assert_eq!(
        matched,
        match_keyword(&message.to_ascii_lowercase(), &keywords)
    );
    assert_eq!(
        matched,
        match_keyword(&message.to_ascii_uppercase(), &keywords)
    );
    assert_eq!(
        matched,
        match_keyword(&format!(" \t{message}!. \r"), &keywords)
    );
    if blank(message) {
        assert_eq!(matched, None, "a blank message matched: {message:?}");
    }
    // Every keyword matches itself, and opt-out wins.
    for word in keywords.opt_out.iter().filter(|w| !blank(w)) {
        assert_eq!(
            match_keyword(word, &keywords),
            Some(KeywordMatch::OptOut),
            "{word:?}"
        );
    }
    for word in keywords.opt_in.iter().filter(|w| !blank(w)) {
        let m = match_keyword(word, &keywords);
        assert!(
            matches!(m, Some(KeywordMatch::OptOut | KeywordMatch::OptIn)),
            "{word:?}: {m:?}"
        );
    }
    for word in keywords.help.iter().filter(|w| !blank(w)) {
        assert!(match_keyword(word, &keywords).is_some(), "{word:?}");
    }
});
