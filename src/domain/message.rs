//! Outbound message statuses as providers report them.

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
