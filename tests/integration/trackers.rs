//! Several trackers (docs/REFERENCE.md, *Running several trackers*), with the real
//! binaries on loopback: a tracker killed for good in the middle of a
//! swarm, a newcomer whose first-named tracker is the dead one, and a
//! tracker started empty in its place that learns the swarm from the
//! peers. The full-size run (16 leechers, 32 MiB, killed 5 s in, its time
//! against T*) is `make failover`; no assertion here is about time.

use crate::common::swarm::*;
use crate::common::*;
use std::fs;

/// Two trackers, each with its data and logs in its own directory.
fn two_trackers(s: &Swarm) -> (TrackerProc, TrackerProc) {
    (
        TrackerProc::start(&s.path("t1/data")),
        TrackerProc::start(&s.path("t2/data")),
    )
}

/// Starts `peer <id> PORT <first> --tracker <second> --dir <id> --serve`
/// with `extra`, logged to `<id>.log`.
fn start(s: &Swarm, id: &str, first: &str, second: &str, extra: &[&str]) -> PeerProc {
    let port = free_port().to_string();
    let dir = s.path(id);
    let mut args = vec![
        id,
        &port,
        first,
        "--tracker",
        second,
        "--dir",
        dir.to_str().unwrap(),
        "--serve",
    ];
    args.extend_from_slice(extra);
    PeerProc::spawn_logged(&args, &s.path(&format!("{id}.log")))
}

/// The items a tracker lists, as (name, holders).
fn listing(tracker: &str) -> Vec<(String, u32)> {
    use p2pshare::net::conn::Conn;
    use p2pshare::wire::{TrackerReply, TrackerRequest, MAX_FRAME};
    let Ok(mut conn) = Conn::connect(tracker, MAX_FRAME) else {
        return Vec::new();
    };
    match conn.call::<TrackerReply>(&TrackerRequest::ListFiles) {
        Ok(TrackerReply::FileList { files }) => {
            files.into_iter().map(|f| (f.name, f.holders)).collect()
        }
        _ => Vec::new(),
    }
}

#[test]
fn a_tracker_killed_mid_swarm_is_survived_and_one_started_empty_relearns_it() {
    const LEECHERS: usize = 4;
    let s = Swarm::new();
    let (mut t1, t2) = two_trackers(&s);
    let (a1, a2) = (t1.addr(), t2.addr());
    let data = test_bytes(8 << 20, 41);
    s.give("S", "f.bin", &data);
    let cap = ["--upload-limit", "2M"];
    let _seeder = start(&s, "S", &a1, &a2, &cap);
    for t in [&a1, &a2] {
        wait_until(WAIT, "both trackers to list S", || {
            holders(t, "f.bin") == ["S"]
        });
    }
    let leechers: Vec<(String, PeerProc)> = (1..=LEECHERS)
        .map(|i| {
            let id = format!("L{i}");
            let mut extra = vec!["--get", "f.bin"];
            extra.extend_from_slice(&cap);
            // Half name the tracker that dies first, half second.
            let (first, second) = if i % 2 == 0 { (&a1, &a2) } else { (&a2, &a1) };
            let p = start(&s, &id, first, second, &extra);
            (id, p)
        })
        .collect();
    // Started (or, on a machine that stalled the test, even done).
    wait_until(WAIT, "every leecher to have started", || {
        (1..=LEECHERS).all(|i| {
            let dir = s.path(&format!("L{i}"));
            dir.join("partial/f.bin.state").exists() || dir.join("files/f.bin").exists()
        })
    });

    // SIGKILL: no goodbye, no saved state; it never comes back.
    t1.kill();
    for (id, p) in &leechers {
        wait_until(WAIT, &format!("{id} to finish"), || {
            let logs = p.logs();
            assert!(!logs.contains("error: "), "{id} failed:\n{logs}");
            logs.contains("done f.bin ")
        });
        assert_eq!(
            fs::read(s.path(&format!("{id}/files/f.bin"))).unwrap(),
            data
        );
    }

    // A newcomer whose first-named tracker is the dead one lists and gets
    // the file, and says which tracker fails.
    let port = free_port().to_string();
    let ndir = s.path("N");
    let n = PeerProc::spawn(
        &[
            "N",
            &port,
            &a1,
            "--tracker",
            &a2,
            "--dir",
            ndir.to_str().unwrap(),
        ],
        Some("files\nget f.bin\nstatus\n"),
    );
    let out = n.wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("f.bin 8388608 ")),
        "{stdout}"
    );
    assert_eq!(fs::read(ndir.join("files/f.bin")).unwrap(), data);
    assert!(
        stdout.contains(&format!("tracker {a1}: failing since")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("tracker {a2}: answering")),
        "{stdout}"
    );

    // A tracker started empty on the dead one's port learns every live
    // holder and the record from the peers' announces alone.
    let t3 = TrackerProc::start_on(&s.path("t3/data"), t1.port());
    let a3 = t3.addr();
    let live = 1 + LEECHERS;
    wait_until(WAIT, "the new tracker to list every holder", || {
        listing(&a3) == [("f.bin".to_string(), live as u32)]
    });
    let mut known = holders(&a3, "f.bin");
    known.sort();
    let mut want: Vec<String> = (1..=LEECHERS).map(|i| format!("L{i}")).collect();
    want.push("S".into());
    assert_eq!(known, want);
}

