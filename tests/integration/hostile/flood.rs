//! A connection flood for the hostile tests: many TCP connections to one
//! port from many loopback addresses (127.0.0.2 and up, each socket bound
//! to its address before it connects), held until dropped. A third of
//! them say nothing, a third trickle a frame one byte a second, a third
//! send one whole PING and then sit idle. Whatever the server closes is
//! opened again at the next round.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often every connection is looked at.
const ROUND: Duration = Duration::from_millis(250);
/// A trickler's pace.
const TRICKLE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
enum Mode {
    Idle,
    Trickle,
    PingThenIdle,
}

struct Slot {
    stream: TcpStream,
    mode: Mode,
    /// Bytes of `first` sent so far.
    sent: usize,
    last_byte: Instant,
}

/// Counters, readable while the flood runs.
#[derive(Default)]
pub struct Stats {
    /// Connections opened (the first ones and every renewal).
    pub opened: AtomicUsize,
}

pub struct Flood {
    stop: Arc<AtomicBool>,
    pub stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
}

impl Flood {
    /// `per_addr` connections from each of `addrs` addresses to `target`;
    /// `ping` is one whole PING frame in the target's protocol.
    pub fn start(target: SocketAddrV4, addrs: u8, per_addr: usize, ping: Vec<u8>) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        // Two threads: each holds half of the addresses.
        let threads = (0..2u8)
            .map(|half| {
                let sources: Vec<Ipv4Addr> = (0..addrs)
                    .filter(|a| a % 2 == half)
                    .map(|a| Ipv4Addr::new(127, 0, 0, 2 + a))
                    .collect();
                let (stop, stats, ping) = (stop.clone(), stats.clone(), ping.clone());
                std::thread::spawn(move || hold(target, &sources, per_addr, &ping, &stop, &stats))
            })
            .collect();
        Flood {
            stop,
            stats,
            threads,
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn hold(
    target: SocketAddrV4,
    sources: &[Ipv4Addr],
    per_addr: usize,
    ping: &[u8],
    stop: &AtomicBool,
    stats: &Stats,
) {
    // A frame header promising 100 bytes, then the bytes: never whole
    // within any start deadline at one byte a second.
    let trickle: Vec<u8> = [0, 0, 0, 101, ping[4]]
        .into_iter()
        .chain(std::iter::repeat_n(0, 100))
        .collect();
    let mut slots: Vec<(Ipv4Addr, Option<Slot>)> = sources
        .iter()
        .flat_map(|ip| (0..per_addr).map(|_| (*ip, None)))
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        for (i, (ip, slot)) in slots.iter_mut().enumerate() {
            if slot.as_mut().is_some_and(|s| !keep(s, ping, &trickle)) {
                *slot = None;
            }
            if slot.is_none() {
                if let Ok(stream) = connect_from(*ip, target) {
                    stats.opened.fetch_add(1, Ordering::Relaxed);
                    let mode = [Mode::Idle, Mode::Trickle, Mode::PingThenIdle][i % 3];
                    *slot = Some(Slot {
                        stream,
                        mode,
                        sent: 0,
                        last_byte: Instant::now(),
                    });
                }
            }
        }
        std::thread::sleep(ROUND.saturating_sub(started.elapsed()));
    }
}

/// Moves one connection along; false once the server closed it.
fn keep(s: &mut Slot, ping: &[u8], trickle: &[u8]) -> bool {
    let mut buf = [0u8; 512];
    // Whatever the server said (PONG, BUSY) is read and dropped; an end
    // of stream or an error means it is gone.
    match s.stream.read(&mut buf) {
        Ok(0) => return false,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == io::ErrorKind::NotConnected => return true,
        Err(_) => return false,
    }
    let (first, pace) = match s.mode {
        Mode::Idle => return true,
        Mode::Trickle => (trickle, TRICKLE),
        Mode::PingThenIdle => (ping, Duration::ZERO),
    };
    if s.sent >= first.len() || s.last_byte.elapsed() < pace {
        return true;
    }
    let end = if pace.is_zero() {
        first.len()
    } else {
        s.sent + 1
    };
    match s.stream.write(&first[s.sent..end]) {
        Ok(n) => {
            s.sent += n;
            s.last_byte = Instant::now();
            true
        }
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
        ),
    }
}

/// A non-blocking TCP connection to `to` from the local address `from`
/// (std cannot bind a socket before connecting it).
fn connect_from(from: Ipv4Addr, to: SocketAddrV4) -> io::Result<TcpStream> {
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor created here, which the
    // TcpStream owns (and closes) from the line after it is created; the
    // addresses are valid sockaddr_in values for the calls' duration.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        // Else a flood socket on 127.0.0.x:p keeps a peer started later
        // from listening on 0.0.0.0:p (both have SO_REUSEADDR: no clash).
        let one: libc::c_int = 1;
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let opt = (&one as *const libc::c_int).cast();
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, opt, size) < 0 {
            return Err(io::Error::last_os_error());
        }
        let local = sockaddr(from, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) < 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(stream)
    }
}

/// Raises this process's soft limit on open files to its hard limit: the
/// flood holds thousands of sockets.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// Open file descriptors of a process: its sockets, mostly.
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The `Threads:` line of /proc/<pid>/status.
pub fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}
