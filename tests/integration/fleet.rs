//! A fleet that follows, end to end with the real binaries: followers move
//! to each new version by themselves, fetching about the changed bytes
//! only (in place and shifted by an insertion), the owner sending about one
//! copy of the change; a reader of a follower's file sees one version or
//! the other, whole, and never a missing file; a follower killed in the
//! middle of an update finishes it after a restart; a `get` reuses the
//! pieces of other items it holds.

use crate::common::http;
use crate::common::swarm::*;
use crate::common::*;
use p2pshare::metrics::value_in;
use p2pshare::record::md5_of;
use std::collections::BTreeSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const MIB: usize = 1 << 20;

/// A serving peer with the web UI (for `/metrics`).
struct Node {
    proc: PeerProc,
    url: String,
}

fn node(s: &Swarm, id: &str, extra: &[&str]) -> Node {
    fs::create_dir_all(s.path(id).join("files")).unwrap();
    let mut args = vec!["--http", "0"];
    args.extend_from_slice(extra);
    let proc = s.start(id, &args, &format!("{id}.log"));
    let url = proc.web_url();
    Node { proc, url }
}

/// (bytes fetched, bytes sent, bytes reused) from a peer's `/metrics`.
fn counters(n: &Node) -> (u64, u64, u64) {
    let page = http::get(&n.url, "/metrics").text();
    let v = |name| value_in(&page, name).unwrap_or(0);
    (
        v("peer_received_bytes_total"),
        v("peer_sent_bytes_total"),
        v("peer_reused_bytes_total"),
    )
}

fn holds(s: &Swarm, id: &str, name: &str, data: &[u8]) -> bool {
    fs::read(s.path(id).join("files").join(name)).is_ok_and(|b| b == data)
}

/// What a `Reader` saw: the MD5 of every read, every failure to open or
/// read the file, and how many reads.
type Seen = (BTreeSet<[u8; 16]>, Vec<String>, u64);

