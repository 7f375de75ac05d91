//! A newcomer's trip-ups of issue 22, each with the real binaries: errors
//! that say what to do, names, the symlink warning, hard links, the clock,
//! a full disk, and what a peer says at start.

use crate::common::swarm::*;
use crate::common::*;
use std::path::Path;
use std::process::Command;

/// A tmpfs of `size` (mount's syntax, `30m`) at `at`, unmounted when
/// dropped; None (with a line saying the test is skipped) when this
/// process may not mount, as when it is not root.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}{options}"))
            .arg("tmpfs")
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (run as root to test this)");
            return None;
        }
        Some(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A peer started with `args` and no commands, to its end.
fn peer_output(args: &[&str]) -> (Option<i32>, String) {
    let out = PeerProc::spawn(args, Some("")).wait(WAIT);
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[test]
fn a_dangling_files_link_and_a_read_only_dir_say_what_to_do() {
    let tmp = temp_dir();
    let port = free_port().to_string();
    let dir = tmp.path().join("A");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone"), dir.join("files")).unwrap();
    let d = dir.to_str().unwrap();
    let (code, said) = peer_output(&["A", &port, "127.0.0.1:1", "--dir", d]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "error: {}/files is a symlink to {}/gone, which does not exist; create that folder, or remove the link",
            d,
            tmp.path().display()
        )),
        "{said}"
    );

    let ro = tmp.path().join("ro");
    let Some(_mount) = Mount::tmpfs(&ro, "1m", ",ro") else {
        return;
    };
    let d = ro.join("B");
    let (code, said) = peer_output(&["B", &port, "127.0.0.1:1", "--dir", d.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("the file system is read-only; give --dir a writable place"),
        "{said}"
    );
    assert!(!said.contains("os error"), "{said}");
}

#[test]
fn the_name_rules_allow_two_dots_inside_and_errors_name_the_path() {
    let s = Swarm::new();
    let home = s.path("home");
    std::fs::create_dir_all(home.join("docs/sub")).unwrap();
    std::fs::write(home.join("a..b.txt"), b"two dots inside").unwrap();
    std::fs::write(home.join("docs/sub/ trailing.txt"), b"x").unwrap();
    let cmds = format!(
        "share {}\nshare {}\n",
        home.join("a..b.txt").display(),
        home.join("docs").display()
    );
    let out = s.shell("A", &cmds, &[]);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("shared a..b.txt 15 "), "{stdout}{stderr}");
    let err = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("the folder was shared:\n{stdout}{stderr}"));
    assert!(
        err.contains(&format!(
            "{}",
            home.join("docs/sub/ trailing.txt").display()
        )) && err.contains("white space"),
        "the error names the file inside the folder: {err}"
    );

    let port = free_port().to_string();
    let (code, said) = peer_output(&["Pé", &port, "127.0.0.1:1"]);
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("ASCII letters"), "{said}");
}

#[test]
fn a_symlink_in_a_shared_folder_is_warned_about_once() {
    let s = Swarm::new();
    let folder = s.path("A/files/tree");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", folder.join("link")).unwrap();
    let a = s.serve("A", "tree", &[]);
    // The watcher lists files/ twice a second: give it a dozen listings.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let logs = a.logs();
    assert_eq!(
        logs.matches("(a symlink?): left out").count(),
        1,
        "once for the item, not at every listing:\n{logs}"
    );
}

