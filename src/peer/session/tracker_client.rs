//! The peer's side of the tracker protocol: a session thread that keeps
//! the tracker told of what this peer holds over UDP (`announcer` is the
//! logic, this file moves its datagrams), plus one-shot queries over TCP,
//! each on its own short connection: FILE_LIST, RECORD, WHO_HAS, and
//! NEW_FILE for a record the tracker lacks.

use super::announcer::{Announcer, Holdings, Identity, Notice};
use super::trackers::Trackers;
use crate::error::{code, Error, Result};
use crate::net::conn::Conn;
use crate::peer::files::store::Store;
use crate::peer::Peer;
use crate::record::FileRecord;
use crate::secure::seal::{Purpose, ReplayGuard};
use crate::wire::datagram::tracker::{Held, MAX_TRACKER_DATAGRAM};
use crate::wire::{Encode, FileSummary, Holder, TrackerReply, TrackerRequest, MAX_FRAME};
use crossbeam_channel::{select, Receiver, Sender};
use log::{debug, info, warn};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the tracker's address is looked up again while it cannot be
/// resolved or reached (its name may move).
const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// Times a one-shot query is tried when the tracker says it is busy or
/// drops the connection before answering.
const BUSY_TRIES: u32 = 6;

pub enum SessionCommand {
    /// Announce now rather than at the next interval (a download started,
    /// a file was added).
    AnnounceNow,
    /// A download is about to start: tell the tracker we take part (no
    /// pieces yet) before asking who holds the file, so peers starting
    /// at the same moment find each other. Announced as joining until
    /// the tracker has acknowledged it.
    Joining(Arc<FileRecord>),
    /// Leave the swarm; answered once the tracker has been told (or not).
    Bye(Sender<()>),
}

/// The handle the rest of the peer uses to talk to the session threads,
/// one per tracker.
pub struct Session {
    tx: Vec<Sender<SessionCommand>>,
}

impl Session {
    /// A session for `trackers` trackers: one command receiver each, for
    /// its thread (`run`).
    pub fn new(trackers: usize) -> (Session, Vec<Receiver<SessionCommand>>) {
        let (tx, rx) = (0..trackers)
            .map(|_| crossbeam_channel::unbounded())
            .unzip();
        (Session { tx }, rx)
    }

    /// Publishes a new file's record on the trackers and waits for their
    /// verdict (a name taken by other content is refused); the caller
    /// puts it in the store, and the session announces it.
    pub fn new_file_wait(
        &self,
        trackers: &Trackers,
        publisher: &str,
        record: Arc<FileRecord>,
        _timeout: Duration,
    ) -> Result<()> {
        trackers.publish(publisher, &record).map_err(|e| match e {
            Error::Remote { message, .. } => Error::Conflict(message),
            Error::Conflict(m) => Error::Conflict(m),
            other => Error::NoSources(format!(
                "{other}; the file is shared and will be announced when a tracker returns"
            )),
        })
    }

    /// Asks for an announce now, without waiting for it.
    pub fn announce_now(&self) {
        for tx in &self.tx {
            let _ = tx.send(SessionCommand::AnnounceNow);
        }
    }

    /// Tells the trackers we start downloading `record`, without waiting:
    /// the datagram reaches a tracker before the WHO_HAS that follows it
    /// (which waits for a TCP handshake), and our own WHO_HAS does not
    /// need it; a round trip here would only delay the first block. The
    /// record is shared, not copied: 2.3 MiB at 65,536 pieces, a
    /// millisecond before a download's first REQUEST.
    pub fn joining(&self, record: &Arc<FileRecord>) {
        for tx in &self.tx {
            let _ = tx.send(SessionCommand::Joining(record.clone()));
        }
    }

    /// Says goodbye to the trackers, waiting at most `timeout` in all.
    pub fn bye(&self, timeout: Duration) {
        self.each_and_wait(timeout, SessionCommand::Bye);
    }

    /// Sends `command` to every session thread and waits until each has
    /// answered, or `timeout` has passed.
    fn each_and_wait(&self, timeout: Duration, command: impl Fn(Sender<()>) -> SessionCommand) {
        let deadline = Instant::now() + timeout;
        let (reply, replies) = crossbeam_channel::bounded(self.tx.len());
        let sent = self
            .tx
            .iter()
            .filter(|tx| tx.send(command(reply.clone())).is_ok())
            .count();
        for _ in 0..sent {
            if replies.recv_deadline(deadline).is_err() {
                return;
            }
        }
    }
}

