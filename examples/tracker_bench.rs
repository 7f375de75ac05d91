//! The load generator behind `make bench-tracker`: N simulated peers on up
//! to 1,000 UDP sockets, each bound to its own loopback address
//! (127.1.x.y), announce to one tracker as fast as it answers, and one line
//! sums up what the tracker did.
//!
//! Usage:
//!   tracker_bench --tracker p2pshare|opentracker --addr 127.0.0.1:PORT
//!                 --pid PID [--peers N] [--secs S] [--sockets K] [--inflight C]
//!   tracker_bench whitelist     (the two info hashes, hex, one a line:
//!                                opentracker's Debian build only tracks
//!                                whitelisted torrents)
//!
//! The swarm: even peers seed one file, odd peers download another; both
//! are 4 GiB (65,536 piece hashes of 16 blocks). Warm-up: every peer
//! registers, then announces its file (p2pshare: an ANNOUNCE with
//! `FLAG_REGISTER`, then one naming the file; opentracker: a BEP 15
//! announce with event=started). Measured window, `--secs` long: leechers
//! announce a block count that grows by a piece each time, seeders send
//! keep-alives (p2pshare: no entries; BEP 15: left=0). Closed loop: at most
//! one request outstanding per socket and `--inflight` in all, sockets
//! taken in turn, a request unanswered after 1 s counted lost.
//!
//! Prints `tracker-bench tracker=<t> peers=<n> announces_per_s=<r>
//! p50_ms=<x> p99_ms=<y> cpu_us_per_announce=<z> rss_mib=<m>`: answered
//! announces in the window, per-request latency (send to answer), the
//! tracker's utime+stime over the window per answered announce, and its
//! VmRSS at the end with every peer live. Diagnostics go to stderr.

use p2pshare::digest::Md5Digest;
use p2pshare::net::conn::Conn;
use p2pshare::record::{self, FileRecord};
use p2pshare::wire::datagram::tracker::{
    Announce, Entry, Held, Refusal, Reply, Request, COOKIE_REFRESH, FLAG_REGISTER,
};
use p2pshare::wire::{Encode, TrackerReply, TrackerRequest, MAX_FRAME};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Both files: 4 GiB, so 1,048,576 blocks in 65,536 pieces of 16.
const FILE_SIZE: u64 = 4 << 30;
const SEED_FILE: &str = "bench-seeded.bin";
const LEECH_FILE: &str = "bench-leeched.bin";
/// A request with no answer after this long is counted lost.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// Warm-up that has not brought every peer in by then is a failure.
const WARMUP_LIMIT: Duration = Duration::from_secs(300);
const BEP15_PROTOCOL_ID: u64 = 0x417_2710_1980;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    P2pshare,
    Opentracker,
}

