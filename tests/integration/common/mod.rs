//! The integration-test harness every module of `tests/integration/` uses
//! (`use crate::common::*;`): start the real `tracker` and `peer` binaries on
//! free loopback ports, wait for them, read their output for failure
//! messages, and kill what was started (RAII).
//!
//! Processes are signalled with `kill -TERM <pid>` (std has no signals and
//! we take no libc dependency); `Child::kill` gives SIGKILL.
//!
//! Every process is started through `spawn_noted`, which remembers its
//! command line and working directory; when a test fails (panics), each
//! process its thread ran is printed with them and with its stdout and
//! stderr, so the command can be run again by hand (as ripgrep's
//! `tests/util.rs` does).

pub mod http;
pub mod proxy;
pub mod swarm;
pub mod udp_peer;

use p2pshare::record::FileRecord;
use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a started tracker may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop` waits after SIGTERM before giving up.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A port that was free on 127.0.0.1 for both TCP and UDP a moment ago
/// (a tracker takes both).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = l
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("p2pshare-test-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// Polls `check` every 20 ms until it is true; panics with `what` after
/// `timeout`. For waiting only: never assert that something was fast.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal by name (`TERM`, `INT`, `KILL`) with the `kill` command.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits for `child` to exit, up to `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for process {}: {e}", child.id()),
        }
    }
}

/// Collects `child`'s output (spawned with piped stdout/stderr), killing it
/// and panicking if it has not exited within `timeout`.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    // Read the pipes on threads so a chatty child cannot fill them and stall.
    let out = child.stdout.take().map(read_on_thread);
    let err = child.stderr.take().map(read_on_thread);
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    };
    let (stdout, stderr) = (join(out), join(err));
    note_output(pid, status, &stdout, &stderr);
    let Some(status) = status else {
        panic!(
            "process {pid} did not exit within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

fn read_on_thread<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `program` with `args` to completion, stdin empty (for flag checks).
fn run_to_end(program: &str, args: &[impl AsRef<OsStr>]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    wait_output(spawn_noted(&mut cmd, &[]), START_TIMEOUT)
}

/// Runs the tracker binary with `args` to completion (for flag checks).
pub fn run_tracker(args: &[&str]) -> Output {
    run_to_end(env!("CARGO_BIN_EXE_tracker"), args)
}

/// Runs the peer binary with `args`, which need not be UTF-8, to
/// completion with an empty stdin (for command-line checks).
pub fn run_peer_os(args: &[std::ffi::OsString]) -> Output {
    run_to_end(env!("CARGO_BIN_EXE_peer"), args)
}

// ---- What the harness ran, for the failure report ----

/// One process started by this thread, as the failure report shows it.
struct Ran {
    pid: u32,
    /// `cd DIR && VAR=value PROGRAM ARGS...`, quoted for a shell.
    command: String,
    output: Captured,
}

enum Captured {
    /// Piped to the test, which has not collected it (yet).
    Piped,
    /// Collected by `wait_output`.
    Done {
        status: String,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// Written to these files, read when the report is printed.
    Files(Vec<PathBuf>),
}

thread_local! {
    static RAN: RefCell<Vec<Ran>> = const { RefCell::new(Vec::new()) };
}

/// The most of one stream the report prints (its end).
const REPORT_TAIL: usize = 16 * 1024;

/// Spawns `cmd` and remembers it for the failure report; `logs` are the
/// files its stdout and stderr go to, if they are not piped.
pub fn spawn_noted(cmd: &mut Command, logs: &[&Path]) -> Child {
    install_report_hook();
    let command = describe(cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {command}: {e}"));
    let output = if logs.is_empty() {
        Captured::Piped
    } else {
        Captured::Files(logs.iter().map(|p| p.to_path_buf()).collect())
    };
    RAN.with(|r| {
        r.borrow_mut().push(Ran {
            pid: child.id(),
            command,
            output,
        })
    });
    child
}

/// A command line that can be pasted into a shell: the working directory,
/// the environment the test set, the program and its arguments.
pub fn describe(cmd: &Command) -> String {
    let cwd = cmd
        .get_current_dir()
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let mut out = format!("cd {} &&", quote(cwd.as_os_str()));
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            out.push_str(&format!(" {}={}", k.to_string_lossy(), quote(v)));
        }
    }
    out.push(' ');
    out.push_str(&quote(cmd.get_program()));
    for a in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(a));
    }
    out
}