/// What the peer holds now: complete files, downloads in progress, and
/// downloads about to start.
fn holdings(store: &Store, joining: &HashMap<String, Arc<FileRecord>>) -> Holdings {
    let mut out = Holdings::new();
    for r in store.records() {
        out.insert(r.name.clone(), (r.md5, Held::Complete));
    }
    // A download of another version than the one held whole is an
    // update: announced instead, so the peers updating find each other
    // (the tracker counts a peer in one version of a name).
    for p in store.partials() {
        let r = &p.record;
        if out.get(&r.name).is_none_or(|(md5, _)| *md5 != r.md5) {
            let blocks = r.blocks_in(&p.have()).min(u32::MAX as u64) as u32;
            out.insert(r.name.clone(), (r.md5, Held::Partial(blocks)));
        }
    }
    for (name, r) in joining {
        if out.get(name).is_none_or(|(md5, _)| *md5 != r.md5) {
            out.insert(name.clone(), (r.md5, Held::Partial(0)));
        }
    }
    out
}

/// The tracker's UDP address: the same host and port as its TCP one.
fn resolve(tracker: &str) -> Option<SocketAddr> {
    tracker.to_socket_addrs().ok()?.next()
}

/// A UDP socket connected to the tracker, with a thread that forwards
/// what arrives on it; the thread ends when the receiver is dropped.
fn open_socket(tracker: SocketAddr) -> std::io::Result<(UdpSocket, Receiver<Vec<u8>>)> {
    let local: SocketAddr = if tracker.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(tracker)?;
    let reader = socket.try_clone()?;
    reader.set_read_timeout(Some(Duration::from_secs(1)))?;
    let (tx, rx) = crossbeam_channel::bounded(64);
    std::thread::Builder::new()
        .name("tracker-udp".into())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_TRACKER_DATAGRAM + crate::secure::datagram_overhead()];
            let (mut guard, mut opened) = (ReplayGuard::new(), Vec::new());
            loop {
                match reader.recv(&mut buf) {
                    Ok(n) => {
                        // Under a secret, what does not open is dropped here.
                        let Some(d) = crate::secure::incoming(
                            Purpose::FromTracker,
                            &buf[..n],
                            &mut guard,
                            &mut opened,
                        ) else {
                            continue;
                        };
                        if tx.send(d.to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        // Still wanted?
                        if tx.send(Vec::new()).is_err() {
                            return;
                        }
                    }
                    // An ICMP "port unreachable" for an earlier datagram:
                    // the tracker is down, the retries will tell.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok((socket, rx))
}

/// The session thread of tracker `index` (of `peer.trackers()`): runs
/// until BYE or the channel closes. Each turn looks the tracker up, opens
/// a socket to it and talks until it must be looked up again.
pub fn run(peer: Arc<Peer>, index: usize, rx: Receiver<SessionCommand>) {
    let mut session = SessionLoop::new(peer, index, rx);
    loop {
        let addr = match session.resolve() {
            Ok(Some(addr)) => addr,
            Ok(None) => continue,
            Err(Stopped) => return,
        };
        let (socket, datagrams) = match open_socket(addr) {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "tracker {}: cannot open a UDP socket: {e}",
                    session.tracker()
                );
                std::thread::sleep(RESOLVE_EVERY);
                continue;
            }
        };
        if let Err(Stopped) = session.talk(&socket, &datagrams) {
            return;
        }
    }
}

/// The session is over: the goodbye is answered, or the peer is gone.
struct Stopped;

/// What the session thread keeps across its turns.
struct SessionLoop {
    peer: Arc<Peer>,
    /// Which of the peer's trackers this session talks to.
    index: usize,
    rx: Receiver<SessionCommand>,
    announcer: Announcer,
    /// Downloads about to start, announced until the tracker has seen them.
    joining: HashMap<String, Arc<FileRecord>>,
    /// The goodbye's caller, answered once the tracker has acknowledged it.
    bye: Option<Sender<()>>,
    /// "Cannot reach the tracker" was logged (once is enough).
    warned: bool,
}

impl SessionLoop {
    fn new(peer: Arc<Peer>, index: usize, rx: Receiver<SessionCommand>) -> SessionLoop {
        let cfg = peer.config();
        let id = Identity {
            peer_id: cfg.id.clone(),
            port: cfg.advertised_port(),
            advertise: cfg
                .advertise
                .as_ref()
                .map(|a| a.0.clone())
                .unwrap_or_default(),
            site: cfg.site.clone().unwrap_or_default(),
        };
        let seed = crate::rng::Rng::new().next_u64() as u32;
        SessionLoop {
            announcer: Announcer::new(id, Instant::now(), seed),
            peer,
            index,
            rx,
            joining: HashMap::new(),
            bye: None,
            warned: false,
        }
    }

