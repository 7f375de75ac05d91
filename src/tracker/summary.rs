//! What the dashboards (and the tracker's `/metrics`) draw, whatever the
//! swarm's size: totals, a completion histogram, per-item totals (the
//! current version, its owner, and how many peers hold it, are updating,
//! are on an older version) and a bounded number of peer rows. The
//! catalogue builds it under its lock in one pass over the peers
//! (`Catalogue::summary`); the terminal and the web page render it without
//! the lock. A thousand peers give the same few screens of text as ten.

use std::time::Duration;

/// Buckets of the completion histogram: 0–10 %, 10–20 %, … 90–100 %.
pub const HISTOGRAM_BUCKETS: usize = 10;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Live peers.
    pub peers: usize,
    /// Live peers downloading nothing and holding at least one whole file.
    pub seeders: usize,
    /// Live peers downloading at least one file.
    pub leechers: usize,
    /// Files in the catalogue.
    pub files: usize,
    /// Bytes per second the whole swarm gains, from the leechers' announced
    /// block counts over the last announce intervals.
    pub rate_bps: f64,
    /// Downloads in progress (peer, file pairs) by completion: bucket `i`
    /// counts those in `[i * 10 %, (i + 1) * 10 %)`, the last one up to
    /// 100 % but not complete.
    pub histogram: [u32; HISTOGRAM_BUCKETS],
    /// Every file, sorted by name (the renderers show as many as fit).
    pub file_totals: Vec<FileTotals>,
    /// At most the number of rows asked for: the slowest downloads in
    /// progress first (lowest rate, then lowest completion), then the
    /// peers seen most recently, shown in natural order of their ids
    /// (P1, P2, P10).
    pub rows: Vec<PeerRow>,
    /// The announce interval the tracker gives peers now.
    pub interval: Duration,
    /// Announces served per second, over the last few seconds.
    pub announces_per_s: f64,
}

/// One item of the catalogue (its current version), over the live peers.
/// A fleet at a glance: `seeders` hold the current version complete,
/// `leechers` are still fetching it (updating, or new to it), `older` are
/// still on an older version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileTotals {
    /// As listings show it: a folder ends in `/`.
    pub name: String,
    pub size: u64,
    /// The current version of the name: 1, 2, ...
    pub version: u32,
    /// The peer id that owns the name; empty when nobody does.
    pub owner: String,
    /// Live peers holding every piece of the current version.
    pub seeders: u32,
    /// Live peers downloading the current version.
    pub leechers: u32,
    /// Live peers taking part in an older version (holding it, or still
    /// finishing a download of it).
    pub older: u32,
    /// Mean completion of its downloads in progress, 0.0..=1.0 (0.0 when
    /// there are none).
    pub mean_fraction: f64,
    /// Bytes per second its leechers gain together.
    pub rate_bps: f64,
}

/// One row of the dashboard: a peer and one file it holds or fetches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerRow {
    pub peer_id: String,
    /// `host:port` where other peers dial it.
    pub addr: String,
    /// Empty when the peer holds no file.
    pub file: String,
    /// Bytes held / file size, 0.0..=1.0 (1.0 for an empty file).
    pub fraction: f64,
    /// Holds every piece.
    pub complete: bool,
    /// Bytes per second it gains on this file (0 for a seeder).
    pub rate_bps: f64,
    /// Since its last announce.
    pub seen_ago: Duration,
}
