//! The tracker's UDP side: one thread reads datagrams on the tracker's
//! port and answers each at once. No state per peer lives here; the
//! catalogue keeps the sessions, `CookieJar` the connection ids.
//!
//! `respond` is the whole exchange as a function of (datagram, source,
//! now): no socket, so every rule is unit-tested. An answer is never
//! longer than the datagram that drew it, and anything malformed, or from
//! a source that has not proved its address, draws at most a short
//! refusal.

use super::catalogue::{Catalogue, Host};
use super::cookie::CookieJar;
use super::server::TrackerState;
use crate::error::Error;
use crate::secure::seal::{Purpose, ReplayGuard};
use crate::wire::datagram::tracker::{
    Announce, Announced, Refusal, Reply, Request, FLAG_BYE, FLAG_REGISTER, MAX_TRACKER_DATAGRAM,
};
use log::{debug, info, warn};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `respond` saw, for the logs.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Connected,
    Registered(String),
    Announced,
    Left(String),
    Refused(Refusal),
    /// A REGISTER for a peer id a live peer holds at another address.
    InUse {
        peer_id: String,
        at: String,
    },
    /// Not ours, or malformed before a transaction id could be trusted:
    /// no answer at all.
    Dropped,
}

/// Answers one datagram from `from` into `out` (empty: no answer).
/// `secs` is the cookies' clock. Locks `catalogue` only for the announce.
pub fn respond(
    catalogue: &Mutex<Catalogue>,
    cookies: &CookieJar,
    datagram: &[u8],
    from: SocketAddr,
    now: Instant,
    secs: u64,
    out: &mut Vec<u8>,
) -> Event {
    out.clear();
    let request = match Request::decode(datagram) {
        Ok(r) => r,
        Err(e) => {
            // From a proven address, a malformed ANNOUNCE (a bad peer id
            // or advertised host) is refused in a few bytes; anything else
            // gets no answer.
            return match Request::announce_prefix(datagram) {
                Some((tx, cookie)) if cookies.check(from, cookie, secs) => {
                    debug!("{from}: refused a malformed ANNOUNCE: {e}");
                    Reply::Refused {
                        tx,
                        reason: Refusal::BadRequest,
                    }
                    .encode(datagram.len(), out);
                    Event::Refused(Refusal::BadRequest)
                }
                _ => {
                    debug!("{from}: dropped a datagram: {e}");
                    Event::Dropped
                }
            };
        }
    };
    let (reply, event) = match request {
        Request::Connect { tx } => (
            Reply::Connected {
                tx,
                cookie: cookies.issue(from, secs),
            },
            Event::Connected,
        ),
        Request::Announce(a) if !cookies.check(from, a.cookie, secs) => {
            refuse(a.tx, Refusal::BadCookie)
        }
        Request::Announce(a) => {
            let mut c = catalogue.lock().unwrap_or_else(|p| p.into_inner());
            announce(&mut c, &a, from, now)
        }
    };
    reply.encode(datagram.len(), out);
    event
}

fn refuse(tx: u32, reason: Refusal) -> (Reply, Event) {
    (Reply::Refused { tx, reason }, Event::Refused(reason))
}

fn announce(c: &mut Catalogue, a: &Announce<'_>, from: SocketAddr, now: Instant) -> (Reply, Event) {
    let source = from.ip().to_canonical();
    if a.port == 0 {
        return refuse(a.tx, Refusal::BadRequest);
    }
    let (session, event) = if a.flags & FLAG_REGISTER != 0 {
        let host = Host::from_announce(a.advertise, source);
        if a.flags & FLAG_BYE == 0 {
            if let Some(at) = c.in_use_elsewhere(a.peer_id, &host, a.port, now) {
                let event = Event::InUse {
                    peer_id: a.peer_id.to_string(),
                    at: at.clone(),
                };
                return (Reply::InUse { tx: a.tx, at }, event);
            }
        }
        let s = c.register_at(a.peer_id, host, a.port, a.site, now);
        (s, Event::Registered(a.peer_id.to_string()))
    } else {
        (a.session, Event::Announced)
    };
    if a.flags & FLAG_BYE != 0 {
        return if c.remove_peer(a.peer_id, session) {
            let done = Announced {
                tx: a.tx,
                session,
                interval_secs: 0,
                peers: c.peer_count() as u32,
                source,
                unknown: Vec::new(),
            };
            (Reply::Announced(done), Event::Left(a.peer_id.to_string()))
        } else {
            refuse(a.tx, Refusal::UnknownSession)
        };
    }
    match c.announce(a.peer_id, session, &a.entries, now) {
        Ok(done) => (
            Reply::Announced(Announced {
                tx: a.tx,
                session,
                interval_secs: done.interval.as_secs().min(u16::MAX as u64) as u16,
                peers: c.peer_count() as u32,
                source,
                unknown: done.unknown,
            }),
            event,
        ),
        Err(Error::Remote { .. }) => refuse(a.tx, Refusal::UnknownSession),
        Err(_) => refuse(a.tx, Refusal::BadRequest),
    }
}

/// Starts the UDP thread on `socket`.
pub fn spawn(socket: UdpSocket, shared: Arc<TrackerState>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tracker-udp".into())
        .spawn(move || serve(socket, &shared))?;
    Ok(())
}

fn serve(socket: UdpSocket, shared: &TrackerState) {
    // One byte more than the largest datagram: a longer one shows as
    // filling the buffer and is dropped, never read cut short.
    // Under a swarm secret, datagrams arrive sealed: that much longer.
    let max = MAX_TRACKER_DATAGRAM + crate::secure::datagram_overhead();
    let mut buf = vec![0u8; max + 1];
    let mut out = Vec::with_capacity(256);
    // A datagram stamped before the tracker started is a replay across a
    // restart (or from a clock behind ours): never taken.
    let mut guard = ReplayGuard::since(crate::secure::started_ms());
    let (mut opened, mut sealed) = (Vec::new(), Vec::new());
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier answers show up here: harmless.
                debug!("tracker udp: {e}");
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                ) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
        };
        shared.counters.datagram();
        if n > max {
            shared.counters.dropped();
            continue;
        }
        // Under a secret, one that does not open gets no answer at all.
        let Some(datagram) =
            crate::secure::incoming(Purpose::ToTracker, &buf[..n], &mut guard, &mut opened)
        else {
            shared.counters.dropped();
            continue;
        };
        let now = Instant::now();
        let secs = now.duration_since(shared.started).as_secs();
        let event = respond(
            &shared.catalogue,
            &shared.cookies,
            datagram,
            from,
            now,
            secs,
            &mut out,
        );
        match &event {
            Event::Registered(id) => info!("peer {id} registered from {from}"),
            Event::Left(id) => info!("peer {id} left"),
            Event::InUse { peer_id, at } => {
                warn!("refused peer {peer_id} from {from}: that id is in use at {at}")
            }
            _ => {}
        }
        match &event {
            Event::Registered(_) | Event::Left(_) | Event::Announced => shared.counters.announced(),
            Event::Refused(_) | Event::InUse { .. } => shared.counters.announce_refused(),
            Event::Dropped => shared.counters.dropped(),
            Event::Connected => {}
        }
        if !out.is_empty() {
            let answer = crate::secure::outgoing(Purpose::FromTracker, &out, &mut sealed);
            if let Err(e) = socket.send_to(answer, from) {
                warn!("tracker udp: cannot answer {from}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