    fn tracker(&self) -> &str {
        self.peer.trackers().addr(self.index)
    }

    /// The tracker's address; `None` after waiting `RESOLVE_EVERY` for a
    /// command when it cannot be resolved (a download need not wait for
    /// it to join, and a goodbye ends the session at once).
    fn resolve(&mut self) -> std::result::Result<Option<SocketAddr>, Stopped> {
        if let Some(addr) = resolve(self.tracker()) {
            return Ok(Some(addr));
        }
        if !self.warned {
            warn!(
                "tracker {}: cannot resolve the address; retrying in the background",
                self.tracker()
            );
            self.warned = true;
        }
        match self.rx.recv_timeout(RESOLVE_EVERY) {
            Ok(SessionCommand::Bye(reply)) => {
                let _ = reply.send(());
                return Err(Stopped);
            }
            Ok(SessionCommand::AnnounceNow | SessionCommand::Joining(_))
            | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(_) => return Err(Stopped),
        }
        Ok(None)
    }

    /// Drives the announcer over `socket` until the tracker should be
    /// looked up again (`Ok`) or the session is over.
    fn talk(
        &mut self,
        socket: &UdpSocket,
        datagrams: &Receiver<Vec<u8>>,
    ) -> std::result::Result<(), Stopped> {
        let mut unreachable_since: Option<Instant> = None;
        let rx = self.rx.clone();
        loop {
            let now = Instant::now();
            let wake = self.poll(socket, now, &mut unreachable_since);
            self.release_joining();
            if let Some(reply) = self.bye.take_if(|_| !self.announcer.reachable()) {
                let _ = reply.send(());
                return Err(Stopped);
            }
            // A tracker long unreachable may have moved: look it up again.
            if unreachable_since.is_some_and(|t| now.duration_since(t) > RESOLVE_EVERY * 2) {
                return Ok(());
            }
            let wait = wake.saturating_duration_since(Instant::now());
            select! {
                recv(datagrams) -> d => match d {
                    Ok(bytes) if !bytes.is_empty() => {
                        self.on_datagram(&bytes, &mut unreachable_since)?;
                    }
                    Ok(_) => {}
                    Err(_) => return Ok(()),
                },
                recv(rx) -> cmd => match cmd {
                    Ok(cmd) => self.on_command(cmd)?,
                    Err(_) => return Err(Stopped),
                },
                default(wait) => {}
            }
        }
    }

    /// Works out what the peer holds, sends the datagram the announcer
    /// wants sent now, and returns when it wants to be asked again.
    fn poll(
        &mut self,
        socket: &UdpSocket,
        now: Instant,
        unreachable_since: &mut Option<Instant>,
    ) -> Instant {
        let held = holdings(&self.peer.store, &self.joining);
        let (send, wake) = self.announcer.poll(now, &held);
        if let Some(notice) = self.announcer.lost() {
            on_notice(
                &self.peer,
                self.index,
                notice,
                &mut self.announcer,
                &mut self.warned,
            );
            *unreachable_since = Some(now);
        }
        if let Some(bytes) = send {
            let mut sealed = Vec::new();
            if let Err(e) = socket.send(crate::secure::outgoing(
                Purpose::ToTracker,
                &bytes,
                &mut sealed,
            )) {
                debug!("tracker {}: {e}", self.tracker());
            }
        }
        wake
    }

    /// Forgets the joining downloads the tracker has seen (their partial
    /// files are announced from then on), and all of them while it cannot
    /// be reached.
    fn release_joining(&mut self) {
        let announcer = &self.announcer;
        self.joining
            .retain(|name, _| !announcer.acked(name) && announcer.reachable());
    }

    /// Hands a datagram from the tracker to the announcer and acts on what
    /// it noticed.
    fn on_datagram(
        &mut self,
        bytes: &[u8],
        unreachable_since: &mut Option<Instant>,
    ) -> std::result::Result<(), Stopped> {
        for n in self.announcer.on_datagram(bytes, Instant::now()) {
            if n == Notice::Left {
                if let Some(reply) = self.bye.take() {
                    let _ = reply.send(());
                }
                return Err(Stopped);
            }
            if matches!(n, Notice::Reachable(_)) {
                *unreachable_since = None;
            }
            on_notice(
                &self.peer,
                self.index,
                n,
                &mut self.announcer,
                &mut self.warned,
            );
        }
        Ok(())
    }

