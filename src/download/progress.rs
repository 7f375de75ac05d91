//! A download's live progress, and the one reading of it that every view
//! shows: the shell's `status` and live line, the web pages and
//! `/api/progress`, `/metrics`, and what a stopped `get` says it kept.
//!
//! The rule kept here once: the rate counts only the bytes this run
//! fetched from holders. Blocks found verified on disk at a resume, or
//! copied from local files, arrive at once and are not a speed.

use crate::record::BLOCK_SIZE;
use crate::units::{fraction, mbps, percent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Live progress, written by the download while it runs and read through
/// `snapshot`.
pub struct Progress {
    name: String,
    total_blocks: u64,
    done_blocks: AtomicU64,
    /// Blocks already verified on disk when it started (a resume): not
    /// fetched by this run, so not in its rate.
    resumed_blocks: AtomicU64,
    /// Blocks copied from local files before fetching (`reuse`): not
    /// fetched either, not in the rate.
    reused_blocks: AtomicU64,
    /// Its verified blocks stay on disk if it stops (a `get`, not a
    /// `bench` or `stress` copy).
    kept: bool,
    started: Instant,
    sources: AtomicU64,
}

impl Progress {
    /// A download of `total_blocks` under `name`, starting now.
    pub fn new(name: &str, total_blocks: u64, kept: bool) -> Progress {
        Progress {
            name: name.to_string(),
            total_blocks,
            done_blocks: AtomicU64::new(0),
            resumed_blocks: AtomicU64::new(0),
            reused_blocks: AtomicU64::new(0),
            kept,
            started: Instant::now(),
            sources: AtomicU64::new(0),
        }
    }

    /// Whether its verified blocks stay on disk if it stops.
    pub fn is_kept(&self) -> bool {
        self.kept
    }

    /// What was there before anything was fetched: `resumed` blocks
    /// verified on disk, `reused` copied from local files.
    pub fn starts_from(&self, resumed: u64, reused: u64) {
        self.resumed_blocks.store(resumed, Ordering::Relaxed);
        self.reused_blocks.store(reused, Ordering::Relaxed);
        self.done_blocks.store(resumed + reused, Ordering::Relaxed);
    }

    /// More verified blocks reached the disk.
    pub fn verified(&self, blocks: u64) {
        self.done_blocks.fetch_add(blocks, Ordering::Relaxed);
    }

    /// How many holders it fetches from now.
    pub fn set_sources(&self, n: u64) {
        self.sources.store(n, Ordering::Relaxed);
    }

    /// It began from pieces found in local files: an update of an item.
    pub fn is_update(&self) -> bool {
        self.reused_blocks.load(Ordering::Relaxed) > 0
    }

    /// Where it stands now.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(Instant::now())
    }

    /// Where it stands at `now` (the tests' clock).
    pub fn snapshot_at(&self, now: Instant) -> Snapshot {
        Snapshot {
            name: self.name.clone(),
            done_blocks: self.done_blocks.load(Ordering::Relaxed),
            resumed_blocks: self.resumed_blocks.load(Ordering::Relaxed),
            reused_blocks: self.reused_blocks.load(Ordering::Relaxed),
            total_blocks: self.total_blocks,
            sources: self.sources.load(Ordering::Relaxed),
            elapsed: now.saturating_duration_since(self.started),
        }
    }
}

/// One download's progress at one moment: a copy, read without locks.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub name: String,
    /// Verified blocks, however they came.
    pub done_blocks: u64,
    /// Of `done_blocks`, those found verified on disk at a resume.
    pub resumed_blocks: u64,
    /// Of `done_blocks`, those copied from local files.
    pub reused_blocks: u64,
    pub total_blocks: u64,
    /// Holders it fetches from now.
    pub sources: u64,
    /// Since this run of the download began.
    pub elapsed: Duration,
}

impl Snapshot {
    /// Blocks this run fetched from holders: done, less those found on
    /// disk (resumed) or in local files (reused).
    pub fn fetched_blocks(&self) -> u64 {
        self.done_blocks
            .saturating_sub(self.resumed_blocks + self.reused_blocks)
    }

