//! Tracker-less search (seed 002): queries flooded to neighbours over UDP
//! with a TTL, answered by every holder straight to the asker.
//!
//! One UDP socket, bound to the same address and port number as the block
//! server, serves three jobs: the `search-udp` thread receives every
//! datagram (HELLO, QUERY, CHUNK_INFO) and acts on the decisions of
//! [`node::Node`]; the `search-hello` thread greets the configured
//! neighbours every 30 s; and a caller (a `get`, `whohas`, or a download's
//! refresher) floods its own query with [`Search::find`] and collects the
//! answers. The node state sits behind one mutex, held for bookkeeping
//! only, never across a send or a name lookup.

pub mod challenge;
pub mod choice;
pub mod limit;
pub mod neighbours;
pub mod node;
pub mod seen;

use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::record::FileRecord;
use crate::secure::seal::{Purpose, ReplayGuard};
use crate::wire::datagram::search::{
    hello_reply, ChunkInfo, Datagram, Query, HELLO_LEN, MAX_DATAGRAM, QUERY_LEN,
};
use log::{debug, info, warn};
use neighbours::Heard;
pub use node::SearchHit;
use node::{Node, OnQuery};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a search collects answers at most...
pub const ANSWER_WINDOW: Duration = Duration::from_secs(2);
/// ...and less once it has a complete holder and nothing new came for this
/// long (answers from near and far alike arrive within milliseconds on a
/// LAN; a holder that answers later is picked up by the next refresh)...
pub const QUIET: Duration = Duration::from_millis(500);
/// ...or once this many holders have answered: plenty to download from.
pub const ENOUGH_ANSWERS: usize = 8;
/// A search that got no answer at all is sent once more, with a new id, in
/// case a datagram was lost.
pub const ATTEMPTS: u32 = 2;
/// How often the configured neighbours are greeted (and re-resolved).
pub const HELLO_EVERY: Duration = Duration::from_secs(30);
/// The receive thread's read timeout (it has nothing else to do).
const RECV_POLL: Duration = Duration::from_secs(1);
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// What search needs to know about its peer.
pub struct Settings {
    /// The block server's address: the UDP socket binds the same.
    pub bind: SocketAddr,
    pub peer_id: String,
    /// The `--advertise` host, if any.
    pub advertise_host: Option<String>,
    /// The TCP port other peers dial for blocks (`--advertise` may change it).
    pub port: u16,
    /// The `--neighbor` arguments, as given.
    pub neighbours: Vec<String>,
}

/// What this peer holds of a file, for answering a query.
pub struct Holding {
    pub record: Arc<FileRecord>,
    pub have: Bitfield,
}

/// How this peer presents itself in its datagrams.
struct Me {
    peer_id: String,
    /// The `--advertise` host, or empty: "the address my datagram came from".
    host: String,
    /// The TCP port to dial for blocks.
    port: u16,
    /// Where answers to our queries should go, when `--advertise` says;
    /// otherwise the first neighbour fills in the address it sees.
    origin: Option<SocketAddr>,
}

pub struct Search {
    socket: UdpSocket,
    me: Me,
    /// The `--neighbor` arguments, as given (re-resolved every HELLO_EVERY).
    configured: Vec<String>,
    node: Mutex<Node>,
}

impl Search {
    /// Binds the UDP socket on the block server's address and port number
    /// and resolves the configured neighbours.
    pub fn bind(cfg: Settings) -> Result<Search> {
        let addr = cfg.bind;
        let socket = UdpSocket::bind(addr).map_err(|e| {
            Error::Usage(format!(
                "cannot receive search datagrams on UDP {addr}: {e} (is another program using UDP port {}? pick another PORT)",
                addr.port()
            ))
        })?;
        let ctx = "setting up the search socket";
        socket
            .set_read_timeout(Some(RECV_POLL))
            .map_err(|e| Error::net(ctx, e))?;
        socket
            .set_write_timeout(Some(SEND_TIMEOUT))
            .map_err(|e| Error::net(ctx, e))?;
        let origin = cfg.advertise_host.as_ref().and_then(|host| {
            (host.as_str(), cfg.port)
                .to_socket_addrs()
                .ok()
                .and_then(|all| sendable(all, addr.is_ipv4()))
        });
        let search = Search {
            socket,
            me: Me {
                peer_id: cfg.peer_id,
                host: cfg.advertise_host.unwrap_or_default(),
                port: cfg.port,
                origin,
            },
            configured: cfg.neighbours,
            node: Mutex::new(Node::new(Instant::now())),
        };
        search.resolve_neighbours(true);
        Ok(search)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }

