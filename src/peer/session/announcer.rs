//! The peer's side of the UDP tracker exchange as a state machine: it is
//! given what the peer holds now and the time, and says which datagram to
//! send and when to wake; it is given the tracker's answers. No socket,
//! clock or thread inside: `tracker_client` moves the bytes, the tests
//! drive it with made-up instants.
//!
//! One request is in flight at a time. Lost datagrams are sent again
//! after 250 ms, then 0.5, 1, 2 s… capped at the announce interval, so a
//! tracker that comes back is found within one interval. A tracker that
//! restarted refuses the old connection id (CONNECT again), then the old
//! session (REGISTER again, with everything the peer holds).
//!
//! What is sent: a file that appears, completes or goes is told at once;
//! a download's growing block count waits for the next interval (or an
//! `urgent` request), so a fast download is not an announce storm.

use crate::digest::Md5Digest;
use crate::wire::datagram::tracker::{
    batches, Announce, Entry, Held, Refusal, Reply, Request, COOKIE_REFRESH, FLAG_BYE,
    FLAG_REGISTER, FLAG_SITE,
};
use crate::wire::ANNOUNCE_INTERVAL;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// First wait for an answer; doubled at each loss, capped at the interval.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Losses in a row after which the tracker counts as unreachable.
const LOST_AFTER: u32 = 2;

/// What the peer holds: file name -> (md5, held). Never `Held::Gone`.
pub type Holdings = BTreeMap<String, (Md5Digest, Held)>;

/// Who the peer is, as every ANNOUNCE says.
#[derive(Clone, Debug)]
pub struct Identity {
    pub peer_id: String,
    pub port: u16,
    /// Empty: the tracker uses the address it sees.
    pub advertise: String,
    /// `--site`; empty: none. Told with each REGISTER.
    pub site: String,
}

/// Something the thread must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// An answer came after silence or at first: connected, with the
    /// source address the tracker saw.
    Reachable(IpAddr),
    /// No answer `LOST_AFTER` times in a row.
    Unreachable,
    /// The tracker has no record of these files: send NEW_FILE for each,
    /// then `release` them.
    Publish(Vec<String>),
    /// The tracker refused an announce as malformed (a bad advertised
    /// host): it is retried after an interval.
    Refused,
    /// Another live peer holds our peer id, dialled at this address: we
    /// stay unregistered and try again each interval. Told once per
    /// address, not at every retry.
    IdInUse(String),
    /// The goodbye was answered.
    Left,
}

struct InFlight {
    tx: u32,
    bytes: Vec<u8>,
    /// The entries it carries, applied to `acked` when answered.
    entries: Vec<(String, Md5Digest, Held)>,
    bye: bool,
    retry_at: Instant,
    wait: Duration,
}

pub struct Announcer {
    id: Identity,
    cookie: Option<(u64, Instant)>,
    session: Option<u64>,
    interval: Duration,
    /// What the tracker has acknowledged of our holdings.
    acked: HashMap<String, (Md5Digest, Held)>,
    /// Files the tracker lacks a record of, left out until `release`.
    held_out: HashMap<String, Instant>,
    in_flight: Option<InFlight>,
    /// When the next announce is due even with nothing urgent.
    due: Instant,
    urgent: bool,
    losses: u32,
    reachable: bool,
    leaving: bool,
    next_tx: u32,
    /// Where the peer that holds our id is, while the tracker says so.
    in_use: Option<String>,
}

/// Is the change from `old` to `new` one to tell at once?
fn urgent_change(old: Option<Held>, new: Option<Held>) -> bool {
    match (old, new) {
        (Some(Held::Partial(_)), Some(Held::Partial(_))) => false,
        (a, b) => a != b,
    }
}

impl Announcer {
    pub fn new(id: Identity, now: Instant, seed: u32) -> Announcer {
        Announcer {
            id,
            cookie: None,
            session: None,
            interval: ANNOUNCE_INTERVAL,
            acked: HashMap::new(),
            held_out: HashMap::new(),
            in_flight: None,
            due: now,
            urgent: false,
            losses: 0,
            reachable: false,
            leaving: false,
            next_tx: seed,
            in_use: None,
        }
    }

    /// Whether the tracker answered lately.
    pub fn reachable(&self) -> bool {
        self.reachable
    }

