//! `bench` and `stress` end to end: the real binaries on loopback.

use crate::common::swarm::holders;
use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);
/// Odd-sized, so the last block is short.
const SIZE: usize = 3 * 1024 * 1024 + 1234;

/// A tracker and a seeder `S` of `f.bin`.
struct Swarm {
    dir: tempfile::TempDir,
    tracker: TrackerProc,
    data: Vec<u8>,
    seeder: PeerProc,
}

impl Swarm {
    fn new() -> Swarm {
        let dir = temp_dir();
        let tracker = TrackerProc::start(&dir.path().join("tracker"));
        let data = test_bytes(SIZE, 7);
        let files = dir.path().join("S/files");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join("f.bin"), &data).unwrap();
        let seeder = serve(&dir, &tracker, "S", &[]);
        Swarm {
            dir,
            tracker,
            data,
            seeder,
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Runs `commands` through the shell of peer `id`, to the end.
    fn shell(&self, id: &str, commands: &str, extra: &[&str]) -> (Output, String, String) {
        let port = free_port().to_string();
        let dir = self.path(id);
        let tracker = self.tracker.addr();
        let mut args = vec![id, &port, &tracker, "--dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = PeerProc::spawn(&args, Some(commands)).wait(WAIT);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, stdout, stderr)
    }
}

/// Starts `peer <id> --serve` and waits until the tracker lists it as a
/// holder of `f.bin`.
fn serve(dir: &tempfile::TempDir, tracker: &TrackerProc, id: &str, extra: &[&str]) -> PeerProc {
    let port = free_port().to_string();
    let pdir = dir.path().join(id);
    let addr = tracker.addr();
    let mut args = vec![id, &port, &addr, "--dir", pdir.to_str().unwrap(), "--serve"];
    args.extend_from_slice(extra);
    let p = PeerProc::spawn_logged(&args, &dir.path().join(format!("{id}.log")));
    wait_until(WAIT, &format!("{id} to register f.bin"), || {
        holders(&addr, "f.bin").iter().any(|h| h == id)
    });
    p
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn bench_appends_rows_once_headed_and_leaves_files_and_the_tracker_alone() {
    let swarm = Swarm::new();
    let (out, stdout, stderr) = swarm.shell("B", "bench f.bin 3\nbench f.bin 2\nmyfiles\n", &[]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(runs.len(), 5, "{stdout}");
    for r in &runs {
        assert_eq!(field(r, "bytes"), SIZE.to_string(), "{r}");
    }
    let summaries: Vec<&str> = stdout.lines().filter(|l| l.starts_with("bench ")).collect();
    assert_eq!(summaries.len(), 2, "{stdout}");
    assert!(
        summaries[0].starts_with("bench f.bin runs=3 secs mean="),
        "{stdout}"
    );
    assert!(
        summaries[1].starts_with("bench f.bin runs=2 secs mean="),
        "{stdout}"
    );
    for s in &summaries {
        for key in ["mean", "min", "max"] {
            assert!(s.matches(&format!(" {key}=")).count() == 2, "{s}");
        }
    }

    let csv = fs::read_to_string(swarm.path("B/download_times.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "run,file,bytes,seconds,mbps");
    assert_eq!(lines.len(), 6, "one header, five rows:\n{csv}");
    for (line, run) in lines[1..].iter().zip([1, 2, 3, 1, 2]) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 5, "{line}");
        assert_eq!(cols[0], run.to_string(), "{line}");
        assert_eq!(cols[1], "f.bin");
        assert_eq!(cols[2], SIZE.to_string());
        assert!(cols[3].parse::<f64>().unwrap() > 0.0, "{line}");
        assert!(cols[4].parse::<f64>().unwrap() > 0.0, "{line}");
    }

    // Nothing kept, nothing announced: files/ empty, scratch/ empty, and
    // the tracker still knows only the seeder.
    assert!(entries(&swarm.path("B/files")).is_empty());
    assert!(entries(&swarm.path("B/scratch")).is_empty());
    assert!(!stdout.lines().any(|l| l.starts_with("f.bin ")), "{stdout}");
    assert_eq!(holders(&swarm.tracker.addr(), "f.bin"), vec!["S"]);
}

#[test]
fn bench_keeps_a_local_copy_as_it_is() {
    let swarm = Swarm::new();
    let local = swarm.path("D/files/f.bin");
    fs::create_dir_all(local.parent().unwrap()).unwrap();
    fs::write(&local, &swarm.data).unwrap();
    let before = fs::metadata(&local).unwrap().modified().unwrap();
    let (out, stdout, stderr) = swarm.shell("D", "bench f.bin 1\n", &[]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("bench f.bin runs=1 "), "{stdout}");
    assert_eq!(fs::read(&local).unwrap(), swarm.data);
    assert_eq!(fs::metadata(&local).unwrap().modified().unwrap(), before);
}

#[test]
fn bench_and_stress_errors_are_error_lines() {
    let swarm = Swarm::new();
    for (cmd, needle) in [
        ("bench nope.bin\n", "no file named nope.bin"),
        ("stress nope.bin 3\n", "no file named nope.bin"),
        ("bench f.bin 0\n", "runs must be from 1 to"),
        ("stress f.bin 0\n", "threads must be from 1 to"),
        ("stress f.bin 1000\n", "threads must be from 1 to"),
        ("bench ../x 2\n", "invalid name"),
        ("bench\n", "bench needs"),
    ] {
        let (out, stdout, stderr) = swarm.shell("E", cmd, &[]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stdout}\n{stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("error: ") && l.contains(needle)),
            "{cmd}: {stderr}"
        );
    }
    assert!(!swarm.path("E/download_times.csv").exists());
}

#[test]
fn stress_runs_at_once_beside_a_get_of_the_same_file() {
    let swarm = Swarm::new();
    // The --get runs in the background while the shell's stress runs; the
    // cap keeps them overlapping without making the test slow.
    let (out, stdout, stderr) = swarm.shell(
        "B",
        "stress f.bin 8\nstatus\n",
        &["--get", "f.bin", "--download-limit", "8M"],
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("stress "))
        .unwrap_or_else(|| panic!("no stress line:\n{stdout}\n{stderr}"));
    assert_eq!(field(line, "threads"), "8", "{line}");
    assert_eq!(field(line, "ok"), "8", "{line}");
    assert_eq!(field(line, "failed"), "0", "{line}");
    assert_eq!(field(line, "bytes"), (8 * SIZE).to_string(), "{line}");
    assert!(field(line, "MBps").parse::<f64>().unwrap() > 0.0, "{line}");
    assert!(stdout.contains("done f.bin bytes="), "{stdout}");
    assert_eq!(fs::read(swarm.path("B/files/f.bin")).unwrap(), swarm.data);
    assert!(entries(&swarm.path("B/scratch")).is_empty());
}

#[test]
fn after_a_stress_the_peer_still_downloads_and_serves() {
    let mut swarm = Swarm::new();
    let port = free_port().to_string();
    let bdir = swarm.path("B");
    let tracker = swarm.tracker.addr();
    let mut b = OpenShell::start(
        &["B", &port, &tracker, "--dir", bdir.to_str().unwrap()],
        &[],
        &swarm.path("B.log"),
    );
    b.send("stress f.bin 16\n");
    wait_until(WAIT, "the stress to end", || {
        b.output().lines().any(|l| l.starts_with("stress "))
    });
    assert!(b.output().contains(" ok=16 failed=0 "), "{}", b.output());
    b.send("get f.bin\nstatus\n");
    wait_until(WAIT, "B's get after the stress", || {
        b.output().contains("no downloads in progress")
    });
    assert!(b.output().contains("done f.bin bytes="), "{}", b.output());
    wait_until(WAIT, "B to register f.bin", || {
        holders(&tracker, "f.bin").iter().any(|h| h == "B")
    });

    // The seeder goes: C can only get the file from B.
    swarm.seeder.kill();
    let (out, stdout, stderr) = swarm.shell("C", "get f.bin\n", &[]);
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", b.output());
    assert!(stdout.lines().any(|l| l.starts_with("from B ")), "{stdout}");
    assert_eq!(fs::read(swarm.path("C/files/f.bin")).unwrap(), swarm.data);

    assert!(b.close(WAIT).success());
    swarm.tracker.kill();
}

#[test]
fn piped_get_output_has_no_escape_codes() {
    let swarm = Swarm::new();
    let (out, stdout, stderr) =
        swarm.shell("P", "get f.bin\nstatus\n", &["--download-limit", "4M"]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !out.stdout.contains(&0x1b) && !out.stdout.contains(&b'\r'),
        "{stdout:?}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("done f.bin bytes=")),
        "{stdout}"
    );
}
