//! "Said once per address": a bounded memory of the keys a message was
//! logged for, so a peer that retries every few seconds is named in the
//! log once, not at every try, and a flood of addresses cannot grow it.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// How many keys are remembered before the oldest is forgotten (and may
/// be said again).
pub const REMEMBERED: usize = 1024;

#[derive(Debug)]
pub struct OncePer<K> {
    seen: HashSet<K>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> OncePer<K> {
    pub fn new(cap: usize) -> OncePer<K> {
        OncePer {
            seen: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// True the first time `key` is seen (while remembered).
    pub fn first(&mut self, key: K) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

impl<K: Hash + Eq + Clone> Default for OncePer<K> {
    fn default() -> OncePer<K> {
        OncePer::new(REMEMBERED)
    }
}

/// Logs a handshake refused for its timestamp (`Error::Clock`): at WARN
/// the first time for `ip` (a peer retries every few seconds), at DEBUG
/// after. The tracker and a peer's block server both call it.
pub fn log_clock_refusal(said: &Mutex<OncePer<IpAddr>>, ip: Option<IpAddr>, what: &str) {
    let first = ip.is_some_and(|ip| said.lock().unwrap_or_else(|p| p.into_inner()).first(ip));
    if first {
        log::warn!("{what} (said once per address)");
    } else {
        log::debug!("{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_said_once_and_the_memory_stays_bounded() {
        let mut once = OncePer::new(2);
        assert!(once.first("a"));
        assert!(!once.first("a"), "not twice");
        assert!(once.first("b"));
        assert!(once.first("c"), "a third key evicts the oldest");
        assert!(!once.first("b") && !once.first("c"));
        assert!(once.first("a"), "forgotten, so said again");
        assert!(once.order.len() <= 2 && once.seen.len() <= 2);
    }
}