    /// Bytes this run fetched from holders (whole blocks).
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched_blocks() * u64::from(BLOCK_SIZE)
    }

    /// Bytes per second this run fetched, since it began.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.fetched_bytes() as f64 / secs
        } else {
            0.0
        }
    }

    /// `rate` in MB/s (10^6 bytes, as every MB/s the peer prints).
    pub fn mbps(&self) -> f64 {
        mbps(self.fetched_bytes(), self.elapsed.as_secs_f64())
    }

    /// Done, from 0 to 1 (1 only when every block is in).
    pub fn fraction(&self) -> f64 {
        fraction(self.done_blocks, self.total_blocks)
    }

    pub fn is_complete(&self) -> bool {
        self.done_blocks >= self.total_blocks
    }

    /// Done, in percent for people (`units::percent`: never 100 before
    /// the last block).
    pub fn percent(&self) -> f64 {
        percent(self.fraction(), self.is_complete())
    }

    /// Of `total`, the fraction already verified on disk at a resume, in
    /// percent for people.
    pub fn resumed_percent(&self) -> f64 {
        self.part_percent(self.resumed_blocks)
    }

    /// The fraction copied from local files, in percent for people.
    pub fn reused_percent(&self) -> f64 {
        self.part_percent(self.reused_blocks)
    }

    fn part_percent(&self, blocks: u64) -> f64 {
        percent(
            fraction(blocks, self.total_blocks),
            blocks >= self.total_blocks,
        )
    }

    /// Seconds left at `rate` bytes per second: 0 when complete, infinite
    /// at no rate.
    pub fn eta(&self, rate: f64) -> f64 {
        let left = self.total_blocks.saturating_sub(self.done_blocks) * u64::from(BLOCK_SIZE);
        if left == 0 {
            0.0
        } else if rate > 0.0 {
            left as f64 / rate
        } else {
            f64::INFINITY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a resume the blocks found on disk are done but not fetched:
    /// they count in the fraction, never in the rate.
    #[test]
    fn a_resumed_download_counts_only_this_runs_blocks_in_its_rate() {
        let p = Progress::new("movie.bin", 1000, true);
        p.starts_from(600, 0);
        let at_start = p.snapshot_at(p.started + Duration::from_secs(1));
        assert_eq!(at_start.fraction(), 0.6);
        assert_eq!(at_start.fetched_blocks(), 0);
        assert_eq!(at_start.rate(), 0.0, "resumed bytes are not a speed");

        // 100 more blocks fetched in 2 s: 100 × 4096 / 2 bytes a second.
        p.verified(100);
        let s = p.snapshot_at(p.started + Duration::from_secs(2));
        assert_eq!(s.fetched_blocks(), 100);
        assert_eq!(s.fetched_bytes(), 409_600);
        assert_eq!(s.rate(), 204_800.0);
        assert_eq!(s.mbps(), 0.2048);
        assert_eq!(s.fraction(), 0.7);
        assert_eq!(s.resumed_percent(), 60.0);
    }

    #[test]
    fn reused_blocks_are_not_fetched_either() {
        let p = Progress::new("v2.bin", 100, true);
        p.starts_from(20, 30);
        p.verified(10);
        assert!(p.is_update());
        let s = p.snapshot_at(p.started + Duration::from_secs(1));
        assert_eq!(s.fetched_blocks(), 10);
        assert_eq!(s.rate(), 40_960.0);
        assert_eq!(s.reused_percent(), 30.0);
    }

    #[test]
    fn percent_and_eta() {
        let p = Progress::new("f", 2000, true);
        p.verified(1999);
        let s = p.snapshot();
        assert_eq!(s.percent(), 99.9, "never 100 before the last block");
        assert!(!s.is_complete());
        assert_eq!(s.eta(4096.0), 1.0);
        assert_eq!(s.eta(0.0), f64::INFINITY);
        p.verified(1);
        assert_eq!(p.snapshot().percent(), 100.0);
        assert_eq!(p.snapshot().eta(0.0), 0.0);
        assert_eq!(Progress::new("empty", 0, true).snapshot().fraction(), 1.0);
    }
}
