//! A hostile holder must not crash, stall or corrupt a download: a fake
//! holder registers a real file with the tracker, then misbehaves on the
//! wire, while an honest holder has the same file.

mod common;

use common::udp_peer::{entry, UdpPeer};
use common::*;
use p2pshare::bitfield::Bitfield;
use p2pshare::net::Conn;
use p2pshare::record::FileRecord;
use p2pshare::wire::message::write_block;
use p2pshare::wire::tracker_datagram::Held;
use p2pshare::wire::{PeerReply, PeerRequest, TrackerReply, TrackerRequest, MAX_FRAME};
use std::fs;
use std::io::Write;
use std::net::TcpListener;
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
        both = matches!(c.call::<TrackerReply>(&TrackerRequest::WhoHas { name: "f.bin".into() }), Ok(TrackerReply::Holders { holders }) if holders.len() == 2);
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
