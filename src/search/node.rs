//! What one search node decides, without sockets: whether a query is new,
//! within its sender's rate, where it goes next and with what TTL; who is a
//! neighbour; which answers belong to a query this node asked. The socket
//! threads in `search` act on these decisions; tests drive them with made-up
//! addresses and instants.

use super::challenge::Challenges;
use super::limit::{Limiter, Rate};
use super::neighbours::{Heard, Neighbours};
use super::seen::SeenCache;
use crate::wire::datagram::search::{ChunkInfo, Query, MAX_TTL};
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Query ids remembered, and for how long (far longer than a query lives).
pub const SEEN_CAPACITY: usize = 8192;
pub const SEEN_EXPIRY: Duration = Duration::from_secs(120);
/// Queries handled per origin IP address: a burst of 32, then 8 a second.
/// Keyed by IP, not port, so answers aimed at one host stay bounded
/// (peers sharing a host or a NAT share this budget).
pub const QUERIES_PER_ORIGIN: Rate = Rate {
    burst: 32.0,
    per_sec: 8.0,
};
/// Queries handled in all, whatever their origin.
pub const QUERIES_OVERALL: Rate = Rate {
    burst: 128.0,
    per_sec: 64.0,
};
/// HELLOs handled per source address, and in all.
pub const HELLOS_PER_SOURCE: Rate = Rate {
    burst: 8.0,
    per_sec: 0.5,
};
pub const HELLOS_OVERALL: Rate = Rate {
    burst: 64.0,
    per_sec: 16.0,
};
/// Addresses the rate limiters track at once.
pub const MAX_TRACKED: usize = 4096;
/// Neighbours learned from HELLOs, and how long one lasts without a HELLO.
pub const MAX_LEARNED: usize = 32;
pub const LEARNED_EXPIRY: Duration = Duration::from_secs(90);
/// Answers accepted for one query of ours (one per holder; a query
/// reaches at most this many usable holders anyway, like WHO_HAS).
pub const MAX_ANSWERS: usize = crate::wire::message::MAX_HOLDERS;

/// A holder's answer to one of our queries, and where it came from.
#[derive(Clone, Debug)]
pub struct SearchHit {
    pub info: ChunkInfo,
    pub from: SocketAddr,
}

/// What to do with a query that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum OnQuery {
    /// Answer `origin` if we hold the file, and pass `forward` on to its
    /// targets (none when the TTL is used up or no neighbour is left).
    Handle {
        origin: SocketAddr,
        forward: Option<(Query, Vec<SocketAddr>)>,
    },
    /// Seen before (it came around a loop, or by a second path): dropped.
    Duplicate,
    /// Over its origin's or the overall rate: dropped.
    Limited,
    /// An origin no answer may go to (loopback from afar, multicast...).
    BadOrigin,
}

/// What to do with a HELLO that arrived.
#[derive(Debug, PartialEq, Eq)]
pub struct OnHello {
    /// What it changed among the neighbours: `None` unless it echoed a
    /// challenge we sent to its address (it is not learnt, nor refreshed).
    pub heard: Option<Heard>,
    /// Send a HELLO back with this `(challenge, echo)`: when it asked, our
    /// own challenge unless it just proved itself; when it proved itself
    /// and challenged us, no challenge (that ends the exchange).
    pub reply: Option<(u64, u64)>,
}

struct Pending {
    name: String,
    answers: Sender<SearchHit>,
    count: usize,
}

pub struct Node {
    seen: SeenCache,
    queries: Limiter<IpAddr>,
    hellos: Limiter<IpAddr>,
    pub neighbours: Neighbours,
    challenges: Challenges,
    pending: HashMap<u64, Pending>,
}

impl Node {
    pub fn new(now: Instant) -> Node {
        Node {
            seen: SeenCache::new(SEEN_CAPACITY, SEEN_EXPIRY),
            queries: Limiter::new(QUERIES_PER_ORIGIN, QUERIES_OVERALL, MAX_TRACKED, now),
            hellos: Limiter::new(HELLOS_PER_SOURCE, HELLOS_OVERALL, MAX_TRACKED, now),
            neighbours: Neighbours::new(MAX_LEARNED, LEARNED_EXPIRY),
            challenges: Challenges::new(),
            pending: HashMap::new(),
        }
    }