struct Args {
    kind: Kind,
    addr: SocketAddr,
    pid: u32,
    peers: u32,
    secs: f64,
    sockets: u32,
    inflight: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    eprintln!(
        "usage: tracker_bench --tracker p2pshare|opentracker --addr HOST:PORT --pid PID \
         [--peers N] [--secs S] [--sockets K] [--inflight C]\n       tracker_bench whitelist"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut kind = None;
    let (mut addr, mut pid) = (None, None);
    let (mut peers, mut secs, mut sockets, mut inflight) = (100_000u32, 10.0f64, 1000u32, 64usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: cannot read '{v}' as a number")))
        }
        match flag.as_str() {
            "--tracker" => {
                kind = Some(match value().as_str() {
                    "p2pshare" => Kind::P2pshare,
                    "opentracker" => Kind::Opentracker,
                    other => usage(&format!("unknown tracker '{other}'")),
                })
            }
            "--addr" => {
                let v = value();
                addr = Some(
                    v.parse()
                        .unwrap_or_else(|_| usage(&format!("--addr: '{v}' is not IP:PORT"))),
                )
            }
            "--pid" => pid = Some(num(&flag, value())),
            "--peers" => peers = num(&flag, value()),
            "--secs" => secs = num(&flag, value()),
            "--sockets" => sockets = num(&flag, value()),
            "--inflight" => inflight = num(&flag, value()),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    let kind = kind.unwrap_or_else(|| usage("--tracker is required"));
    let addr = addr.unwrap_or_else(|| usage("--addr is required"));
    let pid = pid.unwrap_or_else(|| usage("--pid is required (the tracker's process id)"));
    if peers < 2 || secs <= 0.0 || sockets == 0 || inflight == 0 {
        usage("--peers must be at least 2; --secs, --sockets and --inflight above 0");
    }
    // Peers on one socket get distinct ports from 10000 up (opentracker
    // keys a peer by address and port).
    let sockets = sockets.min(peers);
    if peers.div_ceil(sockets) > 55_000 {
        usage("more than 55,000 peers per socket: raise --sockets");
    }
    Args {
        kind,
        addr,
        pid,
        peers,
        secs,
        sockets,
        inflight,
    }
}

// ---------------------------------------------------------------- the swarm

fn fake_md5(name: &str) -> Md5Digest {
    use md5::{Digest, Md5};
    Md5::digest(format!("tracker-bench {name}")).into()
}

/// BEP 15's info hash for a file: the first 20 bytes of two MD5s.
fn info_hash(name: &str) -> [u8; 20] {
    let a = fake_md5(name);
    let b = fake_md5(&format!("{name}/2"));
    let mut h = [0u8; 20];
    h[..16].copy_from_slice(&a);
    h[16..].copy_from_slice(&b[..4]);
    h
}

/// A record with fake content: right geometry, made-up hashes.
fn fake_record(name: &str) -> FileRecord {
    let pieces = record::piece_count_for(FILE_SIZE);
    FileRecord {
        name: name.to_string(),
        size: FILE_SIZE,
        block_size: record::BLOCK_SIZE,
        blocks_per_piece: record::blocks_per_piece_for(FILE_SIZE),
        md5: fake_md5(name),
        piece_hashes: (0..pieces)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_be_bytes());
                h
            })
            .collect(),
        weak_sums: vec![0; pieces as usize],
        folder: None,
        version: 1,
        owner: String::new(),
    }
}

const BLOCKS: u32 = (FILE_SIZE / record::BLOCK_SIZE as u64) as u32;
const BLOCKS_PER_ANNOUNCE: u32 = 16;

/// Where each peer stands: registered (p2pshare's session), file named, blocks.
struct Peers {
    session: Vec<u64>,
    /// 0: unregistered; 1: registered, file not named yet; 2: live.
    stage: Vec<u8>,
    blocks: Vec<u32>,
    live: u32,
}

fn is_seeder(peer: u32) -> bool {
    peer.is_multiple_of(2)
}

impl Peers {
    fn new(n: u32) -> Peers {
        Peers {
            session: vec![0; n as usize],
            stage: vec![0; n as usize],
            // Leechers start spread over the file, well short of the end.
            blocks: (0..n)
                .map(|k| (k.wrapping_mul(7919)) % (BLOCKS / 2))
                .collect(),
            live: 0,
        }
    }
}

// ---------------------------------------------------------------- the wire

/// What the tracker answered, whichever its protocol.
enum Answer {
    Connected {
        tx: u32,
        cookie: u64,
    },
    /// `swarm`: the live peers the tracker counts (p2pshare says).
    Announced {
        tx: u32,
        session: u64,
        unknown: bool,
        swarm: Option<u32>,
    },
    Refused {
        tx: u32,
        reason: Refusal,
    },
    /// BEP 15 action 3, with its message.
    Error {
        tx: u32,
        message: String,
    },
}

fn encode_connect(kind: Kind, tx: u32, out: &mut Vec<u8>) {
    match kind {
        Kind::P2pshare => Request::Connect { tx }.encode(out),
        Kind::Opentracker => {
            out.clear();
            out.extend_from_slice(&BEP15_PROTOCOL_ID.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&tx.to_be_bytes());
        }
    }
}

struct Names {
    seed_md5: Md5Digest,
    leech_md5: Md5Digest,
    seed_hash: [u8; 20],
    leech_hash: [u8; 20],
}

