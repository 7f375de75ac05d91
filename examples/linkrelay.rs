//! The switch of `make hosts RTT=...`: forwards Ethernet frames between the
//! hosts' veth ends (AF_PACKET sockets, one per port) and holds each frame
//! for the distance between its two hosts, which this kernel cannot do (no
//! netem). In place of the kernel bridge, so it learns which MAC sits
//! behind which port and floods only broadcasts and unknown destinations.
//!
//! Every port is a host with its own RTT: a frame from host a to host b is
//! held (rtt_a + rtt_b) / 4, so two hosts of RTT r see r between them and
//! unequal hosts the mean of theirs. The delay for a pair never changes,
//! so frames leave in the order they came (one heap ordered by due time,
//! ties by arrival). What is held is bounded in bytes; a frame that does
//! not fit is dropped and counted, like a switch's full buffer.
//!
//! ARP frames pass at once: a host on a real far link resolves its next
//! hop, a router on its own LAN, in well under a millisecond, never the
//! far host. Held like the rest, every first contact between two hosts
//! cost one more round trip (40 ms at RTT=40ms) before its SYN left.
//!
//! Usage: linkrelay [--queue-bytes N] IFACE=RTT_US...
//! Prints one `linkrelay ...` line of counters on SIGUSR1, and on SIGTERM
//! or SIGINT before it exits.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

/// The largest frame taken: a 1500-byte MTU, its Ethernet header and a VLAN
/// tag. A bigger one means the host still hands the veth GSO packets.
const MAX_FRAME: usize = 1522;
/// Frames read from one port before the others get their turn.
const BATCH: usize = 256;
/// While frames flow the relay wakes once per tick, not once per frame:
/// on this VM a wake-up costs more than forwarding a frame. A frame is
/// read up to a tick after it came and sent up to a tick after it is due,
/// so it is held half a tick less than asked, to keep the mean delay
/// right; the jitter is about a tick either way.
const TICK: Duration = Duration::from_millis(1);
/// The longest sleep while nothing flows, so a signal's flag is seen.
const IDLE: Duration = Duration::from_millis(200);
/// Kernel receive buffer per port: what a port absorbs while the relay is
/// busy on another (the kernel's default is a few hundred frames).
const RCVBUF: libc::c_int = 4 << 20;
// linux/if_packet.h (a stable ABI; not every libc release names them).
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, AtomicOrdering::Relaxed);
}

struct Port {
    name: String,
    fd: RawFd,
    rtt_us: u64,
}

/// A frame waiting for its time, to leave by port `to`.
struct Held {
    due: Instant,
    seq: u64,
    to: usize,
    frame: Vec<u8>,
}

// BinaryHeap is a max-heap: the earliest due (then the first to arrive)
// must compare greatest.
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Held {}

#[derive(Default)]
struct Counters {
    frames: u64,
    bytes: u64,
    flooded: u64,
    dropped_full: u64,
    dropped_kernel: u64,
    oversize: u64,
    released: u64,
    send_failed: u64,
    max_held_bytes: usize,
    late_us_sum: u64,
    late_us_max: u64,
}

struct Relay {
    ports: Vec<Port>,
    macs: HashMap<[u8; 6], usize>,
    held: BinaryHeap<Held>,
    held_bytes: usize,
    limit_bytes: usize,
    polls: Vec<libc::pollfd>,
    pool: Vec<Vec<u8>>,
    seq: u64,
    count: Counters,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (limit_bytes, specs) = match args.as_slice() {
        [flag, n, rest @ ..] if flag == "--queue-bytes" => match n.parse() {
            Ok(n) => (n, rest),
            Err(_) => usage(&format!("--queue-bytes takes a number of bytes, got '{n}'")),
        },
        rest => (16 << 20, rest),
    };
    if specs.len() < 2 {
        usage("name at least two ports");
    }
    let mut ports = Vec::new();
    for spec in specs {
        let Some((name, rtt)) = spec.split_once('=') else {
            usage(&format!("a port is IFACE=RTT_US, got '{spec}'"));
        };
        let Ok(rtt_us) = rtt.parse() else {
            usage(&format!(
                "RTT_US is a whole number of microseconds, got '{rtt}'"
            ));
        };
        match open_port(name) {
            Ok(fd) => ports.push(Port {
                name: name.to_string(),
                fd,
                rtt_us,
            }),
            Err(e) => {
                eprintln!("error: cannot open a packet socket on {name}: {e}");
                std::process::exit(1);
            }
        }
    }
    // SAFETY: prctl with plain integer arguments. The script that started
    // the relay may die by SIGKILL; the relay (real-time) must not outlive it.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
        // SAFETY: the handler only stores into an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let polls = ports
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut relay = Relay {
        polls,
        ports,
        macs: HashMap::new(),
        held: BinaryHeap::new(),
        held_bytes: 0,
        limit_bytes,
        pool: Vec::new(),
        seq: 0,
        count: Counters::default(),
    };
    let names: Vec<String> = relay
        .ports
        .iter()
        .map(|p| format!("{}={}us", p.name, p.rtt_us))
        .collect();
    println!(
        "linkrelay ports={} queue_bytes={limit_bytes} {}",
        relay.ports.len(),
        names.join(" ")
    );
    relay.run();
}

