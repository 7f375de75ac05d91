//! A hostile holder must not crash, stall or corrupt a download: a fake
//! holder registers a real file with the tracker, then misbehaves on the
//! wire, while an honest holder has the same file.

mod flood;

use crate::common::udp_peer::{entry, UdpPeer};
use crate::common::*;
use flood::Flood;
use p2pshare::bitfield::Bitfield;
use p2pshare::download::worker::STALL_TIMEOUT;
use p2pshare::net::conn::Conn;
use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::tracker::Held;
use p2pshare::wire::message::write_block;
use p2pshare::wire::{Encode, PeerReply, PeerRequest, TrackerReply, TrackerRequest, MAX_FRAME};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Right block numbers, wrong bytes.
    CorruptData,
    /// Blocks nobody asked for.
    UnrequestedBlocks,
    /// A frame header announcing 4 GiB.
    OversizedFrame,
    /// OPENED with a piece set of the wrong length.
    WrongPieceSet,
    /// Accepts requests and never answers them.
    Silence,
    /// Answers with real-looking frames, one byte every 100 ms.
    Trickle,
    /// OPENED with no pieces at all.
    NothingToOffer,
}

/// The length the oversized frame's header announces: a downloader that
/// allocated it would grow by 4 GiB.
const HUGE: u32 = 0xFFFF_FFF0;

/// What the hostile holder saw of one connection.
#[derive(Clone, Debug)]
struct Seen {
    /// Its first request for blocks came then.
    first_request: Option<Instant>,
    /// The downloader closed it then.
    closed: Option<Instant>,
    /// Whole frames it answered with (a trickle sends a frame in 7 minutes).
    frames_sent: u32,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Where one connection's entry in the log is.
struct Note {
    log: Log,
    i: usize,
}

impl Note {
    fn note(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.log.lock().unwrap()[self.i]);
    }
}

/// Registers as `EVIL` holding `record`, then serves with `mode`. Runs
/// until the test process ends; what it saw of each connection goes to
/// the log it returns.
fn start_hostile(tracker: &str, record: &FileRecord, mode: Misbehaviour) -> Log {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let nf = TrackerRequest::NewFile {
        publisher: String::new(),
        record: record.clone(),
    };
    let mut conn = Conn::connect(tracker, MAX_FRAME).unwrap();
    assert!(matches!(
        conn.call::<TrackerReply>(&nf).unwrap(),
        TrackerReply::Ok
    ));
    let mut session = UdpPeer::new("127.0.0.1", tracker, "EVIL", port);
    session.register(vec![entry(record, Held::Complete)]);
    // Announce every 2 s so the tracker keeps listing it.
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(2));
        let _ = session.announce(vec![]);
    });
    let pieces = record.piece_count();
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let i = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Seen {
                        first_request: None,
                        closed: None,
                        frames_sent: 0,
                    });
                    seen.len() - 1
                };
                serve_badly(stream, pieces, mode, &Note { log: seen, i });
            });
        }
    });
    log
}

