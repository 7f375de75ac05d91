//! The tracker's counters: announces, queries, refusals and datagrams,
//! bumped by its UDP and TCP threads; the swarm's sizes (peers, seeders,
//! leechers, files) and, per item, its version and who is on it, are read
//! from the catalogue when scraped.

use super::{unix_secs, Sample};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

#[derive(Debug)]
pub struct TrackerMetrics {
    started: SystemTime,
    announces: AtomicU64,
    announces_refused: AtomicU64,
    queries: AtomicU64,
    connections_refused: AtomicU64,
    handler_panics: AtomicU64,
    datagrams: AtomicU64,
    dropped: AtomicU64,
}

impl Default for TrackerMetrics {
    fn default() -> TrackerMetrics {
        TrackerMetrics {
            started: SystemTime::now(),
            announces: AtomicU64::default(),
            announces_refused: AtomicU64::default(),
            queries: AtomicU64::default(),
            connections_refused: AtomicU64::default(),
            handler_panics: AtomicU64::default(),
            datagrams: AtomicU64::default(),
            dropped: AtomicU64::default(),
        }
    }
}

/// The swarm's size at the moment of a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swarm {
    pub peers: usize,
    pub seeders: usize,
    pub leechers: usize,
    pub files: usize,
}

/// The most items `/metrics` shows one by one (the first by name): a
/// catalogue of a million names must not make a page of a million lines.
pub const MAX_ITEMS: usize = 1000;

/// One item of the catalogue at the moment of a scrape: its current
/// version and how many live peers are on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    /// As listings show it: a folder ends in `/`.
    pub name: String,
    pub version: u32,
    /// Empty when nobody owns the name.
    pub owner: String,
    /// Live peers holding the current version complete.
    pub current: u32,
    /// Live peers still fetching the current version.
    pub updating: u32,
    /// Live peers on an older version.
    pub older: u32,
}

const ITEM_VERSION_HELP: &str = "Current version of each item, labelled with its owner \
     (empty: nobody owns it). At most the first 1000 items by name.";
const ITEM_PEERS_HELP: &str = "Live peers per item: holding its current version complete \
     (state=current), still fetching it (updating), on an older version (older). \
     At most the first 1000 items by name.";

