//! The peers a query is forwarded to: the configured `--neighbor`s, plus a
//! bounded number learned from HELLOs (a peer that lists us as its
//! neighbour becomes ours too, as links in Gnutella are two-way). Learned
//! neighbours expire when they stop saying hello; configured ones never do.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Neighbour {
    pub addr: SocketAddr,
    /// Its peer id, once it has said hello.
    pub peer_id: Option<String>,
    pub heard: Option<Instant>,
    pub configured: bool,
}

pub struct Neighbours {
    list: Vec<Neighbour>,
    max_learned: usize,
    expiry: Duration,
}

/// What a HELLO changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// First word from this address (or from a new peer id at it).
    New,
    Again,
    /// Not a neighbour and no room to learn one more.
    Ignored,
}

impl Neighbours {
    pub fn new(max_learned: usize, expiry: Duration) -> Neighbours {
        Neighbours {
            list: Vec::new(),
            max_learned,
            expiry,
        }
    }

    /// Makes `addrs` the configured neighbours, keeping what was heard of
    /// those already known. A learned neighbour that is now configured
    /// stays, as a configured one.
    pub fn set_configured(&mut self, addrs: &[SocketAddr]) {
        for n in &mut self.list {
            n.configured = addrs.contains(&n.addr);
        }
        for a in addrs {
            if !self.list.iter().any(|n| n.addr == *a) {
                self.list.push(Neighbour {
                    addr: *a,
                    peer_id: None,
                    heard: None,
                    configured: true,
                });
            }
        }
    }

    /// A HELLO from `addr`.
    pub fn heard(&mut self, addr: SocketAddr, peer_id: &str, now: Instant) -> Heard {
        if let Some(n) = self.list.iter_mut().find(|n| n.addr == addr) {
            let new = n.peer_id.as_deref() != Some(peer_id);
            n.peer_id = Some(peer_id.to_string());
            n.heard = Some(now);
            return if new { Heard::New } else { Heard::Again };
        }
        self.expire(now);
        if self.list.iter().filter(|n| !n.configured).count() >= self.max_learned {
            return Heard::Ignored;
        }
        self.list.push(Neighbour {
            addr,
            peer_id: Some(peer_id.to_string()),
            heard: Some(now),
            configured: false,
        });
        Heard::New
    }

    /// Forgets learned neighbours not heard from within the expiry.
    pub fn expire(&mut self, now: Instant) {
        let expiry = self.expiry;
        self.list.retain(|n| {
            n.configured
                || n.heard
                    .is_some_and(|h| now.saturating_duration_since(h) < expiry)
        });
    }

    /// Where to send a query, leaving out `except` (the sender, the origin).
    pub fn targets(&self, except: &[SocketAddr]) -> Vec<SocketAddr> {
        self.list
            .iter()
            .map(|n| n.addr)
            .filter(|a| !except.contains(a))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn all(&self) -> &[Neighbour] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn configured_neighbours_are_targets_before_any_hello() {
        let mut n = Neighbours::new(2, Duration::from_secs(90));
        n.set_configured(&[addr(1), addr(2)]);
        assert_eq!(n.targets(&[]), vec![addr(1), addr(2)]);
        assert_eq!(
            n.targets(&[addr(1)]),
            vec![addr(2)],
            "never back to the sender"
        );
    }

    #[test]
    fn hellos_teach_a_bounded_number_of_neighbours_that_expire() {
        let t0 = Instant::now();
        let mut n = Neighbours::new(2, Duration::from_secs(90));
        n.set_configured(&[addr(1)]);
        assert_eq!(n.heard(addr(1), "B", t0), Heard::New);
        assert_eq!(n.heard(addr(1), "B", t0), Heard::Again);
        assert_eq!(n.heard(addr(5), "E", t0), Heard::New);
        assert_eq!(n.heard(addr(6), "F", t0), Heard::New);
        assert_eq!(
            n.heard(addr(7), "G", t0),
            Heard::Ignored,
            "room for 2 learned"
        );
        assert_eq!(n.targets(&[]).len(), 3);
        let later = t0 + Duration::from_secs(100);
        assert_eq!(n.heard(addr(7), "G", later), Heard::New, "5 and 6 expired");
        assert_eq!(n.targets(&[]), vec![addr(1), addr(7)]);
    }

    #[test]
    fn a_learned_neighbour_can_become_configured() {
        let t0 = Instant::now();
        let mut n = Neighbours::new(1, Duration::from_secs(90));
        n.heard(addr(5), "E", t0);
        n.set_configured(&[addr(5), addr(6)]);
        assert_eq!(n.targets(&[]), vec![addr(5), addr(6)]);
        n.expire(t0 + Duration::from_secs(1000));
        assert_eq!(n.targets(&[]).len(), 2, "configured ones never expire");
    }
}