    fn on_command(&mut self, cmd: SessionCommand) -> std::result::Result<(), Stopped> {
        match cmd {
            SessionCommand::AnnounceNow => self.announcer.urge(),
            SessionCommand::Joining(record) => {
                self.joining.insert(record.name.clone(), record);
                self.announcer.urge();
            }
            SessionCommand::Bye(reply) => {
                if !self.announcer.reachable() {
                    let _ = reply.send(());
                    return Err(Stopped);
                }
                self.announcer.leave();
                self.bye = Some(reply);
            }
        }
        Ok(())
    }
}

/// Acts on what the announcer of tracker `index` noticed.
fn on_notice(
    peer: &Peer,
    index: usize,
    notice: Notice,
    announcer: &mut Announcer,
    warned: &mut bool,
) {
    let trackers = peer.trackers();
    let tracker = trackers.addr(index);
    match notice {
        Notice::Reachable(seen) => {
            trackers.answered(index);
            info!(
                "registered with the tracker at {tracker} as {} (it sees us at {seen})",
                peer.config().id
            );
            *warned = false;
        }
        Notice::Unreachable => {
            trackers.failed(index);
            if !*warned {
                warn!("tracker {tracker}: no answer; retrying in the background");
                *warned = true;
            }
        }
        Notice::Publish(names) => {
            for name in names {
                // A download in progress has the record too: a tracker
                // started empty, or one the seeders do not name, learns
                // the item from its downloaders.
                let Some(record) = peer.store.servable(&name).map(|f| f.record.clone()) else {
                    continue;
                };
                match publish(tracker, &peer.config().id, &record) {
                    Ok(()) => announcer.release(&name),
                    Err(e) => match crate::peer::files::publish::refusal(&e) {
                        // The tracker knows the name from another owner
                        // now (it lost our record, and someone else took
                        // the name): no longer ours to share. With other
                        // trackers, this one's view is not the swarm's
                        // (two owners took the name apart in a partition):
                        // the others still have ours.
                        crate::peer::files::publish::PublishRefusal::Conflict if trackers.addrs().len() == 1 => {
                            warn!("not sharing {name} any more: {e}");
                            peer.withdraw(&name);
                        }
                        crate::peer::files::publish::PublishRefusal::Conflict => {
                            warn!("tracker {tracker} has {name} from another owner: {e}")
                        }
                        crate::peer::files::publish::PublishRefusal::Outdated => debug!("{name}: {e}"),
                        crate::peer::files::publish::PublishRefusal::Other => warn!("{name} not announced: {e}"),
                    },
                }
            }
        }
        Notice::Refused => warn!(
            "tracker {tracker} refused our announce (is --advertise a valid host?); retrying each interval"
        ),
        Notice::IdInUse(at) => {
            let at = if at.is_empty() { "another address".into() } else { at };
            log::error!(
                "tracker {tracker}: peer id {} is in use at {at} by another running peer; \
                 this one is not registered (it tries again each interval): stop the other, \
                 or start this one with another ID",
                peer.config().id
            );
        }
        Notice::Left => {}
    }
}

/// Sends a record with NEW_FILE on a fresh connection, as `publisher`
/// (this peer's id).
pub fn publish(tracker: &str, publisher: &str, record: &FileRecord) -> Result<()> {
    query(
        tracker,
        &TrackerRequest::NewFile {
            publisher: publisher.to_string(),
            record: record.clone(),
        },
        |m| matches!(m, TrackerReply::Ok).then_some(()),
    )
}

/// A one-shot exchange with the tracker on a fresh connection.
fn query<T>(
    tracker: &str,
    msg: &TrackerRequest,
    pick: impl Fn(TrackerReply) -> Option<T>,
) -> Result<T> {
    retried(|| {
        let mut conn = open(tracker)?;
        let got = conn.call::<TrackerReply>(msg);
        answer(tracker, msg.kind(), got, &pick)
    })
}