/// Per item (the first `MAX_ITEMS` of `items`, which come sorted by name):
/// its version, then its peers in each state.
fn item_samples(items: &[Item]) -> Vec<Sample> {
    let items = &items[..items.len().min(MAX_ITEMS)];
    let versions = items.iter().map(|i| {
        Sample::gauge("tracker_item_version", ITEM_VERSION_HELP, i.version.into())
            .with_label("name", i.name.as_str())
            .with_label("owner", i.owner.as_str())
    });
    let peers = items.iter().flat_map(|i| {
        [
            ("current", i.current),
            ("updating", i.updating),
            ("older", i.older),
        ]
        .map(|(state, n)| {
            Sample::gauge("tracker_item_peers", ITEM_PEERS_HELP, n.into())
                .with_label("name", i.name.as_str())
                .with_label("state", state)
        })
    });
    versions.chain(peers).collect()
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

    /// A TCP connection handler that panicked (caught; the connection
    /// was closed and the thread kept).
    pub fn handler_panicked(&self) {
        self.handler_panics.fetch_add(1, Relaxed);
    }

    /// A datagram received on the UDP port.
    pub fn datagram(&self) {
        self.datagrams.fetch_add(1, Relaxed);
    }

    /// A datagram dropped unanswered (malformed, not ours, too long).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// The page's samples: the swarm's sizes, the counters, then per
    /// item (at most `MAX_ITEMS` of `items`, sorted by name).
    pub fn samples(&self, swarm: Swarm, items: &[Item]) -> Vec<Sample> {
        let v = |a: &AtomicU64| a.load(Relaxed);
        let n = |x: usize| x as u64;
        let mut out = Sample::process(unix_secs(self.started));
        out.extend([
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
                "tracker_handler_panics_total",
                "TCP connection handlers that panicked (caught: the connection closed, the thread kept; a bug to report).",
                v(&self.handler_panics),
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
        ]);
        out.extend(item_samples(items));
        out
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
        m.handler_panicked();
        m.datagram();
        m.dropped();
        let swarm = Swarm {
            peers: 3,
            seeders: 1,
            leechers: 2,
            files: 4,
        };
        let page = render(&m.samples(swarm, &[]));
        for (name, want) in [
            ("tracker_peers", 3),
            ("tracker_seeders", 1),
            ("tracker_leechers", 2),
            ("tracker_files", 4),
            ("tracker_announces_total", 2),
            ("tracker_announces_refused_total", 1),
            ("tracker_queries_total", 1),
            ("tracker_connections_refused_total", 1),
            ("tracker_handler_panics_total", 1),
            ("tracker_datagrams_total", 1),
            ("tracker_datagrams_dropped_total", 1),
        ] {
            assert_eq!(value_in(&page, name), Some(want), "{name}");
        }
        assert_eq!(
            page.matches("# TYPE").count(),
            13,
            "11 of its own, the process start and the build"
        );
    }

    fn item(name: &str, version: u32, owner: &str, peers: [u32; 3]) -> Item {
        Item {
            name: name.into(),
            version,
            owner: owner.into(),
            current: peers[0],
            updating: peers[1],
            older: peers[2],
        }
    }

    #[test]
    fn each_item_s_version_and_peers() {
        let m = TrackerMetrics::default();
        let items = [
            item("new.bin", 3, "A", [6, 2, 1]),
            item("odd \"name\"", 1, "", [1, 0, 0]),
            item("tree/", 2, "B", [0, 0, 4]),
        ];
        let page = render(&m.samples(Swarm::default(), &items));
        let get = |key: &str| value_in(&page, key).unwrap_or_else(|| panic!("{key} in\n{page}"));
        assert_eq!(get(r#"tracker_item_version{name="new.bin",owner="A"}"#), 3);
        assert_eq!(
            get(r#"tracker_item_peers{name="new.bin",state="current"}"#),
            6
        );
        assert_eq!(
            get(r#"tracker_item_peers{name="new.bin",state="updating"}"#),
            2
        );
        assert_eq!(
            get(r#"tracker_item_peers{name="new.bin",state="older"}"#),
            1
        );
        // Label values are escaped; an unowned item has an empty owner.
        assert_eq!(
            get(r#"tracker_item_version{name="odd \"name\"",owner=""}"#),
            1
        );
        assert_eq!(get(r#"tracker_item_peers{name="tree/",state="older"}"#), 4);
        // One HELP and TYPE per metric, however many items.
        assert_eq!(
            page.matches("# TYPE p2pshare_tracker_item_peers gauge")
                .count(),
            1
        );
        assert_eq!(
            page.matches("# HELP p2pshare_tracker_item_version ")
                .count(),
            1
        );
        assert_eq!(
            page.lines()
                .filter(|l| l.starts_with("p2pshare_tracker_item_"))
                .count(),
            12
        );
    }

    #[test]
    fn items_past_the_bound_are_left_out_and_help_says_so() {
        let m = TrackerMetrics::default();
        let items: Vec<Item> = (0..MAX_ITEMS + 5)
            .map(|i| item(&format!("f{i:05}"), 1, "", [1, 0, 0]))
            .collect();
        let page = render(&m.samples(Swarm::default(), &items));
        let versions = page
            .lines()
            .filter(|l| l.starts_with("p2pshare_tracker_item_version{"))
            .count();
        assert_eq!(versions, MAX_ITEMS);
        let last = format!("f{:05}", MAX_ITEMS - 1);
        assert!(page.contains(&format!("{{name=\"{last}\",owner=\"\"}} 1")));
        assert!(!page.contains(&format!("f{MAX_ITEMS:05}")));
        for help in [ITEM_VERSION_HELP, ITEM_PEERS_HELP] {
            assert!(help.contains(&format!("first {MAX_ITEMS} items")), "{help}");
        }
    }
}
