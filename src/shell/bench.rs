//! `bench` and `stress`: repeated and simultaneous downloads of one file,
//! for timing and for load. Each download is a fresh one (never a resume)
//! into its own scratch directory under `<dir>/scratch/`, verified like a
//! `get`, then thrown away: `files/` is never touched and nothing is
//! announced, so a local copy stays as it is and the swarm sees no change.

use crate::error::{Error, Result};
use crate::names::check_file_name;
use crate::peer::Peer;
use crate::units::mbps;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub const DEFAULT_RUNS: u32 = 5;
pub const MAX_RUNS: u32 = 1000;
pub const DEFAULT_THREADS: u32 = 8;
/// Each simultaneous download holds a connection to every holder, and a
/// holder accepts 64 from one address: beyond that they would queue on
/// BUSY answers instead of running at once.
pub const MAX_THREADS: u32 = 64;
pub const CSV_HEADER: &str = "run,file,bytes,seconds,mbps";

/// Makes scratch directory names unique within the process.
static NEXT_SCRATCH: AtomicU64 = AtomicU64::new(0);

/// One timed download.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub run: u32,
    pub bytes: u64,
    pub secs: f64,
}

impl Run {
    pub fn mbps(&self) -> f64 {
        mbps(self.bytes, self.secs)
    }

    /// The row appended to `download_times.csv`.
    pub fn csv_row(&self, name: &str) -> String {
        format!(
            "{},{},{},{:.6},{:.3}\n",
            self.run,
            csv_field(name),
            self.bytes,
            self.secs,
            self.mbps()
        )
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {} bytes={} secs={:.3} MBps={:.1}",
            self.run,
            self.bytes,
            self.secs,
            self.mbps()
        )
    }
}

/// The result of `bench`: every run, summarised by mean, min and max.
pub struct BenchReport {
    pub name: String,
    pub runs: Vec<Run>,
    pub csv: PathBuf,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs: Vec<f64> = self.runs.iter().map(|r| r.secs).collect();
        let rates: Vec<f64> = self.runs.iter().map(Run::mbps).collect();
        let (s, r) = (Stats::of(&secs), Stats::of(&rates));
        write!(
            f,
            "bench {} runs={} secs mean={:.3} min={:.3} max={:.3} MBps mean={:.1} min={:.1} max={:.1}\nrows appended to {}",
            self.name,
            self.runs.len(),
            s.mean,
            s.min,
            s.max,
            r.mean,
            r.min,
            r.max,
            self.csv.display()
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// Zeros for no values.
    pub fn of(values: &[f64]) -> Stats {
        if values.is_empty() {
            return Stats {
                mean: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        Stats {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The result of `stress`.
pub struct StressReport {
    pub name: String,
    pub threads: u32,
    pub ok: u32,
    /// The error of each failed download.
    pub failures: Vec<Error>,
    /// Bytes of the downloads that succeeded.
    pub bytes: u64,
    /// From the start of the first download to the end of the last.
    pub secs: f64,
}

impl StressReport {
    /// The error the command ends with when any download failed.
    pub fn failure(&self) -> Option<Error> {
        let first = self.failures.first()?;
        Some(Error::NoSources(format!(
            "stress {}: {} of {} downloads failed; the first failure: {first}",
            self.name,
            self.failures.len(),
            self.threads
        )))
    }
}

impl fmt::Display for StressReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stress {} threads={} ok={} failed={} bytes={} secs={:.3} MBps={:.1}",
            self.name,
            self.threads,
            self.ok,
            self.failures.len(),
            self.bytes,
            self.secs,
            mbps(self.bytes, self.secs)
        )
    }
}

/// Downloads `name` `runs` times one after another, appending a row per
/// run to `download_times.csv` (header once) and handing each run to
/// `each` as it ends. A failed run ends the bench; the rows of the runs
/// before it stay.
pub fn bench(
    peer: &Peer,
    name: &str,
    runs: u32,
    mut each: impl FnMut(&Run),
) -> Result<BenchReport> {
    check_file_name(name)?;
    check_count("runs", runs, MAX_RUNS)?;
    let csv = peer.times_csv();
    let mut done = Vec::new();
    for run in 1..=runs {
        let key = format!("{name} (bench {run}/{runs})");
        let (bytes, secs) = fetch_scratch(peer, name, &key, "bench")?;
        let r = Run { run, bytes, secs };
        append_row(&csv, &r.csv_row(name))?;
        each(&r);
        done.push(r);
    }
    Ok(BenchReport {
        name: name.to_string(),
        runs: done,
        csv,
    })
}

/// Runs `threads` downloads of `name` at once, each verified, and counts
/// how many succeeded.
pub fn stress(peer: &Arc<Peer>, name: &str, threads: u32) -> Result<StressReport> {
    check_file_name(name)?;
    check_count("threads", threads, MAX_THREADS)?;
    // One lookup first: an unknown file is one error, not `threads` of them.
    crate::peer::session::lookup::locate(peer, name)?;
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 1..=threads {
        let (peer, name) = (peer.clone(), name.to_string());
        let key = format!("{name} (stress {i}/{threads})");
        let spawned = std::thread::Builder::new()
            .name(format!("stress-{i}"))
            .spawn(move || fetch_scratch(&peer, &name, &key, "stress"));
        handles.push(spawned.map_err(|e| Error::io("starting a stress thread", e)));
    }
    let mut report = StressReport {
        name: name.to_string(),
        threads,
        ok: 0,
        failures: Vec::new(),
        bytes: 0,
        secs: 0.0,
    };
    for h in handles {
        let result = h.and_then(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Local("a stress download panicked".into())))
        });
        match result {
            Ok((bytes, _)) => {
                report.ok += 1;
                report.bytes += bytes;
            }
            Err(e) => report.failures.push(e),
        }
    }
    report.secs = started.elapsed().as_secs_f64();
    if peer.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(report)
}

