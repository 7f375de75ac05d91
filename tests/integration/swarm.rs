//! Swarm behaviour with the real binaries on loopback: leechers trading
//! with each other, a far holder, a holder whose file rots on disk, a crash
//! mid-download, a tracker that restarts. No assertion here is about time;
//! where rates matter, the test compares shares of blocks.

use crate::common::proxy::DelayProxy;
use crate::common::swarm::*;
use crate::common::udp_peer::{entry, UdpPeer};
use crate::common::*;
use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::tracker::Held;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// The `from` lines of a peer's log, as (peer id, blocks, rtt_ms).
fn from_lines(log: &str) -> Vec<(String, u64, f64)> {
    log.lines()
        .filter_map(|l| l.strip_prefix("from "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let id = parts.next().unwrap().to_string();
            let field =
                |p: Option<&str>, key: &str| p.unwrap().strip_prefix(key).unwrap().to_owned();
            let blocks = field(parts.next(), "blocks=").parse().unwrap();
            let rtt = field(parts.next(), "rtt_ms=").parse().unwrap();
            (id, blocks, rtt)
        })
        .collect()
}

/// Starts `peer <id> --serve --get f.bin` with `extra` options, logged.
fn leech(s: &Swarm, id: &str, extra: &[&str]) -> PeerProc {
    let mut args = vec!["--get", "f.bin"];
    args.extend_from_slice(extra);
    s.start(id, &args, &format!("{id}.log"))
}

fn wait_done(p: &PeerProc, id: &str) -> String {
    wait_until(WAIT, &format!("{id} to finish f.bin"), || {
        let logs = p.logs();
        assert!(!logs.contains("error: "), "{id} failed:\n{logs}");
        logs.contains("done f.bin ")
    });
    p.logs()
}

#[test]
fn leechers_get_most_blocks_from_each_other_when_the_seeder_is_slow() {
    let s = Swarm::new();
    let data = test_bytes(6 << 20, 31);
    s.give("S", "f.bin", &data);
    let _seeder = s.serve("S", "f.bin", &["--upload-limit", "1M"]);
    let leechers: Vec<(String, PeerProc)> = (1..=3)
        .map(|i| {
            let id = format!("L{i}");
            let p = leech(&s, &id, &[]);
            (id, p)
        })
        .collect();
    let (mut from_seeder, mut from_leechers) = (0, 0);
    for (id, p) in &leechers {
        let log = wait_done(p, id);
        assert_eq!(fs::read(s.path(id).join("files/f.bin")).unwrap(), data);
        for (src, blocks, _) in from_lines(&log) {
            if src == "S" {
                from_seeder += blocks;
            } else {
                assert!(src.starts_with('L') && src != *id, "{log}");
                from_leechers += blocks;
            }
        }
    }
    assert_eq!(from_seeder + from_leechers, 3 * 1536, "each block once");
    assert!(
        from_leechers > from_seeder,
        "leechers should trade: {from_leechers} blocks from leechers, {from_seeder} from the seeder"
    );
}

#[test]
fn a_far_holder_gets_a_small_share_and_its_rtt_shows() {
    let s = Swarm::new();
    let data = test_bytes(16 << 20, 32);
    s.give("NEAR", "f.bin", &data);
    s.give("FAR", "f.bin", &data);
    // The same upload capacity for both, so only distance differs, and a
    // download long enough for the far one to take part.
    let limit = ["--upload-limit", "4M"];
    let _near = s.serve("NEAR", "f.bin", &limit);
    // FAR serves behind a proxy adding 150 ms each way, and tells the
    // tracker to send peers there.
    let far_port = free_port();
    let proxy = DelayProxy::start(far_port, Duration::from_millis(150));
    let advertise = format!("127.0.0.1:{}", proxy.port);
    let tracker = s.tracker.addr();
    let mut args = vec!["--advertise", &advertise];
    args.extend_from_slice(&limit);
    let _far = s.start_on("FAR", far_port, &args, "FAR.log");
    wait_until(WAIT, "FAR to register", || {
        holders(&tracker, "f.bin").iter().any(|h| h == "FAR")
    });

    let g = leech(&s, "G", &[]);
    let log = wait_done(&g, "G");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
    let from = from_lines(&log);
    let find = |id: &str| from.iter().find(|f| f.0 == id).cloned();
    let (_, near, near_rtt) = find("NEAR").expect("a from line for NEAR");
    let (_, far, far_rtt) = find("FAR").expect("a from line for FAR");
    assert_eq!(near + far, 4096, "{log}");
    assert!(
        far * 3 < near + far,
        "the far holder got {far} of 4096 blocks:\n{log}"
    );
    assert!(
        far_rtt >= 290.0,
        "FAR's rtt_ms shows the proxy's 300 ms: {log}"
    );
    assert!(near_rtt < far_rtt, "{log}");
}

