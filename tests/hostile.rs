//! A hostile holder must not crash, stall or corrupt a download: a fake
//! holder registers a real file with the tracker, then misbehaves on the
//! wire, while an honest holder has the same file.

mod common;
#[path = "hostile/flood.rs"]
mod flood;

use common::udp_peer::{entry, UdpPeer};
use common::*;
use flood::Flood;
use p2pshare::bitfield::Bitfield;
use p2pshare::net::Conn;
use p2pshare::record::FileRecord;
use p2pshare::wire::message::write_block;
use p2pshare::wire::tracker_datagram::Held;
use p2pshare::wire::{Encode, PeerReply, PeerRequest, TrackerReply, TrackerRequest, MAX_FRAME};
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Right block numbers, wrong bytes.
    CorruptData,
    /// Blocks nobody asked for.
    UnrequestedBlocks,
    /// A frame header announcing 100 MB.
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

/// Registers as `EVIL` holding `record`, then serves with `mode`. Runs
/// until the test process ends.
fn start_hostile(tracker: &str, record: &FileRecord, mode: Misbehaviour) {
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
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_badly(stream, pieces, mode));
        }
    });
}

fn serve_badly(stream: std::net::TcpStream, pieces: u32, mode: Misbehaviour) {
    let Ok(mut conn) = Conn::new(stream, MAX_FRAME, Duration::from_secs(30)) else {
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
            _ => return,
        };
        let Some((handle, block, count)) = reply else {
            continue;
        };
        let w = conn.writer();
        let sent = match mode {
            Misbehaviour::CorruptData => {
                (0..count as u32).try_for_each(|i| write_block(w, handle, block + i, &junk))
            }
            Misbehaviour::UnrequestedBlocks => {
                write_block(w, handle, block.wrapping_add(1_000_000), &junk)
            }
            Misbehaviour::OversizedFrame => w.write_all(&[0x06, 0, 0, 0, 0x91]),
            Misbehaviour::Trickle => {
                let mut frame = Vec::new();
                let _ = write_block(&mut frame, handle, block, &junk);
                for byte in frame {
                    if w.write_all(&[byte]).and_then(|()| w.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(())
            }
            Misbehaviour::WrongPieceSet | Misbehaviour::Silence | Misbehaviour::NothingToOffer => {
                Ok(())
            }
        };
        if sent.is_err() || conn.flush().is_err() {
            return;
        }
    }
}

fn download_despite(mode: Misbehaviour) {
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    // Whole blocks only, so corrupt data is the right size and must be
    // caught by its hash, not by its length.
    let data = test_bytes(2 << 20, 21);
    let files = dir.path().join("A/files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("f.bin"), &data).unwrap();
    let record = FileRecord::from_bytes("f.bin", &data);
    start_hostile(&tracker.addr(), &record, mode);

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
    let out = PeerProc::spawn(
        &[
            "G",
            &g_port,
            &tracker.addr(),
            "--dir",
            g_dir.to_str().unwrap(),
            "--download-limit",
            "4M",
        ],
        Some("get f.bin\n"),
    )
    .wait(WAIT);
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
    download_despite(Misbehaviour::OversizedFrame);
}

#[test]
fn a_piece_set_of_the_wrong_length_is_refused() {
    download_despite(Misbehaviour::WrongPieceSet);
}

#[test]
fn a_holder_that_never_answers_is_dropped_after_the_stall_timeout() {
    download_despite(Misbehaviour::Silence);
}

#[test]
fn a_holder_trickling_bytes_neither_stalls_nor_delays_the_download() {
    download_despite(Misbehaviour::Trickle);
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
    let peer_bound = base.0 + p2pshare::peer::ADMISSION.handlers;
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