#[test]
fn every_tracker_is_told_of_a_new_item_and_a_query_moves_past_one_that_does_not_know_it() {
    let s = Swarm::new();
    let (t1, t2) = two_trackers(&s);
    let (a1, a2) = (t1.addr(), t2.addr());
    let _a = start(&s, "A", &a1, &a2, &[]);
    // Shared while running: NEW_FILE goes to both trackers.
    let shared = s.path("new.bin");
    fs::write(&shared, b"hello, both trackers").unwrap();
    let port = free_port().to_string();
    let bdir = s.path("B");
    let out = PeerProc::spawn(
        &[
            "B",
            &port,
            &a1,
            "--tracker",
            &a2,
            "--dir",
            bdir.to_str().unwrap(),
        ],
        Some(&format!("share {}\n", shared.display())),
    )
    .wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for t in [&a1, &a2] {
        assert!(
            listing(t).iter().any(|(name, _)| name == "new.bin"),
            "{t}: {:?}",
            listing(t)
        );
    }
    // An item only the second tracker knows (a peer of its own gave it):
    // a peer that names the first tracker first still finds it there.
    s.give("C", "only2.bin", b"known to one tracker");
    let _c = start(&s, "C", &a2, &a2, &[]);
    wait_until(WAIT, "the second tracker to list only2.bin", || {
        holders(&a2, "only2.bin") == ["C"]
    });
    assert!(holders(&a1, "only2.bin").is_empty());
    let port = free_port().to_string();
    let ddir = s.path("D");
    let out = PeerProc::spawn(
        &[
            "D",
            &port,
            &a1,
            "--tracker",
            &a2,
            "--dir",
            ddir.to_str().unwrap(),
        ],
        Some("get only2.bin\n"),
    )
    .wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        fs::read(ddir.join("files/only2.bin")).unwrap(),
        b"known to one tracker"
    );
}

