//! Folders shared as one item, end to end with the real binaries: nested
//! folders, empty folders and empty files survive a `get`; `share DIR`;
//! a folder copied into a running peer's `files/`.

use crate::common::swarm::*;
use crate::common::*;
use std::fs;
use std::path::Path;

/// Every folder and file under `root`, relative paths sorted, with the
/// bytes of each file (None for a folder).
fn listing(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(path);
                out.push((rel, None));
            } else if t.is_file() {
                out.push((rel, Some(fs::read(&path).unwrap())));
            } else {
                out.push((rel, Some(b"(a symlink)".to_vec())));
            }
        }
    }
    out.sort();
    out
}

/// A tree with a bit of everything: nested folders, an empty folder,
/// an empty file, a file of several pieces, a name with a space.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/deep/deeper")).unwrap();
    fs::create_dir_all(root.join("empty folder")).unwrap();
    fs::write(root.join("readme.txt"), b"hello folders\n").unwrap();
    fs::write(root.join("docs/empty.txt"), b"").unwrap();
    fs::write(root.join("docs/deep/data.bin"), test_bytes(150_000, 7)).unwrap();
    fs::write(root.join("docs/deep/deeper/z"), b"z").unwrap();
}

#[test]
fn a_folder_round_trips_through_get_with_an_identical_tree() {
    let s = Swarm::new();
    let files = s.path("A/files");
    make_tree(&files.join("tree"));
    let _a = s.serve("A", "tree", &[]);
    let out = s.shell("B", "files\nwhohas tree\nget tree\nmyfiles\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        listing(&s.path("B/files/tree")),
        listing(&files.join("tree")),
        "{stdout}{stderr}"
    );
    assert!(
        done_line(&stdout, "tree").contains("bytes=150015 "),
        "{stdout}"
    );
    // `files` and `myfiles` show it as a folder with its file count, and
    // `myfiles` lists each file with its own MD5.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("tree/ 150015 ") && l.ends_with(" files=4")),
        "{stdout}"
    );
    let data_md5 = p2pshare::units::hex(&p2pshare::record::md5_of(&test_bytes(150_000, 7)));
    assert!(
        stdout.contains(&format!("  tree/docs/deep/data.bin 150000 {data_md5}")),
        "{stdout}"
    );
    assert!(stdout.contains("  tree/docs/empty.txt 0 "), "{stdout}");
    // Nothing left half-made: no payload, no scratch tree.
    assert!(
        files_in(&s.path("B/partial")).is_empty(),
        "{:?}",
        files_in(&s.path("B/partial"))
    );
    assert_eq!(files_in(&s.path("B/files")), ["tree"]);
}

#[test]
fn share_dir_copies_the_folder_in_and_another_peer_gets_it() {
    let s = Swarm::new();
    let src = s.path("elsewhere/album");
    make_tree(&src);
    // A symlink inside is left out, never followed.
    std::os::unix::fs::symlink("/etc", src.join("docs/link")).unwrap();
    let out = s.shell("A", &format!("share {}\n", src.display()), &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("shared album/ 150015 ") && l.ends_with(" files=4")),
        "{stdout}"
    );
    let mut expected = listing(&src);
    expected.retain(|(p, _)| p != "docs/link");
    assert_eq!(listing(&s.path("A/files/album")), expected);

    let _a = s.serve("A", "album", &[]);
    let out = s.shell("B", "get album\n", &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(listing(&s.path("B/files/album")), expected);
}

#[test]
fn a_folder_copied_into_a_running_peer_is_shared() {
    let s = Swarm::new();
    let data = b"first".to_vec();
    s.give("A", "seed.txt", &data);
    let _a = s.serve("A", "seed.txt", &[]);
    // Assembled elsewhere, then moved in with one rename.
    let staged = s.path("staging/live");
    make_tree(&staged);
    fs::rename(&staged, s.path("A/files/live")).unwrap();
    let tracker = s.tracker.addr();
    wait_until(WAIT, "A to share the folder live", || {
        holders(&tracker, "live") == ["A"]
    });
    let out = s.shell("B", "get live\n", &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        listing(&s.path("B/files/live")),
        listing(&s.path("A/files/live"))
    );

    // A file inside changes: the folder is withdrawn, hashed again and
    // published anew; B gets the new tree.
    let first_md5 = record_md5(&tracker, "live");
    fs::write(s.path("A/files/live/docs/empty.txt"), b"not empty any more").unwrap();
    wait_until(WAIT, "the new live on the tracker", || {
        let now = record_md5(&tracker, "live");
        now.is_some() && now != first_md5 && holders(&tracker, "live") == ["A"]
    });
    fs::remove_dir_all(s.path("B/files/live")).unwrap();
    let out = s.shell("B", "get live\n", &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        listing(&s.path("B/files/live")),
        listing(&s.path("A/files/live"))
    );
    assert_eq!(
        fs::read(s.path("B/files/live/docs/empty.txt")).unwrap(),
        b"not empty any more"
    );
}

/// The MD5 of the tracker's record of `name`, if it has one.
fn record_md5(tracker: &str, name: &str) -> Option<[u8; 16]> {
    use p2pshare::net::conn::Conn;
    use p2pshare::wire::{TrackerReply, TrackerRequest, MAX_FRAME};
    let mut conn = Conn::connect(tracker, MAX_FRAME).ok()?;
    match conn.call::<TrackerReply>(&TrackerRequest::GetRecord { name: name.into() }) {
        Ok(TrackerReply::Record { record }) => Some(record.md5),
        _ => None,
    }
}

#[test]
fn the_web_ui_shows_a_folder_and_does_not_offer_to_save_it() {
    let s = Swarm::new();
    let dir = s.path("A");
    make_tree(&dir.join("files/tree"));
    let (_a, url) = web_peer("A", &s.tracker, &dir, &[]);
    let tracker = s.tracker.addr();
    wait_until(WAIT, "A to share tree", || {
        holders(&tracker, "tree") == ["A"]
    });
    let home = http::get(&url, "/").text();
    assert!(home.contains("tree/ (4 files)"), "{home}");
    assert!(!home.contains("/files/tree"), "no save link: {home}");
    let swarm = http::get(&url, "/download").text();
    assert!(swarm.contains("tree/ (4 files)"), "{swarm}");
    let save = http::get(&url, "/files/tree");
    assert_eq!(save.status, 409, "{}", save.text());
    assert!(save.text().contains("is a folder"), "{}", save.text());
}