/// `text` in single quotes for a POSIX shell, unless it needs none.
fn quote(text: &OsStr) -> String {
    let t = text.to_string_lossy();
    let plain = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        t.into_owned()
    } else {
        format!("'{}'", t.replace('\'', "'\\''"))
    }
}

fn note_output(pid: u32, status: Option<ExitStatus>, stdout: &[u8], stderr: &[u8]) {
    RAN.with(|r| {
        if let Some(ran) = r.borrow_mut().iter_mut().rev().find(|r| r.pid == pid) {
            ran.output = Captured::Done {
                status: status.map_or("still running, killed".into(), |s| s.to_string()),
                stdout: stdout.to_vec(),
                stderr: stderr.to_vec(),
            };
        }
    });
}

/// On a panic, after the usual message: every process this thread ran.
fn install_report_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let report = RAN
                .try_with(|r| r.try_borrow().map(|r| report(&r)).unwrap_or_default())
                .unwrap_or_default();
            if !report.is_empty() {
                eprintln!("{report}");
            }
        }));
    });
}

fn report(ran: &[Ran]) -> String {
    let mut out = String::new();
    // A restarted tracker appends to the same files: print them once.
    let mut seen = Vec::new();
    for (i, r) in ran.iter().enumerate() {
        out.push_str(&format!(
            "\n=== process {} of {} (pid {})\ncommand: {}\n",
            i + 1,
            ran.len(),
            r.pid,
            r.command
        ));
        match &r.output {
            Captured::Piped => out.push_str("(stdout and stderr piped to the test)\n"),
            Captured::Done {
                status,
                stdout,
                stderr,
            } => {
                out.push_str(&format!("status: {status}\n"));
                out.push_str(&section("stdout", stdout));
                out.push_str(&section("stderr", stderr));
            }
            Captured::Files(files) => {
                for f in files {
                    if seen.contains(&f) {
                        out.push_str(&format!("--- {} (above)\n", f.display()));
                        continue;
                    }
                    seen.push(f);
                    let bytes = std::fs::read(f).unwrap_or_default();
                    out.push_str(&section(&f.display().to_string(), &bytes));
                }
            }
        }
    }
    out
}

/// `--- name`, then the end of `bytes`.
fn section(name: &str, bytes: &[u8]) -> String {
    let cut = bytes.len().saturating_sub(REPORT_TAIL);
    let mut out = format!("--- {name}");
    if cut > 0 {
        out.push_str(&format!(" (its last {REPORT_TAIL} bytes)"));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&bytes[cut..]));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Starts the peer binary with `args`. With `stdin_text`, it is written to