#[test]
fn a_closed_swarm_loses_a_tracker_and_an_empty_one_relearns_it_through_sealed_announces() {
    let s = Swarm::new();
    let secret = s.path("secret");
    // As `openssl rand -hex 32` makes it: a patterned secret is refused.
    let hex = "6f077793003da4765794633ff6aff9f54dbf7c4c8ae68d74e7698d981c5662a1";
    fs::write(&secret, format!("{hex}\n")).unwrap();
    let mut perms = fs::metadata(&secret).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    fs::set_permissions(&secret, perms).unwrap();
    let sf = secret.to_str().unwrap();
    let closed = ["--secret-file", sf];
    let mut t1 = TrackerProc::start_with(&s.path("t1/data"), &closed);
    let t2 = TrackerProc::start_with(&s.path("t2/data"), &closed);
    let (a1, a2) = (t1.addr(), t2.addr());
    let data = test_bytes(300_000, 43);
    s.give("S", "c.bin", &data);
    let seeder = start(&s, "S", &a1, &a2, &closed);
    wait_until(WAIT, "the seeder to register with both", || {
        seeder.logs().matches("registered with the tracker").count() >= 2
    });
    t1.kill();

    // A getter naming the dead tracker first.
    let shell = |id: &str, first: &str, commands: &str| {
        let port = free_port().to_string();
        let dir = s.path(id);
        let args = [
            id,
            &port,
            first,
            "--tracker",
            &a2,
            "--dir",
            dir.to_str().unwrap(),
            "--secret-file",
            sf,
        ];
        PeerProc::spawn(&args, Some(commands)).wait(WAIT)
    };
    let out = shell("G", &a1, "get c.bin\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/c.bin")).unwrap(), data);

    // An empty tracker with the secret on the dead one's port: the seeder
    // tells it everything again.
    let _t3 = TrackerProc::start_on_with(&s.path("t3/data"), t1.port(), &closed);
    let port = free_port().to_string();
    let pdir = s.path("P");
    let probe = || {
        let out = PeerProc::spawn(
            &[
                "P",
                &port,
                &a1,
                "--dir",
                pdir.to_str().unwrap(),
                "--secret-file",
                sf,
            ],
            Some("whohas c.bin\n"),
        )
        .wait(WAIT);
        text(&out).0
    };
    wait_until(WAIT, "the new tracker to know the seeder", || {
        probe().lines().any(|l| l.starts_with("S "))
    });
}

#[test]
fn a_tracker_the_seeder_does_not_know_learns_the_item_from_a_downloader() {
    let s = Swarm::new();
    let data = test_bytes(4 << 20, 45);
    s.give("S", "f.bin", &data);
    // S names only the first tracker; G names a second one too, not
    // started yet.
    let _seeder = s.serve("S", "f.bin", &[]);
    let late_port = free_port();
    let late = format!("127.0.0.1:{late_port}");
    let port = free_port().to_string();
    let gdir = s.path("G");
    let first = s.tracker.addr();
    let _g = PeerProc::spawn(
        &[
            "G",
            &port,
            &first,
            "--tracker",
            &late,
            "--dir",
            gdir.to_str().unwrap(),
            "--download-limit",
            "256K",
        ],
        Some("get f.bin\n"),
    );
    let state = gdir.join("partial/f.bin.state");
    wait_until(WAIT, "G to start", || state.exists());
    let t2 = TrackerProc::start_on(&s.path("late/data"), late_port);
    // G, mid-download, publishes the record it has and announces its part.
    wait_until(WAIT, "the late tracker to list f.bin held by G", || {
        listing(&t2.addr()).iter().any(|(name, _)| name == "f.bin")
            && holders(&t2.addr(), "f.bin") == ["G"]
    });
}

#[test]
fn when_no_tracker_answers_a_get_falls_back_on_the_neighbours() {
    let s = Swarm::new();
    let (dead1, dead2) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let data = test_bytes(50_000, 47);
    s.give("S", "n.bin", &data);
    let s_port = free_port();
    let sdir = s.path("S");
    let p = s_port.to_string();
    let seeder = PeerProc::spawn_logged(
        &[
            "S",
            &p,
            &dead1,
            "--tracker",
            &dead2,
            "--dir",
            sdir.to_str().unwrap(),
            "--serve",
        ],
        &s.path("S.log"),
    );
    wait_until(WAIT, "S to serve", || {
        seeder.logs().contains("listening on")
    });
    let get = |extra: &[&str]| {
        let port = free_port().to_string();
        let gdir = s.path("G");
        let mut args = vec![
            "G",
            &port,
            &dead1,
            "--tracker",
            &dead2,
            "--dir",
            gdir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        PeerProc::spawn(&args, Some("get n.bin\n")).wait(WAIT)
    };
    let out = get(&[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nor did the 1 other tracker answer"),
        "{stderr}"
    );
    let neighbour = format!("127.0.0.1:{s_port}");
    let out = get(&["--neighbor", &neighbour]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(s.path("G/files/n.bin")).unwrap(), data);
}
