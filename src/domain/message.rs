//! Outbound messages: what a body and a subject may be, and statuses as
//! providers report them.

use super::InvalidField;

/// The longest message body taken (an SMS of 10,000 characters is already
/// some 70 segments).
pub const MAX_BODY_CHARS: usize = 10_000;
/// The longest subject: one header line as RFC 5322 allows it.
pub const MAX_SUBJECT_CHARS: usize = 998;

/// A body: not blank, at most [`MAX_BODY_CHARS`].
pub fn check_body(text: &str) -> Result<(), InvalidField> {
    if text.trim().is_empty() {
        return Err(InvalidField::new("body", "is empty"));
    }
    let n = text.chars().count();
    if n > MAX_BODY_CHARS {
        return Err(InvalidField::new(
            "body",
            format!("has {n} characters; at most {MAX_BODY_CHARS}"),
        ));
    }
    Ok(())
}

/// A subject, trimmed (`None` when blank): one line (a line break would
/// start a header of its own), no control characters, at most
/// [`MAX_SUBJECT_CHARS`].
pub fn check_subject(subject: Option<&str>) -> Result<Option<String>, InvalidField> {
    let Some(subject) = subject.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if subject.chars().any(char::is_control) {
        return Err(InvalidField::new(
            "subject",
            "is one line: no line breaks or control characters",
        ));
    }
    let n = subject.chars().count();
    if n > MAX_SUBJECT_CHARS {
        return Err(InvalidField::new(
            "subject",
            format!("has {n} characters; at most {MAX_SUBJECT_CHARS}"),
        ));
    }
    Ok(Some(subject.to_string()))
}

/// How an SMS body is encoded: GSM-7 when every character is in the GSM
/// 03.38 alphabet (its extension table included), UCS-2 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

impl SmsEncoding {
    /// How the counter names it.
    pub fn label(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "Unicode",
        }
    }

    /// What one segment holds: alone, and each of several (a split message
    /// spends part of each segment on the header that joins them).
    pub fn capacity(self) -> (usize, usize) {
        match self {
            SmsEncoding::Gsm7 => (160, 153),
            SmsEncoding::Ucs2 => (70, 67),
        }
    }
}

/// The size of an SMS body as the carrier counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsSize {
    /// Characters as a person counts them (a line break sent as CR LF is
    /// two).
    pub characters: usize,
    pub encoding: SmsEncoding,
    /// Septets (GSM-7; an extension character takes two) or UTF-16 code
    /// units (UCS-2; an emoji takes two).
    pub units: usize,
    pub segments: usize,
}

impl SmsSize {
    /// "42 characters · 1 SMS segment (GSM-7)".
    pub fn describe(&self) -> String {
        format!(
            "{} character{} · {} SMS segment{} ({})",
            self.characters,
            if self.characters == 1 { "" } else { "s" },
            self.segments,
            if self.segments == 1 { "" } else { "s" },
            self.encoding.label()
        )
    }
}

/// The GSM 03.38 basic alphabet.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: each is sent as an escape and itself, two septets.
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// What a character costs in GSM-7 septets; `None` when GSM-7 cannot carry
/// it.
fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Counts an SMS body as it will be sent: GSM-7 if it can be, else UCS-2;
/// one segment up to 160 septets (70 UCS-2 units), else 153 (67) per
/// segment. A character is never split between two segments (an escaped
/// extension character, an emoji's surrogate pair), so a long message is
/// packed character by character.
pub fn sms_size(text: &str) -> SmsSize {
    let gsm: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    let (encoding, costs) = match gsm {
        Some(costs) => (SmsEncoding::Gsm7, costs),
        None => (
            SmsEncoding::Ucs2,
            text.chars().map(char::len_utf16).collect(),
        ),
    };
    let units: usize = costs.iter().sum();
    let (single, each) = encoding.capacity();
    let segments = if units == 0 {
        0
    } else if units <= single {
        1
    } else {
        let mut segments = 1;
        let mut used = 0;
        for cost in costs {
            if used + cost > each {
                segments += 1;
                used = 0;
            }
            used += cost;
        }
        segments
    };
    SmsSize {
        characters: text.chars().count(),
        encoding,
        units,
        segments,
    }
}

/// Orders delivery statuses so a late report never moves a message
/// backwards (a `sent` arriving after `delivered` is ignored). Reports come
/// out of order, and a status callback may even arrive before the
/// dispatcher recorded that it handed the message over.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "accepted" | "scheduled" | "queued" => 1,
        "sending" => 2,
        // Handed over, no answer yet: any report of the provider says more.
        "unknown" => 2,
        "sent" => 3,
        "undelivered" | "failed" | "canceled" => 4,
        "delivered" | "partially_delivered" => 5,
        "read" => 6,
        // Unknown (new) statuses never overwrite a known one.
        _ => 0,
    }
}

