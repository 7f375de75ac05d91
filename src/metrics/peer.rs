//! A peer's counters: what its block server sent and what its downloads
//! received, verified, rejected and banned, and its connections. The
//! block server and the download workers bump them; `samples` reads them
//! for `/metrics`.

use super::{unix_secs, Histogram, Sample};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

/// The bounds of the download-duration histogram, in seconds: from a
/// small file on a LAN to a large one over a slow link.
pub const DOWNLOAD_SECS_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug)]
pub struct PeerMetrics {
    started: SystemTime,
    download_secs: Histogram,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// Of `bytes_down`, those from holders of another site (`--site`).
    bytes_down_other_sites: AtomicU64,
    bytes_reused: AtomicU64,
    pieces_verified: AtomicU64,
    pieces_rejected: AtomicU64,
    peers_banned: AtomicU64,
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    handler_panics: AtomicU64,
}

impl Default for PeerMetrics {
    fn default() -> PeerMetrics {
        PeerMetrics {
            started: SystemTime::now(),
            download_secs: Histogram::new(DOWNLOAD_SECS_BUCKETS),
            bytes_up: AtomicU64::default(),
            bytes_down: AtomicU64::default(),
            bytes_down_other_sites: AtomicU64::default(),
            bytes_reused: AtomicU64::default(),
            pieces_verified: AtomicU64::default(),
            pieces_rejected: AtomicU64::default(),
            peers_banned: AtomicU64::default(),
            connections_accepted: AtomicU64::default(),
            connections_open: AtomicU64::default(),
            connections_refused: AtomicU64::default(),
            handler_panics: AtomicU64::default(),
        }
    }
}

/// Counts one block-server connection as open until dropped.
pub struct OpenConnection<'a>(&'a PeerMetrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

impl PeerMetrics {
    /// Block bytes written to another peer.
    pub fn sent(&self, bytes: usize) {
        self.bytes_up.fetch_add(bytes as u64, Relaxed);
    }

    /// Block bytes received from a holder (verified or not).
    pub fn received(&self, bytes: usize) {
        self.bytes_down.fetch_add(bytes as u64, Relaxed);
    }

    /// `received`, from a holder of another site than this peer's
    /// (`remote`) or of its own (every holder, without `--site`).
    pub fn received_from(&self, bytes: usize, remote: bool) {
        self.received(bytes);
        if remote {
            self.bytes_down_other_sites.fetch_add(bytes as u64, Relaxed);
        }
    }

    /// Block bytes a download copied from local files (verified) instead
    /// of fetching them.
    pub fn reused(&self, bytes: u64) {
        self.bytes_reused.fetch_add(bytes, Relaxed);
    }

    /// A `get` that ended with the file in `files/`, after `secs`.
    pub fn downloaded(&self, secs: f64) {
        self.download_secs.observe(secs);
    }

    /// Pieces that passed their hash and were written.
    pub fn verified(&self, pieces: u32) {
        self.pieces_verified.fetch_add(u64::from(pieces), Relaxed);
    }

    /// A piece that failed its hash (fetched again elsewhere).
    pub fn rejected(&self) {
        self.pieces_rejected.fetch_add(1, Relaxed);
    }

    /// A holder dropped from a download for sending bad pieces.
    pub fn banned(&self) {
        self.peers_banned.fetch_add(1, Relaxed);
    }

