//! How fast local reuse (`download::reuse::fill`) is on a file of SIZE
//! MiB (default 256) in the page cache, for the three cases that matter:
//! - `aligned`: 1 % changed in place, in 64 KiB regions (the aligned pass
//!   takes the rest; the rolling pass then scans the whole old file for
//!   the changed pieces, in vain);
//! - `insert`: 1 MiB + 1,111 bytes inserted in the middle (aligned pass
//!   for the first half, rolling for the second);
//! - `nomatch`: an unrelated file, every piece missing: the rolling scan
//!   at its slowest (the prefilter fullest, not one skip).
//!
//! Usage: `cargo run --release --example reuse_scan [SIZE_MIB [CASE...]]`;
//! prints one
//! line per case:
//! `reuse case=<c> size=<bytes> reused=<fraction> secs=<s> cpu_secs=<s> MBps=<r>`
//! (MBps: the old file's bytes scanned per second of wall time).

use p2pshare::bitfield::Bitfield;
use p2pshare::download::reuse::{fill, Candidate, PlainFile};
use p2pshare::record::FileRecord;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = p2pshare::rng::Rng::seeded(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn run(dir: &Path, case: &str, old: &[u8], new: &[u8]) -> io::Result<()> {
    let old_path = dir.join("old");
    std::fs::write(&old_path, old)?;
    let record = FileRecord::from_bytes("new", new);
    let part = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("part"))?;
    part.set_len(new.len() as u64)?;
    let candidate = Candidate {
        payload: Arc::new(PlainFile::open(&old_path)?),
        record: Some(Arc::new(FileRecord::from_bytes("old", old))),
        have: None,
        roll: true,
    };
    let mut have = Bitfield::new(record.piece_count());
    let started = Instant::now();
    let cpu_started = cpu_secs();
    let got = fill(
        &record,
        &part,
        &mut have,
        &[candidate],
        &AtomicBool::new(false),
    )?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_started;
    println!(
        "reuse case={case} size={} reused={:.4} secs={secs:.3} cpu_secs={cpu:.3} MBps={:.0}",
        new.len(),
        got.bytes as f64 / new.len() as f64,
        old.len() as f64 / secs / 1e6
    );
    Ok(())
}

/// This thread's CPU time: on a shared machine the wall clock also counts
/// the time other processes had the core.
fn cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args
        .first()
        .map(|s| s.parse().expect("SIZE_MIB: a number"))
        .unwrap_or(256);
    let only = |case: &str| args.len() < 2 || args[1..].iter().any(|a| a == case);
    let size = mib << 20;
    let dir = tempfile::tempdir()?;
    let old = random(size, 1);

    let mut aligned = old.clone();
    let regions = size / 100 / (64 << 10);
    let mut rng = p2pshare::rng::Rng::seeded(2);
    for _ in 0..regions.max(1) {
        let at = rng.below((size - (64 << 10)) as u64) as usize;
        aligned[at..at + (64 << 10)].copy_from_slice(&random(64 << 10, rng.next_u64()));
    }
    if only("aligned") {
        run(dir.path(), "aligned", &old, &aligned)?;
    }

    let mut insert = old[..size / 2].to_vec();
    insert.extend_from_slice(&random((1 << 20) + 1111, 3));
    insert.extend_from_slice(&old[size / 2..]);
    if only("insert") {
        run(dir.path(), "insert", &old, &insert)?;
    }
    if only("nomatch") {
        run(dir.path(), "nomatch", &old, &random(size, 4))?;
    }
    Ok(())
}
