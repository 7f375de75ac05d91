//! Versions of a name, end to end with the real binaries: the owner's
//! change is the next version and others update to it; anyone else's
//! content under the name is refused and not shared; the owner hands a
//! name over; a name nobody holds or owns is free again.

use crate::common::swarm::*;
use crate::common::*;
use p2pshare::net::conn::Conn;
use p2pshare::record::{md5_of, FileRecord};
use p2pshare::units::hex;
use p2pshare::wire::{TrackerReply, TrackerRequest, MAX_FRAME};
use std::fs;

/// The tracker's current record of `name`.
fn current(tracker: &str, name: &str) -> Option<FileRecord> {
    let mut conn = Conn::connect(tracker, MAX_FRAME).ok()?;
    match conn.call::<TrackerReply>(&TrackerRequest::GetRecord { name: name.into() }) {
        Ok(TrackerReply::Record { record }) => Some(record),
        _ => None,
    }
}

/// The `files` line of `name` as B's shell prints it.
fn files_line(s: &Swarm, name: &str) -> String {
    let out = s.shell("lister", "files\n", &[]);
    let stdout = text(&out).0;
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not listed:\n{stdout}"))
        .to_string()
}

#[test]
fn the_owners_change_is_the_next_version_and_get_updates_to_it() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let v1 = test_bytes(300_000, 1);
    s.give("A", "new.bin", &v1);
    let _a = s.serve("A", "new.bin", &[]);
    let _b = s.serve("B", "new.bin", &["--get", "new.bin"]);
    wait_until(WAIT, "B to hold new.bin whole", || {
        files_line(&s, "new.bin").contains("seeders=2")
    });
    let line = files_line(&s, "new.bin");
    assert!(
        line.contains(&format!(
            "{} holders=2 seeders=2 version=1",
            hex(&md5_of(&v1))
        )) && line.contains("owner=A"),
        "{line}"
    );

    // The owner edits the file in place while B holds version 1: version 2.
    let mut v2 = v1.clone();
    v2[100_000..100_100].copy_from_slice(&[0xee; 100]);
    fs::write(s.path("A/files/new.bin"), &v2).unwrap();
    wait_until(WAIT, "version 2 on the tracker", || {
        current(&tracker, "new.bin").is_some_and(|r| r.version == 2 && r.md5 == md5_of(&v2))
    });
    let line = files_line(&s, "new.bin");
    assert!(
        line.contains("version=2") && line.contains("older=1"),
        "{line}"
    );

    // `get` on a peer holding version 1 updates it, and says so.
    let out = s.shell("C", "get new.bin\n", &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(fs::read(s.path("C/files/new.bin")).unwrap(), v2);
    // B (serving) is told nothing yet: it still holds version 1 and
    // keeps it until asked (or until it follows the name).
    assert_eq!(fs::read(s.path("B/files/new.bin")).unwrap(), v1);
    let mut b = _b;
    b.kill();
    let out = s.shell("B", "get new.bin\nmyfiles\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        done_line(&stdout, "new.bin").contains(&hex(&md5_of(&v2))),
        "{stdout}"
    );
    assert!(stderr.contains("version 2 replaces version 1"), "{stderr}");
    assert_eq!(fs::read(s.path("B/files/new.bin")).unwrap(), v2);
    // A `get` of what is already current fetches nothing.
    let out = s.shell("B", "get new.bin\n", &[]);
    let stdout = text(&out).0;
    assert!(sources(&stdout).is_empty(), "{stdout}");
}

#[test]
fn other_content_under_a_taken_name_is_refused_and_not_shared() {
    let s = Swarm::new();
    let mine = test_bytes(50_000, 2);
    s.give("A", "new.bin", &mine);
    let _a = s.serve("A", "new.bin", &[]);

    // D starts with its own new.bin: refused by the tracker, so D does
    // not share it, says why, and keeps the file.
    let theirs = test_bytes(40_000, 3);
    s.give("D", "new.bin", &theirs);
    let out = s.shell("D", "myfiles\nget new.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("not sharing new.bin") && stderr.contains("owned by A"),
        "{stderr}"
    );
    assert!(
        stdout.contains("no files"),
        "myfiles lists nothing: {stdout}"
    );
    assert!(
        stderr.contains("error: ") && stderr.contains("exists but is not shared"),
        "get fetches nothing over it: {stderr}"
    );
    assert_eq!(fs::read(s.path("D/files/new.bin")).unwrap(), theirs);

    // `share` of other content under the name: refused with what to do,
    // and files/ untouched.
    fs::write(s.path("elsewhere.bin"), &theirs).unwrap();
    fs::create_dir_all(s.path("e")).unwrap();
    fs::rename(s.path("elsewhere.bin"), s.path("e/new.bin")).unwrap();
    let out = s.shell(
        "E",
        &format!("share {}\n", s.path("e/new.bin").display()),
        &[],
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("owned by A") && stderr.contains("hand the name over"),
        "{stderr}"
    );
    assert!(!s.path("E/files/new.bin").exists());
}

