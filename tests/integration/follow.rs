//! Followers, end to end with the real binaries: what is copied into one
//! peer's `files/` reaches the peers that follow it, with nobody typing
//! `get`; the patterns are kept across restarts; a short disk fetches
//! nothing and says so.

use crate::common::swarm::*;
use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// Starts `id` serving with nothing to share yet (its files/ exists).
fn serve_empty(s: &Swarm, id: &str, extra: &[&str]) -> PeerProc {
    fs::create_dir_all(s.path(id).join("files")).unwrap();
    let p = s.start(id, extra, &format!("{id}.log"));
    wait_until(WAIT, &format!("{id} to start"), || {
        p.logs().contains("listening on")
    });
    p
}

/// Writes a folder outside `files/`, then moves it in whole, as a user
/// would after `cp -r` to a scratch place.
fn copy_folder_in(s: &Swarm, id: &str, name: &str, files: &[(&str, &[u8])]) {
    let staging = s.path("staging").join(name);
    for (path, bytes) in files {
        let path = staging.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    fs::rename(&staging, s.path(id).join("files").join(name)).unwrap();
}

fn copy_file_in(s: &Swarm, id: &str, name: &str, bytes: &[u8]) {
    let staging = s.path("staging");
    fs::create_dir_all(&staging).unwrap();
    fs::write(staging.join(name), bytes).unwrap();
    fs::rename(staging.join(name), s.path(id).join("files").join(name)).unwrap();
}

fn has(path: &Path, bytes: &[u8]) -> bool {
    fs::read(path).is_ok_and(|b| b == bytes)
}

#[test]
fn followers_receive_what_is_copied_in_and_a_pattern_takes_only_its_match() {
    let s = Swarm::new();
    let tracker = s.tracker.addr();
    let _owner = serve_empty(&s, "O", &[]);
    // Six followers of everything (the fleet), one of a prefix.
    let all: Vec<(String, PeerProc)> = (0..6)
        .map(|i| {
            let id = format!("ALL{i}");
            let p = serve_empty(&s, &id, &["--follow", "*"]);
            (id, p)
        })
        .collect();
    let logs = serve_empty(&s, "LOGS", &["--follow", "logs-*"]);

    // A file no pattern of LOGS matches, listed by the tracker before
    // the folder exists: LOGS has looked at it by the time it takes the
    // folder.
    let big = test_bytes(300_000, 1);
    copy_file_in(&s, "O", "big.bin", &big);
    wait_until(WAIT, "O to share big.bin", || {
        holders(&tracker, "big.bin").contains(&"O".to_string())
    });
    let a_log = test_bytes(50_000, 2);
    let b_log = test_bytes(9_000, 3);
    copy_folder_in(
        &s,
        "O",
        "logs-app",
        &[("a.log", &a_log), ("old/b.log", &b_log)],
    );

    wait_until(WAIT, "every ALL follower to hold both items", || {
        all.iter().all(|(id, _)| {
            has(&s.path(&format!("{id}/files/big.bin")), &big)
                && has(&s.path(&format!("{id}/files/logs-app/a.log")), &a_log)
                && has(&s.path(&format!("{id}/files/logs-app/old/b.log")), &b_log)
        })
    });
    wait_until(WAIT, "LOGS to hold the folder", || {
        has(&s.path("LOGS/files/logs-app/a.log"), &a_log)
            && has(&s.path("LOGS/files/logs-app/old/b.log"), &b_log)
    });
    assert_eq!(files_in(&s.path("LOGS/files")), ["logs-app"]);
    let log = logs.logs();
    assert!(
        !log.contains("big.bin"),
        "LOGS never touched big.bin:\n{log}"
    );
    // The followers serve what they fetched, as any download.
    wait_until(WAIT, "the followers listed as holders", || {
        let h = holders(&tracker, "logs-app");
        all.iter().all(|(id, _)| h.contains(id)) && h.contains(&"LOGS".to_string())
    });
    for (_, p) in &all {
        let log = p.logs();
        assert!(log.contains("following: big.bin version 1"), "{log}");
        assert!(!log.contains("error"), "{log}");
    }

    // The owner edits the file: the next version reaches ALL by itself.
    let mut v2 = big.clone();
    v2[200_000..200_500].copy_from_slice(&[0xab; 500]);
    fs::write(s.path("O/files/big.bin"), &v2).unwrap();
    wait_until(WAIT, "every ALL follower to hold version 2", || {
        all.iter()
            .all(|(id, _)| has(&s.path(&format!("{id}/files/big.bin")), &v2))
    });
    // The line is printed once the new version is installed, a moment
    // after the file is in place.
    wait_until(WAIT, "the follower to say it holds version 2", || {
        all[0].1.logs().contains("following: big.bin version 2")
    });
    assert!(!s.path("LOGS/files/big.bin").exists());
}

#[test]
fn follow_unfollow_following_round_trip_and_are_kept_across_a_restart() {
    let s = Swarm::new();
    let out = s.shell(
        "F",
        "following\n\
         follow logs-*\n\
         follow *.iso\n\
         follow logs-*\n\
         follow a/b\n\
         following\n\
         unfollow *.iso\n\
         unfollow nope*\n",
        &["--follow", "v?"],
    );
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "two commands failed: {stdout}{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "v?",
            "following logs-*",
            "following *.iso",
            "already following logs-*",
            "v?",
            "logs-*",
            "*.iso",
            "no longer following *.iso (what it fetched stays in files/)",
        ],
        "{stdout}"
    );
    assert!(
        stderr.contains("error: bad follow pattern \"a/b\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: not following \"nope*\""),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(s.path("F/follow")).unwrap(),
        "v?\nlogs-*\n"
    );

    // Started again with another flag: the kept ones, then the new one.
    let out = s.shell("F", "following\nunfollow v?\n", &["--follow", "*.img"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "v?",
            "logs-*",
            "*.img",
            "no longer following v? (what it fetched stays in files/)"
        ],
        "{stdout}"
    );

    let out = s.shell("F", "unfollow logs-*\nunfollow *.img\nfollowing\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.lines().last() == Some("not following anything"),
        "{stdout}"
    );
}