#[test]
fn a_holder_whose_file_rots_on_disk_cannot_spoil_a_download() {
    let s = Swarm::new();
    let data = test_bytes(8 << 20, 33);
    s.give("GOOD", "f.bin", &data);
    s.give("ROT", "f.bin", &data);
    let _good = s.serve("GOOD", "f.bin", &[]);
    let _rot = s.serve("ROT", "f.bin", &[]);
    // After ROT registered (and hashed) its copy, every 4 KiB block of it
    // changes on disk: what it serves no longer matches the record.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(s.path("ROT/files/f.bin"))
        .unwrap();
    for block in 0..(8 << 20) / 4096u64 {
        f.seek(SeekFrom::Start(block * 4096 + 100)).unwrap();
        f.write_all(b"rot").unwrap();
    }
    drop(f);

    let g = leech(&s, "G", &[]);
    let log = wait_done(&g, "G");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
    let from = from_lines(&log);
    let rot = from.iter().find(|f| f.0 == "ROT").map_or(0, |f| f.1);
    assert_eq!(rot, 0, "no block of ROT's was kept:\n{log}");
    assert!(log.contains("failed its hash"), "{log}");
}

#[test]
fn a_download_killed_with_sigkill_resumes_to_a_correct_file() {
    let s = Swarm::new();
    let data = test_bytes(4 << 20, 34);
    s.give("A", "f.bin", &data);
    let _a = s.serve("A", "f.bin", &[]);
    let mut g = leech(&s, "G", &["--download-limit", "1M"]);
    let state = s.path("G/partial/f.bin.state");
    wait_until(WAIT, "a first resume state", || state.exists());
    g.kill();
    assert!(!s.path("G/files/f.bin").exists(), "nothing in files/");

    let out = s.shell("G", "get f.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
    let fetched: u64 = sources(&stdout).iter().map(|f| f.1).sum();
    assert!(
        fetched < 1024,
        "the blocks saved before the crash were kept: {stdout}"
    );
    assert!(!state.exists(), "the resume state is gone once complete");
}

#[test]
fn a_tracker_restart_is_survived() {
    let mut s = Swarm::new();
    let data = test_bytes(4 << 20, 35);
    s.give("S", "f.bin", &data);
    let _seeder = s.serve("S", "f.bin", &[]);
    let g = leech(&s, "G", &["--download-limit", "1M"]);
    let state = s.path("G/partial/f.bin.state");
    wait_until(WAIT, "G to start", || state.exists());

    s.tracker.kill();
    // The download goes on from the holder it already knows.
    wait_done(&g, "G");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);

    s.tracker.restart();
    let tracker = s.tracker.addr();
    wait_until(WAIT, "both peers to register again", || {
        let h = holders(&tracker, "f.bin");
        h.contains(&"S".to_string()) && h.contains(&"G".to_string())
    });
    // And a newcomer gets the file through the restarted tracker.
    let out = s.shell("N", "get f.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("N/files/f.bin")).unwrap(), data);
}

#[test]
fn a_tracker_restart_under_load_is_recovered() {
    // Real seeders, and 300 more peers announcing as fast as they are
    // answered; the tracker is killed and started again. Every one of
    // them must be listed again (each within an interval of the tracker
    // being back; the time is printed, not asserted).
    let mut s = Swarm::new();
    let data = test_bytes(100_000, 36);
    let seeders: Vec<PeerProc> = (1..=3)
        .map(|i| {
            let id = format!("S{i}");
            s.give(&id, "f.bin", &data);
            s.serve(&id, "f.bin", &[])
        })
        .collect();
    let record = FileRecord::from_bytes("f.bin", &data);
    let tracker = s.tracker.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, live, tracker) = (stop.clone(), live.clone(), tracker.clone());
        std::thread::spawn(move || {
            let mut peers: Vec<UdpPeer> = (0..300)
                .map(|i| {
                    UdpPeer::new(
                        &format!("127.0.{}.{}", 1 + i / 200, 1 + i % 200),
                        &tracker,
                        &format!("load{i}"),
                        20_000 + i as u16,
                    )
                })
                .collect();
            while !stop.load(Ordering::Relaxed) {
                let mut n = 0;
                for p in &mut peers {
                    n += usize::from(p.keep_alive(&[entry(&record, Held::Complete)]));
                }
                live.store(n, Ordering::Relaxed);
            }
        })
    };
    wait_until(WAIT, "the load to register", || {
        live.load(Ordering::Relaxed) == 300
    });
    s.tracker.restart();
    let back = Instant::now();
    wait_until(WAIT, "every peer to register again", || {
        let files =
            p2pshare::peer::session::tracker_client::list_files(&tracker).unwrap_or_default();
        files.first().is_some_and(|f| f.holders == 303)
    });
    eprintln!(
        "all 303 peers listed again {:?} after the restart",
        back.elapsed()
    );
    let h = holders(&tracker, "f.bin");
    assert_eq!(h.len(), 64, "a sample");
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    drop(seeders);
}
