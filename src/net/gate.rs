//! The accept loop of the block server and of the tracker, driving an
//! `Admission` machine. One thread, the gate, accepts and keeps the lobby:
//! it waits with poll(2) on the listener and on every connection whose
//! first message has not arrived whole yet, so a silent or trickling
//! connection costs a file descriptor, not a thread. A connection whose
//! first message is whole gets a handler thread of its own until it ends
//! (thread per active connection, as everywhere else), up to the
//! machine's bound. Handler threads are started as needed and then kept
//! for the next connection, so connections that come and go (evicted
//! ones) never make threads that come and go beyond the bound. The
//! handler tells the machine through its `Ticket` when it waits for the
//! client and when it works, so idle connections can be evicted for
//! newcomers. A handler that panics loses its connection, not its
//! thread. std has no poll: `libc::poll`, on a handful of descriptors
//! owned here.

use super::admission::{Admission, Decision, GateId, Limits};
use crate::error::code;
use crate::wire::frame;
use crate::wire::message::error_frame;
use crossbeam_channel::{Receiver, Sender};
use log::{debug, warn};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the gate looks at the deadlines and hands waiting
/// connections to threads that came free.
pub const TICK: Duration = Duration::from_millis(50);
/// How long the gate waits with an empty lobby: nothing has a deadline
/// then and nothing waits for a thread, so only a new connection (which
/// wakes the poll) gives it work. The 50 ms tick woke each peer's gate 20
/// times a second for nothing (4 % of a 48-leecher swarm's context
/// switches); this is a safety net.
const EMPTY_TICK: Duration = Duration::from_secs(1);
/// Bytes of a first message looked at in the lobby: a message this long
/// that is not yet whole (a NEW_FILE record) goes to a thread anyway,
/// which reads the rest under the start deadline.
const PEEK: usize = 16 << 10;
/// Connections taken from the listener per turn, so the lobby is looked
/// at between bursts: a connection whose message arrived just after its
/// accept is seen ready before a crowd from its own address (up to the
/// per-address cap) could evict it as the oldest of the lobby.
const ACCEPT_BURST: usize = 32;

/// How a server admits connections.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// For thread names and the logs.
    pub what: &'static str,
    pub limits: Limits,
    /// The largest frame this server takes (to read a first header).
    pub max_frame: usize,
}

/// What the accept loop and the handler threads share: the admission
/// machine and a handle on each connection handed to a thread.
struct GateState {
    machine: Mutex<Admission>,
    /// A second handle on each handed connection, to shut it down when it
    /// is evicted (which ends its thread's reads).
    handled: Mutex<HashMap<GateId, TcpStream>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Told {
    Idle(bool),
    Busy,
}

/// A handler's link to the gate: its slot, given back when dropped.
pub struct Ticket {
    shared: Arc<GateState>,
    id: GateId,
    deadline: Instant,
    told: Cell<Option<Told>>,
    /// Its first message has been read (`busy` was called).
    started: Cell<bool>,
}

impl Ticket {
    /// When the connection's start must be over: the handshake and the
    /// first message, counted from accept.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The handler waits for the client; `useful`: it holds something
    /// open for it, so it is evicted after those that do not.
    /// Until the first message has been read, and while the start
    /// deadline has not passed, this is not said: the connection came with
    /// a whole message, and must not be evicted before it is served.
    pub fn idle(&self, useful: bool) {
        if !self.started.get() && Instant::now() < self.deadline {
            return;
        }
        self.tell(Told::Idle(useful));
    }

    /// The handler works for the client: not to be evicted.
    pub fn busy(&self) {
        self.started.set(true);
        self.tell(Told::Busy);
    }