    /// Whether the tracker has acknowledged `name` as `held` or beyond.
    pub fn acked(&self, name: &str) -> bool {
        self.acked.contains_key(name)
    }

    /// The interval the tracker asked for.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Send what changed now rather than at the interval.
    pub fn urge(&mut self) {
        self.urgent = true;
    }

    /// Say goodbye (once a session exists; otherwise there is none to end).
    pub fn leave(&mut self) {
        self.leaving = true;
    }

    /// A file the tracker lacked has been published: announce it again.
    pub fn release(&mut self, name: &str) {
        self.held_out.remove(name);
        self.urgent = true;
    }

    fn tx(&mut self) -> u32 {
        self.next_tx = self.next_tx.wrapping_add(1);
        self.next_tx
    }

    /// The entries that differ from what the tracker has: (entries, any
    /// urgent among them).
    fn changes(&self, holdings: &Holdings, now: Instant) -> (Vec<(String, Md5Digest, Held)>, bool) {
        let mut out = Vec::new();
        let mut urgent = false;
        for (name, &(md5, held)) in holdings {
            if self.held_out.get(name).is_some_and(|&until| now < until) {
                continue;
            }
            let old = self.acked.get(name).filter(|a| a.0 == md5).map(|a| a.1);
            if old != Some(held) {
                urgent |= urgent_change(old, Some(held));
                out.push((name.clone(), md5, held));
            }
        }
        let mut gone: Vec<_> = self
            .acked
            .iter()
            .filter(|(n, (md5, _))| holdings.get(*n).is_none_or(|h| h.0 != *md5))
            .map(|(n, (md5, _))| (n.clone(), *md5, Held::Gone))
            .collect();
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        urgent |= !gone.is_empty();
        out.extend(gone);
        (out, urgent)
    }

    /// The datagram to send now, if any, and when to call again at the
    /// latest. `holdings` is what the peer holds at `now`.
    pub fn poll(&mut self, now: Instant, holdings: &Holdings) -> (Option<Vec<u8>>, Instant) {
        if let Some(retry_at) = self.in_flight.as_ref().map(|f| f.retry_at) {
            if now < retry_at {
                return (None, retry_at);
            }
            // Lost: the same request under a fresh transaction id, so a
            // late answer to the old one is ignored.
            self.losses += 1;
            let tx = self.tx();
            let interval = self.interval;
            let f = self.in_flight.as_mut().expect("in flight");
            f.wait = (f.wait * 2).min(interval);
            f.retry_at = now + f.wait;
            f.tx = tx;
            Request::set_tx(&mut f.bytes, tx);
            return (Some(f.bytes.clone()), f.retry_at);
        }
        let cookie = match self.cookie {
            Some((c, at)) if now.saturating_duration_since(at) < COOKIE_REFRESH => c,
            _ => {
                let tx = self.tx();
                let mut bytes = Vec::new();
                Request::Connect { tx }.encode(&mut bytes);
                return (
                    Some(self.send(tx, bytes, Vec::new(), false, now)),
                    now + FIRST_RETRY,
                );
            }
        };
        if self.leaving {
            let Some(session) = self.session else {
                return (None, now + self.interval);
            };
            let bytes = self.announce(cookie, session, FLAG_BYE, &[]);
            let tx = self.next_tx;
            return (
                Some(self.send(tx, bytes, Vec::new(), true, now)),
                now + FIRST_RETRY,
            );
        }
        let (changes, urgent) = self.changes(holdings, now);
        let (flags, session) = match self.session {
            None if self.id.site.is_empty() => (FLAG_REGISTER, 0),
            None => (FLAG_REGISTER | FLAG_SITE, 0),
            Some(s) => (0, s),
        };
        let due = now >= self.due;
        let wait = if flags & FLAG_REGISTER == 0 {
            !due && !((urgent || self.urgent) && !changes.is_empty())
        } else {
            // Registers at once, unless our id was in use: then at the
            // interval, whatever changed.
            self.in_use.is_some() && !due
        };
        if wait {
            let wake = self.held_out.values().copied().filter(|&t| t > now).min();
            return (None, wake.map_or(self.due, |w| w.min(self.due)));
        }
        // The first batch now; the rest follow as each is answered.
        let fixed = Announce::fixed_len(&self.id.peer_id, &self.id.advertise, &self.id.site);
        let entries: Vec<Entry<'_>> = changes
            .iter()
            .map(|(n, md5, held)| Entry {
                name: n,
                md5: *md5,
                held: *held,
            })
            .collect();
        let first = batches(fixed, entries).swap_remove(0);
        let sent: Vec<(String, Md5Digest, Held)> = first
            .iter()
            .map(|e| (e.name.to_string(), e.md5, e.held))
            .collect();
        let bytes = self.announce(cookie, session, flags, &first);
        let tx = self.next_tx;
        if sent.len() == changes.len() {
            self.urgent = false;
        }
        (
            Some(self.send(tx, bytes, sent, false, now)),
            now + FIRST_RETRY,
        )
    }