/// The next request of `peer` at its stage; leechers' block counts grow.
#[allow(clippy::too_many_arguments)]
fn encode_announce(
    kind: Kind,
    names: &Names,
    peers: &mut Peers,
    peer: u32,
    port: u16,
    cookie: u64,
    tx: u32,
    id: &mut String,
    out: &mut Vec<u8>,
) {
    let k = peer as usize;
    let stage = peers.stage[k];
    let seeder = is_seeder(peer);
    if stage == 2 && !seeder {
        peers.blocks[k] = (peers.blocks[k] + BLOCKS_PER_ANNOUNCE).min(BLOCKS - 1);
    }
    let blocks = peers.blocks[k];
    match kind {
        Kind::P2pshare => {
            id.clear();
            use std::fmt::Write;
            let _ = write!(id, "bench{peer}");
            let (name, md5, held) = if seeder {
                (SEED_FILE, names.seed_md5, Held::Complete)
            } else {
                (LEECH_FILE, names.leech_md5, Held::Partial(blocks))
            };
            let entries = match stage {
                0 => vec![],
                1 => vec![Entry { name, md5, held }],
                _ if seeder => vec![],
                _ => vec![Entry { name, md5, held }],
            };
            Request::Announce(Announce {
                tx,
                cookie,
                session: peers.session[k],
                flags: if stage == 0 { FLAG_REGISTER } else { 0 },
                port,
                peer_id: id,
                advertise: "",
                site: "",
                entries,
            })
            .encode(out);
        }
        Kind::Opentracker => {
            let (hash, left, downloaded) = if seeder {
                (names.seed_hash, 0, 0)
            } else {
                let done = blocks as u64 * record::BLOCK_SIZE as u64;
                (names.leech_hash, FILE_SIZE - done, done)
            };
            // BEP 15 events: 0 none, 2 started.
            let event: u32 = if stage == 0 { 2 } else { 0 };
            let mut peer_id = [0u8; 20];
            let text = format!("-BN0001-{peer:012}");
            peer_id.copy_from_slice(&text.as_bytes()[..20]);
            out.clear();
            out.extend_from_slice(&cookie.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes()); // action: announce
            out.extend_from_slice(&tx.to_be_bytes());
            out.extend_from_slice(&hash);
            out.extend_from_slice(&peer_id);
            out.extend_from_slice(&downloaded.to_be_bytes());
            out.extend_from_slice(&left.to_be_bytes());
            out.extend_from_slice(&0u64.to_be_bytes()); // uploaded
            out.extend_from_slice(&event.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes()); // ip: the source's
            out.extend_from_slice(&peer.to_be_bytes()); // key
            out.extend_from_slice(&0i32.to_be_bytes()); // num_want
            out.extend_from_slice(&port.to_be_bytes());
            debug_assert_eq!(out.len(), 98);
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn decode_answer(kind: Kind, b: &[u8]) -> Option<Answer> {
    match kind {
        Kind::P2pshare => match Reply::decode(b).ok()? {
            Reply::Connected { tx, cookie } => Some(Answer::Connected { tx, cookie }),
            Reply::Announced(a) => Some(Answer::Announced {
                tx: a.tx,
                session: a.session,
                unknown: a.unknown.iter().any(|&u| u),
                swarm: Some(a.peers),
            }),
            Reply::Refused { tx, reason } => Some(Answer::Refused { tx, reason }),
            Reply::InUse { tx, at } => Some(Answer::Error {
                tx,
                message: format!("peer id in use at {at}"),
            }),
        },
        Kind::Opentracker => {
            if b.len() < 8 {
                return None;
            }
            let (action, tx) = (be_u32(b, 0), be_u32(b, 4));
            match action {
                0 if b.len() >= 16 => Some(Answer::Connected {
                    tx,
                    cookie: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
                }),
                // An announce answer without the interval and counts
                // (opentracker's for a torrent it does not track).
                1 if b.len() < 20 => Some(Answer::Error {
                    tx,
                    message: "announce answered without counts (info hash not whitelisted?)".into(),
                }),
                1 => Some(Answer::Announced {
                    tx,
                    session: 0,
                    unknown: false,
                    swarm: None,
                }),
                3 => Some(Answer::Error {
                    tx,
                    message: String::from_utf8_lossy(&b[8..]).into_owned(),
                }),
                _ => None,
            }
        }
    }
}

// ---------------------------------------------------------------- sockets

#[derive(Clone, Copy)]
enum What {
    Connect,
    Announce(u32),
}

struct Pending {
    tx: u32,
    sent: Instant,
    what: What,
}

struct Sock {
    udp: UdpSocket,
    /// The peers this socket carries, announced in turn.
    peers: Vec<u32>,
    cursor: usize,
    cookie: Option<(u64, Instant)>,
    pending: Option<Pending>,
    /// Requests lost in a row: after 3 the connection id is asked again.
    lost_in_row: u32,
}

/// Socket `i`'s source address: 127.1.0.1, 127.1.0.2, … (250 per third octet).
fn source_ip(i: u32) -> [u8; 4] {
    [
        127,
        1 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    ]
}

/// A small epoll wrapper: std has no readiness API and the runtime crates
/// would bring an event loop this one loop does not need.
struct Epoll(i32);

impl Epoll {
    fn new() -> std::io::Result<Epoll> {
        // SAFETY: a plain syscall; the descriptor is owned by the Epoll.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    fn add(&self, fd: i32, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` outlives the call; both descriptors are open.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Fills `events`; returns how many are ready.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: the pointer and length describe `events`, writable.
        let n = unsafe {
            libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms)
        };
        n.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

// ---------------------------------------------------------------- the tracker process

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// p2pshare only: the tracker must know both records before any announce
/// names them.
fn publish_records(addr: SocketAddr) -> p2pshare::Result<()> {
    let mut conn = Conn::connect(&addr.to_string(), MAX_FRAME)?;
    for name in [SEED_FILE, LEECH_FILE] {
        match conn.call::<TrackerReply>(&TrackerRequest::NewFile {
            publisher: String::new(),
            record: fake_record(name),
        }) {
            Ok(TrackerReply::Ok) => {}
            Ok(other) => eprintln!("tracker-bench: NEW_FILE {name} answered {}", other.kind()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- the run

#[derive(Default)]
struct Counts {
    answered: u64,
    lost: u64,
    bad_cookie: u64,
    unknown_session: u64,
    bad_request: u64,
    unknown_file: u64,
    errors: u64,
    last_error: String,
    /// The tracker's own count of live peers, in its latest answer.
    swarm: Option<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("whitelist") {
        for name in [SEED_FILE, LEECH_FILE] {
            let hex: String = info_hash(name).iter().map(|b| format!("{b:02x}")).collect();
            println!("{hex}");
        }
        return;
    }
    let args = parse_args();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), String> {
    let kind = a.kind;
    let label = match kind {
        Kind::P2pshare => "p2pshare",
        Kind::Opentracker => "opentracker",
    };
    if kind == Kind::P2pshare {
        publish_records(a.addr).map_err(|e| format!("publishing the two records: {e}"))?;
    }
    let names = Names {
        seed_md5: fake_md5(SEED_FILE),
        leech_md5: fake_md5(LEECH_FILE),
        seed_hash: info_hash(SEED_FILE),
        leech_hash: info_hash(LEECH_FILE),
    };
    let epoll = Epoll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut socks = Vec::with_capacity(a.sockets as usize);
    for i in 0..a.sockets {
        let ip = source_ip(i);
        let udp = UdpSocket::bind((std::net::Ipv4Addr::from(ip), 0))
            .map_err(|e| format!("binding a UDP socket on {ip:?}: {e}"))?;
        udp.set_nonblocking(true).map_err(|e| e.to_string())?;
        // Connected: the kernel keeps the route, and drops datagrams
        // from anyone else.
        udp.connect(a.addr)
            .map_err(|e| format!("connecting a UDP socket to {}: {e}", a.addr))?;
        epoll
            .add(udp.as_raw_fd(), i as u64)
            .map_err(|e| format!("epoll: {e}"))?;
        let peers = (i..a.peers).step_by(a.sockets as usize).collect();
        socks.push(Sock {
            udp,
            peers,
            cursor: 0,
            cookie: None,
            pending: None,
            lost_in_row: 0,
        });
    }
    let mut peers = Peers::new(a.peers);
    let mut idle: VecDeque<u32> = (0..a.sockets).collect();
    let mut inflight = 0usize;
    let mut counts = Counts::default();
    let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut out = Vec::with_capacity(2048);
    let mut buf = [0u8; 2048];
    let mut id = String::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut next_tx: u32 = 1;
    let start = Instant::now();
    let mut last_sweep = start;
    // Set when warm-up ends: (t0, cpu ticks at t0).
    let mut window: Option<(Instant, u64)> = None;
    let mut ended: Option<(Instant, u64)> = None;
    // This process's own CPU over the window: near 100% means the load
    // generator, not the tracker, set the pace.
    let me = std::process::id();
    let (mut my_ticks0, mut my_ticks1) = (0, 0);

    loop {
        let now = Instant::now();
        if window.is_none() && peers.live == a.peers {
            let ticks = cpu_ticks(a.pid).ok_or("cannot read the tracker's /proc/PID/stat")?;
            eprintln!(
                "tracker-bench: {label}: {} peers live after {:.1} s warm-up; measuring {} s",
                a.peers,
                now.duration_since(start).as_secs_f64(),
                a.secs
            );
            counts = Counts::default();
            my_ticks0 = cpu_ticks(me).unwrap_or(0);
            window = Some((now, ticks));
        }
        if window.is_none() && now.duration_since(start) > WARMUP_LIMIT {
            return Err(format!(
                "warm-up: only {} of {} peers live after {} s (lost {}, last error: {})",
                peers.live,
                a.peers,
                WARMUP_LIMIT.as_secs(),
                counts.lost,
                counts.last_error
            ));
        }
        if let (Some((t0, _)), None) = (window, ended) {
            if now.duration_since(t0).as_secs_f64() >= a.secs {
                let ticks = cpu_ticks(a.pid).ok_or("cannot read the tracker's /proc/PID/stat")?;
                ended = Some((now, ticks));
                my_ticks1 = cpu_ticks(me).unwrap_or(0);
            }
        }
        if let Some((t_end, _)) = ended {
            if inflight == 0 || now.duration_since(t_end) > LOST_AFTER {
                break;
            }
        }

        // Send: the next request of each idle socket, up to the cap.
        while ended.is_none() && inflight < a.inflight {
            let Some(s) = idle.pop_front() else { break };
            let sock = &mut socks[s as usize];
            let tx = next_tx;
            next_tx = next_tx.wrapping_add(1);
            let what = match sock.cookie {
                Some((_, at)) if now.duration_since(at) < COOKIE_REFRESH => {
                    let peer = sock.peers[sock.cursor];
                    sock.cursor = (sock.cursor + 1) % sock.peers.len();
                    let port = 10_000 + (peer / a.sockets) as u16;
                    let cookie = sock.cookie.map(|c| c.0).unwrap_or(0);
                    encode_announce(
                        kind, &names, &mut peers, peer, port, cookie, tx, &mut id, &mut out,
                    );
                    What::Announce(peer)
                }
                _ => {
                    encode_connect(kind, tx, &mut out);
                    What::Connect
                }
            };
            match sock.udp.send(&out) {
                Ok(_) => {
                    sock.pending = Some(Pending {
                        tx,
                        sent: Instant::now(),
                        what,
                    });
                    inflight += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    idle.push_front(s);
                    break;
                }
                Err(e) => return Err(format!("sending to {}: {e}", a.addr)),
            }
        }

        // Receive.
        let ready = epoll.wait(&mut events, 5);
        for ev in &events[..ready] {
            let s = ev.u64 as u32;
            let sock = &mut socks[s as usize];
            loop {
                let n = match sock.udp.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ICMP port unreachable and the like: the tracker is gone.
                    Err(e) => return Err(format!("receiving from {}: {e}", a.addr)),
                };
                let Some(answer) = decode_answer(kind, &buf[..n]) else {
                    counts.errors += 1;
                    counts.last_error = format!("undecodable answer of {n} bytes");
                    continue;
                };
                let tx = match &answer {
                    Answer::Connected { tx, .. }
                    | Answer::Announced { tx, .. }
                    | Answer::Refused { tx, .. }
                    | Answer::Error { tx, .. } => *tx,
                };
                // A late answer to a request already counted lost.
                let Some(p) = sock.pending.take_if(|p| p.tx == tx) else {
                    continue;
                };
                inflight -= 1;
                sock.lost_in_row = 0;
                idle.push_back(s);
                let measuring = window.is_some() && ended.is_none();
                match (answer, p.what) {
                    (Answer::Connected { cookie, .. }, _) => sock.cookie = Some((cookie, p.sent)),
                    (
                        Answer::Announced {
                            session,
                            unknown,
                            swarm,
                            ..
                        },
                        What::Announce(peer),
                    ) => {
                        let k = peer as usize;
                        if swarm.is_some() {
                            counts.swarm = swarm;
                        }
                        if unknown {
                            counts.unknown_file += 1;
                        }
                        match (kind, peers.stage[k]) {
                            (Kind::P2pshare, 0) => {
                                peers.session[k] = session;
                                peers.stage[k] = 1;
                            }
                            (_, 0 | 1) => {
                                peers.stage[k] = 2;
                                peers.live += 1;
                            }
                            _ => {}
                        }
                        if measuring {
                            counts.answered += 1;
                            let us = p.sent.elapsed().as_micros().min(u32::MAX as u128);
                            lat_us.push(us as u32);
                        }
                    }
                    (Answer::Refused { reason, .. }, what) => match reason {
                        Refusal::BadCookie => {
                            counts.bad_cookie += 1;
                            sock.cookie = None;
                        }
                        Refusal::UnknownSession => {
                            counts.unknown_session += 1;
                            if let What::Announce(peer) = what {
                                let k = peer as usize;
                                if peers.stage[k] == 2 {
                                    peers.live -= 1;
                                }
                                peers.stage[k] = 0;
                                peers.session[k] = 0;
                            }
                        }
                        Refusal::BadRequest => {
                            counts.bad_request += 1;
                            counts.last_error = "BadRequest".into();
                        }
                    },
                    (Answer::Error { message, .. }, _) => {
                        counts.errors += 1;
                        counts.last_error = message;
                    }
                    (Answer::Announced { .. }, What::Connect) => {
                        counts.errors += 1;
                        counts.last_error = "ANNOUNCED for a CONNECT".into();
                    }
                }
                // Its one request is answered: nothing else is due on this
                // socket (a late answer left behind wakes epoll again).
                break;
            }
        }

        // Requests unanswered for too long are lost; the socket goes on.
        if now.duration_since(last_sweep) >= Duration::from_millis(100) {
            last_sweep = now;
            for (s, sock) in socks.iter_mut().enumerate() {
                if sock
                    .pending
                    .as_ref()
                    .is_some_and(|p| now.duration_since(p.sent) > LOST_AFTER)
                {
                    sock.pending = None;
                    inflight -= 1;
                    counts.lost += 1;
                    sock.lost_in_row += 1;
                    if sock.lost_in_row >= 3 {
                        sock.cookie = None;
                    }
                    idle.push_back(s as u32);
                }
            }
        }
    }

    let (t0, ticks0) = window.ok_or("the run ended before warm-up did")?;
    let (t1, ticks1) = ended.ok_or("the run ended before its window did")?;
    let secs = t1.duration_since(t0).as_secs_f64();
    let rss = rss_kib(a.pid).ok_or("cannot read the tracker's /proc/PID/status")?;
    let cpu_secs = (ticks1 - ticks0) as f64 / clock_ticks_per_sec();
    let my_cpu_secs = my_ticks1.saturating_sub(my_ticks0) as f64 / clock_ticks_per_sec();
    lat_us.sort_unstable();
    eprintln!(
        "tracker-bench: {label}: window {secs:.2} s, answered {}, lost {}, tracker cpu {:.0}% of a core, load generator {:.0}%; \
         refused: bad cookie {}, unknown session {}, bad request {}; unknown file {}; errors {}{}",
        counts.answered,
        counts.lost,
        100.0 * cpu_secs / secs,
        100.0 * my_cpu_secs / secs,
        counts.bad_cookie,
        counts.unknown_session,
        counts.bad_request,
        counts.unknown_file,
        counts.errors,
        if counts.last_error.is_empty() { String::new() } else { format!(" (last: {})", counts.last_error) },
    );
    match counts.swarm {
        Some(n) if n != a.peers => eprintln!(
            "tracker-bench: warning: the tracker's last answer counted {n} live peers, not {}",
            a.peers
        ),
        Some(n) => eprintln!("tracker-bench: {label} counts {n} live peers"),
        None => {}
    }
    if cpu_secs < 0.9 * secs && my_cpu_secs < 0.9 * secs {
        eprintln!(
            "tracker-bench: warning: neither the tracker nor the load generator kept its core busy: \
             other processes took CPU time, so announces_per_s is low (cpu_us_per_announce holds)"
        );
    }
    if my_cpu_secs >= 0.95 * secs && cpu_secs < 0.9 * secs {
        eprintln!(
            "tracker-bench: warning: the load generator used its whole core and the tracker did not: \
             announces_per_s is the generator's ceiling, a lower bound for the tracker"
        );
    }
    if counts.answered == 0 {
        return Err(format!("{label} answered no announce in the window"));
    }
    println!(
        "tracker-bench tracker={label} peers={} announces_per_s={:.0} p50_ms={:.3} p99_ms={:.3} \
         cpu_us_per_announce={:.2} rss_mib={:.1}",
        a.peers,
        counts.answered as f64 / secs,
        percentile(&lat_us, 0.50),
        percentile(&lat_us, 0.99),
        cpu_secs * 1e6 / counts.answered as f64,
        rss as f64 / 1024.0,
    );
    Ok(())
}