#[test]
fn share_of_new_content_by_the_owner_is_the_next_version() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let v1 = test_bytes(20_000, 4);
    let v2 = test_bytes(25_000, 5);
    fs::create_dir_all(s.path("src")).unwrap();
    fs::write(s.path("src/doc.bin"), &v1).unwrap();
    let share = format!("share {}\n", s.path("src/doc.bin").display());
    let out = s.shell("A", &share, &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    fs::write(s.path("src/doc.bin"), &v2).unwrap();
    let out = s.shell("A", &share, &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let r = current(&tracker, "doc.bin").unwrap();
    assert_eq!((r.version, r.owner.as_str(), r.md5), (2, "A", md5_of(&v2)));
    assert_eq!(fs::read(s.path("A/files/doc.bin")).unwrap(), v2);
}

#[test]
fn the_owner_hands_a_name_over() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let v1 = test_bytes(30_000, 6);
    s.give("A", "h.bin", &v1);
    let _a = s.serve("A", "h.bin", &[]);
    let out = s.shell("B", "handover h.bin C\n", &[]);
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("not in files/"), "{stderr}");

    let mut a = _a;
    a.kill();
    let out = s.shell("A", "handover h.bin C\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("h.bin is owned by C from version 2 on"),
        "{stdout}"
    );
    let r = current(&tracker, "h.bin").unwrap();
    assert_eq!((r.version, r.owner.as_str(), r.md5), (2, "C", md5_of(&v1)));
    // A no longer owns it: its change is refused.
    let out = s.shell("A", "handover h.bin D\n", &[]);
    assert!(text(&out).1.contains("owned by C"), "{:?}", text(&out));
}

#[test]
fn a_name_whose_holders_and_owner_left_is_free_again() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let v1 = test_bytes(20_000, 7);
    s.give("A", "old.bin", &v1);
    let a = s.serve("A", "old.bin", &[]);
    // A leaves for good (its goodbye removes it at once); the record stays
    // on the tracker, across a restart too.
    a.stop(WAIT);
    let mut s = s;
    s.tracker.restart();
    assert!(current(&tracker, "old.bin").is_some());
    // Another peer's content under the name: taken once the tracker has
    // been up long enough to know nobody holds it (10 s after a start).
    let mine = test_bytes(22_000, 8);
    fs::create_dir_all(s.path("src")).unwrap();
    fs::write(s.path("src/old.bin"), &mine).unwrap();
    let share = format!("share {}\n", s.path("src/old.bin").display());
    wait_until(WAIT, "the name to be free", || {
        let out = s.shell("B", &share, &[]);
        out.status.success()
    });
    let r = current(&tracker, "old.bin").unwrap();
    assert_eq!(
        (r.version, r.owner.as_str(), r.md5),
        (2, "B", md5_of(&mine))
    );
}

#[test]
fn a_download_under_way_when_the_next_version_appears_never_mixes_them() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let v1 = test_bytes(2_000_000, 9);
    s.give("A", "f.bin", &v1);
    let _a = s.serve("A", "f.bin", &[]);
    // G fetches slowly (4 s at 500 KiB/s) from A alone.
    let g = s.slow_get("500K", "partial/f.bin.part");
    std::thread::sleep(std::time::Duration::from_millis(800));
    // A changes the file: version 2. A stops serving version 1, so G
    // cannot finish it: it moves to version 2.
    let mut v2 = v1.clone();
    v2[..4096].copy_from_slice(&[1; 4096]);
    v2[1_500_000..1_504_096].copy_from_slice(&[2; 4096]);
    fs::write(s.path("A/files/f.bin"), &v2).unwrap();
    wait_until(WAIT, "version 2", || {
        current(&tracker, "f.bin").is_some_and(|r| r.version == 2)
    });
    let out = g.wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let got = fs::read(s.path("G/files/f.bin")).unwrap();
    assert!(got == v2, "G holds version 2 whole ({stdout}{stderr})");
    assert!(done_line(&stdout, "f.bin").contains(&hex(&md5_of(&v2))));
    assert!(stderr.contains("a new version appeared"), "{stderr}");
}
