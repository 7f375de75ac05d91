//! The challenges a node sent in its HELLOs, until answered or expired. A
//! neighbour is learnt only from a HELLO that echoes a challenge sent to
//! that very address within `CHALLENGE_TTL`, once: a captured HELLO
//! replayed from another address, or later, teaches nothing (issue 22
//! item 13: a HELLO from D replayed to A and B made both take the
//! attacker's address for D's). Under a swarm secret the challenge travels
//! sealed, so only a member can echo it; in an open swarm it still proves
//! that the sender receives at the address it claims.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a challenge may wait for its echo: a round trip, with room.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(10);
/// Challenges outstanding at most; past it the oldest go (a flood of
/// HELLOs from many addresses only displaces its own).
pub const MAX_OUTSTANDING: usize = 4096;

#[derive(Default)]
pub struct Challenges {
    sent: HashMap<(SocketAddr, u64), Instant>,
}

impl Challenges {
    pub fn new() -> Challenges {
        Challenges::default()
    }

    /// `value` (random, not 0) was sent to `to` at `now`.
    pub fn issue(&mut self, to: SocketAddr, value: u64, now: Instant) {
        if self.sent.len() >= MAX_OUTSTANDING {
            self.sent
                .retain(|_, at| now.saturating_duration_since(*at) < CHALLENGE_TTL);
        }
        if self.sent.len() >= MAX_OUTSTANDING {
            let oldest = self.sent.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.sent.remove(&k);
            }
        }
        self.sent.insert((to, value), now);
    }

    /// Whether `echo`, arriving from `from` at `now`, answers a challenge
    /// sent there within `CHALLENGE_TTL`; each is taken once.
    pub fn answered(&mut self, from: SocketAddr, echo: u64, now: Instant) -> bool {
        if echo == 0 {
            return false;
        }
        self.sent
            .remove(&(from, echo))
            .is_some_and(|at| now.saturating_duration_since(at) < CHALLENGE_TTL)
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn an_echo_counts_once_from_the_address_challenged_within_the_ttl() {
        let t0 = Instant::now();
        let mut c = Challenges::new();
        c.issue(addr(1), 77, t0);
        assert!(!c.answered(addr(2), 77, t0), "from another address");
        assert!(!c.answered(addr(1), 78, t0), "another value");
        assert!(!c.answered(addr(1), 0, t0), "no echo");
        assert!(c.answered(addr(1), 77, t0 + Duration::from_secs(1)));
        assert!(!c.answered(addr(1), 77, t0), "taken once");
        c.issue(addr(1), 79, t0);
        assert!(!c.answered(addr(1), 79, t0 + CHALLENGE_TTL), "too late");
    }

    #[test]
    fn outstanding_challenges_are_bounded() {
        let t0 = Instant::now();
        let mut c = Challenges::new();
        for i in 0..MAX_OUTSTANDING as u64 + 10 {
            c.issue(addr(1), i + 1, t0 + Duration::from_micros(i));
        }
        assert_eq!(c.len(), MAX_OUTSTANDING);
        assert!(!c.answered(addr(1), 1, t0), "the oldest went first");
        assert!(c.answered(addr(1), MAX_OUTSTANDING as u64 + 10, t0));
    }
}