/// Tries `once` again while it fails in a way another try may mend.
/// A tracker that says it is busy, or closes the connection before it
/// answers (it evicts idle connections when it is full), is asked again
/// after a short, growing pause: a lab behind one address may ask all at
/// once, and a flood of connections makes room for us only at its turn.
fn retried<T>(once: impl Fn() -> std::result::Result<T, (Error, bool)>) -> Result<T> {
    let mut pause = Duration::from_millis(50);
    for _ in 1..BUSY_TRIES {
        match once() {
            Err((_, true)) => {
                sleep_jittered(pause);
                pause *= 2;
            }
            other => return other.map_err(|(e, _)| e),
        }
    }
    once().map_err(|(e, _)| e)
}

/// Sleeps `pause` and as much again at most, at random, so that clients
/// refused together do not come back together.
pub(super) fn sleep_jittered(pause: Duration) {
    let jitter = crate::rng::Rng::new().below(pause.as_millis() as u64);
    std::thread::sleep(pause + Duration::from_millis(jitter));
}

/// A query connection to `tracker`; an error says whether another try
/// may do better.
fn open(tracker: &str) -> std::result::Result<Conn, (Error, bool)> {
    Conn::connect(tracker, MAX_FRAME).map_err(|e| {
        // Under a swarm secret the handshake comes first: a BUSY, or a
        // close (eviction), can come during it as during a query.
        let again = matches!(
            e,
            Error::Remote {
                code: code::BUSY,
                ..
            } | Error::Protocol(_)
        );
        (unreachable(tracker, e), again)
    })
}

/// What the answer `got` to a `kind` query means; an error says whether
/// another try may do better.
fn answer<T>(
    tracker: &str,
    kind: &str,
    got: Result<TrackerReply>,
    pick: &impl Fn(TrackerReply) -> Option<T>,
) -> std::result::Result<T, (Error, bool)> {
    match got {
        Ok(m) => {
            let got = m.kind();
            pick(m).ok_or_else(|| {
                let e = Error::protocol(format!("unexpected {got} in answer to {kind}"));
                (e, false)
            })
        }
        Err(Error::Remote {
            code: code::NOT_FOUND,
            message,
        }) => Err((Error::NotFound(message), false)),
        Err(
            e @ Error::Remote {
                code: code::BUSY, ..
            },
        ) => Err((e, true)),
        // Connected, then closed or reset before the answer: evicted.
        Err(e @ (Error::Net { .. } | Error::Protocol(_))) => Err((unreachable(tracker, e), true)),
        Err(e) => Err((unreachable(tracker, e), false)),
    }
}

/// Turns a transport failure into what a user can act on.
fn unreachable(tracker: &str, e: Error) -> Error {
    match e {
        Error::Net { source, .. } => Error::NoSources(format!(
            "cannot reach the tracker at {tracker}: {source} (is it running? check the address and port)"
        )),
        Error::Timeout(_) => Error::NoSources(format!(
            "the tracker at {tracker} did not answer within {} s (is it running and reachable?)",
            crate::net::conn::IO_TIMEOUT.as_secs()
        )),
        Error::Secret { problem, .. } => Error::Secret {
            who: format!("the tracker at {tracker}"),
            problem,
        },
        // "<addr> refused our handshake: <its word on our clock>".
        Error::Remote {
            code: code::STALE,
            message,
        } => Error::Remote {
            code: code::STALE,
            message: format!("the tracker at {message}"),
        },
        other => other,
    }
}

/// Whether the tracker answers (a PING over TCP, handshake included):
/// the start-up check (`health`).
pub fn ping(tracker: &str) -> Result<()> {
    let nonce = crate::rng::Rng::new().next_u64();
    query(tracker, &TrackerRequest::Ping { nonce }, |m| {
        matches!(m, TrackerReply::Pong { nonce: n } if n == nonce).then_some(())
    })
}

pub fn fetch_record(tracker: &str, name: &str) -> Result<FileRecord> {
    query(
        tracker,
        &TrackerRequest::GetRecord {
            name: name.to_string(),
        },
        |m| record_named(m, name),
    )
}

fn record_named(m: TrackerReply, name: &str) -> Option<FileRecord> {
    match m {
        TrackerReply::Record { record } if record.name == name => Some(record),
        _ => None,
    }
}

