//! How the web UI admits connections: through the block port's gate
//! (`net::gate`), with HTTP's first message, the request head. A
//! connection holds no thread until its head has arrived whole, within
//! `http::HEAD_TIMEOUT`; when slots run short the oldest connection still
//! sending its head goes first, so a crowd of trickling connections, even
//! from 127.0.0.1 like the user's own browser, only displaces itself.
//! Refusals are counted by the app and logged at most once a minute
//! (`RefusalLog`): a flood of them is one line, not one per connection.

use super::http;
use crate::net::admission::Limits;
use std::time::{Duration, Instant};

/// Every local client shares 127.0.0.1, so the per-address cap cannot
/// protect the user from other local programs: the eviction order does.
/// A browser opens about six connections per site, each for one request.
pub const ADMISSION: Limits = Limits {
    handlers: 16,
    lobby: 256,
    per_ip: 128,
    start: http::HEAD_TIMEOUT,
};

/// How often, at most, a line about refused connections is logged.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Whether `bytes` hold a whole request head: the blank line that ends it,
/// after any empty lines before the request line (which `read_head` skips).
pub fn head_whole(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(bytes.len());
    let head = &bytes[start..];
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// Refusals to log: the first at once, then at most one line per
/// `LOG_EVERY` with the count since the last line.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: Option<Instant>,
    pending: u64,
}

impl RefusalLog {
    /// One more refusal at `now`: the count to log now (this one and those
    /// not yet logged), or `None` within `LOG_EVERY` of the last line.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.pending += 1;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_whole_at_its_blank_line() {
        assert!(head_whole(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_whole(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(head_whole(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"));
        assert!(!head_whole(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_whole(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        assert!(!head_whole(b"\r\n\r\n\r\n"), "empty lines only");
        assert!(!head_whole(b"G"));
        assert!(!head_whole(b""));
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_minute_with_their_count() {
        let t0 = Instant::now();
        let mut log = RefusalLog::default();
        assert_eq!(log.note(t0), Some(1), "the first at once");
        for i in 1..1000 {
            assert_eq!(log.note(t0 + Duration::from_millis(i * 50)), None);
        }
        assert_eq!(
            log.note(t0 + LOG_EVERY),
            Some(1000),
            "999 held, and this one"
        );
        assert_eq!(log.note(t0 + LOG_EVERY + Duration::from_secs(1)), None);
        assert_eq!(log.note(t0 + LOG_EVERY * 3), Some(2));
    }
}