    /// A connection the block server accepted; open while the guard lives.
    pub fn accepted(&self) -> OpenConnection<'_> {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
        OpenConnection(self)
    }

    /// A connection the block server turned away (a cap was reached).
    pub fn refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A block-server handler that panicked (caught; the connection was
    /// closed and the thread kept).
    pub fn handler_panicked(&self) {
        self.handler_panics.fetch_add(1, Relaxed);
    }

    /// Every counter, with the downloads running now.
    pub fn samples(&self, downloads_active: usize) -> Vec<Sample> {
        let v = |a: &AtomicU64| a.load(Relaxed);
        let mut out = Sample::process(unix_secs(self.started));
        out.extend([
            Sample::counter(
                "peer_sent_bytes_total",
                "Block bytes this peer sent to other peers.",
                v(&self.bytes_up),
            ),
            Sample::counter(
                "peer_received_bytes_total",
                "Block bytes this peer received from holders.",
                v(&self.bytes_down),
            ),
            Sample::counter(
                "peer_received_own_site_bytes_total",
                "Block bytes received from holders of this peer's site (every holder without --site).",
                v(&self.bytes_down).saturating_sub(v(&self.bytes_down_other_sites)),
            ),
            Sample::counter(
                "peer_received_other_sites_bytes_total",
                "Block bytes received from holders of other sites (--site).",
                v(&self.bytes_down_other_sites),
            ),
            Sample::counter(
                "peer_reused_bytes_total",
                "Block bytes copied from local files instead of fetched.",
                v(&self.bytes_reused),
            ),
            Sample::counter(
                "peer_pieces_verified_total",
                "Pieces received whose hash matched the record.",
                v(&self.pieces_verified),
            ),
            Sample::counter(
                "peer_pieces_rejected_total",
                "Pieces received whose hash did not match (fetched again).",
                v(&self.pieces_rejected),
            ),
            Sample::counter(
                "peer_peers_banned_total",
                "Holders dropped from a download for sending corrupt pieces.",
                v(&self.peers_banned),
            ),
            Sample::counter(
                "peer_connections_accepted_total",
                "Connections the block server accepted.",
                v(&self.connections_accepted),
            ),
            Sample::gauge(
                "peer_connections_open",
                "Block-server connections open now.",
                v(&self.connections_open),
            ),
            Sample::counter(
                "peer_connections_refused_total",
                "Connections the block server refused (too many at once).",
                v(&self.connections_refused),
            ),
            Sample::counter(
                "peer_handler_panics_total",
                "Block-server connection handlers that panicked (caught: the connection closed, the thread kept; a bug to report).",
                v(&self.handler_panics),
            ),
            Sample::gauge(
                "peer_downloads_active",
                "Downloads in progress now.",
                downloads_active as u64,
            ),
        ]);
        out.extend(self.download_secs.samples(
            "peer_download_duration_seconds",
            "Time from `get` to the verified file in files/, per download that succeeded (lookups included).",
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{render, value_in};

    #[test]
    fn counts_move() {
        let m = PeerMetrics::default();
        m.sent(4096);
        m.sent(10);
        m.received(7);
        m.received_from(100, true);
        m.received_from(20, false);
        m.reused(8192);
        m.verified(3);
        m.rejected();
        m.banned();
        m.refused();
        m.handler_panicked();
        m.downloaded(1.5);
        let open = m.accepted();
        let page = render(&m.samples(2));
        for (name, want) in [
            ("peer_sent_bytes_total", 4106),
            ("peer_received_bytes_total", 127),
            ("peer_received_own_site_bytes_total", 27),
            ("peer_received_other_sites_bytes_total", 100),
            ("peer_reused_bytes_total", 8192),
            ("peer_download_duration_seconds_count", 1),
            ("peer_pieces_verified_total", 3),
            ("peer_pieces_rejected_total", 1),
            ("peer_peers_banned_total", 1),
            ("peer_connections_accepted_total", 1),
            ("peer_connections_open", 1),
            ("peer_connections_refused_total", 1),
            ("peer_handler_panics_total", 1),
            ("peer_downloads_active", 2),
        ] {
            assert_eq!(value_in(&page, name), Some(want), "{name}");
        }
        drop(open);
        let page = render(&m.samples(0));
        assert_eq!(value_in(&page, "peer_connections_open"), Some(0));
        assert_eq!(value_in(&page, "peer_connections_accepted_total"), Some(1));
    }
}
