//! End-to-end behaviour of peers, with the real binaries on loopback.

use crate::common::swarm::*;
use crate::common::*;
use p2pshare::units::hex;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn two_holders_one_getter_uses_both_and_gets_identical_bytes() {
    let s = Swarm::new();
    let data = test_bytes(3 << 20, 1);
    s.give("A", "f.bin", &data);
    s.give("B", "f.bin", &data);
    let _a = s.serve("A", "f.bin", &[]);
    let _b = s.serve("B", "f.bin", &[]);
    // A download cap makes the transfer last long enough for both to join.
    let out = s.shell(
        "G",
        "whohas f.bin\nget f.bin\nmyfiles\n",
        &["--download-limit", "4M"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);

    let md5 = hex(&p2pshare::record::md5_of(&data));
    let done = done_line(&stdout, "f.bin");
    assert!(
        done.contains(&format!("bytes={} md5={md5} ", data.len())),
        "{done}"
    );
    let from = sources(&stdout);
    assert_eq!(from.len(), 2, "{stdout}");
    assert!(
        from.iter().all(|(_, blocks)| *blocks > 0),
        "both holders used: {stdout}"
    );
    assert_eq!(
        from.iter().map(|f| f.1).sum::<u64>(),
        768,
        "every block counted once"
    );
    assert!(stdout.contains("A 127.0.0.1:"), "whohas lists A: {stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("A ") && l.ends_with(" 768/768")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("f.bin {} {md5}", data.len())),
        "myfiles: {stdout}"
    );
    // Nothing half-made is left beside the finished file.
    assert_eq!(files_in(&s.path("G/files")), vec!["f.bin"]);
    assert!(files_in(&s.path("G/partial")).is_empty());
}

#[test]
fn a_holder_killed_mid_download_loses_its_blocks_to_the_other() {
    let s = Swarm::new();
    let data = test_bytes(6 << 20, 2);
    s.give("A", "f.bin", &data);
    s.give("B", "f.bin", &data);
    let mut a = s.serve("A", "f.bin", &[]);
    let _b = s.serve("B", "f.bin", &[]);
    let g = s.slow_get("2M", "partial/f.bin.part");
    std::thread::sleep(Duration::from_millis(500));
    a.kill();
    let out = g.wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
    let from = sources(&stdout);
    assert!(from.iter().any(|(id, n)| id == "B" && *n > 0), "{stdout}");
    assert_eq!(from.iter().map(|f| f.1).sum::<u64>(), 1536);
}

#[test]
fn a_stalled_holder_is_dropped_and_the_download_completes() {
    let s = Swarm::new();
    let data = test_bytes(4 << 20, 3);
    s.give("A", "f.bin", &data);
    s.give("B", "f.bin", &data);
    let a = s.serve("A", "f.bin", &[]);
    let _b = s.serve("B", "f.bin", &[]);
    let g = s.slow_get("2M", "partial/f.bin.part");
    std::thread::sleep(Duration::from_millis(300));
    // Frozen, not dead: its sockets stay open and simply go silent.
    signal(a.pid(), "STOP");
    let out = g.wait(WAIT);
    signal(a.pid(), "CONT");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
}

#[test]
fn an_unknown_file_is_a_clear_error() {
    let s = Swarm::new();
    let out = s.shell("G", "get nosuch.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("error: no file named nosuch.bin"),
        "{stderr}"
    );
    assert!(files_in(&s.path("G/files")).is_empty());
}

#[test]
fn every_bad_name_is_refused_and_touches_nothing() {
    let s = Swarm::new();
    let long = "x".repeat(256);
    let bad = [
        "../escape",
        "a/b",
        "a\\b",
        "..",
        "/etc/passwd",
        "ctl\u{1}name",
        long.as_str(),
    ];
    for name in bad {
        for cmd in ["get", "whohas"] {
            let out = s.shell("G", &format!("{cmd} {name}\n"), &[]);
            let (stdout, stderr) = text(&out);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{cmd} {name:?}: {stdout}{stderr}"
            );
            assert!(
                stderr.contains("error: invalid name"),
                "{cmd} {name:?}: {stderr}"
            );
        }
    }
    assert!(files_in(&s.path("G/files")).is_empty());
    assert!(!s.path("escape").exists() && !s.path("G/escape").exists());
    // On the command line too.
    let port = free_port().to_string();
    let out = PeerProc::spawn(&["G", &port, &s.tracker.addr(), "--get", "../x"], None).wait(WAIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("error: invalid name"));
}