    fn tell(&self, t: Told) {
        if self.told.replace(Some(t)) == Some(t) {
            return;
        }
        let now = Instant::now();
        let mut m = lock(&self.shared.machine);
        match t {
            Told::Idle(useful) => m.idle(self.id, useful, now),
            Told::Busy => m.busy(self.id, now),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.shared.machine).closed(self.id);
        lock(&self.shared.handled).remove(&self.id);
    }
}

/// What the first bytes of a lobby connection say.
enum Start {
    Wait,
    Ready,
    Closed,
}

/// What the gate reports to its server's metrics.
pub struct Counters {
    /// A connection sent away with BUSY (called on the gate's thread).
    pub refused: Box<dyn Fn()>,
    /// A handler that panicked (called on the pool thread that caught it).
    pub panicked: Arc<dyn Fn() + Send + Sync>,
}

/// Whether a connection's first bytes (fewer than `PEEK`) are a whole
/// first message, or bytes the handler must judge (not ours, say).
pub type Whole = Box<dyn Fn(&[u8]) -> bool>;

/// What a server's first message looks like, and how it tells a
/// connection sent away that it is busy.
pub struct Opening {
    pub whole: Whole,
    /// Tells a connection sent away for want of room.
    pub refuse: fn(TcpStream),
    /// Tells one closed because its first message did not arrive in time.
    pub late: fn(TcpStream),
}

/// From accept to a whole first frame (the handshake, in a swarm with a
/// secret) on a server of our frames, the tracker's and the block
/// server's alike (`Limits::start`; docs/PROTOCOL.md §10).
pub const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(4);

impl Opening {
    /// Our frames, at most `max_frame` long; BUSY as an ERROR frame.
    pub fn frames(max_frame: usize) -> Opening {
        Opening {
            whole: Box::new(move |b| !matches!(frame::parse(b, max_frame), Ok(None))),
            refuse: refuse_busy,
            late: refuse_busy,
        }
    }
}

/// How long a connection sent away (`Opening::refuse`, `late`) may take
/// to read why: the gate's one thread waits that long at most.
pub const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// Tells a connection turned away, in our frames, that the server is busy:
/// an ERROR frame, which both protocols read alike.
pub fn refuse_busy(stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
    let frame = error_frame(
        code::BUSY,
        "server busy: too many connections, try again later",
    );
    let _ = (&stream).write_all(&frame);
}

/// Accepts on `listener` forever; `handle` serves one handed connection
/// on its own thread and returns when it is over (a panic in it is
/// caught: the connection closes, the thread takes the next one).
pub fn serve<F>(listener: TcpListener, settings: Settings, handle: F, counters: Counters)
where
    F: Fn(TcpStream, Ticket) + Send + Sync + 'static,
{
    let opening = Opening::frames(settings.max_frame);
    serve_opening(listener, settings, opening, handle, counters)
}

/// `serve` for another protocol than our frames (the web UI's HTTP).
pub fn serve_opening<F>(
    listener: TcpListener,
    settings: Settings,
    opening: Opening,
    handle: F,
    counters: Counters,
) where
    F: Fn(TcpStream, Ticket) + Send + Sync + 'static,
{
    if let Err(e) = listener.set_nonblocking(true) {
        warn!("{}: cannot poll the listener: {e}", settings.what);
        return;
    }
    let mut gate = Gate {
        settings,
        shared: Arc::new(GateState {
            machine: Mutex::new(Admission::new(settings.limits)),
            handled: Mutex::new(HashMap::new()),
        }),
        pool: Pool {
            what: settings.what,
            handle: Arc::new(handle),
            jobs: crossbeam_channel::unbounded(),
            started: 0,
            max: settings.limits.handlers,
            panicked: counters.panicked,
        },
        lobby: HashMap::new(),
        waiting: HashSet::new(),
        refused: counters.refused,
        opening,
    };
    loop {
        gate.turn(&listener);
    }
}

struct Gate<F> {
    settings: Settings,
    shared: Arc<GateState>,
    pool: Pool<F>,
    /// Connections not yet handed on, with when they were accepted.
    lobby: HashMap<GateId, (TcpStream, Instant)>,
    /// Of those, the ones whose first message is whole: not polled (they
    /// would wake every poll) until a thread is free.
    waiting: HashSet<GateId>,
    /// Counts a connection sent away with BUSY.
    refused: Box<dyn Fn()>,
    opening: Opening,
}

impl<F: Fn(TcpStream, Ticket) + Send + Sync + 'static> Gate<F> {
    /// One poll, then what it woke for, then the deadlines.
    fn turn(&mut self, listener: &TcpListener) {
        let polled: Vec<GateId> = self
            .lobby
            .keys()
            .filter(|id| !self.waiting.contains(id))
            .copied()
            .collect();
        let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(polled.iter().map(|id| self.lobby[id].0.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            })
            .collect();
        let tick = if self.lobby.is_empty() {
            EMPTY_TICK
        } else {
            TICK
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for
        // the duration of the call; every descriptor in it is owned by
        // `listener` or `self.lobby`, which outlive the call.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                tick.as_millis() as i32,
            )
        };
        if n > 0 {
            // The lobby first: a connection whose message came is ready,
            // and safe from the evictions a burst of newcomers makes.
            for (fd, id) in fds[1..].iter().zip(&polled) {
                if fd.revents != 0 {
                    let ended = fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
                    self.look_at(*id, ended);
                }
            }
            if fds[0].revents != 0 {
                self.accept_burst(listener);
            }
        }
        let decisions = lock(&self.shared.machine).tick(Instant::now());
        self.apply(decisions, None);
    }

    fn accept_burst(&mut self, listener: &TcpListener) {
        for _ in 0..ACCEPT_BURST {
            match listener.accept() {
                Ok((stream, from)) => {
                    let now = Instant::now();
                    let decisions =
                        lock(&self.shared.machine).accept(from.ip().to_canonical(), now);
                    self.apply(decisions, Some((stream, now)));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors and the like: back off, not spin.
                    warn!("{}: accept failed: {e}", self.settings.what);
                    std::thread::sleep(Duration::from_millis(100));
                    return;
                }
            }
        }
    }

    /// A lobby connection woke the poll: bytes, or a hang-up (`ended`:
    /// the client sends no more).
    fn look_at(&mut self, id: GateId, ended: bool) {
        let Some((stream, _)) = self.lobby.get(&id) else {
            return;
        };
        match first_message(stream, &*self.opening.whole, ended) {
            Start::Wait => {}
            Start::Closed => {
                self.lobby.remove(&id);
                lock(&self.shared.machine).closed(id);
            }
            Start::Ready => {
                self.waiting.insert(id);
                let decisions = lock(&self.shared.machine).ready(id, Instant::now());
                self.apply(decisions, None);
            }
        }
    }

    /// Carries out the machine's decisions; `new` is the connection just
    /// accepted, which `Admit` or `Refuse` is about.
    fn apply(&mut self, decisions: Vec<Decision>, mut new: Option<(TcpStream, Instant)>) {
        for d in decisions {
            match d {
                Decision::Admit(id) => {
                    if let Some((stream, at)) = new.take() {
                        if stream.set_nonblocking(true).is_ok() {
                            self.lobby.insert(id, (stream, at));
                            // Its message is often here already: ready
                            // now, it is not evicted by the newcomers
                            // later in this burst (a crowd from its own
                            // address evicted a browser's request so).
                            self.look_at(id, false);
                        } else {
                            lock(&self.shared.machine).closed(id);
                        }
                    }
                }
                Decision::Refuse => {
                    if let Some((stream, _)) = new.take() {
                        debug!(
                            "{}: full, refusing {:?}",
                            self.settings.what,
                            stream.peer_addr()
                        );
                        (self.refused)();
                        (self.opening.refuse)(stream);
                    }
                }
                Decision::Evict(id) => self.evict(id),
                Decision::Hand(id) => self.hand(id),
            }
        }
    }

    fn evict(&mut self, id: GateId) {
        self.waiting.remove(&id);
        if let Some((stream, accepted)) = self.lobby.remove(&id) {
            let late = accepted.elapsed() >= self.settings.limits.start;
            debug!(
                "{}: evicting {:?} from the lobby ({})",
                self.settings.what,
                stream.peer_addr(),
                if late { "too slow" } else { "no room" }
            );
            (self.refused)();
            if late {
                (self.opening.late)(stream);
            } else {
                (self.opening.refuse)(stream);
            }
            return;
        }
        // Taken out, so the shutdown happens without the lock.
        let spare = lock(&self.shared.handled).remove(&id);
        if let Some(stream) = spare {
            debug!(
                "{}: evicting idle {:?}",
                self.settings.what,
                stream.peer_addr()
            );
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn hand(&mut self, id: GateId) {
        self.waiting.remove(&id);
        let Some((stream, accepted)) = self.lobby.remove(&id) else {
            return;
        };
        let ticket = Ticket {
            shared: self.shared.clone(),
            id,
            deadline: accepted + self.settings.limits.start,
            // As the machine has it on hand-over.
            told: Cell::new(Some(Told::Busy)),
            started: Cell::new(false),
        };
        let spare = match stream
            .set_nonblocking(false)
            .and_then(|()| stream.try_clone())
        {
            Ok(s) => s,
            Err(e) => return debug!("{}: {e}", self.settings.what), // the ticket gives the slot back
        };
        lock(&self.shared.handled).insert(id, spare);
        let wanted = lock(&self.shared.machine).threads();
        self.pool.run(stream, ticket, wanted);
    }
}

type Job = (TcpStream, Ticket);

/// The handler threads: started as needed, at most `max`, each taking one
/// connection at a time. A thread's connection counts in the machine
/// until its ticket is dropped, just before the thread takes the next:
/// with as many threads as the machine counts, a job waits only for a
/// thread that is ending its last one.
struct Pool<F> {
    what: &'static str,
    handle: Arc<F>,
    jobs: (Sender<Job>, Receiver<Job>),
    started: usize,
    max: usize,
    /// Counts a handler's panic.
    panicked: Arc<dyn Fn() + Send + Sync>,
}

impl<F: Fn(TcpStream, Ticket) + Send + Sync + 'static> Pool<F> {
    /// `wanted`: the connections on threads, this one included.
    fn run(&mut self, stream: TcpStream, ticket: Ticket, wanted: usize) {
        while self.started < wanted.min(self.max) {
            if !self.start_thread() {
                break;
            }
        }
        // Cannot fail: the pool holds a receiver.
        let _ = self.jobs.0.send((stream, ticket));
    }

    fn start_thread(&mut self) -> bool {
        let (jobs, handle) = (self.jobs.1.clone(), self.handle.clone());
        let (what, panicked) = (self.what, self.panicked.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("{}-conn", self.what))
            .spawn(move || {
                for (stream, ticket) in jobs {
                    // A thread that died with its handler would never be
                    // replaced (the pool counts it as started), and a
                    // remote cause could empty the pool one connection at
                    // a time. Unwinding drops the stream and the ticket:
                    // the connection closes and its slot comes back. The
                    // handlers' shared state is behind locks that are
                    // taken even when poisoned.
                    let run = std::panic::AssertUnwindSafe(|| handle(stream, ticket));
                    if std::panic::catch_unwind(run).is_err() {
                        panicked();
                        warn!("{what}: a connection handler panicked (above); its connection is closed, the thread serves on");
                    }
                }
            });
        match spawned {
            Ok(_) => {
                self.started += 1;
                true
            }
            // The job waits for a thread that ends its connection.
            Err(e) => {
                warn!("{}: cannot start a connection thread: {e}", self.what);
                false
            }
        }
    }
}