    /// A query from `src`. Each id is handled once; the TTL is capped at
    /// `MAX_TTL`, and a query goes on (with one hop less) only while hops
    /// are left, never back to its sender or its origin.
    pub fn on_query(&mut self, q: Query, src: SocketAddr, now: Instant) -> OnQuery {
        let origin = q.origin.unwrap_or(src);
        if !acceptable_origin(origin, src) {
            return OnQuery::BadOrigin;
        }
        if !self.seen.insert(q.id, now) {
            return OnQuery::Duplicate;
        }
        if !self.queries.allow(origin.ip().to_canonical(), now) {
            return OnQuery::Limited;
        }
        let ttl = q.ttl.min(MAX_TTL);
        let forward = if ttl > 1 {
            let targets = self.neighbours.targets(&[src, origin]);
            (!targets.is_empty()).then(|| {
                let next = Query {
                    id: q.id,
                    ttl: ttl - 1,
                    hops: q.hops.saturating_add(1),
                    origin: Some(origin),
                    name: q.name,
                };
                (next, targets)
            })
        } else {
            None
        };
        OnQuery::Handle { origin, forward }
    }

    /// Starts a query of our own: remembers its id (so it is not handled
    /// when it comes back around a loop) and where its answers go. Returns
    /// the query and the neighbours to send it to.
    pub fn originate(
        &mut self,
        q: Query,
        answers: Sender<SearchHit>,
        now: Instant,
    ) -> (Query, Vec<SocketAddr>) {
        self.seen.insert(q.id, now);
        self.pending.insert(
            q.id,
            Pending {
                name: q.name.clone(),
                answers,
                count: 0,
            },
        );
        let targets = self.neighbours.targets(&[]);
        (q, targets)
    }

    /// Our query `id` is over: later answers are dropped.
    pub fn finish(&mut self, id: u64) {
        self.pending.remove(&id);
    }

    /// An answer: delivered if it belongs to a query of ours still
    /// collecting, names the file asked for, and the query has room.
    pub fn on_answer(&mut self, info: ChunkInfo, from: SocketAddr) -> bool {
        let Some(p) = self.pending.get_mut(&info.query_id) else {
            return false;
        };
        if p.name != info.name || p.count >= MAX_ANSWERS {
            return false;
        }
        p.count += 1;
        p.answers.try_send(SearchHit { info, from }).is_ok()
    }

    /// We send a HELLO carrying `challenge` (random, not 0) to `to`.
    pub fn challenge(&mut self, to: SocketAddr, challenge: u64, now: Instant) {
        self.challenges.issue(to, challenge, now);
    }

    /// A HELLO from `src` (its peer id, whether it wants a reply, its
    /// challenge and its echo); `fresh` is a new random challenge of ours,
    /// used if the reply carries one. `None` when over the rate (ignored).
    pub fn on_hello(
        &mut self,
        hello: (&str, bool, u64, u64),
        src: SocketAddr,
        fresh: u64,
        now: Instant,
    ) -> Option<OnHello> {
        let (peer_id, want_reply, challenge, echo) = hello;
        if !self.hellos.allow(src.ip().to_canonical(), now) {
            return None;
        }
        let proven = self.challenges.answered(src, echo, now);
        let heard = proven.then(|| self.neighbours.heard(src, peer_id, now));
        let reply = if proven && challenge != 0 {
            Some((0, challenge))
        } else if want_reply {
            self.challenges.issue(src, fresh, now);
            Some((fresh, challenge))
        } else {
            None
        };
        Some(OnHello { heard, reply })
    }
}