/// Serves `mode` until the downloader closes the connection (noted as
/// `closed`) or a write fails.
fn serve_badly(stream: std::net::TcpStream, pieces: u32, mode: Misbehaviour, note: &Note) {
    let Ok(mut conn) = Conn::new(stream, MAX_FRAME, Duration::from_secs(600)) else {
        return;
    };
    let junk = test_bytes(4096, 99);
    loop {
        let reply: Option<(u32, u32, u16)> = match conn.recv() {
            Ok(Some(PeerRequest::Open { .. })) => {
                let len = if matches!(mode, Misbehaviour::WrongPieceSet) {
                    pieces + 7
                } else {
                    pieces
                };
                let _ = conn.send(&PeerReply::Opened {
                    handle: 0,
                    have: Bitfield::full(len),
                });
                None
            }
            Ok(Some(PeerRequest::Ping { nonce })) => {
                let _ = conn.send(&PeerReply::Pong { nonce });
                None
            }
            Ok(Some(PeerRequest::Request {
                handle,
                block,
                count,
            })) => Some((handle, block, count)),
            _ => {
                let now = Instant::now();
                note.note(|s| s.closed = Some(now));
                return;
            }
        };
        let Some((handle, block, count)) = reply else {
            continue;
        };
        let now = Instant::now();
        note.note(|s| {
            s.first_request.get_or_insert(now);
        });
        let w = conn.writer();
        let sent = match mode {
            Misbehaviour::CorruptData => {
                (0..count as u32).try_for_each(|i| write_block(w, handle, block + i, &junk))
            }
            Misbehaviour::UnrequestedBlocks => {
                write_block(w, handle, block.wrapping_add(1_000_000), &junk)
            }
            Misbehaviour::OversizedFrame => {
                let mut header = HUGE.to_be_bytes().to_vec();
                header.push(0x91);
                w.write_all(&header)
            }
            Misbehaviour::Trickle => {
                let mut frame = Vec::new();
                let _ = write_block(&mut frame, handle, block, &junk);
                for byte in frame {
                    if w.write_all(&[byte]).and_then(|()| w.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                note.note(|s| s.frames_sent += 1);
                Ok(())
            }
            Misbehaviour::WrongPieceSet | Misbehaviour::Silence | Misbehaviour::NothingToOffer => {
                Ok(())
            }
        };
        if sent.is_err() || conn.flush().is_err() {
            let now = Instant::now();
            note.note(|s| s.closed = Some(now));
            return;
        }
    }
}

/// How a download beside the hostile holder went.
struct Despite {
    /// What the hostile holder saw of each connection.
    seen: Vec<Seen>,
    /// When the downloader's `get` ended.
    ended: Instant,
    /// The downloader's peak virtual memory (VmPeak), in bytes, as last
    /// read from /proc while it ran.
    peak: u64,
    /// Its log (stderr, at info).
    stderr: String,
}

/// `VmPeak` of a process, in bytes, while it runs.
fn vm_peak(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb << 10)
}

/// Downloads f.bin (2 MiB) from an honest holder and the hostile one at
/// `limit` (bytes per second, as `--download-limit` takes it); checks the
/// copy, that every block came from the honest holder, and reports.
fn download_despite(mode: Misbehaviour) -> Despite {
    download_at(mode, "4M")
}

fn download_at(mode: Misbehaviour, limit: &str) -> Despite {
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    // Whole blocks only, so corrupt data is the right size and must be
    // caught by its hash, not by its length.
    let data = test_bytes(2 << 20, 21);
    let files = dir.path().join("A/files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("f.bin"), &data).unwrap();
    let record = FileRecord::from_bytes("f.bin", &data);
    let log = start_hostile(&tracker.addr(), &record, mode);

    let a_port = free_port().to_string();
    let a_dir = dir.path().join("A");
    let _a = PeerProc::spawn_logged(
        &[
            "A",
            &a_port,
            &tracker.addr(),
            "--dir",
            a_dir.to_str().unwrap(),
            "--serve",
        ],
        &dir.path().join("A.log"),
    );
    let g_port = free_port().to_string();
    let g_dir = dir.path().join("G");
    let tracker_addr = tracker.addr();
    let mut both = false;
    wait_until(WAIT, "A to register beside EVIL", || {
        let mut c = Conn::connect(&tracker_addr, MAX_FRAME).unwrap();
        both = matches!(c.call::<TrackerReply>(&TrackerRequest::WhoHas { name: "f.bin".into(), md5: None, site: None }), Ok(TrackerReply::Holders { holders, .. }) if holders.len() == 2);
        both
    });
    let g = PeerProc::spawn(
        &[
            "G",
            &g_port,
            &tracker.addr(),
            "--dir",
            g_dir.to_str().unwrap(),
            "--download-limit",
            limit,
        ],
        Some("get f.bin\n"),
    );
    // VmPeak only grows while the process lives; it is gone once it exits.
    let pid = g.pid();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let running = running.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while running.load(Ordering::Relaxed) {
                match vm_peak(pid) {
                    Some(p) => peak = peak.max(p),
                    None => break,
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let out = g.wait(WAIT);
    let ended = Instant::now();
    running.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{mode:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        fs::read(g_dir.join("files/f.bin")).unwrap(),
        data,
        "{mode:?}"
    );
    assert!(
        stdout.contains("from A blocks=512 "),
        "every block from the honest holder ({mode:?}):\n{stdout}"
    );
    assert!(
        !stdout.contains("from EVIL blocks=") || stdout.contains("from EVIL blocks=0 "),
        "{stdout}"
    );
    // A moment for the hostile holder to notice the last hang-ups.
    std::thread::sleep(Duration::from_millis(200));
    let seen = log.lock().unwrap().clone();
    assert!(
        !seen.is_empty(),
        "the downloader never tried EVIL ({mode:?})"
    );
    Despite {
        seen,
        ended,
        peak,
        stderr: stderr.into_owned(),
    }
}

#[test]
fn corrupt_data_is_caught_and_the_holder_dropped() {
    download_despite(Misbehaviour::CorruptData);
}

#[test]
fn unrequested_blocks_end_that_connection_only() {
    download_despite(Misbehaviour::UnrequestedBlocks);
}

#[test]
fn an_oversized_frame_is_refused_before_allocation() {
    let d = download_despite(Misbehaviour::OversizedFrame);
    // Refused: the downloader hung up on the frame rather than wait for
    // its 4 GiB...
    let dropped = format!("holder EVIL dropped: frame of {HUGE} bytes exceeds the limit");
    assert!(d.stderr.contains(&dropped), "{}", d.stderr);
    assert!(
        d.seen[0].closed.is_some(),
        "the connection that sent the huge header is still open: {:?}",
        d.seen
    );
    // ...and before allocating: its peak address space stayed below the
    // length announced (a Vec of that length would add all of it).
    assert!(d.peak > 0, "VmPeak of the downloader was never read");
    assert!(
        d.peak < HUGE as u64,
        "the downloader's VmPeak reached {} bytes",
        d.peak
    );
}

#[test]
fn a_piece_set_of_the_wrong_length_is_refused() {
    download_despite(Misbehaviour::WrongPieceSet);
}

#[test]
fn a_holder_that_never_answers_is_dropped_after_the_stall_timeout() {
    // 2 MiB at 160 KiB/s: the download outlasts the stall timeout, so the
    // downloader's own rule, not its exit, must end the silent connection.
    let d = download_at(Misbehaviour::Silence, "160K");
    let first = &d.seen[0];
    let asked = first.first_request.expect("EVIL was asked for blocks");
    let closed = first
        .closed
        .expect("the silent holder's connection was never dropped");
    assert!(
        closed < d.ended - Duration::from_millis(100),
        "dropped only when the download ended: {:?}",
        d.seen
    );
    assert!(
        d.stderr
            .contains("holder EVIL dropped: timed out: EVIL: sent nothing for"),
        "{}",
        d.stderr
    );
    let after = closed - asked;
    // Not before the timeout (a silent holder is given its full time). No
    // bound above: that it was dropped before the download ended, by the
    // stall rule (its log line), is the claim; how soon after the timeout
    // depends on the machine's load, and a timed assertion would flake.
    assert!(
        after >= STALL_TIMEOUT - Duration::from_millis(50),
        "dropped after {after:?}, before the stall timeout"
    );
}

#[test]
fn a_holder_trickling_bytes_neither_stalls_nor_delays_the_download() {
    let d = download_despite(Misbehaviour::Trickle);
    // Not delayed: the download ended (every block from the honest holder)
    // before the trickle had delivered a single frame...
    assert!(
        d.seen.iter().all(|s| s.frames_sent == 0),
        "a trickled frame completed before the download: {:?}",
        d.seen
    );
    // ...though it was asked for blocks, so the trickle was in play.
    assert!(
        d.seen.iter().any(|s| s.first_request.is_some()),
        "EVIL was never asked for blocks: {:?}",
        d.seen
    );
}

#[test]
fn a_holder_offering_nothing_ends_in_a_clear_error_not_a_hang() {
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    let data = test_bytes(64 << 10, 22);
    start_hostile(
        &tracker.addr(),
        &FileRecord::from_bytes("f.bin", &data),
        Misbehaviour::NothingToOffer,
    );
    let port = free_port().to_string();
    let g_dir = dir.path().join("G");
    let out = PeerProc::spawn(
        &[
            "G",
            &port,
            &tracker.addr(),
            "--dir",
            g_dir.to_str().unwrap(),
        ],
        Some("get f.bin\n"),
    )
    .wait(WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: f.bin: no reachable holder has the remaining 16 blocks"),
        "{stderr}"
    );
}

/// A flood's size: `FLOOD_ADDRS` addresses (127.0.0.2 and up) with
/// `FLOOD_PER_ADDR` connections each, on each of the two ports. `make
/// flood` runs 100 x 20; `make test` a few hundred, same mechanism.
fn flood_size() -> (u8, usize) {
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (
        var("FLOOD_ADDRS", 10).clamp(1, 250) as u8,
        var("FLOOD_PER_ADDR", 24),
    )
}

fn ping_frame(msg: &impl Encode) -> Vec<u8> {
    let mut v = Vec::new();
    msg.encode(&mut v);
    v
}

#[test]
fn a_flood_of_idle_and_trickling_connections_leaves_whohas_and_get_working() {
    let (addrs, per_addr) = flood_size();
    let fd_limit = flood::raise_fd_limit();
    let wanted = 2 * addrs as usize * per_addr + 256;
    assert!(
        fd_limit as usize >= wanted,
        "the flood needs {wanted} open files, the hard limit is {fd_limit}"
    );
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    let data = test_bytes((4 << 20) + 1234, 31);
    let a_dir = dir.path().join("A");
    fs::create_dir_all(a_dir.join("files")).unwrap();
    fs::write(a_dir.join("files/f.bin"), &data).unwrap();
    let a_port = free_port();
    let seeder = PeerProc::spawn_logged(
        &[
            "A",
            &a_port.to_string(),
            &tracker.addr(),
            "--dir",
            a_dir.to_str().unwrap(),
            "--serve",
        ],
        &dir.path().join("A.log"),
    );
    let tracker_addr = tracker.addr();
    wait_until(WAIT, "A to register", || {
        let mut c = Conn::connect(&tracker_addr, MAX_FRAME).unwrap();
        matches!(c.call::<TrackerReply>(&TrackerRequest::WhoHas { name: "f.bin".into(), md5: None, site: None }), Ok(TrackerReply::Holders { holders, .. }) if holders.len() == 1)
    });
    let (a_pid, t_pid) = (seeder.pid(), tracker.pid().unwrap());
    let base = (flood::threads_of(a_pid), flood::threads_of(t_pid));

    let on = |port: u16| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let floods = [
        Flood::start(
            on(a_port),
            addrs,
            per_addr,
            ping_frame(&PeerRequest::Ping { nonce: 1 }),
        ),
        Flood::start(
            on(tracker.port()),
            addrs,
            per_addr,
            ping_frame(&TrackerRequest::Ping { nonce: 1 }),
        ),
    ];
    // Every slot opened once, then past one start deadline: the lobbies
    // are as full as the flood can make them.
    let total = addrs as usize * per_addr;
    wait_until(WAIT, "the flood to open its connections", || {
        floods
            .iter()
            .all(|f| f.stats.opened.load(Ordering::Relaxed) >= total)
    });
    // The most threads and descriptors (held connections) each had.
    let most = std::sync::Mutex::new([base.0, base.1, 0, 0]);
    let sample = || {
        let mut m = most.lock().unwrap();
        let now = [
            flood::threads_of(a_pid),
            flood::threads_of(t_pid),
            flood::fds_of(a_pid),
            flood::fds_of(t_pid),
        ];
        for (m, n) in m.iter_mut().zip(now) {
            *m = (*m).max(n);
        }
    };
    for _ in 0..25 {
        sample();
        std::thread::sleep(Duration::from_millis(200));
    }

    let g_dir = dir.path().join("G");
    let started = std::time::Instant::now();
    let newcomer = PeerProc::spawn(
        &[
            "G",
            &free_port().to_string(),
            &tracker.addr(),
            "--dir",
            g_dir.to_str().unwrap(),
        ],
        Some("whohas f.bin\nget f.bin\n"),
    );
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                sample();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let out = newcomer.wait(Duration::from_secs(120));
        done.store(true, Ordering::Relaxed);
        out
    });
    let secs = started.elapsed().as_secs_f64();
    let opened: Vec<usize> = floods
        .iter()
        .map(|f| f.stats.opened.load(Ordering::Relaxed))
        .collect();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let [peer_threads, tracker_threads, peer_fds, tracker_fds] = *most.lock().unwrap();
    let peer_bound = base.0 + p2pshare::peer::block_server::ADMISSION.handlers;
    let tracker_bound = base.1 + p2pshare::tracker::server::ADMISSION.handlers;
    let ok = out.status.success()
        && stdout.contains(&format!("A 127.0.0.1:{a_port} "))
        && fs::read(g_dir.join("files/f.bin")).ok().as_ref() == Some(&data)
        && peer_threads <= peer_bound
        && tracker_threads <= tracker_bound;
    println!(
        "\nflood addrs={addrs} per_addr={per_addr} opened_seeder={} opened_tracker={} seeder_fds={peer_fds} tracker_fds={tracker_fds} seeder_threads={peer_threads}/{peer_bound} tracker_threads={tracker_threads}/{tracker_bound} newcomer_secs={secs:.1} result={}",
        opened[0],
        opened[1],
        if ok { "pass" } else { "FAIL" }
    );
    drop(floods);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
}