#[test]
fn a_hard_link_to_another_users_file_is_not_shared() {
    let s = Swarm::new();
    let files = s.path("A/files");
    std::fs::create_dir_all(&files).unwrap();
    let theirs = s.path("theirs.txt");
    std::fs::write(&theirs, b"not yours to share").unwrap();
    // Only root may give a file away (chown to nobody).
    let given = Command::new("chown")
        .args(["65534"])
        .arg(&theirs)
        .status()
        .is_ok_and(|st| st.success());
    if !given {
        eprintln!("skipped: cannot chown a file to another user (run as root to test this)");
        return;
    }
    std::fs::hard_link(&theirs, files.join("linked.txt")).unwrap();
    std::fs::write(s.path("mine.txt"), b"my own file").unwrap();
    std::fs::hard_link(s.path("mine.txt"), files.join("mine.txt")).unwrap();
    std::fs::create_dir_all(files.join("tree")).unwrap();
    std::fs::hard_link(&theirs, files.join("tree/linked.txt")).unwrap();
    std::fs::write(files.join("tree/own.txt"), b"own").unwrap();

    let a = s.serve("A", "mine.txt", &[]);
    wait_until(WAIT, "the folder registered", || {
        holders(&s.tracker.addr(), "tree") == ["A"]
    });
    assert!(
        holders(&s.tracker.addr(), "linked.txt").is_empty(),
        "{}",
        a.logs()
    );
    let logs = a.logs();
    assert!(
        logs.contains("linked.txt is a hard link to a file of another user: not shared"),
        "{logs}"
    );
    assert!(
        logs.contains("tree/linked.txt: a hard link to a file of another user: left out"),
        "{logs}"
    );
    let out = s.shell("B", "get tree\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(s.path("B/files/tree/own.txt").exists());
    assert!(!s.path("B/files/tree/linked.txt").exists());
}

/// A shell peer `id` on `dir` running `commands`, with `env` set.
fn shell_at(
    s: &Swarm,
    id: &str,
    dir: &Path,
    commands: &str,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let port = free_port().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args([id, &port, &s.tracker.addr(), "--dir", dir.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = spawn_noted(&mut cmd, &[]);
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(commands.as_bytes()).unwrap();
    }
    let out = wait_output(child, WAIT * 3);
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

#[test]
fn a_short_disk_is_refused_first_and_a_full_one_keeps_what_it_verified() {
    let s = Swarm::new();
    let size = 100_000_000;
    let data = test_bytes(size, 31);
    s.give("A", "f.bin", &data);
    let _a = s.serve("A", "f.bin", &[]);
    let Some(_mount) = Mount::tmpfs(&s.path("small"), "30m", "") else {
        return;
    };
    let gdir = s.path("small/G");

    // The check: 100 MB do not fit in 30 MB, and nothing is fetched.
    let (ok, stdout, stderr) = shell_at(&s, "G", &gdir, "get f.bin\n", &[]);
    assert!(!ok, "{stdout}{stderr}");
    let err = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        err.starts_with("error: not enough free disk space for f.bin: it needs 100.1 MB"),
        "{err}"
    );
    assert!(err.contains("free; nothing was fetched"), "{err}");
    assert!(!gdir.join("partial/f.bin.part").exists());

    // The disk fills anyway (the check told there is room, as when
    // something else fills it meanwhile): what was verified is kept.
    let (ok, stdout, stderr) = shell_at(
        &s,
        "G",
        &gdir,
        "get f.bin\n",
        &[("P2PSHARE_TEST_FREE_BYTES", "1000000000000")],
    );
    assert!(!ok, "{stdout}{stderr}");
    let err = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(err.contains("the disk is full; "), "{err}");
    let kept: u64 = err
        .split("; the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("how many blocks were kept? {err}"));
    assert!(
        err.contains(&format!("the {kept} verified blocks are kept")),
        "{err}"
    );
    assert!(
        kept > 1000,
        "some MB were written before the disk filled: {err}"
    );

    // A larger disk: only what the first run did not write is fetched.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=300m"])
        .arg(s.path("small"))
        .status()
        .unwrap();
    assert!(grown.success());
    let (ok, stdout, stderr) = shell_at(&s, "G", &gdir, "get f.bin\n", &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(std::fs::read(gdir.join("files/f.bin")).unwrap() == data);
    let total_blocks = (size as u64).div_ceil(4096);
    let fetched: u64 = sources(&stdout).iter().map(|(_, b)| b).sum();
    eprintln!(
        "{kept} of {total_blocks} blocks kept on the full disk; {fetched} fetched after it grew"
    );
    assert!(
        fetched <= total_blocks - kept,
        "fetched {fetched} of {total_blocks} blocks, {kept} were kept:\n{stdout}"
    );
    assert!(stdout.contains("resumed f.bin: "), "{stdout}");
}

/// A swarm secret file in `dir`: 32 random-looking bytes as 64 hex digits.
fn secret(dir: &Path, name: &str, seed: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let hex: String = test_bytes(32, seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&path, hex + "\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

/// A `--serve` peer `id` of `tracker` with `extra`, logged.
fn serve_on(dir: &Path, id: &str, tracker: &str, extra: &[&str]) -> PeerProc {
    let port = free_port().to_string();
    let d = dir.join(id);
    let mut args = vec![id, &port, tracker, "--dir", d.to_str().unwrap(), "--serve"];
    args.extend_from_slice(extra);
    PeerProc::spawn_logged_at(&args, &dir.join(format!("{id}.log")), "warn")
}

/// Waits until `p`'s log has a line containing `said`, and returns it.
fn line_with(p: &PeerProc, said: &str) -> String {
    let mut found = String::new();
    wait_until(WAIT, &format!("a line with {said:?}"), || {
        match p.logs().lines().find(|l| l.contains(said)) {
            Some(l) => {
                found = l.to_string();
                true
            }
            None => false,
        }
    });
    found
}

#[test]
fn a_peer_says_at_start_whether_its_tracker_answers_and_which_swarm_it_is() {
    let tmp = temp_dir();
    let dir = tmp.path();
    // No tracker at all.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let p = serve_on(dir, "N", &nowhere, &[]);
    let l = line_with(&p, "warning: ");
    assert!(
        l.contains(&format!("cannot reach the tracker at {nowhere}"))
            && l.ends_with("retrying in the background"),
        "{l}"
    );
    // An open tracker.
    let open = TrackerProc::start(&dir.join("open/tracker"));
    let p = serve_on(dir, "O", &open.addr(), &[]);
    let l = line_with(&p, "answers");
    assert_eq!(
        l,
        format!("tracker {} answers; the swarm is open (no --secret-file): anyone who can reach the tracker may join", open.addr())
    );
    // A closed one: with its secret, with none, with another.
    let (s1, s2) = (secret(dir, "s1", 1), secret(dir, "s2", 2));
    let closed = TrackerProc::start_with(&dir.join("closed/tracker"), &["--secret-file", &s1]);
    let p = serve_on(dir, "C", &closed.addr(), &["--secret-file", &s1]);
    let l = line_with(&p, "answers");
    assert!(l.ends_with("answers; the swarm is closed: only peers with the same --secret-file take part, and all traffic is encrypted"), "{l}");
    let p = serve_on(dir, "D", &closed.addr(), &[]);
    let l = line_with(&p, "warning: ");
    assert!(
        l.contains("runs a closed swarm and we have no secret, so the swarm secret does not match: start with --secret-file"),
        "{l}"
    );
    let p = serve_on(dir, "E", &closed.addr(), &["--secret-file", &s2]);
    let l = line_with(&p, "warning: ");
    assert!(l.contains("the swarm secret does not match"), "{l}");
}

#[test]
fn after_a_restart_partial_downloads_are_listed_at_start_and_in_status() {
    let s = Swarm::new();
    let data = test_bytes(4 << 20, 41);
    s.give("A", "f.bin", &data);
    let _a = s.serve("A", "f.bin", &[]);
    let g = s.slow_get("1M", "partial/f.bin.state");
    // Some verified blocks first, then Ctrl-C.
    let state = s.path("G/partial/f.bin.state");
    wait_until(WAIT, "a verified piece saved", || {
        std::fs::read(&state)
            .ok()
            .and_then(|b| p2pshare::download::resume::state_progress(&b))
            .is_some_and(|(have, _)| have > 0)
    });
    signal(g.pid(), "INT");
    let out = g.wait(WAIT);
    assert!(out.status.success());

    let out = s.shell("G", "status\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let listed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("f.bin: "))
        .collect();
    assert_eq!(listed.len(), 2, "at start and in status:\n{stdout}");
    for l in listed {
        assert!(
            l.ends_with(" % verified and kept; run `get f.bin` to resume"),
            "{l}"
        );
        let pct: f64 = l["f.bin: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pct > 0.0 && pct < 100.0, "{l}");
    }
    assert!(!stdout.contains("no downloads in progress"), "{stdout}");
}

#[test]
fn a_clock_two_minutes_off_is_named_on_the_peer_and_once_at_the_tracker() {
    let Some(libfaketime) = libfaketime() else {
        eprintln!("skipped: no faketime (apt-get install faketime; make test installs it as root)");
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path();
    let s1 = secret(dir, "s1", 3);
    let tracker = TrackerProc::start_with(&dir.join("tracker"), &["--secret-file", &s1]);
    let port = free_port().to_string();
    let vdir = dir.join("V");
    let log = dir.join("V.log");
    let out = std::fs::File::create(&log).unwrap();
    // The library itself, not the `faketime` wrapper: the wrapper forks
    // the peer and waits, so killing it left the peer running.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args(["V", &port, &tracker.addr()])
        .env("LD_PRELOAD", &libfaketime)
        .env("FAKETIME", "-120s")
        .args([
            "--dir",
            vdir.to_str().unwrap(),
            "--secret-file",
            &s1,
            "--serve",
        ])
        .env("RUST_LOG", "warn")
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let started = std::time::Instant::now();
    let v = PeerProc {
        child: Some(spawn_noted(&mut cmd, &[&log])),
        log: Some(log),
    };
    let l = line_with(&v, "clock");
    eprintln!("the clock was named after {:?}: {l}", started.elapsed());
    assert!(
        l.contains("120 s behind the server's clock")
            || l.contains("119 s behind the server's clock"),
        "{l}"
    );
    // Two more tries (one each 5 s), still one line at the tracker.
    std::thread::sleep(health_retry() * 2 + std::time::Duration::from_secs(1));
    let logs = tracker.logs();
    let said = logs.matches("said once per address").count();
    assert_eq!(said, 1, "{logs}");
}

/// libfaketime, where Debian's faketime package puts it (under the
/// multiarch directory) or a build from source does.
fn libfaketime() -> Option<std::path::PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime"));
    let mut places = dirs.collect::<Vec<_>>();
    places.extend(["/usr/lib/faketime", "/usr/local/lib/faketime"].map(Into::into));
    places
        .into_iter()
        .map(|d| d.join("libfaketime.so.1"))
        .find(|p| p.is_file())
}

fn health_retry() -> std::time::Duration {
    p2pshare::peer::session::health::RETRY_EVERY
}