/// Where an answer may be sent. Never to an unspecified, multicast or
/// broadcast address or port 0; to loopback only when the query itself came
/// from loopback, so nobody on the network can aim our answers at our own
/// local services. IPv4-mapped IPv6 addresses are judged as the IPv4
/// address they stand for.
pub fn acceptable_origin(origin: SocketAddr, src: SocketAddr) -> bool {
    let ip = origin.ip().to_canonical();
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || origin.port() == 0
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !unusable && (!ip.is_loopback() || src.ip().to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitfield::Bitfield;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn query(id: u64, ttl: u8) -> Query {
        Query {
            id,
            ttl,
            hops: 0,
            origin: None,
            name: "f".into(),
        }
    }

    fn node(neighbours: &[SocketAddr]) -> (Node, Instant) {
        let now = Instant::now();
        let mut n = Node::new(now);
        n.neighbours.set_configured(neighbours);
        (n, now)
    }

    #[test]
    fn a_query_goes_on_with_one_hop_less_never_back() {
        let (mut n, t) = node(&[addr(1), addr(2), addr(3)]);
        match n.on_query(query(1, 3), addr(1), t) {
            OnQuery::Handle { origin, forward } => {
                assert_eq!(
                    origin,
                    addr(1),
                    "the sender is the origin when none is given"
                );
                let (q, targets) = forward.unwrap();
                assert_eq!((q.ttl, q.hops, q.origin), (2, 1, Some(addr(1))));
                assert_eq!(targets, vec![addr(2), addr(3)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_is_forwarded_when_the_ttl_runs_out() {
        let (mut n, t) = node(&[addr(1), addr(2)]);
        let mut q = query(1, 1);
        q.origin = Some(addr(9));
        assert_eq!(
            n.on_query(q, addr(1), t),
            OnQuery::Handle {
                origin: addr(9),
                forward: None
            }
        );
    }

    #[test]
    fn a_query_is_not_sent_to_its_origin_either() {
        let (mut n, t) = node(&[addr(1), addr(2), addr(9)]);
        let mut q = query(1, 5);
        q.origin = Some(addr(9));
        let OnQuery::Handle { forward, .. } = n.on_query(q, addr(1), t) else {
            panic!()
        };
        assert_eq!(forward.unwrap().1, vec![addr(2)]);
    }

    #[test]
    fn a_huge_ttl_is_capped() {
        let (mut n, t) = node(&[addr(1), addr(2)]);
        let OnQuery::Handle { forward, .. } = n.on_query(query(1, 255), addr(1), t) else {
            panic!()
        };
        assert_eq!(forward.unwrap().0.ttl, MAX_TTL - 1);
    }

    #[test]
    fn each_id_is_handled_once() {
        let (mut n, t) = node(&[addr(1), addr(2)]);
        assert!(matches!(
            n.on_query(query(7, 3), addr(1), t),
            OnQuery::Handle { .. }
        ));
        assert_eq!(n.on_query(query(7, 3), addr(2), t), OnQuery::Duplicate);
        assert_eq!(n.on_query(query(7, 2), addr(1), t), OnQuery::Duplicate);
    }

    #[test]
    fn our_own_query_coming_back_is_a_duplicate() {
        let (mut n, t) = node(&[addr(1), addr(2)]);
        let (tx, _rx) = crossbeam_channel::bounded(4);
        let (q, targets) = n.originate(query(5, 3), tx, t);
        assert_eq!(targets, vec![addr(1), addr(2)]);
        let mut back = q.clone();
        back.origin = Some(addr(100));
        assert_eq!(n.on_query(back, addr(2), t), OnQuery::Duplicate);
    }

    #[test]
    fn queries_are_rate_limited_per_origin() {
        let (mut n, t) = node(&[addr(1)]);
        let burst = QUERIES_PER_ORIGIN.burst as u64;
        for id in 0..burst {
            assert!(matches!(
                n.on_query(query(id, 2), addr(1), t),
                OnQuery::Handle { .. }
            ));
        }
        assert_eq!(n.on_query(query(1000, 2), addr(1), t), OnQuery::Limited);
        // The same origin through another neighbour is still the same origin.
        let mut q = query(1001, 2);
        q.origin = Some(addr(1));
        assert_eq!(n.on_query(q, addr(2), t), OnQuery::Limited);
        // Another origin (another address) is not affected.
        let elsewhere = SocketAddr::from(([10, 0, 0, 3], 1));
        assert!(matches!(
            n.on_query(query(1002, 2), elsewhere, t),
            OnQuery::Handle { .. }
        ));
        // A moment later, a few more are allowed.
        let later = t + Duration::from_millis(250);
        assert!(matches!(
            n.on_query(query(1003, 2), addr(1), later),
            OnQuery::Handle { .. }
        ));
    }

    #[test]
    fn answers_are_never_aimed_at_local_or_group_addresses() {
        let (mut n, t) = node(&[addr(1)]);
        let remote = addr(1);
        let local: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        for (id, bad) in [
            "127.0.0.1:53",
            "0.0.0.0:9000",
            "224.0.0.1:9000",
            "255.255.255.255:9000",
            "[::1]:53",
            "[::ffff:127.0.0.1]:53",
        ]
        .into_iter()
        .enumerate()
        {
            let mut q = query(id as u64, 2);
            q.origin = Some(bad.parse().unwrap());
            assert_eq!(n.on_query(q, remote, t), OnQuery::BadOrigin, "{bad}");
        }
        assert!(
            acceptable_origin(local, local),
            "loopback from loopback is fine"
        );
    }

    #[test]
    fn only_answers_to_our_open_queries_are_delivered() {
        let (mut n, t) = node(&[addr(1)]);
        let (tx, rx) = crossbeam_channel::bounded(MAX_ANSWERS + 10);
        let (q, _) = n.originate(query(5, 3), tx, t);
        let answer = |id: u64, name: &str| ChunkInfo {
            query_id: id,
            peer_id: "D".into(),
            host: String::new(),
            port: 1,
            name: name.into(),
            size: 0,
            md5: [0; 16],
            have: Bitfield::new(0),
            record: None,
        };
        assert!(n.on_answer(answer(q.id, "f"), addr(4)));
        assert!(!n.on_answer(answer(999, "f"), addr(4)), "not our query");
        assert!(!n.on_answer(answer(q.id, "g"), addr(4)), "another file");
        for _ in 1..MAX_ANSWERS {
            assert!(n.on_answer(answer(q.id, "f"), addr(4)));
        }
        assert!(!n.on_answer(answer(q.id, "f"), addr(4)), "bounded");
        assert_eq!(rx.len(), MAX_ANSWERS);
        n.finish(q.id);
        assert!(!n.on_answer(answer(q.id, "f"), addr(4)), "over");
    }

    #[test]
    fn hellos_are_rate_limited() {
        let (mut n, t) = node(&[]);
        let burst = HELLOS_PER_SOURCE.burst as usize;
        for i in 0..burst as u64 {
            let got = n.on_hello(("B", true, 5, 0), addr(1), 100 + i, t);
            assert!(got.is_some());
        }
        assert_eq!(n.on_hello(("B", true, 5, 0), addr(1), 1, t), None);
    }

    /// The exchange two peers make, D greeting A (which has D configured
    /// or not): A learns D, and D learns A, each only from an echo of its
    /// own challenge.
    #[test]
    fn neighbours_are_learnt_by_a_fresh_challenge_and_its_echo() {
        let (mut a, t) = node(&[]);
        let (mut d, _) = node(&[]);
        let (a_addr, d_addr) = (addr(1), addr(4));
        d.challenge(a_addr, 11, t);
        // D's HELLO asks and challenges: A answers with its own challenge.
        let got = a.on_hello(("D", true, 11, 0), d_addr, 22, t).unwrap();
        assert_eq!(
            got,
            OnHello {
                heard: None,
                reply: Some((22, 11))
            }
        );
        // A's reply echoes D's challenge: D learns A and echoes A's.
        let got = d.on_hello(("A", false, 22, 11), a_addr, 33, t).unwrap();
        assert_eq!(
            got,
            OnHello {
                heard: Some(Heard::New),
                reply: Some((0, 22))
            }
        );
        // D's echo: A learns D; nothing more is sent.
        let got = a.on_hello(("D", false, 0, 22), d_addr, 44, t).unwrap();
        assert_eq!(
            got,
            OnHello {
                heard: Some(Heard::New),
                reply: None
            }
        );
    }

    /// Issue 22 item 13: a HELLO from D, captured and replayed to A and B
    /// from another address, made both take that address for D's.
    #[test]
    fn a_replayed_hello_teaches_nothing() {
        let t = Instant::now();
        let attacker = addr(666);
        for first in [("D", true, 11, 0), ("D", false, 0, 22)] {
            let (mut b, _) = node(&[]);
            let got = b.on_hello(first, attacker, 55, t).unwrap();
            assert_eq!(got.heard, None, "{first:?}");
            assert!(b.neighbours.is_empty());
        }
        // A's challenge to D's real address is not answered from another,
        // nor twice from the right one.
        let (mut a, _) = node(&[]);
        a.on_hello(("D", true, 11, 0), addr(4), 22, t).unwrap();
        let from_elsewhere = a.on_hello(("D", false, 0, 22), attacker, 1, t).unwrap();
        assert_eq!(from_elsewhere.heard, None);
        assert!(a
            .on_hello(("D", false, 0, 22), addr(4), 1, t)
            .unwrap()
            .heard
            .is_some());
        let again = t + Duration::from_secs(1);
        assert_eq!(
            a.on_hello(("D", false, 0, 22), addr(4), 1, again)
                .unwrap()
                .heard,
            None
        );
    }
}