#[test]
fn arguments_that_are_not_utf8_are_usage_errors() {
    use std::os::unix::ffi::OsStringExt;
    let bad = std::ffi::OsString::from_vec(vec![b'G', 0xff, 0xfe]);
    let port = free_port().to_string();
    for args in [
        vec![bad.clone(), port.clone().into(), "127.0.0.1:1".into()],
        vec![
            "G".into(),
            port.into(),
            "127.0.0.1:1".into(),
            "--get".into(),
            bad,
        ],
    ] {
        let out = run_peer_os(&args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{stdout}{stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("UTF-8"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn garbage_on_both_ports_harms_nobody() {
    let s = Swarm::new();
    let data = test_bytes(1 << 20, 4);
    s.give("A", "f.bin", &data);
    let a_port = free_port();
    let tracker = s.tracker.addr();
    let _a = s.start_on("A", a_port, &[], "A.log");
    wait_until(WAIT, "A to register", || {
        holders(&tracker, "f.bin").contains(&"A".to_string())
    });
    let peer_addr = format!("127.0.0.1:{a_port}");
    let junk: Vec<Vec<u8>> = vec![
        test_bytes(5000, 9),
        vec![0xff, 0xff, 0xff, 0xff, 0x10],
        vec![0, 0, 0, 50, 0x10, 1, 2],
        vec![0, 0, 0, 1, 0x77],
        vec![0, 0, 0, 0],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // A REQUEST on a handle never opened, and one far past the end.
        vec![0, 0, 0, 11, 0x11, 0, 0, 0, 9, 0, 0, 0, 0, 0, 1],
    ];
    for addr in [&tracker, &peer_addr] {
        for bytes in &junk {
            if let Ok(mut sock) = TcpStream::connect(addr) {
                let _ = sock.write_all(bytes);
                // Some are left open and silent; the rest are closed.
                std::mem::forget(sock);
            }
        }
    }
    let out = s.shell("G", "get f.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
}

#[test]
fn an_interrupted_download_resumes_without_fetching_again() {
    let s = Swarm::new();
    let data = test_bytes(4 << 20, 5);
    s.give("A", "f.bin", &data);
    let _a = s.serve("A", "f.bin", &[]);
    let g = s.start("G", &["--get", "f.bin", "--download-limit", "1M"], "G1.log");
    let state = s.path("G/partial/f.bin.state");
    wait_until(WAIT, "a first resume state", || state.exists());
    let out = g.stop(WAIT);
    assert!(out.status.success(), "Ctrl-C/SIGTERM exits 0");
    assert!(
        !s.path("G/files/f.bin").exists(),
        "nothing half-made in files/"
    );

    let out = s.shell("G", "get f.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
    let fetched: u64 = sources(&stdout).iter().map(|f| f.1).sum();
    assert!(
        fetched > 0 && fetched < 1024,
        "only the missing blocks: {stdout}"
    );
}

#[test]
fn when_no_holder_is_left_the_error_says_so_and_keeps_the_blocks() {
    let s = Swarm::new();
    let data = test_bytes(3 << 20, 6);
    s.give("A", "f.bin", &data);
    let mut a = s.serve("A", "f.bin", &[]);
    let g = s.slow_get("1M", "partial/f.bin.state");
    a.kill();
    let out = g.wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("error: f.bin: no reachable holder"),
        "{stderr}"
    );
    assert!(
        stderr.contains("run `get f.bin` again to resume"),
        "{stderr}"
    );
    assert!(!s.path("G/files/f.bin").exists());
    assert!(s.path("G/partial/f.bin.part").exists());
}

#[test]
fn share_copies_announces_and_refuses_a_clashing_name() {
    let s = Swarm::new();
    let one = test_bytes(10_000, 7);
    let other = test_bytes(10_000, 8);
    fs::write(s.path("one.txt"), &one).unwrap();
    fs::create_dir_all(s.path("elsewhere")).unwrap();
    fs::write(s.path("elsewhere/one.txt"), &other).unwrap();
    let first = s.path("one.txt");
    let out = s.shell("A", &format!("share {}\nmyfiles\n", first.display()), &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("shared one.txt 10000 "),
        "{:?}",
        text(&out)
    );
    let _a = {
        // A keeps serving from its files/ now that the file is there.
        s.serve("A", "one.txt", &[])
    };
    assert_eq!(fs::read(s.path("A/files/one.txt")).unwrap(), one);

    let clash = s.path("elsewhere/one.txt");
    let out = s.shell("B", &format!("share {}\n", clash.display()), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("error: ")
            && stderr.contains("one.txt is owned by A")
            && stderr.contains("rename your copy"),
        "{stderr}"
    );
    assert!(
        !s.path("B/files/one.txt").exists(),
        "the refused file stays out of files/"
    );

    let out = s.shell("C", "get one.txt\n", &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        fs::read(s.path("C/files/one.txt")).unwrap(),
        one,
        "the first version stays"
    );
}

#[test]
fn a_name_of_255_bytes_is_shared_and_fetched() {
    let s = Swarm::new();
    let name = format!("{}.bin", "n".repeat(251));
    assert_eq!(name.len(), 255);
    let data = test_bytes(50_000, 10);
    s.give("A", &name, &data);
    let _a = s.serve("A", &name, &[]);
    let out = s.shell("G", &format!("get {name}\n"), &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files").join(&name)).unwrap(), data);
    assert!(files_in(&s.path("G/partial")).is_empty(), "no leftovers");
}

#[test]
fn a_failed_get_does_not_spoil_the_next_one() {
    let s = Swarm::new();
    let good = test_bytes(100_000, 11);
    s.give("A", "good.bin", &good);
    s.give("B", "gone.bin", &test_bytes(100_000, 12));
    let _a = s.serve("A", "good.bin", &[]);
    let mut b = s.serve("B", "gone.bin", &[]);
    b.kill();
    // The tracker still has gone.bin's record, but nobody to serve it.
    let out = s.shell("G", "get gone.bin\nget good.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one command failed: {stdout}{stderr}"
    );
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(!stderr.contains("cancelled"), "{stderr}");
    done_line(&stdout, "good.bin");
    assert_eq!(fs::read(s.path("G/files/good.bin")).unwrap(), good);
}

#[test]
fn an_upload_limited_holder_delivers_steadily_enough_not_to_look_stalled() {
    let s = Swarm::new();
    let data = test_bytes(512 << 10, 13);
    s.give("A", "f.bin", &data);
    // At 48 KiB/s a 256 KiB buffer would take over 5 s to fill: longer than
    // the stall timeout, if the holder waited for it before sending.
    let _a = s.serve("A", "f.bin", &["--upload-limit", "48K"]);
    let out = s.shell("G", "get f.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/f.bin")).unwrap(), data);
    assert!(stdout.contains("from A blocks=128 "), "{stdout}");
    assert!(
        !stderr.contains("dropped"),
        "the holder was never taken for stalled: {stderr}"
    );
}

/// A version 1 record (no version byte, MD5 piece hashes) of `data`, as
/// older versions wrote it to disk: the RECORD frame, built by hand.
fn v1_record_frame(name: &str, data: &[u8]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&(data.len() as u64).to_be_bytes());
    body.extend_from_slice(&4096u32.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes()); // 4 KiB pieces below 256 MiB
    body.extend_from_slice(&Md5::digest(data));
    let pieces: Vec<&[u8]> = data.chunks(4096).collect();
    body.extend_from_slice(&(pieces.len() as u32).to_be_bytes());
    for p in pieces {
        body.extend_from_slice(&Md5::digest(p));
    }
    let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    frame.push(0x85); // RECORD
    frame.extend_from_slice(&body);
    frame
}

fn tracker_record(tracker: &str, name: &str) -> Result<p2pshare::record::FileRecord, String> {
    use p2pshare::wire::{TrackerReply, TrackerRequest, MAX_FRAME};
    let mut c = p2pshare::net::conn::Conn::connect(tracker, MAX_FRAME).unwrap();
    match c.call::<TrackerReply>(&TrackerRequest::GetRecord { name: name.into() }) {
        Ok(TrackerReply::Record { record }) => Ok(record),
        Ok(other) => panic!("GET_RECORD answered {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn version_1_records_on_disk_are_upgraded_never_served() {
    use p2pshare::record::FileRecord;
    use p2pshare::wire::record_file::{self, Stored};
    let mut s = Swarm::new();
    let data = test_bytes(50_000, 12);
    s.give("A", "old.bin", &data);
    // The tracker's records and A's record cache, as version 1 left them;
    // `gone.bin` has no holder any more.
    let records = s.path("tracker/records");
    fs::write(
        records.join("old.bin.rec"),
        v1_record_frame("old.bin", &data),
    )
    .unwrap();
    let gone = test_bytes(9_000, 13);
    fs::write(
        records.join("gone.bin.rec"),
        v1_record_frame("gone.bin", &gone),
    )
    .unwrap();
    let cache = s.path("A/records");
    fs::create_dir_all(&cache).unwrap();
    let stamp = p2pshare::fsutil::Stamp::of(&fs::metadata(s.path("A/files/old.bin")).unwrap());
    let mut cached = stamp.to_bytes().to_vec();
    cached.extend_from_slice(&v1_record_frame("old.bin", &data));
    fs::write(cache.join("old.bin.rec"), cached).unwrap();
    s.tracker.restart();

    // The tracker says what it does with them, and serves neither.
    let logs = s.tracker.logs();
    assert!(
        logs.contains("old.bin.rec is a version 1 record") && logs.contains("gone.bin"),
        "{logs}"
    );
    let tracker = s.tracker.addr();
    let e = tracker_record(&tracker, "old.bin").unwrap_err();
    assert!(e.contains("older p2pshare"), "{e}");
    // Only the same content can take the name back.
    let other = record_of(s.dir.path(), "gone.bin", b"other content");
    let mut c = p2pshare::net::conn::Conn::connect(&tracker, p2pshare::wire::MAX_FRAME).unwrap();
    let refused =
        c.call::<p2pshare::wire::TrackerReply>(&p2pshare::wire::TrackerRequest::NewFile {
            publisher: String::new(),
            record: other,
        });
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("different content")),
        "{refused:?}"
    );

    // A holds the file: it hashes it again and publishes a current record,
    // version 1 of the name, owned by A.
    let a = s.serve("A", "old.bin", &[]);
    let want = FileRecord::from_bytes("old.bin", &data).versioned(1, "A");
    assert_eq!(tracker_record(&tracker, "old.bin").unwrap(), want);
    assert!(a.logs().contains("older p2pshare"), "{}", a.logs());
    for path in [records.join("old.bin.rec"), cache.join("old.bin.rec")] {
        let bytes = fs::read(&path).unwrap();
        // A's cache puts the file's size+mtime stamp before the record.
        let skip = if path.starts_with(&cache) {
            p2pshare::fsutil::Stamp::LEN
        } else {
            0
        };
        assert_eq!(
            record_file::decode(&bytes[skip..]).unwrap(),
            Stored::Current(want.clone()),
            "{} upgraded",
            path.display()
        );
    }

    // And the file is fetched, verified against SHA-256 piece hashes.
    let out = s.shell("G", "get old.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(fs::read(s.path("G/files/old.bin")).unwrap(), data);
    let e = tracker_record(&tracker, "gone.bin").unwrap_err();
    assert!(e.contains("older p2pshare"), "{e}");
}