#[test]
fn a_follower_short_of_disk_space_fetches_nothing_and_says_so() {
    let s = Swarm::new();
    let data = test_bytes(200_000, 4);
    s.give("O", "x.bin", &data);
    let _owner = s.serve("O", "x.bin", &[]);
    let port = free_port().to_string();
    let dir = s.path("F");
    let tracker = s.tracker.addr();
    // A debug build takes the free space from this variable (room.rs).
    let mut f = OpenShell::start(
        &[
            "F",
            &port,
            &tracker,
            "--dir",
            dir.to_str().unwrap(),
            "--follow",
            "*",
        ],
        &[("P2PSHARE_TEST_FREE_BYTES", "1000")],
        &s.path("F.log"),
    );
    wait_until(WAIT, "the disk check to fail", || {
        f.output()
            .contains("following: x.bin: not enough free disk space for x.bin")
    });
    f.send("status\n");
    wait_until(WAIT, "status to show it", || {
        f.output().lines().any(|l| {
            l.contains("(follow) error: not enough free disk space for x.bin")
                && l.contains("nothing was fetched")
        })
    });
    assert!(!dir.join("files/x.bin").exists());
    let partial = files_in(&dir.join("partial"));
    assert!(
        partial.iter().all(|n| !n.contains("x.bin")),
        "nothing fetched: {partial:?}"
    );
}

#[test]
fn a_followed_item_is_receive_only_a_local_edit_is_kept_aside_and_undone() {
    let s = Swarm::new();
    let _owner = serve_empty(&s, "O", &[]);
    let f = serve_empty(&s, "F", &["--follow", "*"]);
    let v1 = test_bytes(200_000, 11);
    copy_file_in(&s, "O", "doc.bin", &v1);
    let mine = s.path("F/files/doc.bin");
    wait_until(WAIT, "F to follow doc.bin", || has(&mine, &v1));

    // The user edits F's copy in place: never published; moved to kept/,
    // the swarm's version fetched back.
    let mut edited = v1.clone();
    edited[..10].copy_from_slice(b"local edit");
    fs::write(&mine, &edited).unwrap();
    wait_until(WAIT, "F to restore doc.bin", || {
        has(&mine, &v1) && f.logs().contains("receive-only")
    });
    let kept: Vec<PathBuf> = fs::read_dir(s.path("F/kept"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(has(&kept[0], &edited), "the edit is kept whole");
    let logs = f.logs();
    assert!(
        logs.contains(&kept[0].display().to_string()),
        "says where: {logs}"
    );
    let out = s.shell("X", "files\n", &[]);
    let listing = text(&out).0;
    assert!(
        listing.contains("doc.bin 200000") && listing.contains("version=1 owner=O"),
        "{listing}"
    );

    // `share` of other content under a followed name: refused.
    let mut f = f;
    f.kill();
    fs::write(s.path("elsewhere"), b"other").unwrap();
    fs::create_dir_all(s.path("x")).unwrap();
    fs::rename(s.path("elsewhere"), s.path("x/doc.bin")).unwrap();
    let out = s.shell(
        "F",
        &format!("share {}\n", s.path("x/doc.bin").display()),
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("receive-only"), "{stderr}");
    assert!(has(&mine, &v1));
}