/// Whether a lobby connection's first message is whole (or long enough,
/// or not ours, or cut short by the client's end of sending: its handler
/// will say so), still coming, or closed without a byte.
fn first_message(stream: &TcpStream, whole: &dyn Fn(&[u8]) -> bool, ended: bool) -> Start {
    let mut buf = [0u8; PEEK];
    match stream.peek(&mut buf) {
        Ok(0) => Start::Closed,
        Ok(n) if n == PEEK || ended || whole(&buf[..n]) => Start::Ready,
        Ok(_) => Start::Wait,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Start::Wait,
        Err(_) => Start::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Sends one frame with a one-byte body and reads what comes back
    /// until the server closes.
    fn ask(addr: SocketAddr, byte: u8) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut msg = Vec::new();
        frame::write_header(&mut msg, 0x10, 1).unwrap();
        msg.push(byte);
        s.write_all(&msg).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    }

    /// Issue 22 item 12: a thread lost with each panicking handler left
    /// the tracker with no query thread after a few connections.
    #[test]
    fn the_pool_serves_on_after_its_handlers_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = Settings {
            what: "test",
            limits: Limits {
                handlers: 2,
                lobby: 8,
                per_ip: 8,
                start: Duration::from_secs(4),
            },
            max_frame: 1024,
        };
        let panics = Arc::new(AtomicUsize::new(0));
        let counted = panics.clone();
        let handle = |mut stream: TcpStream, ticket: Ticket| {
            ticket.busy();
            let mut msg = [0u8; frame::HEADER_LEN + 1];
            stream.read_exact(&mut msg).unwrap();
            assert_ne!(msg[frame::HEADER_LEN], 1, "a handler's bug");
            stream.write_all(b"served").unwrap();
        };
        std::thread::spawn(move || {
            let counters = Counters {
                refused: Box::new(|| {}),
                panicked: Arc::new(move || {
                    counted.fetch_add(1, SeqCst);
                }),
            };
            serve(listener, settings, handle, counters)
        });
        // Three times as many as the pool has threads.
        for _ in 0..6 {
            assert_eq!(ask(addr, 1), b"", "closed, no answer");
        }
        assert_eq!(ask(addr, 2), b"served");
        assert_eq!(ask(addr, 2), b"served");
        // Counted just after the connection closed: wait for the last.
        let until = Instant::now() + Duration::from_secs(10);
        while panics.load(SeqCst) < 6 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(panics.load(SeqCst), 6);
    }
}
