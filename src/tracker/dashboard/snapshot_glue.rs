//! TEMPORARY: a `Summary` built from today's `Snapshot`, so the
//! dashboards run until `Catalogue::summary(now, max_rows)` lands. Delete
//! this file (and `mod snapshot_glue` in `dashboard.rs`) then; the one
//! `impl SummarySource for Arc<Shared>` below becomes
//! `self.lock().summary(Instant::now(), max_rows)` or goes, with the
//! callers passing a closure instead.
//!
//! What a snapshot cannot say stays zero: rates, announces per second,
//! how long ago a peer was seen.

use super::SummarySource;
use crate::tracker::catalogue::Snapshot;
use crate::tracker::server::Shared;
use crate::tracker::summary::{FileTotals, PeerRow, Summary, HISTOGRAM_BUCKETS};
use crate::wire::ANNOUNCE_INTERVAL;
use std::collections::BTreeMap;
use std::sync::Arc;

impl SummarySource for Arc<Shared> {
    fn summary(&self, max_rows: usize) -> Summary {
        let snap = self.lock().snapshot();
        summary_from_snapshot(&snap, max_rows)
    }
}

/// The summary of `snap`, with at most `max_rows` rows: downloads in
/// progress first, least complete first, then the rest by peer id.
pub fn summary_from_snapshot(snap: &Snapshot, max_rows: usize) -> Summary {
    let mut s = Summary {
        peers: snap.peers.len(),
        files: snap.files.len(),
        interval: ANNOUNCE_INTERVAL,
        ..Summary::default()
    };
    // name -> (seeders, leechers, sum of fractions in progress)
    let mut per_file: BTreeMap<&str, (u32, u32, f64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for p in &snap.peers {
        let leeching = p.files.iter().any(|f| !f.complete);
        if leeching {
            s.leechers += 1;
        } else if !p.files.is_empty() {
            s.seeders += 1;
        }
        if p.files.is_empty() {
            rows.push(PeerRow {
                peer_id: p.peer_id.clone(),
                addr: p.addr.clone(),
                ..PeerRow::default()
            });
        }
        for f in &p.files {
            let t = per_file.entry(&f.name).or_default();
            if f.complete {
                t.0 += 1;
            } else {
                t.1 += 1;
                t.2 += f.fraction;
                let bucket =
                    ((f.fraction * HISTOGRAM_BUCKETS as f64) as usize).min(HISTOGRAM_BUCKETS - 1);
                s.histogram[bucket] += 1;
            }
            rows.push(PeerRow {
                peer_id: p.peer_id.clone(),
                addr: p.addr.clone(),
                file: f.name.clone(),
                fraction: f.fraction,
                complete: f.complete,
                ..PeerRow::default()
            });
        }
    }
    // Stable: peers stay in id order within each group.
    rows.sort_by(|a, b| {
        let in_progress = |r: &PeerRow| !r.complete && !r.file.is_empty();
        in_progress(b).cmp(&in_progress(a)).then(if in_progress(a) {
            a.fraction.total_cmp(&b.fraction)
        } else {
            std::cmp::Ordering::Equal
        })
    });
    rows.truncate(max_rows);
    s.rows = rows;
    s.file_totals = snap
        .files
        .iter()
        .map(|f| {
            let (seeders, leechers, sum) =
                per_file.get(f.name.as_str()).copied().unwrap_or_default();
            FileTotals {
                name: f.name.clone(),
                size: f.size,
                seeders,
                leechers,
                mean_fraction: if leechers > 0 {
                    sum / f64::from(leechers)
                } else {
                    0.0
                },
                rate_bps: 0.0,
            }
        })
        .collect();
    s.file_totals.sort_by(|a, b| a.name.cmp(&b.name));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::catalogue::{FileProgress, PeerView};
    use crate::wire::FileSummary;

    fn progress(name: &str, fraction: f64, complete: bool) -> FileProgress {
        FileProgress {
            name: name.into(),
            fraction,
            complete,
        }
    }

    #[test]
    fn counts_buckets_and_orders_rows() {
        let snap = Snapshot {
            files: vec![FileSummary {
                name: "m".into(),
                size: 10,
                md5: [0; 16],
                holders: 3,
                seeders: 1,
            }],
            peers: vec![
                PeerView {
                    peer_id: "a".into(),
                    addr: "h:1".into(),
                    files: vec![progress("m", 1.0, true)],
                },
                PeerView {
                    peer_id: "b".into(),
                    addr: "h:2".into(),
                    files: vec![progress("m", 0.55, false)],
                },
                PeerView {
                    peer_id: "c".into(),
                    addr: "h:3".into(),
                    files: vec![progress("m", 0.05, false)],
                },
                PeerView {
                    peer_id: "d".into(),
                    addr: "h:4".into(),
                    files: vec![],
                },
            ],
        };
        let s = summary_from_snapshot(&snap, 10);
        assert_eq!((s.peers, s.seeders, s.leechers, s.files), (4, 1, 2, 1));
        assert_eq!(s.histogram[0], 1);
        assert_eq!(s.histogram[5], 1);
        let ids: Vec<&str> = s.rows.iter().map(|r| r.peer_id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a", "d"]);
        let f = &s.file_totals[0];
        assert_eq!((f.seeders, f.leechers), (1, 2));
        assert!((f.mean_fraction - 0.3).abs() < 1e-9);
        assert_eq!(summary_from_snapshot(&snap, 1).rows.len(), 1);
    }
}