    /// True when there is anyone to ask: a configured neighbour, or one
    /// that greeted us.
    pub fn has_neighbours(&self) -> bool {
        !self.node().neighbours.is_empty()
    }

    /// The neighbours as `peer-id@addr` (or just the address while it has
    /// not said hello), for messages.
    pub fn describe_neighbours(&self) -> String {
        let node = self.node();
        let names: Vec<String> = node
            .neighbours
            .all()
            .iter()
            .map(|n| match &n.peer_id {
                Some(id) => format!("{id}@{}", n.addr),
                None => n.addr.to_string(),
            })
            .collect();
        names.join(", ")
    }

    fn node(&self) -> MutexGuard<'_, Node> {
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body of the `search-udp` thread: receives and handles datagrams
    /// forever. `holding` says what this peer has of a file.
    pub fn serve(&self, holding: impl Fn(&str) -> Option<Holding>) {
        // Under a swarm secret, datagrams arrive sealed: that much longer.
        let max = MAX_DATAGRAM + crate::secure::datagram_overhead();
        let mut buf = vec![0u8; max + 1];
        // As the tracker's: nothing stamped before this peer started.
        let mut guard = ReplayGuard::since(crate::secure::started_ms());
        let mut opened = Vec::new();
        loop {
            match self.socket.recv_from(&mut buf) {
                // One byte more than the limit was room for: too long.
                Ok((n, src)) if n > max => {
                    debug!("search: {src}: datagram over {MAX_DATAGRAM} bytes, dropped")
                }
                Ok((n, src)) => {
                    // Under a secret, one that does not open gets no answer.
                    if let Some(d) =
                        crate::secure::incoming(Purpose::Search, &buf[..n], &mut guard, &mut opened)
                    {
                        self.on_datagram(d, src, &holding)
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    // An ICMP error reported on the socket, say: not ours to fix.
                    debug!("search: receiving: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// The body of the `search-hello` thread: greets the configured
    /// neighbours now and every `HELLO_EVERY`, asking for a HELLO back.
    pub fn keep_in_touch(&self) {
        let mut first = true;
        loop {
            if !first {
                self.resolve_neighbours(false);
            }
            first = false;
            let targets: Vec<SocketAddr> = {
                let mut node = self.node();
                node.neighbours.expire(Instant::now());
                node.neighbours
                    .all()
                    .iter()
                    .filter(|n| n.configured)
                    .map(|n| n.addr)
                    .collect()
            };
            for to in targets {
                // A challenge of its own for each: the reply that echoes
                // it is what makes the neighbour known.
                let challenge = fresh_challenge();
                let hello = Datagram::Hello {
                    peer_id: self.me.peer_id.clone(),
                    want_reply: true,
                    challenge,
                    echo: 0,
                };
                // Padded to the largest HELLO, so that any peer may reply.
                let Some(bytes) = hello.encode_padded(HELLO_LEN) else {
                    return;
                };
                self.node().challenge(to, challenge, Instant::now());
                self.send(&bytes, to, "HELLO");
            }
            std::thread::sleep(HELLO_EVERY);
        }
    }

    /// Floods a query for `name` with `ttl` hops and collects the answers
    /// (one per holder) for up to `ANSWER_WINDOW`, less once there is
    /// enough to start a download. Empty when nobody answered, or there is
    /// no neighbour to ask.
    pub fn find(&self, name: &str, ttl: u8) -> Vec<SearchHit> {
        self.search(name, ttl, Until::Enough)
    }

    /// Like `find`, but waits the whole window for every holder within
    /// reach (up to `node::MAX_ANSWERS`): for `whohas`, which lists them all.
    pub fn find_all(&self, name: &str, ttl: u8) -> Vec<SearchHit> {
        self.search(name, ttl, Until::WindowEnds)
    }

    fn search(&self, name: &str, ttl: u8, until: Until) -> Vec<SearchHit> {
        for attempt in 1..=ATTEMPTS {
            let answers = self.find_once(name, ttl, until);
            if !answers.is_empty() {
                return answers;
            }
            debug!("search: no answer for {name} (attempt {attempt} of {ATTEMPTS})");
        }
        Vec::new()
    }

    fn find_once(&self, name: &str, ttl: u8, until: Until) -> Vec<SearchHit> {
        let (tx, rx) = crossbeam_channel::bounded(node::MAX_ANSWERS);
        let query = Query {
            id: crate::rng::Rng::new().next_u64(),
            ttl,
            hops: 0,
            origin: self.me.origin,
            name: name.to_string(),
        };
        let (query, targets) = self.node().originate(query, tx, Instant::now());
        let id = query.id;
        if targets.is_empty() {
            self.node().finish(id);
            return Vec::new();
        }
        debug!(
            "search: query {id:016x} for {name} (ttl {ttl}) to {} neighbours",
            targets.len()
        );
        // Padded: a holder's answer must fit in the query it answers.
        match Datagram::Query(query).encode_padded(QUERY_LEN) {
            Some(bytes) => {
                for to in targets {
                    self.send(&bytes, to, "QUERY");
                }
            }
            None => warn!("search: a query for {name} does not fit {QUERY_LEN} bytes"),
        }
        let answers = collect(&rx, Instant::now(), until);
        self.node().finish(id);
        debug!(
            "search: query {id:016x} for {name}: {} answers",
            answers.len()
        );
        answers
    }

    fn on_datagram(
        &self,
        bytes: &[u8],
        src: SocketAddr,
        holding: &impl Fn(&str) -> Option<Holding>,
    ) {
        let datagram = match Datagram::decode(bytes) {
            Ok(d) => d,
            Err(e) => return debug!("search: {src}: {e}"),
        };
        match datagram {
            Datagram::Hello {
                peer_id,
                want_reply,
                challenge,
                echo,
            } => self.on_hello((&peer_id, want_reply, challenge, echo), bytes.len(), src),
            Datagram::Query(q) => self.on_query(q, bytes.len(), src, holding),
            Datagram::ChunkInfo(info) => {
                let (id, who) = (info.query_id, info.peer_id.clone());
                if self.node().on_answer(info, src) {
                    debug!("search: query {id:016x}: answer from {who} at {src}");
                } else {
                    debug!("search: {src}: an answer to no open query of ours, dropped");
                }
            }
        }
    }

    /// A HELLO of `len` bytes from `src`: its peer id, whether it wants a
    /// reply, its challenge and its echo (`node::Node::on_hello`).
    fn on_hello(&self, hello: (&str, bool, u64, u64), len: usize, src: SocketAddr) {
        let peer_id = hello.0;
        if peer_id == self.me.peer_id {
            return debug!("search: {src}: a HELLO with our own id, ignored");
        }
        let Some(got) = self
            .node()
            .on_hello(hello, src, fresh_challenge(), Instant::now())
        else {
            return debug!("search: {src}: HELLO over the rate, dropped");
        };
        match got.heard {
            Some(Heard::New) => info!("search: neighbour {peer_id} at {src} is up"),
            Some(Heard::Again) => {}
            Some(Heard::Ignored) => debug!("search: {src}: no room for another neighbour"),
            None => debug!(
                "search: {src}: a HELLO from {peer_id} not echoing our challenge: not learnt (yet)"
            ),
        }
        if let Some((challenge, echo)) = got.reply {
            match hello_reply(&self.me.peer_id, challenge, echo, len) {
                Some(bytes) => self.send(&bytes, src, "HELLO"),
                None => {
                    debug!("search: {src}: no HELLO back: ours is larger than their {len} bytes")
                }
            }
        }
    }

    /// A QUERY of `len` bytes (opened, under a secret): the most we may
    /// send back to its origin, and the length it is forwarded with.
    fn on_query(
        &self,
        q: Query,
        len: usize,
        src: SocketAddr,
        holding: &impl Fn(&str) -> Option<Holding>,
    ) {
        let (id, name, ttl, hops) = (q.id, q.name.clone(), q.ttl, q.hops);
        let verdict = self.node().on_query(q, src, Instant::now());
        let (origin, forward) = match verdict {
            OnQuery::Handle { origin, forward } => (origin, forward),
            OnQuery::Duplicate => {
                return debug!("search: query {id:016x} from {src}: duplicate, dropped")
            }
            OnQuery::Limited => {
                return debug!("search: query {id:016x} from {src}: over the rate, dropped")
            }
            OnQuery::BadOrigin => {
                return debug!("search: query {id:016x} from {src}: unusable origin, dropped")
            }
        };
        debug!(
            "search: query {id:016x} for {name} from {src}: handled (hop {}, ttl {ttl}, origin {origin})",
            hops as u32 + 1
        );
        if let Some(h) = holding(&name) {
            let answer = ChunkInfo {
                query_id: id,
                peer_id: self.me.peer_id.clone(),
                host: self.me.host.clone(),
                port: self.me.port,
                name: name.clone(),
                size: h.record.size,
                md5: h.record.md5,
                have: h.have,
                record: None,
            };
            match answer.encode_within(&h.record, len) {
                Some(bytes) => {
                    self.send(&bytes, origin, "CHUNK_INFO");
                    debug!(
                        "search: query {id:016x}: answered {origin} ({} bytes)",
                        bytes.len()
                    );
                }
                None => debug!("search: query {id:016x}: no answer fits in its {len} bytes"),
            }
        }
        if let Some((next, targets)) = forward {
            // As long as it came: the origin filled in takes the place of
            // padding, and holders further on get the same budget.
            match Datagram::Query(next).encode_padded(len) {
                Some(bytes) => {
                    for to in &targets {
                        self.send(&bytes, *to, "QUERY");
                    }
                    debug!(
                        "search: query {id:016x}: forwarded to {} neighbours (ttl {})",
                        targets.len(),
                        ttl.min(crate::wire::datagram::search::MAX_TTL) - 1
                    );
                }
                None => debug!(
                    "search: query {id:016x}: not forwarded: its {len} bytes leave no room for the origin"
                ),
            }
        }
    }

    fn send(&self, bytes: &[u8], to: SocketAddr, what: &str) {
        let mut sealed = Vec::new();
        if let Err(e) = self.socket.send_to(
            crate::secure::outgoing(Purpose::Search, bytes, &mut sealed),
            to,
        ) {
            debug!("search: sending a {what} to {to}: {e}");
        }
    }

    /// Resolves the `--neighbor` arguments to addresses this socket can
    /// send to (`sendable`). A name that does not resolve is left out until
    /// it does; `loudly` makes that a warning (at start) rather than a
    /// debug line.
    fn resolve_neighbours(&self, loudly: bool) {
        let v4 = self.local_addr().is_none_or(|a| a.is_ipv4());
        let mut addrs = Vec::new();
        for n in &self.configured {
            let found = n.to_socket_addrs().ok().and_then(|all| sendable(all, v4));
            match found {
                Some(a) if !addrs.contains(&a) => addrs.push(a),
                Some(_) => {}
                None if loudly => warn!(
                    "search: neighbour {n} does not resolve to an address this peer can reach (bound to {}); will retry",
                    self.local_addr().map(|a| a.to_string()).unwrap_or_default()
                ),
                None => debug!("search: neighbour {n} still does not resolve"),
            }
        }
        self.node().neighbours.set_configured(&addrs);
    }
}

/// A random challenge for a HELLO, never 0 (which means none). From the
/// OS: under a secret it travels sealed, in an open swarm an off-path
/// sender must guess it.
fn fresh_challenge() -> u64 {
    use chacha20poly1305::aead::rand_core::RngCore;
    loop {
        let c = chacha20poly1305::aead::OsRng.next_u64();
        if c != 0 {
            return c;
        }
    }
}

/// The first of `all` that a socket of this family can send to: IPv4 ones
/// on an IPv4 socket; on an IPv6 socket any, IPv4 as IPv4-mapped (the form
/// its datagrams arrive from).
fn sendable(mut all: impl Iterator<Item = SocketAddr>, v4: bool) -> Option<SocketAddr> {
    if v4 {
        all.find(SocketAddr::is_ipv4)
    } else {
        all.next().map(|a| match a {
            SocketAddr::V4(a4) => SocketAddr::new(a4.ip().to_ipv6_mapped().into(), a4.port()),
            v6 => v6,
        })
    }
}

/// When a search stops collecting answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// At the end of the window, or before once `ENOUGH_ANSWERS` holders
    /// answered, or once a complete holder is in hand and `QUIET` passed
    /// without news.
    Enough,
    /// At the end of the window (or at `node::MAX_ANSWERS`).
    WindowEnds,
}

/// Collects answers from `rx`, from `start` until `until` says. One answer
/// per peer id (the first).
fn collect(
    rx: &crossbeam_channel::Receiver<SearchHit>,
    start: Instant,
    until: Until,
) -> Vec<SearchHit> {
    let deadline = start + ANSWER_WINDOW;
    let most = match until {
        Until::Enough => ENOUGH_ANSWERS,
        Until::WindowEnds => node::MAX_ANSWERS,
    };
    let mut answers: Vec<SearchHit> = Vec::new();
    let mut quiet_from: Option<Instant> = None;
    while answers.len() < most {
        let stop_at = match quiet_from {
            Some(t) => deadline.min(t + QUIET),
            None => deadline,
        };
        let Some(wait) = stop_at.checked_duration_since(Instant::now()) else {
            break;
        };
        let Ok(a) = rx.recv_timeout(wait) else {
            break;
        };
        if answers.iter().any(|b| b.info.peer_id == a.info.peer_id) {
            continue;
        }
        let complete = a.info.have.is_full();
        answers.push(a);
        if until == Until::Enough && (complete || quiet_from.is_some()) {
            quiet_from = Some(Instant::now());
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::datagram::search::ChunkInfo;

    fn answer(peer: &str, have: Bitfield) -> SearchHit {
        SearchHit {
            info: ChunkInfo {
                query_id: 1,
                peer_id: peer.into(),
                host: String::new(),
                port: 9000,
                name: "f".into(),
                size: have.len() as u64 * 4096,
                md5: [0; 16],
                have,
                record: None,
            },
            from: SocketAddr::from(([10, 0, 0, 1], 9000)),
        }
    }

    #[test]
    fn collecting_stops_at_enough_holders_and_keeps_one_answer_each() {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(answer("A", Bitfield::full(4))).unwrap();
        tx.send(answer("A", Bitfield::full(4))).unwrap();
        for i in 0..ENOUGH_ANSWERS + 3 {
            tx.send(answer(&format!("P{i}"), Bitfield::new(4))).unwrap();
        }
        let got = collect(&rx, Instant::now(), Until::Enough);
        assert_eq!(got.len(), ENOUGH_ANSWERS);
        assert_eq!(got.iter().filter(|a| a.info.peer_id == "A").count(), 1);
        drop(tx);
        let rest = collect(&rx, Instant::now(), Until::WindowEnds);
        assert_eq!(rest.len(), 4, "the rest, until the channel closes");
    }

    #[test]
    fn collecting_ends_when_the_sender_is_gone_or_the_window_is_over() {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(answer("A", Bitfield::new(2))).unwrap();
        drop(tx);
        assert_eq!(collect(&rx, Instant::now(), Until::Enough).len(), 1);
        let (_tx, rx) = crossbeam_channel::unbounded::<SearchHit>();
        let long_ago = Instant::now()
            .checked_sub(ANSWER_WINDOW)
            .unwrap_or_else(Instant::now);
        assert!(
            collect(&rx, long_ago, Until::WindowEnds).is_empty(),
            "the window is already over"
        );
    }
}