/// The higher-ranked of two statuses (the first on a tie).
pub fn later_status<'a>(a: &'a str, b: &'a str) -> &'a str {
    if status_rank(b) > status_rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_bounded_line() {
        assert_eq!(
            check_subject(Some("  Hello ")).unwrap().as_deref(),
            Some("Hello")
        );
        assert_eq!(check_subject(Some("   ")).unwrap(), None);
        assert!(check_subject(Some("a\r\nBcc: x@example.com")).is_err());
        assert!(check_subject(Some(&"x".repeat(999))).is_err());
        assert!(check_subject(Some(&"x".repeat(998))).is_ok());
        assert!(check_body("").is_err());
        assert!(check_body(&"x".repeat(10_001)).is_err());
    }

    #[test]
    fn statuses_only_move_forward() {
        assert!(status_rank("delivered") > status_rank("sent"));
        assert!(status_rank("sent") > status_rank("queued"));
        assert!(status_rank("sent") > status_rank("unknown"));
        assert!(status_rank("undelivered") > status_rank("sent"));
        assert!(status_rank("read") > status_rank("delivered"));
        assert_eq!(status_rank("something-new"), 0);
        assert_eq!(later_status("sent", "delivered"), "delivered");
        assert_eq!(later_status("delivered", "sent"), "delivered");
    }

    #[test]
    fn plain_text_is_gsm7_160_alone_and_153_per_segment() {
        let size = sms_size("Hello");
        assert_eq!(size.encoding, SmsEncoding::Gsm7);
        assert_eq!((size.characters, size.units, size.segments), (5, 5, 1));
        assert_eq!(size.describe(), "5 characters · 1 SMS segment (GSM-7)");
        assert_eq!(sms_size(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_size(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_size(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_size(&"a".repeat(307)).segments, 3);
        let empty = sms_size("");
        assert_eq!(empty.segments, 0);
        assert_eq!(empty.describe(), "0 characters · 0 SMS segments (GSM-7)");
        assert_eq!(
            sms_size("x").describe(),
            "1 character · 1 SMS segment (GSM-7)"
        );
        // Accented letters of the GSM alphabet and line breaks stay GSM-7.
        let size = sms_size("Café à 10h? ¿Qué!\r\nÑ");
        assert_eq!(
            size.encoding,
            SmsEncoding::Gsm7,
            "é, à, ¿, Ñ and CR LF are GSM-7"
        );
        assert_eq!(size.units, size.characters);
        // í (acute) is not: GSM-7 has only ì.
        assert_eq!(sms_size("Sí").encoding, SmsEncoding::Ucs2);
    }

    #[test]
    fn extension_characters_count_two_and_are_never_split() {
        let size = sms_size("Price: 5€ {promo}");
        assert_eq!(size.encoding, SmsEncoding::Gsm7);
        assert_eq!(size.characters, 17);
        assert_eq!(size.units, 20, "€, {{ and }} take two septets each");
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            assert_eq!(sms_size(&c.to_string()).units, 2, "{c:?}");
        }
        // 80 euro signs are 160 septets: one segment; one more character
        // splits it.
        assert_eq!(sms_size(&"€".repeat(80)).segments, 1);
        assert_eq!(sms_size(&format!("{}a", "€".repeat(80))).segments, 2);
        // 152 septets then an escaped character: it does not fit in the
        // first segment's 153, so it starts the second.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(sms_size(&text).units, 306);
        assert_eq!(
            sms_size(&text).segments,
            3,
            "the € moves whole to segment 2"
        );
    }

    #[test]
    fn one_character_outside_gsm7_makes_it_ucs2_70_and_67() {
        let size = sms_size("Hi Zoë ć");
        assert_eq!(size.encoding, SmsEncoding::Ucs2, "ć is not GSM-7");
        assert_eq!(size.describe(), "8 characters · 1 SMS segment (Unicode)");
        assert_eq!(sms_size(&"ć".repeat(70)).segments, 1);
        assert_eq!(sms_size(&"ć".repeat(71)).segments, 2);
        assert_eq!(sms_size(&"ć".repeat(134)).segments, 2);
        assert_eq!(sms_size(&"ć".repeat(135)).segments, 3);
        // A curly quote, as phones type them, is not GSM-7 either.
        assert_eq!(sms_size("It’s").encoding, SmsEncoding::Ucs2);
        // An emoji is two UTF-16 units, one character, and never split.
        let size = sms_size("👍");
        assert_eq!((size.characters, size.units), (1, 2));
        assert_eq!(sms_size(&"👍".repeat(35)).segments, 1);
        assert_eq!(sms_size(&format!("{}👍", "a".repeat(68))).segments, 1);
        assert_eq!(sms_size(&format!("{}👍", "a".repeat(69))).segments, 2);
        let text = format!("{}👍{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(sms_size(&text).units, 134);
        assert_eq!(
            sms_size(&text).segments,
            3,
            "the pair starts segment 2 whole"
        );
    }
}
