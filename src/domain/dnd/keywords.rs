//! Opt-out, opt-in and help keywords, matched the way carriers do: the
//! whole message, trimmed, case-insensitive, trailing punctuation ignored.

/// A location's keyword lists (data, configurable; these are the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    pub help: Vec<String>,
}

impl Default for Keywords {
    fn default() -> Self {
        let list = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
        Keywords {
            opt_out: list(&[
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "REVOKE",
                "OPTOUT",
                "OPT OUT",
            ]),
            // UNSTOP is an opt-in word for carriers and Twilio, whatever the
            // seed article says.
            opt_in: list(&["START", "UNSTOP", "YES"]),
            help: list(&["HELP", "INFO"]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordMatch {
    OptOut,
    OptIn,
    Help,
}

/// Upper-cased, trimmed, inner runs of spaces made one, trailing
/// punctuation dropped.
fn normalise(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    joined
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_uppercase()
}

/// Which list the whole message is a keyword of, if any. Opt-out wins
/// should a location put one word on two lists: keeping a contact out is
/// the safe mistake.
pub fn match_keyword(body: &str, keywords: &Keywords) -> Option<KeywordMatch> {
    let message = normalise(body);
    if message.is_empty() {
        return None;
    }
    let on = |list: &[String]| list.iter().any(|k| normalise(k) == message);
    if on(&keywords.opt_out) {
        Some(KeywordMatch::OptOut)
    } else if on(&keywords.opt_in) {
        Some(KeywordMatch::OptIn)
    } else if on(&keywords.help) {
        Some(KeywordMatch::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(body: &str) -> Option<KeywordMatch> {
        match_keyword(body, &Keywords::default())
    }

    #[test]
    fn every_default_opt_out_word_matches_in_any_case() {
        for word in Keywords::default().opt_out {
            assert_eq!(m(&word), Some(KeywordMatch::OptOut), "{word}");
            assert_eq!(
                m(&word.to_lowercase()),
                Some(KeywordMatch::OptOut),
                "{word}"
            );
        }
        assert_eq!(m("Opt Out"), Some(KeywordMatch::OptOut));
        assert_eq!(m("opt   out"), Some(KeywordMatch::OptOut));
    }

    #[test]
    fn trailing_punctuation_and_spaces_are_ignored() {
        assert_eq!(m("Stop."), Some(KeywordMatch::OptOut));
        assert_eq!(m("  STOP!!! "), Some(KeywordMatch::OptOut));
        assert_eq!(m("start?"), Some(KeywordMatch::OptIn));
        assert_eq!(m("\tHelp\n"), Some(KeywordMatch::Help));
    }

    #[test]
    fn a_keyword_inside_a_sentence_is_not_a_keyword() {
        assert_eq!(m("please don't stop"), None);
        assert_eq!(m("stop please"), None);
        assert_eq!(m("STOPPING"), None);
        assert_eq!(m("yes please"), None);
        assert_eq!(m(""), None);
        assert_eq!(m("..."), None);
    }

    #[test]
    fn unstop_is_an_opt_in_word() {
        assert_eq!(m("UNSTOP"), Some(KeywordMatch::OptIn));
        assert_eq!(m("yes"), Some(KeywordMatch::OptIn));
        assert_eq!(m("info"), Some(KeywordMatch::Help));
    }

    #[test]
    fn lists_are_data() {
        let custom = Keywords {
            opt_out: vec!["ARRET".into()],
            opt_in: vec!["ARRET".into(), "OUI".into()],
            help: vec![],
        };
        assert_eq!(match_keyword("arrêt", &custom), None, "no accent folding");
        assert_eq!(
            match_keyword("Arret.", &custom),
            Some(KeywordMatch::OptOut),
            "opt-out wins"
        );
        assert_eq!(match_keyword("oui", &custom), Some(KeywordMatch::OptIn));
        assert_eq!(match_keyword("STOP", &custom), None);
        assert_eq!(match_keyword("help", &custom), None);
    }
}