/// Reads `path` whole, again and again, until stopped.
struct Reader {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(path: std::path::PathBuf) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((BTreeSet::new(), Vec::new(), 0)));
        let (st, se) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let got = fs::read(&path);
                let mut s = se.lock().unwrap();
                match got {
                    Ok(bytes) => {
                        s.0.insert(md5_of(&bytes));
                        s.2 += 1;
                    }
                    Err(e) => s.1.push(e.to_string()),
                }
            }
        });
        Reader {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// The MD5s read, and the failures.
    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn followers_update_fetching_only_the_change_and_readers_never_see_a_mix() {
    const FOLLOWERS: usize = 4;
    let s = Swarm::new();
    let owner = node(&s, "O", &[]);
    let followers: Vec<Node> = (0..FOLLOWERS)
        .map(|i| node(&s, &format!("F{i}"), &["--follow", "*"]))
        .collect();
    let size = 16 * MIB;
    let v1 = test_bytes(size, 21);
    let staging = s.path("staging");
    fs::create_dir_all(&staging).unwrap();
    fs::write(staging.join("data.bin"), &v1).unwrap();
    fs::rename(staging.join("data.bin"), s.path("O/files/data.bin")).unwrap();
    wait_until(WAIT, "every follower to hold version 1", || {
        (0..FOLLOWERS).all(|i| holds(&s, &format!("F{i}"), "data.bin", &v1))
    });

    // Version 2: 1 % of the file overwritten in place, in 64 KiB regions
    // (3 of them: 1.2 %).
    let reader = Reader::start(s.path("F0/files/data.bin"));
    let before: Vec<_> = followers.iter().map(counters).collect();
    let owner_before = counters(&owner);
    let mut v2 = v1.clone();
    for (k, at) in [MIB, 7 * MIB + 65_536, 13 * MIB].iter().enumerate() {
        v2[*at..at + 65_536].copy_from_slice(&test_bytes(65_536, 100 + k as u32));
    }
    fs::write(s.path("O/files/data.bin"), &v2).unwrap();
    wait_until(WAIT, "every follower to hold version 2", || {
        (0..FOLLOWERS).all(|i| holds(&s, &format!("F{i}"), "data.bin", &v2))
    });
    let changed = 3 * 65_536u64;
    check_fetched(&followers, &before, size as u64, changed + changed / 2);
    let sent = counters(&owner).1 - owner_before.1;
    assert!(
        sent <= 3 * changed,
        "the owner sent {sent} for {changed} changed"
    );

    // Version 3: 1 MiB + 1,111 bytes inserted in the middle, written as a
    // new copy and moved over.
    let before: Vec<_> = followers.iter().map(counters).collect();
    let owner_before = counters(&owner);
    let inserted = MIB + 1111;
    let mut v3 = v2[..size / 2].to_vec();
    v3.extend_from_slice(&test_bytes(inserted, 31));
    v3.extend_from_slice(&v2[size / 2..]);
    fs::write(staging.join("data.bin"), &v3).unwrap();
    fs::rename(staging.join("data.bin"), s.path("O/files/data.bin")).unwrap();
    wait_until(WAIT, "every follower to hold version 3", || {
        (0..FOLLOWERS).all(|i| holds(&s, &format!("F{i}"), "data.bin", &v3))
    });
    // About the insertion, plus the pieces it cut in two and the blocks an
    // endgame fetched twice (a few dozen).
    check_fetched(
        &followers,
        &before,
        v3.len() as u64,
        inserted as u64 * 9 / 8 + 65_536,
    );
    let sent = counters(&owner).1 - owner_before.1;
    assert!(
        sent <= 2 * inserted as u64 + 65_536,
        "the owner sent {sent} for {inserted} inserted"
    );

    let (md5s, failures, reads) = reader.finish();
    assert!(failures.is_empty(), "the file went missing: {failures:?}");
    let versions: BTreeSet<_> = [md5_of(&v1), md5_of(&v2), md5_of(&v3)].into();
    assert!(
        md5s.is_subset(&versions),
        "a read saw a mix ({reads} reads)"
    );
    assert!(reads > 1);
}

/// Each follower fetched at most `most` bytes since `before`, and took
/// the rest from its own disk.
fn check_fetched(followers: &[Node], before: &[(u64, u64, u64)], size: u64, most: u64) {
    for (n, b) in followers.iter().zip(before) {
        let (down, _, reused) = counters(n);
        let fetched = down - b.0;
        assert!(
            fetched <= most,
            "a follower fetched {fetched} bytes of {size} (at most {most})"
        );
        assert!(
            reused - b.2 >= size - most - 4096,
            "a follower reused only {} bytes",
            reused - b.2
        );
    }
}

#[test]
fn a_follower_killed_in_the_middle_of_an_update_finishes_it_after_a_restart() {
    let s = Swarm::new();
    let _owner = node(&s, "O", &[]);
    let v1 = test_bytes(4 * MIB, 41);
    s.give("O", "big.bin", &v1);
    // Slow downloads: the update of 3 MiB takes about 6 s.
    let slow = ["--follow", "big.bin", "--download-limit", "500K"];
    let mut f = node(&s, "F", &slow);
    wait_until(WAIT, "F to hold version 1", || {
        holds(&s, "F", "big.bin", &v1)
    });
    let mut v2 = v1.clone();
    v2[MIB..4 * MIB].copy_from_slice(&test_bytes(3 * MIB, 42));
    fs::write(s.path("O/files/big.bin"), &v2).unwrap();
    // Killed once it has fetched part of the change (not after a fixed
    // time: on a busy machine the local copying alone can take that), and
    // enough of it that its progress was saved at least once (every
    // second, 500 KiB at this rate) before the kill.
    let (down0, _, _) = counters(&f);
    wait_until(WAIT, "F to fetch part of the update", || {
        counters(&f).0 >= down0 + 1024 * 1024
    });
    f.proc.kill();
    assert!(
        holds(&s, "F", "big.bin", &v1),
        "the old version stays until the swap"
    );
    let f = node(&s, "F", &slow);
    wait_until(WAIT, "F to finish the update", || {
        holds(&s, "F", "big.bin", &v2)
    });
    // What was fetched before the kill is not fetched again.
    let (down, _, _) = counters(&f);
    assert!(
        down < 3 * MIB as u64 - 256 * 1024,
        "fetched {down} bytes after the restart, for a 3 MiB change"
    );
}

#[test]
fn a_get_reuses_the_pieces_of_other_items() {
    let s = Swarm::new();
    let x = test_bytes(2 * MIB, 51);
    let mut y = x.clone();
    y[100_000..110_000].copy_from_slice(&[9; 10_000]);
    s.give("O", "y.bin", &y);
    let _o = s.serve("O", "y.bin", &[]);
    s.give("P", "x.bin", &x);
    let out = s.shell("P", "get y.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(holds(&s, "P", "y.bin", &y));
    // 10,000 changed bytes touch 3 or 4 pieces of 4 KiB.
    let fetched: u64 = sources(&stdout).iter().map(|(_, b)| b).sum();
    assert!(fetched <= 4, "{stdout}");
}