/// the peer's stdin, which is then closed (EOF ends the shell); without,
/// stdin is empty. stdout and stderr are piped: read them with
/// `wait_output`. The caller owns the child (kill it if the test fails
/// before it exits; `PeerProc` does that for you).
pub fn spawn_peer(args: &[&str], stdin_text: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args(args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_noted(&mut cmd, &[]);
    let stdin = child.stdin.take();
    let text = stdin_text.unwrap_or("").to_string();
    if let Some(mut stdin) = stdin {
        // On a thread: the peer may read slowly, or not at all.
        std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    child
}

/// A spawned peer that is killed when dropped.
pub struct PeerProc {
    pub child: Option<Child>,
    /// Where a logged peer's stdout and stderr go.
    pub log: Option<PathBuf>,
}

impl PeerProc {
    /// Starts a long-running peer (`--serve`) with stdout and stderr in
    /// `log` (a file), so a chatty peer never blocks on a full pipe.
    pub fn spawn_logged(args: &[&str], log: &Path) -> PeerProc {
        let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        PeerProc::spawn_logged_at(args, log, &level)
    }

    /// `spawn_logged` with `RUST_LOG` set to `level` (say, debug lines of
    /// one module that a test counts).
    pub fn spawn_logged_at(args: &[&str], log: &Path, level: &str) -> PeerProc {
        let out = File::create(log).expect("creating a peer log");
        let err = out.try_clone().expect("duplicating a file handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
        cmd.args(args)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = spawn_noted(&mut cmd, &[log]);
        PeerProc {
            child: Some(child),
            log: Some(log.to_path_buf()),
        }
    }

    /// What a logged peer has printed so far.
    pub fn logs(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn spawn(args: &[&str], stdin_text: Option<&str>) -> PeerProc {
        PeerProc {
            child: Some(spawn_peer(args, stdin_text)),
            log: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for the peer to exit on its own and returns its output.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let child = self.child.take().expect("peer already waited for");
        wait_output(child, timeout)
    }

    /// SIGTERM, then its output once it exits.
    pub fn stop(mut self, timeout: Duration) -> Output {
        let child = self.child.take().expect("peer already waited for");
        signal(child.id(), "TERM");
        wait_output(child, timeout)
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A tracker process on 127.0.0.1 and a free port, killed when dropped.
/// Its stdout and stderr go to `tracker.stdout` / `tracker.stderr` beside
/// the data directory (appended across restarts); `logs()` returns both.
pub struct TrackerProc {
    child: Option<Child>,
    port: u16,
    /// Arguments beyond port, bind and data (e.g. `--http 0`).
    extra: Vec<String>,
    data_dir: PathBuf,
    log_dir: PathBuf,
}

impl TrackerProc {
    /// Starts a tracker keeping its records in `data_dir` and waits until it
    /// accepts connections. Retries with another port if the chosen one was
    /// taken in the meantime.
    pub fn start(data_dir: &Path) -> TrackerProc {
        TrackerProc::start_with(data_dir, &[])
    }

    /// `start` with more arguments (e.g. `--http 0`).
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> TrackerProc {
        for _ in 0..5 {
            let mut t = TrackerProc::new(data_dir, free_port());
            t.extra = extra.iter().map(|a| a.to_string()).collect();
            if t.try_spawn() {
                return t;
            }
            let logs = t.logs();
            if !logs.contains("cannot listen") {
                panic!("tracker failed to start\n{logs}");
            }
        }
        panic!("tracker could not find a free port in 5 tries");
    }

    /// Starts a tracker on a given port (which must be free).
    pub fn start_on(data_dir: &Path, port: u16) -> TrackerProc {
        TrackerProc::start_on_with(data_dir, port, &[])
    }

    /// `start_on` with more arguments (e.g. `--secret-file F`).
    pub fn start_on_with(data_dir: &Path, port: u16, extra: &[&str]) -> TrackerProc {
        let mut t = TrackerProc::new(data_dir, port);
        t.extra = extra.iter().map(|a| a.to_string()).collect();
        if !t.try_spawn() {
            panic!("tracker failed to start on port {port}\n{}", t.logs());
        }
        t
    }

    fn new(data_dir: &Path, port: u16) -> TrackerProc {
        let log_dir = data_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(data_dir)
            .to_path_buf();
        std::fs::create_dir_all(&log_dir).expect("creating the tracker's log directory");
        TrackerProc {
            child: None,
            port,
            extra: Vec::new(),
            data_dir: data_dir.to_path_buf(),
            log_dir,
        }
    }

    fn log_file(&self, ext: &str) -> File {
        File::options()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("tracker.{ext}")))
            .expect("opening the tracker's log file")
    }

    /// Spawns and waits for the port to accept; false if the process exited.
    fn try_spawn(&mut self) -> bool {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracker"));
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--data")
            .arg(&self.data_dir)
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(self.log_file("stdout"))
            .stderr(self.log_file("stderr"));
        let (out, err) = (
            self.log_dir.join("tracker.stdout"),
            self.log_dir.join("tracker.stderr"),
        );
        let child = spawn_noted(&mut cmd, &[&out, &err]);
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "tracker did not accept on {addr} within {START_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, or None when not running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, no goodbye (a crash or power cut).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; panics if it does not stop.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("tracker is not running");
        signal(c.id(), "TERM");
        match wait_timeout(&mut c, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "tracker ignored SIGTERM for {STOP_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
        }
    }

    /// Kills the tracker if running, then starts it again on the same port
    /// and data directory.
    pub fn restart(&mut self) {
        self.kill();
        // The port may linger briefly; retry until the deadline.
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.try_spawn() {
            if Instant::now() >= deadline {
                panic!(
                    "tracker did not restart on port {}\n{}",
                    self.port,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The web dashboard's base URL (`http://127.0.0.1:PORT`, no trailing
    /// slash), from the banner of a tracker started with `--http`.
    pub fn web_url(&self) -> String {
        let mut url = None;
        wait_until(START_TIMEOUT, "the tracker's web UI address", || {
            url = web_url_in(&self.stdout());
            url.is_some()
        });
        url.unwrap()
    }

    /// What the tracker printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("tracker.stdout")).unwrap_or_default()
    }

    /// What the tracker logged on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("tracker.stderr")).unwrap_or_default()
    }

    /// stdout and stderr, labelled, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- tracker stdout ({})\n{}--- tracker stderr\n{}",
            self.log_dir.display(),
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for TrackerProc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The record of `data` under `name`, written to `dir/name` first (so the
/// record is built exactly as a peer builds it). Returns the record.
pub fn record_of(dir: &Path, name: &str, data: &[u8]) -> FileRecord {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("writing a test file");
    FileRecord::from_file(name, &path).expect("building a record")
}

/// `n` bytes of reproducible, non-repeating content.
pub fn test_bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// The first `web UI at http://...` address in a process's output, without
/// the trailing slash.
pub fn web_url_in(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("web UI at "))
        .map(|u| u.trim().trim_end_matches('/').to_string())
}

impl PeerProc {
    /// The web UI's base URL of a logged peer started with `--http`.
    pub fn web_url(&self) -> String {
        let mut url = None;
        wait_until(START_TIMEOUT, "the peer's web UI address", || {
            url = web_url_in(&self.logs());
            url.is_some()
        });
        url.unwrap()
    }
}

/// A `--serve` peer with the web UI on a free port, logging to
/// `<dir>.log`; returns it and the UI's base URL.
pub fn web_peer(id: &str, tracker: &TrackerProc, dir: &Path, extra: &[&str]) -> (PeerProc, String) {
    let port = free_port().to_string();
    let tracker_addr = tracker.addr();
    let dir_s = dir.to_str().expect("a UTF-8 temp path");
    let mut args = vec![
        id,
        &port,
        &tracker_addr,
        "--dir",
        dir_s,
        "--serve",
        "--http",
        "0",
    ];
    args.extend_from_slice(extra);
    let p = PeerProc::spawn_logged(&args, &dir.with_extension("log"));
    let url = p.web_url();
    (p, url)
}

/// A shell peer whose stdin stays open until `close` (or drop), its
/// stdout and stderr in `log`: for tests that type commands over time.
pub struct OpenShell {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    log: PathBuf,
}

impl OpenShell {
    /// `peer ARGS` at RUST_LOG=info, with `env` on top.
    pub fn start(args: &[&str], env: &[(&str, &str)], log: &Path) -> OpenShell {
        let out = File::create(log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
        cmd.args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = spawn_noted(&mut cmd, &[log]);
        OpenShell {
            stdin: child.stdin.take(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// EOF on stdin, then the exit status (the peer exits once the
    /// commands before it have finished).
    pub fn close(mut self, timeout: Duration) -> ExitStatus {
        self.stdin.take();
        wait_timeout(&mut self.child, timeout).expect("the peer did not exit after EOF")
    }
}

impl Drop for OpenShell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