/// Splits `bench`/`stress` arguments: a file name, then an optional count.
/// Names may contain spaces, so a last word of digits is the count: a file
/// called `video 2` is `bench video 2 5`.
pub fn split_count(args: &str) -> Result<(String, Option<u32>)> {
    let args = args.trim();
    if let Some((name, last)) = args.rsplit_once(char::is_whitespace) {
        if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
            let n = last
                .parse()
                .map_err(|_| Error::Usage(format!("{last} is too large a count")))?;
            return Ok((name.trim_end().to_string(), Some(n)));
        }
    }
    Ok((args.to_string(), None))
}

fn check_count(what: &str, n: u32, max: u32) -> Result<()> {
    if n == 0 || n > max {
        return Err(Error::Usage(format!(
            "{what} must be from 1 to {max}, got {n}"
        )));
    }
    Ok(())
}

/// One fresh, verified download into its own scratch directory, removed
/// afterwards; returns the bytes and the seconds it took.
fn fetch_scratch(peer: &Peer, name: &str, key: &str, kind: &str) -> Result<(u64, f64)> {
    let scratch = Scratch::new(&peer.scratch_dir(), kind)?;
    let started = Instant::now();
    let fetched = peer.fetch(name, key, &scratch.0, false)?;
    Ok((fetched.record.size, started.elapsed().as_secs_f64()))
}

/// A fresh directory, removed with its contents when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &Path, kind: &str) -> Result<Scratch> {
        let n = NEXT_SCRATCH.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("{kind}-{}-{n}", std::process::id()));
        // Leftovers of an earlier process with the same pid and number.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Appends one row, writing the header first into a new or empty file.
fn append_row(csv: &Path, row: &str) -> Result<()> {
    let ctx = || format!("appending to {}", csv.display());
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(csv)
        .map_err(|e| Error::io(ctx(), e))?;
    let empty = f.metadata().map_err(|e| Error::io(ctx(), e))?.len() == 0;
    let text = if empty {
        format!("{CSV_HEADER}\n{row}")
    } else {
        row.to_string()
    };
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(ctx(), e))
}

/// A CSV field, quoted when it holds a comma or a quote (names cannot hold
/// control characters, so no line breaks).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_after_names_with_spaces() {
        assert_eq!(split_count("a.bin").unwrap(), ("a.bin".into(), None));
        assert_eq!(split_count("a.bin 3").unwrap(), ("a.bin".into(), Some(3)));
        assert_eq!(
            split_count("my video 2 5").unwrap(),
            ("my video 2".into(), Some(5))
        );
        assert_eq!(split_count("my file").unwrap(), ("my file".into(), None));
        assert_eq!(split_count("x 0").unwrap(), ("x".into(), Some(0)));
        assert!(split_count("x 99999999999").is_err());
        assert!(check_count("runs", 0, 10).is_err());
        assert!(check_count("runs", 11, 10).is_err());
        assert!(check_count("runs", 10, 10).is_ok());
    }

    #[test]
    fn csv_rows_and_header_once() {
        assert_eq!(csv_field("plain.bin"), "plain.bin");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let r = Run {
            run: 2,
            bytes: 2_000_000,
            secs: 0.5,
        };
        assert_eq!(r.csv_row("f,1"), "2,\"f,1\",2000000,0.500000,4.000\n");
        assert_eq!(r.to_string(), "run 2 bytes=2000000 secs=0.500 MBps=4.0");
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        append_row(&csv, "1,a,1,1.0,1.0\n").unwrap();
        append_row(&csv, "2,a,1,1.0,1.0\n").unwrap();
        assert_eq!(
            fs::read_to_string(&csv).unwrap(),
            "run,file,bytes,seconds,mbps\n1,a,1,1.0,1.0\n2,a,1,1.0,1.0\n"
        );
    }

    #[test]
    fn summaries() {
        let s = Stats::of(&[1.0, 2.0, 6.0]);
        assert_eq!(
            s,
            Stats {
                mean: 3.0,
                min: 1.0,
                max: 6.0
            }
        );
        assert_eq!(Stats::of(&[]).mean, 0.0);
        let report = BenchReport {
            name: "f".into(),
            runs: vec![
                Run {
                    run: 1,
                    bytes: 1_000_000,
                    secs: 1.0,
                },
                Run {
                    run: 2,
                    bytes: 1_000_000,
                    secs: 0.5,
                },
            ],
            csv: PathBuf::from("d/download_times.csv"),
        };
        assert_eq!(
            report.to_string(),
            "bench f runs=2 secs mean=0.750 min=0.500 max=1.000 MBps mean=1.5 min=1.0 max=2.0\nrows appended to d/download_times.csv"
        );
        let stress = StressReport {
            name: "f".into(),
            threads: 3,
            ok: 2,
            failures: vec![Error::NotFound("gone".into())],
            bytes: 4_000_000,
            secs: 2.0,
        };
        assert_eq!(
            stress.to_string(),
            "stress f threads=3 ok=2 failed=1 bytes=4000000 secs=2.000 MBps=2.0"
        );
        let e = stress.failure().unwrap().to_string();
        assert!(
            e.contains("1 of 3 downloads failed") && e.contains("gone"),
            "{e}"
        );
    }
}
