//! The watched `files/`, end to end with the real binaries: what is copied
//! into a running peer's `files/` is shared once it stops changing, what
//! is removed is withdrawn, what changes is shared again with its new
//! content.

use crate::common::swarm::*;
use crate::common::*;
use p2pshare::digest::Md5Digest;
use p2pshare::net::conn::Conn;
use p2pshare::record::md5_of;
use p2pshare::wire::{TrackerReply, TrackerRequest, MAX_FRAME};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The MD5 and size of the record the tracker has for `name`, if any.
fn tracker_record(tracker: &str, name: &str) -> Option<(Md5Digest, u64)> {
    let mut conn = Conn::connect(tracker, MAX_FRAME).ok()?;
    match conn.call::<TrackerReply>(&TrackerRequest::GetRecord { name: name.into() }) {
        Ok(TrackerReply::Record { record }) => Some((record.md5, record.size)),
        _ => None,
    }
}

/// Starts `id` serving with nothing to share yet (its files/ exists).
fn serve_empty(s: &Swarm, id: &str) -> PeerProc {
    fs::create_dir_all(s.path(id).join("files")).unwrap();
    let p = s.start(id, &[], &format!("{id}.log"));
    wait_until(WAIT, &format!("{id} to start"), || {
        p.logs().contains("listening on")
    });
    p
}

#[test]
fn a_file_copied_in_is_shared_a_removed_one_withdrawn_a_changed_one_shared_anew() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let a = serve_empty(&s, "A");

    // Copied in (written elsewhere, then moved in, as `cp` then `mv`
    // would; and a plain write too).
    let one = test_bytes(300_000, 1);
    fs::write(s.path("one.bin"), &one).unwrap();
    fs::rename(s.path("one.bin"), s.path("A/files/one.bin")).unwrap();
    wait_until(WAIT, "A to share one.bin", || {
        holders(&tracker, "one.bin") == ["A"]
    });
    let out = s.shell("B", "whohas one.bin\nget one.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("A 127.0.0.1:"), "{stdout}");
    assert_eq!(fs::read(s.path("B/files/one.bin")).unwrap(), one);

    // Changed: the tracker drops the old record once A withdraws it
    // (B's copy left with B's process), and takes the new one.
    let two = test_bytes(200_000, 2);
    fs::write(s.path("A/files/one.bin"), &two).unwrap();
    wait_until(WAIT, "the new one.bin on the tracker", || {
        tracker_record(&tracker, "one.bin") == Some((md5_of(&two), two.len() as u64))
            && holders(&tracker, "one.bin") == ["A"]
    });
    fs::remove_file(s.path("B/files/one.bin")).unwrap();
    let out = s.shell("B", "get one.bin\n", &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(fs::read(s.path("B/files/one.bin")).unwrap(), two);

    // Removed: withdrawn, and the record is dropped with it.
    fs::remove_file(s.path("A/files/one.bin")).unwrap();
    wait_until(WAIT, "one.bin withdrawn", || {
        tracker_record(&tracker, "one.bin").is_none()
    });
    // Gone from the tracker's disk too: a restart does not bring it back.
    let rec = s.path("tracker/records/one.bin.rec");
    wait_until(WAIT, "the record deleted", || !rec.exists());
    let out = s.shell("C", "whohas one.bin\n", &[]);
    assert!(!out.status.success(), "{:?}", text(&out));
    let logs = a.logs();
    assert!(logs.contains("one.bin left files/"), "{logs}");
}

#[test]
fn a_file_written_slowly_is_shared_only_once_complete() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let a = serve_empty(&s, "A");
    let data = test_bytes(64 * 1024, 3);
    let path = s.path("A/files/slow.bin");
    let mut f = fs::File::create(&path).unwrap();
    // 16 pieces, one every 250 ms: 4 s of a growing file, each listing
    // sees it bigger than the last.
    for chunk in data.chunks(4096) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(f);
    wait_until(WAIT, "A to share slow.bin", || {
        holders(&tracker, "slow.bin") == ["A"]
    });
    assert_eq!(
        tracker_record(&tracker, "slow.bin"),
        Some((md5_of(&data), data.len() as u64))
    );
    let logs = a.logs();
    let shared: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("sharing slow.bin"))
        .collect();
    assert_eq!(shared.len(), 1, "{logs}");
    assert!(shared[0].contains("(65536 bytes"), "{logs}");
}

#[test]
fn a_download_moved_into_files_is_not_hashed_again() {
    let s = Swarm::new();
    let data = test_bytes(100_000, 4);
    s.give("A", "got.bin", &data);
    let _a = s.serve("A", "got.bin", &[]);
    let gdir = s.path("G");
    let tracker = s.tracker.addr();
    let g = s.start("G", &["--get", "got.bin"], "G.log");
    wait_until(WAIT, "G's download", || g.logs().contains("done got.bin"));
    // A file copied in afterwards is shared: the watcher has listed
    // files/ at least twice since the download landed there.
    fs::write(gdir.join("files/later.bin"), b"later").unwrap();
    wait_until(WAIT, "G to share later.bin", || {
        holders(&tracker, "later.bin") == ["G"]
    });
    let logs = g.logs();
    assert!(!logs.contains("hashing got.bin"), "{logs}");
    assert!(!logs.contains("sharing got.bin"), "{logs}");
    assert!(!logs.contains("got.bin left files/"), "{logs}");
}

#[test]
fn share_of_a_file_already_in_files_shares_it() {
    let s = Swarm::new();
    let files = s.path("A/files");
    fs::create_dir_all(&files).unwrap();
    let port = free_port().to_string();
    let dir = s.path("A");
    let tracker = s.tracker.addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["A", &port, &tracker, "--dir", dir.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The peer is running (its start-up scan is over) when the file
    // arrives; `share` names it at once, before the watcher could have
    // picked it up.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    while !stderr.contains("files shared from") {
        assert!(err.read_line(&mut stderr).unwrap() > 0, "{stderr}");
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let data = test_bytes(10_000, 5);
    fs::write(files.join("here.txt"), &data).unwrap();
    writeln!(stdin, "share {}", files.join("here.txt").display()).unwrap();
    writeln!(stdin, "share {}", files.join("here.txt").display()).unwrap();
    writeln!(stdin, "myfiles").unwrap();
    drop(stdin);
    let out = wait_output(child, WAIT);
    stderr.push_str(&rest.join().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{stderr}");
    let md5 = p2pshare::units::hex(&md5_of(&data));
    assert!(
        stdout.contains(&format!("shared here.txt 10000 {md5}")),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("here.txt 10000 {md5}")),
        "{stdout}"
    );
    assert_eq!(fs::read(files.join("here.txt")).unwrap(), data);
    assert_eq!(files_in(&files), ["here.txt"]);
    assert!(
        tracker_record(&tracker, "here.txt").is_some(),
        "published: {stderr}"
    );
}