fn usage(why: &str) -> ! {
    eprintln!("error: {why}\nusage: linkrelay [--queue-bytes N] IFACE=RTT_US...");
    std::process::exit(2);
}

/// A raw packet socket on interface `name`, taking every frame the
/// interface receives and none it sends (those are our own).
fn open_port(name: &str) -> io::Result<RawFd> {
    let cname = CString::new(name).map_err(|_| io::Error::other("NUL in the name"))?;
    // SAFETY: plain syscalls on a fresh descriptor; every pointer passed
    // points at a live local of the size given.
    unsafe {
        let index = libc::if_nametoindex(cname.as_ptr());
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0 takes nothing until bind names the interface, so no
        // other interface's frame slips in between.
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        setsockopt(fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF)?;
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = index as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        if libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

fn setsockopt(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: &libc::c_int) -> io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v is a live c_int of the length given.
    let rc = unsafe { libc::setsockopt(fd, level, opt, v as *const _ as *const libc::c_void, len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Relay {
    fn run(&mut self) {
        loop {
            match SIGNAL.swap(0, AtomicOrdering::Relaxed) {
                0 => {}
                libc::SIGUSR1 => println!("{}", self.counters_line()),
                _ => {
                    println!("{}", self.counters_line());
                    return;
                }
            }
            let read = self.receive_ready(0);
            self.release(Instant::now());
            if read == 0 && self.held.is_empty() {
                // Idle: sleep until a frame comes (then tick again).
                self.receive_ready(IDLE.as_millis() as libc::c_int);
                continue;
            }
            std::thread::sleep(TICK);
        }
    }

    /// Polls every port (waiting up to `wait_ms`) and reads what the ready
    /// ones hold; returns how many ports had frames.
    fn receive_ready(&mut self, wait_ms: libc::c_int) -> usize {
        for pfd in &mut self.polls {
            pfd.revents = 0;
        }
        // SAFETY: polls is a live array of polls.len() pollfds.
        let n = unsafe {
            libc::poll(
                self.polls.as_mut_ptr(),
                self.polls.len() as libc::nfds_t,
                wait_ms,
            )
        };
        if n <= 0 {
            return 0; // nothing, or a signal (EINTR): run() looks at it
        }
        if let Some(gone) = self
            .polls
            .iter()
            .position(|p| p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0)
        {
            // An interface went (its namespace was deleted): the run is
            // over, and polling on would spin.
            eprintln!(
                "linkrelay: port {} is gone; stopping",
                self.ports[gone].name
            );
            println!("{}", self.counters_line());
            std::process::exit(0);
        }
        let ready: Vec<usize> = (0..self.polls.len())
            .filter(|&i| self.polls[i].revents & libc::POLLIN != 0)
            .collect();
        for &from in &ready {
            self.receive(from);
        }
        ready.len()
    }

    /// Reads up to BATCH frames from port `from` and queues them.
    fn receive(&mut self, from: usize) {
        for _ in 0..BATCH {
            let mut buf = self.pool.pop().unwrap_or_else(|| vec![0; MAX_FRAME]);
            buf.resize(MAX_FRAME, 0);
            // SAFETY: buf is MAX_FRAME bytes long. MSG_TRUNC: the result is
            // the frame's real length, so an oversize one shows.
            let n = unsafe {
                libc::recv(
                    self.ports[from].fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    MAX_FRAME,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 14 {
                self.pool.push(buf);
                if n < 0 {
                    return; // EAGAIN: drained
                }
                continue;
            }
            if n as usize > MAX_FRAME {
                self.count.oversize += 1;
                self.pool.push(buf);
                continue;
            }
            buf.truncate(n as usize);
            self.forward(from, buf, Instant::now());
        }
    }

    /// Learns the sender's MAC and queues the frame for where its
    /// destination lives, or for every other port when that is unknown.
    fn forward(&mut self, from: usize, frame: Vec<u8>, now: Instant) {
        let mac = |at: usize| -> [u8; 6] { frame[at..at + 6].try_into().expect("6 bytes") };
        let (dst, src) = (mac(0), mac(6));
        if src[0] & 1 == 0 {
            self.macs.insert(src, from);
        }
        self.count.frames += 1;
        self.count.bytes += frame.len() as u64;
        let known = if dst[0] & 1 == 0 {
            self.macs.get(&dst).copied()
        } else {
            None
        };
        match known {
            Some(to) if to == from => self.pool.push(frame),
            Some(to) => self.hold(from, to, frame, now),
            None => {
                self.count.flooded += 1;
                for to in (0..self.ports.len()).filter(|&to| to != from) {
                    let mut copy = self.pool.pop().unwrap_or_default();
                    copy.clear();
                    copy.extend_from_slice(&frame);
                    self.hold(from, to, copy, now);
                }
                self.pool.push(frame);
            }
        }
    }

    fn hold(&mut self, from: usize, to: usize, frame: Vec<u8>, now: Instant) {
        if self.held_bytes + frame.len() > self.limit_bytes {
            self.count.dropped_full += 1;
            self.pool.push(frame);
            return;
        }
        let delay = if is_arp(&frame) {
            Duration::ZERO
        } else {
            Duration::from_micros((self.ports[from].rtt_us + self.ports[to].rtt_us) / 4)
                .saturating_sub(TICK / 2)
        };
        self.held_bytes += frame.len();
        self.count.max_held_bytes = self.count.max_held_bytes.max(self.held_bytes);
        self.seq += 1;
        self.held.push(Held {
            due: now + delay,
            seq: self.seq,
            to,
            frame,
        });
    }

    /// Sends every frame whose time has come, earliest first.
    fn release(&mut self, now: Instant) {
        while self.held.peek().is_some_and(|h| h.due <= now) {
            let Some(h) = self.held.pop() else { break };
            let late = now.duration_since(h.due).as_micros() as u64;
            self.count.late_us_sum += late;
            self.count.late_us_max = self.count.late_us_max.max(late);
            self.held_bytes -= h.frame.len();
            self.count.released += 1;
            // SAFETY: the frame is a live buffer of its length.
            let rc = unsafe {
                libc::send(
                    self.ports[h.to].fd,
                    h.frame.as_ptr() as *const libc::c_void,
                    h.frame.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 {
                self.count.send_failed += 1;
            }
            self.pool.push(h.frame);
        }
    }

    /// The counters, the kernel's drops per port (frames its receive
    /// buffers had no room for) and this process's CPU time.
    fn counters_line(&mut self) -> String {
        for p in &self.ports {
            self.count.dropped_kernel += kernel_drops(p.fd);
        }
        // SAFETY: getrusage fills the zeroed struct.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            ru
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let c = &self.count;
        format!(
            "linkrelay frames={} bytes={} flooded={} dropped_full={} dropped_kernel={} oversize={} \
             released={} send_failed={} max_held_bytes={} late_us_mean={:.1} late_us_max={} cpu_user_s={:.2} cpu_sys_s={:.2}",
            c.frames,
            c.bytes,
            c.flooded,
            c.dropped_full,
            c.dropped_kernel,
            c.oversize,
            c.released,
            c.send_failed,
            c.max_held_bytes,
            c.late_us_sum as f64 / c.released.max(1) as f64,
            c.late_us_max,
            secs(ru.ru_utime),
            secs(ru.ru_stime),
        )
    }
}

/// Frames dropped by the kernel on this socket since the last call
/// (reading the statistics resets them).
/// An ARP frame (EtherType 0x0806, or behind one VLAN tag).
fn is_arp(frame: &[u8]) -> bool {
    const ARP: [u8; 2] = [0x08, 0x06];
    match frame.get(12..14) {
        Some([0x81, 0x00]) => frame.get(16..18) == Some(&ARP[..]),
        Some(t) => t == ARP,
        None => false,
    }
}

fn kernel_drops(fd: RawFd) -> u64 {
    // struct tpacket_stats { unsigned int tp_packets, tp_drops; }
    let mut stats = [0u32; 2];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: stats is a live buffer of len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if rc < 0 {
        0
    } else {
        u64::from(stats[1])
    }
}