/// The record of `name` and its current holders (`site`'s first), in one
/// exchange: WHO_HAS goes right behind GET_RECORD on the same connection
/// and the tracker answers in order, so the holders come a connection and
/// a round trip sooner than when asked after the record. The holders are
/// `None` when the second answer is not a list (a tracker older than
/// sites refuses WHO_HAS_AT): then ask the usual way.
pub fn fetch_record_and_holders(
    tracker: &str,
    name: &str,
    site: Option<&str>,
) -> Result<(FileRecord, Option<Vec<Holder>>)> {
    let get = TrackerRequest::GetRecord {
        name: name.to_string(),
    };
    let who = TrackerRequest::WhoHas {
        name: name.to_string(),
        md5: None,
        site: site.map(str::to_string),
    };
    retried(|| {
        let mut conn = open(tracker)?;
        let got = conn
            .queue(&get)
            .and_then(|()| conn.queue(&who))
            .and_then(|()| conn.flush())
            .and_then(|()| conn.expect::<TrackerReply>());
        let record = answer(tracker, get.kind(), got, &|m| record_named(m, name))?;
        let holders = match conn.expect::<TrackerReply>() {
            Ok(TrackerReply::Holders { holders, .. }) => Some(holders),
            _ => None,
        };
        Ok((record, holders))
    })
}

/// Who holds `name`: its current version, or the version with `md5`.
pub fn who_has(
    tracker: &str,
    name: &str,
    md5: Option<&crate::digest::Md5Digest>,
) -> Result<Vec<Holder>> {
    who_has_at(tracker, name, md5, None)
}

/// `who_has` for a peer in `site`: the holders of that site first, each
/// with its site (WHO_HAS_AT). A tracker older than sites answers it with
/// a protocol error: then plain WHO_HAS, whose holders have no site.
pub fn who_has_at(
    tracker: &str,
    name: &str,
    md5: Option<&crate::digest::Md5Digest>,
    site: Option<&str>,
) -> Result<Vec<Holder>> {
    let ask = |site: Option<&str>| {
        query(
            tracker,
            &TrackerRequest::WhoHas {
                name: name.to_string(),
                md5: md5.copied(),
                site: site.map(str::to_string),
            },
            |m| match m {
                TrackerReply::Holders { holders, .. } => Some(holders),
                _ => None,
            },
        )
    };
    match ask(site) {
        Err(Error::Remote {
            code: code::PROTOCOL,
            ..
        }) if site.is_some() => ask(None),
        other => other,
    }
}

pub fn list_files(tracker: &str) -> Result<Vec<FileSummary>> {
    query(tracker, &TrackerRequest::ListFiles, |m| match m {
        TrackerReply::FileList { files } => Some(files),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::conn::IO_TIMEOUT;
    use crate::wire::Answer;
    use std::net::TcpListener;

    /// A tracker on loopback that takes one connection, reads two queries
    /// from it before answering either, and answers the second with
    /// `second`. Returns its address and the queries it read.
    fn fake_tracker(
        record: FileRecord,
        second: TrackerReply,
    ) -> (String, std::thread::JoinHandle<Vec<&'static str>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut conn = Conn::new(stream, MAX_FRAME, IO_TIMEOUT).unwrap();
            let mut kinds = Vec::new();
            for _ in 0..2 {
                kinds.push(conn.recv::<TrackerRequest>().unwrap().unwrap().kind());
            }
            conn.queue(&TrackerReply::Record { record }).unwrap();
            conn.send(&second).unwrap();
            kinds
        });
        (addr, served)
    }

    fn holder(id: &str) -> Holder {
        Holder {
            peer_id: id.into(),
            host: "127.0.0.1".into(),
            port: 9000,
            blocks: 1,
            complete: true,
            site: String::new(),
        }
    }

    #[test]
    fn the_holders_come_in_the_same_exchange_as_the_record() {
        let record = FileRecord::from_bytes("f.bin", &[5u8; 10_000]);
        let holders = TrackerReply::Holders {
            holders: vec![holder("S")],
            sited: false,
        };
        let (addr, served) = fake_tracker(record.clone(), holders);
        let (got, first) = fetch_record_and_holders(&addr, "f.bin", None).unwrap();
        assert_eq!(got, record);
        assert_eq!(first, Some(vec![holder("S")]));
        assert_eq!(served.join().unwrap(), ["GET_RECORD", "WHO_HAS"]);
    }

    #[test]
    fn a_tracker_refusing_the_holders_still_gives_the_record() {
        let record = FileRecord::from_bytes("f.bin", &[5u8; 10_000]);
        let refused = TrackerReply::error(&Error::protocol("no sites here"));
        let (addr, served) = fake_tracker(record.clone(), refused);
        let (got, first) = fetch_record_and_holders(&addr, "f.bin", Some("lab")).unwrap();
        assert_eq!(got, record);
        assert_eq!(first, None, "asked again the usual way");
        served.join().unwrap();
    }
}
