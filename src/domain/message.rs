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
}
