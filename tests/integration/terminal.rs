//! What a user sees on a terminal: the live bar of `get` and the tracker's
//! `--dashboard`, each run on a pseudo-terminal; and what a file or a pipe
//! gets instead (plain text, no escape sequences).

use crate::common::swarm::holders;
use crate::common::*;
use nix::pty::{openpty, OpenptyResult, Winsize};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

/// A process whose stdin, stdout and stderr are a pseudo-terminal; what it
/// writes is collected, and we can type to it.
struct OnPty {
    child: Child,
    keyboard: File,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl OnPty {
    /// On a fresh pty, which says its size is 0x0: `COLUMNS` decides.
    fn spawn(program: &str, args: &[&str]) -> OnPty {
        OnPty::spawn_sized(program, args, None)
    }

    /// On a pty of `size` (columns, lines) when given.
    fn spawn_sized(program: &str, args: &[&str], size: Option<(u16, u16)>) -> OnPty {
        let winsize = size.map(|(cols, rows)| Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let OpenptyResult { master, slave } = openpty(winsize.as_ref(), None).expect("openpty");
        // openpty's descriptors are inherited across exec; other tests of
        // this binary spawn on other threads, and a child of theirs holding
        // our terminal would keep it open after ours has exited.
        close_on_exec(&master);
        close_on_exec(&slave);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .env("COLUMNS", "100")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // What it printed is on the pty, not in a file: `Piped` in the report.
        let child = spawn_noted(&mut cmd, &[]);
        // Our copies of the terminal's child end close here, so the reader
        // sees the end when the child exits.
        drop(cmd);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = File::from(master.try_clone().unwrap());
        let sink = screen.clone();
        // Detached: it ends with an error when the child's end closes.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        OnPty {
            child,
            keyboard: File::from(master),
            screen,
        }
    }

    fn type_line(&mut self, line: &str) {
        self.keyboard.write_all(line.as_bytes()).unwrap();
        self.keyboard.write_all(b"\n").unwrap();
        self.keyboard.flush().unwrap();
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }
}

impl Drop for OnPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn close_on_exec(fd: &impl AsRawFd) {
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    assert_eq!(r, 0, "fcntl(F_SETFD, FD_CLOEXEC) on the pty");
}

/// Starts a seeder `S` of `name` (`size` bytes) and waits until the
/// tracker lists it.
fn seeder(dir: &Path, tracker: &str, name: &str, size: usize) -> PeerProc {
    let files = dir.join("S/files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join(name), test_bytes(size, 3)).unwrap();
    let port = free_port().to_string();
    let sdir = dir.join("S");
    let s = PeerProc::spawn_logged(
        &[
            "S",
            &port,
            tracker,
            "--dir",
            sdir.to_str().unwrap(),
            "--serve",
        ],
        &dir.join("S.log"),
    );
    wait_until(WAIT, "S to register", || {
        holders(tracker, name).iter().any(|h| h == "S")
    });
    s
}

#[test]
fn get_on_a_terminal_runs_in_the_background_and_the_shell_keeps_working() {
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    let _s = seeder(dir.path(), &tracker.addr(), "f.bin", 6 * 1024 * 1024);
    let port = free_port().to_string();
    let gdir = dir.path().join("G");
    // The cap makes the download last a few seconds: many redraws.
    let mut g = OnPty::spawn(
        env!("CARGO_BIN_EXE_peer"),
        &[
            "G",
            &port,
            &tracker.addr(),
            "--dir",
            gdir.to_str().unwrap(),
            "--download-limit",
            "2M",
        ],
    );
    wait_until(WAIT, "the prompt", || g.screen().contains("> "));
    g.type_line("get f.bin");
    // The prompt comes back with the download's progress before it.
    wait_until(WAIT, "the progress in the prompt", || {
        g.screen().contains("[f.bin ")
    });
    // Half a command, while the prompt is redrawn: it stays on screen.
    g.keyboard.write_all(b"sta").unwrap();
    wait_until(WAIT, "a redraw with what was typed", || {
        let screen = g.screen();
        let after = screen.rsplit("[f.bin ").next().unwrap_or("").to_string();
        screen.matches("> sta").count() >= 2 && after.contains("> sta")
    });
    g.keyboard.write_all(b"tus\n").unwrap();
    wait_until(WAIT, "status while the download runs", || {
        g.screen().lines().any(|l| {
            l.split("\x1b[K")
                .any(|p| p.starts_with("f.bin [") && p.contains(" MB/s ETA "))
        })
    });
    assert!(!g.screen().contains("no downloads in progress"));
    wait_until(WAIT, "the done line", || {
        g.screen().contains("from S blocks=")
    });
    let screen = g.screen();
    // The contract's lines, each on a line of its own, plain.
    let done = screen
        .lines()
        .find_map(|l| l.split("\x1b[K").last().filter(|l| l.starts_with("done ")))
        .unwrap_or_else(|| panic!("{screen:?}"));
    assert!(
        done.starts_with("done f.bin bytes=6291456 md5="),
        "{done:?}"
    );
    assert!(!done.contains('\x1b'), "{done:?}");
    g.type_line("exit");
    assert!(wait_timeout(&mut g.child, WAIT).is_some_and(|s| s.success()));
}

/// A tracker with `--dashboard` on 127.0.0.1 and a free port, its stdout
/// on a pty or in a file.
fn dashboard_args(dir: &Path, port: &str) -> Vec<String> {
    vec![
        "--dashboard".into(),
        "--port".into(),
        port.into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--data".into(),
        dir.join("tracker").to_string_lossy().into_owned(),
    ]
}

/// The dashboard's row for S and movie.bin (columns are padded), which
/// ends with its rate column (`seeding`) and when it was last seen.
fn seeder_row(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next() == Some("S") && words.next() == Some("movie.bin")
}

fn accepts(addr: &str) -> bool {
    TcpStream::connect(addr).is_ok()
}

/// The frames drawn so far that are complete (the next one has begun; a
/// frame may reach us in more than one read), as written: the pty turns
/// each line feed into CR LF.
fn complete_frames(screen: &str) -> Vec<String> {
    let mut frames: Vec<String> = screen.split("\x1b[H").skip(1).map(String::from).collect();
    frames.pop();
    frames
}

/// A frame's lines as they land on the screen: CRs and the erase
/// sequences gone.
fn visible_lines(frame: &str) -> Vec<String> {
    frame
        .split('\n')
        .map(|l| {
            l.replace(['\r'], "")
                .replace("\x1b[K", "")
                .replace("\x1b[J", "")
        })
        .collect()
}

#[test]
fn the_dashboard_redraws_in_place_on_a_terminal() {
    let dir = temp_dir();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let args = dashboard_args(dir.path(), &port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = OnPty::spawn(env!("CARGO_BIN_EXE_tracker"), &args);
    wait_until(WAIT, "the tracker", || accepts(&addr));
    wait_until(WAIT, "an empty frame", || {
        t.screen().contains("peers 0   files 0")
    });
    let _s = seeder(dir.path(), &addr, "movie.bin", 100_000);
    let complete = complete_frames;
    // A frame with the seeder: its id, the file, a full bar at 100%.
    let with_s = |f: &String| {
        f.contains("peers 1   files 1")
            && f.lines().any(|l| seeder_row(l) && l.contains("#] 100.0%"))
    };
    wait_until(WAIT, "a frame with S", || {
        complete(&t.screen()).iter().any(with_s)
    });
    let frames = complete(&t.screen());
    assert!(frames.len() >= 2, "{frames:?}");
    for f in &frames {
        assert!(f.starts_with("p2pshare tracker   up 0:0"), "{f:?}");
        // Drawn over the last frame, never scrolled: no clear-screen.
        assert!(f.ends_with("\x1b[J"), "{f:?}");
        assert!(!f.contains("\x1b[2J"), "{f:?}");
    }
    // The log goes to a file (at RUST_LOG's level), not over the dashboard.
    assert!(t.screen().contains("logging to "), "{:?}", t.screen());
    assert!(dir.path().join("tracker/tracker.log").is_file());
}

/// More peers than an 80x12 terminal has lines for: every frame fits the
/// size the terminal reports (not `COLUMNS`, which says 100 here), so the
/// header is never scrolled away, and the last line says who is left out.
#[test]
fn the_dashboard_fits_a_small_terminal_with_many_peers() {
    const PEERS: usize = 8;
    let (cols, rows) = (80, 12);
    let dir = temp_dir();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let args = dashboard_args(dir.path(), &port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = OnPty::spawn_sized(env!("CARGO_BIN_EXE_tracker"), &args, Some((cols, rows)));
    wait_until(WAIT, "the tracker", || accepts(&addr));
    // Every peer seeds its own copy of one file: a row each.
    let data = test_bytes(50_000, 7);
    let _peers: Vec<PeerProc> = (0..PEERS)
        .map(|i| {
            let id = format!("P{i}");
            let pdir = dir.path().join(&id);
            fs::create_dir_all(pdir.join("files")).unwrap();
            fs::write(pdir.join("files/shared.bin"), &data).unwrap();
            let port = free_port().to_string();
            PeerProc::spawn_logged(
                &[
                    &id,
                    &port,
                    &addr,
                    "--dir",
                    pdir.to_str().unwrap(),
                    "--serve",
                ],
                &dir.path().join(format!("{id}.log")),
            )
        })
        .collect();
    let all = format!("peers {PEERS}   files 1");
    wait_until(WAIT, "a frame with every peer", || {
        complete_frames(&t.screen())
            .iter()
            .any(|f| f.contains(&all))
    });
    let frames = complete_frames(&t.screen());
    for f in &frames {
        let lines = visible_lines(f);
        assert!(
            lines.len() <= usize::from(rows),
            "{} lines on a {rows}-line terminal: {f:?}",
            lines.len()
        );
        assert!(lines[0].starts_with("p2pshare tracker   up 0:0"), "{f:?}");
        for l in &lines {
            assert!(
                l.chars().count() < usize::from(cols),
                "wider than {cols} columns less one: {l:?}"
            );
        }
    }
    let last = visible_lines(frames.iter().rfind(|f| f.contains(&all)).unwrap());
    assert_eq!(last.len(), usize::from(rows), "a full screen: {last:#?}");
    let shown = last.iter().filter(|l| l.starts_with('P')).count();
    assert!(shown >= 2, "{last:#?}");
    assert_eq!(
        last.last().unwrap(),
        &format!("… and {} more peers", PEERS - shown),
        "{last:#?}"
    );
}

#[test]
fn the_dashboard_to_a_file_prints_plain_frames_when_something_changes() {
    let dir = temp_dir();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("dashboard.out");
    let out = File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracker"));
    cmd.args(dashboard_args(dir.path(), &port))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null());
    let mut t = spawn_noted(&mut cmd, &[&log]);
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _t = Kill(&mut t);
    wait_until(WAIT, "the tracker", || accepts(&addr));
    let _s = seeder(dir.path(), &addr, "movie.bin", 100_000);
    let text = || fs::read_to_string(&log).unwrap_or_default();
    wait_until(WAIT, "a frame with S", || {
        text()
            .lines()
            .any(|l| seeder_row(l) && l.contains("#] 100.0%    seeding"))
    });
    let text = text();
    assert!(
        text.contains("peers 0   files 0"),
        "the first frame: {text}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
}
