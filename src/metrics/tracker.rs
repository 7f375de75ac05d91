//! The tracker's counters: announces, queries, refusals and datagrams,
//! bumped by its UDP and TCP threads; the swarm's sizes (peers, seeders,
//! leechers, files) are read from the catalogue when scraped.

use super::Sample;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default, Debug)]
pub struct TrackerMetrics {
    announces: AtomicU64,
    announces_refused: AtomicU64,
    queries: AtomicU64,
    connections_refused: AtomicU64,
    datagrams: AtomicU64,
    dropped: AtomicU64,
}

/// The swarm's size at the moment of a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swarm {
    pub peers: usize,
    pub seeders: usize,
    pub leechers: usize,
    pub files: usize,
}

impl TrackerMetrics {
    /// An ANNOUNCE answered (a registration, an update or a goodbye).
    pub fn announced(&self) {
        self.announces.fetch_add(1, Relaxed);
    }

    /// An ANNOUNCE refused (bad cookie, unknown session, bad request, ID
    /// in use).
    pub fn announce_refused(&self) {
        self.announces_refused.fetch_add(1, Relaxed);
    }

    /// A TCP query served.
    pub fn query(&self) {
        self.queries.fetch_add(1, Relaxed);
    }

    /// A TCP connection turned away with BUSY (a cap was reached).
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A datagram received on the UDP port.
    pub fn datagram(&self) {
        self.datagrams.fetch_add(1, Relaxed);
    }

    /// A datagram dropped unanswered (malformed, not ours, too long).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    pub fn samples(&self, swarm: Swarm) -> Vec<Sample> {
        let v = |a: &AtomicU64| a.load(Relaxed);
        let n = |x: usize| x as u64;
        vec![
            Sample::gauge("tracker_peers", "Live peers.", n(swarm.peers)),
            Sample::gauge(
                "tracker_seeders",
                "Live peers holding a whole file and downloading nothing.",
                n(swarm.seeders),
            ),
            Sample::gauge(
                "tracker_leechers",
                "Live peers downloading at least one file.",
                n(swarm.leechers),
            ),
            Sample::gauge("tracker_files", "Files in the catalogue.", n(swarm.files)),
            Sample::counter(
                "tracker_announces_total",
                "ANNOUNCE datagrams answered (registrations and goodbyes included).",
                v(&self.announces),
            ),
            Sample::counter(
                "tracker_announces_refused_total",
                "ANNOUNCE datagrams refused (bad cookie, unknown session, bad request, ID in use).",
                v(&self.announces_refused),
            ),
            Sample::counter(
                "tracker_queries_total",
                "TCP queries served (file list, record, who has, new file).",
                v(&self.queries),
            ),
            Sample::counter(
                "tracker_connections_refused_total",
                "TCP connections refused with BUSY (too many at once).",
                v(&self.connections_refused),
            ),
            Sample::counter(
                "tracker_datagrams_total",
                "Datagrams received on the UDP port.",
                v(&self.datagrams),
            ),
            Sample::counter(
                "tracker_datagrams_dropped_total",
                "Datagrams dropped unanswered (malformed, too long, not ours).",
                v(&self.dropped),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{render, value_in};

    #[test]
    fn counts_and_sizes() {
        let m = TrackerMetrics::default();
        m.announced();
        m.announced();
        m.announce_refused();
        m.query();
        m.connection_refused();
        m.datagram();
        m.dropped();
        let swarm = Swarm {
            peers: 3,
            seeders: 1,
            leechers: 2,
            files: 4,
        };
        let page = render(&m.samples(swarm));
        for (name, want) in [
            ("tracker_peers", 3),
            ("tracker_seeders", 1),
            ("tracker_leechers", 2),
            ("tracker_files", 4),
            ("tracker_announces_total", 2),
            ("tracker_announces_refused_total", 1),
            ("tracker_queries_total", 1),
            ("tracker_connections_refused_total", 1),
            ("tracker_datagrams_total", 1),
            ("tracker_datagrams_dropped_total", 1),
        ] {
            assert_eq!(value_in(&page, name), Some(want), "{name}");
        }
        assert_eq!(page.matches("# TYPE").count(), 10);
    }
}