    fn announce(&mut self, cookie: u64, session: u64, flags: u8, entries: &[Entry<'_>]) -> Vec<u8> {
        let tx = self.tx();
        let mut bytes = Vec::new();
        Request::Announce(Announce {
            tx,
            cookie,
            session,
            flags,
            port: self.id.port,
            peer_id: &self.id.peer_id,
            advertise: &self.id.advertise,
            site: &self.id.site,
            entries: entries.to_vec(),
        })
        .encode(&mut bytes);
        bytes
    }

    fn send(
        &mut self,
        tx: u32,
        bytes: Vec<u8>,
        entries: Vec<(String, Md5Digest, Held)>,
        bye: bool,
        now: Instant,
    ) -> Vec<u8> {
        self.in_flight = Some(InFlight {
            tx,
            bytes: bytes.clone(),
            entries,
            bye,
            retry_at: now + FIRST_RETRY,
            wait: FIRST_RETRY,
        });
        bytes
    }

    /// What the thread should know after `poll` declared a loss: the
    /// tracker just became unreachable.
    pub fn lost(&mut self) -> Option<Notice> {
        if self.losses >= LOST_AFTER && self.reachable {
            self.reachable = false;
            return Some(Notice::Unreachable);
        }
        None
    }

    /// Takes one datagram from the tracker.
    pub fn on_datagram(&mut self, bytes: &[u8], now: Instant) -> Vec<Notice> {
        let Ok(reply) = Reply::decode(bytes) else {
            return Vec::new();
        };
        let Some(f) = self.in_flight.take_if(|f| f.tx == reply.tx()) else {
            return Vec::new();
        };
        let mut notices = Vec::new();
        self.losses = 0;
        match reply {
            Reply::Connected { cookie, .. } => self.cookie = Some((cookie, now)),
            Reply::Refused { reason, .. } => match reason {
                Refusal::BadCookie => self.cookie = None,
                Refusal::UnknownSession => {
                    self.session = None;
                    self.acked.clear();
                    if f.bye {
                        notices.push(Notice::Left);
                    }
                }
                Refusal::BadRequest => {
                    self.due = now + self.interval;
                    notices.push(Notice::Refused);
                }
            },
            Reply::InUse { at, .. } => {
                self.session = None;
                self.acked.clear();
                self.due = now + self.interval;
                self.urgent = false;
                if f.bye {
                    notices.push(Notice::Left);
                } else if self.in_use.as_ref() != Some(&at) {
                    notices.push(Notice::IdInUse(at.clone()));
                }
                self.in_use = Some(at);
            }
            Reply::Announced(a) => {
                self.in_use = None;
                if !self.reachable {
                    self.reachable = true;
                    notices.push(Notice::Reachable(a.source));
                }
                if f.bye {
                    self.session = None;
                    notices.push(Notice::Left);
                    return notices;
                }
                self.session = Some(a.session);
                self.interval = Duration::from_secs(a.interval_secs.max(1) as u64);
                self.due = now + self.interval;
                let mut publish = Vec::new();
                for (i, (name, md5, held)) in f.entries.into_iter().enumerate() {
                    if a.unknown.get(i).copied().unwrap_or(false) {
                        self.held_out.insert(name.clone(), now + self.interval);
                        publish.push(name);
                    } else if held == Held::Gone {
                        self.acked.remove(&name);
                    } else {
                        self.acked.insert(name, (md5, held));
                    }
                }
                if !publish.is_empty() {
                    notices.push(Notice::Publish(publish));
                }
            }
        }
        notices
    }
}

#[cfg(test)]
mod tests;
