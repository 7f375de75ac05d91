//! Counters for `GET /metrics`, in the Prometheus text exposition format
//! (version 0.0.4): a `# HELP` and a `# TYPE` line, then the sample (or,
//! for a metric with labels, its samples), per metric. `peer` and
//! `tracker` hold each side's counters as atomics that the servers bump
//! through a few small methods; `render` turns a list of samples into the
//! page, with no I/O, so the format is unit-tested.
//!
//! Names follow Prometheus's conventions (`promtool check metrics` is
//! clean, tests/integration/metrics.rs): the unit last before `_total`
//! (`peer_sent_bytes_total`), durations in seconds, the standard
//! `process_start_time_seconds` unprefixed, and `p2pshare_build_info`.

pub mod peer;
pub mod tracker;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

/// Unix seconds of `t` (0 before 1970), for `Sample::process`.
pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `Content-Type` Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric name starts with this.
pub const PREFIX: &str = "p2pshare_";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts at 0 with the process); named `..._total`.
    Counter,
    /// Goes up and down: a count right now.
    Gauge,
    /// Observations counted in buckets: `_bucket{le=..}`, `_sum`, `_count`.
    Histogram,
}

/// One metric with its value, as scraped.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Without `PREFIX`; a counter's ends in `_total`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// `(label, value)` pairs, in the order shown; none for most. The
    /// samples of one metric with labels come one after the other, each
    /// with the same `help` and `kind`.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    /// Written after the name on the sample's line only (a histogram's
    /// `_bucket`, `_sum`, `_count`); empty for the rest.
    suffix: &'static str,
    /// Without `PREFIX`: a name every exporter shares
    /// (`process_start_time_seconds`).
    bare: bool,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        debug_assert!(name.ends_with("_total"), "{name}");
        Sample::of(name, help, Kind::Counter, value as f64)
    }

    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample::of(name, help, Kind::Gauge, value as f64)
    }

    fn of(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Sample {
        Sample {
            name,
            help,
            kind,
            labels: Vec::new(),
            value,
            suffix: "",
            bare: false,
        }
    }

    /// What every process shows: when it started (Unix seconds, the
    /// standard `process_start_time_seconds`, which Prometheus uses to
    /// tell a restart from a counter reset) and which build it is.
    pub fn process(started_unix_secs: f64) -> Vec<Sample> {
        let mut start = Sample::of(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            Kind::Gauge,
            started_unix_secs,
        );
        start.bare = true;
        vec![
            start,
            Sample::gauge("build_info", "The running build: its version, always 1.", 1)
                .with_label("version", env!("CARGO_PKG_VERSION")),
        ]
    }

    /// This sample with one more label (`label` is a valid label name:
    /// ours are fixed words; `value` may be anything, it is escaped).
    pub fn with_label(mut self, label: &'static str, value: impl Into<String>) -> Sample {
        self.labels.push((label, value.into()));
        self
    }
}

/// A histogram of durations in seconds, with fixed bucket bounds, kept in
/// atomics so that any thread may observe into it.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bound, the observations at most that bound (not cumulative).
    counts: Vec<AtomicU64>,
    /// Observations above the last bound.
    over: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            over: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, secs: f64) {
        let secs = secs.max(0.0);
        match self.bounds.iter().position(|&b| secs <= b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        self.sum_micros
            .fetch_add((secs * 1e6).round() as u64, Relaxed);
    }

    /// Its samples as the text format wants them: cumulative buckets up
    /// to `+Inf`, then `_sum` and `_count`.
    pub fn samples(&self, name: &'static str, help: &'static str) -> Vec<Sample> {
        let line = |suffix, value: f64| {
            let mut s = Sample::of(name, help, Kind::Histogram, value);
            s.suffix = suffix;
            s
        };
        let mut out = Vec::with_capacity(self.bounds.len() + 3);
        let mut below = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            below += count.load(Relaxed);
            out.push(line("_bucket", below as f64).with_label("le", bound.to_string()));
        }
        let total = below + self.over.load(Relaxed);
        out.push(line("_bucket", total as f64).with_label("le", "+Inf"));
        out.push(line("_sum", self.sum_micros.load(Relaxed) as f64 / 1e6));
        out.push(line("_count", total as f64));
        out
    }
}

/// A label value as the text format wants it: `\`, `"` and line feeds
/// escaped, so an item named `a"b` or holding a newline cannot break the
/// page.
fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The exposition page: for each metric `# HELP` and `# TYPE`, then its
/// samples, `p2pshare_<name> <value>` or `p2pshare_<name>{a="x",b="y"}
/// <value>`, every line ended by `\n`.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::with_capacity(samples.len() * 120);
    let mut last: Option<&str> = None;
    for s in samples {
        // A metric with labels has many samples and one HELP and TYPE.
        let prefix = if s.bare { "" } else { PREFIX };
        if last != Some(s.name) {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            // HELP text escapes `\` and newlines; ours are plain, but a
            // stray one must not break the page.
            let help = s.help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {prefix}{} {help}", s.name);
            let _ = writeln!(out, "# TYPE {prefix}{} {kind}", s.name);
            last = Some(s.name);
        }
        let _ = write!(out, "{prefix}{}{}", s.name, s.suffix);
        if !s.labels.is_empty() {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            let _ = write!(out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(out, " {}", s.value);
    }
    out
}

/// Reads one sample's value back from a page (`name` without `PREFIX`,
/// with its labels as the page writes them: `tracker_item_version{name="a"}`);
/// for tests and scripts that check a scrape. Whole numbers only.
pub fn value_in(page: &str, name: &str) -> Option<u64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        // The value is the last word: a label value may hold spaces.
        let (n, v) = l.rsplit_once(' ')?;
        (n.strip_prefix(PREFIX)? == name).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format() {
        let page = render(&[
            Sample::counter("sent_bytes_total", "Bytes of blocks sent.", 4096),
            Sample::gauge("downloads_active", "Downloads now.", 2),
        ]);
        assert_eq!(
            page,
            "# HELP p2pshare_sent_bytes_total Bytes of blocks sent.\n\
             # TYPE p2pshare_sent_bytes_total counter\n\
             p2pshare_sent_bytes_total 4096\n\
             # HELP p2pshare_downloads_active Downloads now.\n\
             # TYPE p2pshare_downloads_active gauge\n\
             p2pshare_downloads_active 2\n"
        );
        assert_eq!(value_in(&page, "sent_bytes_total"), Some(4096));
        assert_eq!(value_in(&page, "downloads_active"), Some(2));
        assert_eq!(value_in(&page, "sent_bytes"), None);
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn labelled_samples_share_one_help_and_type() {
        let peers = |name: &str, state: &str, n| {
            Sample::gauge("item_peers", "Peers per item.", n)
                .with_label("name", name)
                .with_label("state", state)
        };
        let page = render(&[
            Sample::gauge("files", "Files.", 2),
            peers("a b", "current", 3),
            peers("a b", "older", 1),
            peers("x\"y\\z\nw", "current", 0),
        ]);
        assert_eq!(
            page,
            "# HELP p2pshare_files Files.\n\
             # TYPE p2pshare_files gauge\n\
             p2pshare_files 2\n\
             # HELP p2pshare_item_peers Peers per item.\n\
             # TYPE p2pshare_item_peers gauge\n\
             p2pshare_item_peers{name=\"a b\",state=\"current\"} 3\n\
             p2pshare_item_peers{name=\"a b\",state=\"older\"} 1\n\
             p2pshare_item_peers{name=\"x\\\"y\\\\z\\nw\",state=\"current\"} 0\n"
        );
        assert_eq!(
            value_in(&page, "item_peers{name=\"a b\",state=\"older\"}"),
            Some(1)
        );
        assert_eq!(value_in(&page, "item_peers"), None);
        assert_eq!(value_in(&page, "files"), Some(2));
    }

    #[test]
    fn a_histogram_counts_cumulatively_and_the_process_lines_are_standard() {
        let h = Histogram::new(&[1.0, 10.0]);
        for secs in [0.5, 2.0, 3.0, 60.0] {
            h.observe(secs);
        }
        let mut samples = Sample::process(1_700_000_000.5);
        samples.extend(h.samples("download_duration_seconds", "Downloads."));
        let want = "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.\n\
             # TYPE process_start_time_seconds gauge\n\
             process_start_time_seconds 1700000000.5\n\
             # HELP p2pshare_build_info The running build: its version, always 1.\n\
             # TYPE p2pshare_build_info gauge\n\
             p2pshare_build_info{version=\"0.1.0\"} 1\n\
             # HELP p2pshare_download_duration_seconds Downloads.\n\
             # TYPE p2pshare_download_duration_seconds histogram\n\
             p2pshare_download_duration_seconds_bucket{le=\"1\"} 1\n\
             p2pshare_download_duration_seconds_bucket{le=\"10\"} 3\n\
             p2pshare_download_duration_seconds_bucket{le=\"+Inf\"} 4\n\
             p2pshare_download_duration_seconds_sum 65.5\n\
             p2pshare_download_duration_seconds_count 4\n";
        let want = want.replace("0.1.0", env!("CARGO_PKG_VERSION"));
        assert_eq!(render(&samples), want);
    }

    #[test]
    fn help_cannot_break_a_line() {
        let page = render(&[Sample::gauge("x", "a\nb \\ c", 0)]);
        assert!(
            page.starts_with("# HELP p2pshare_x a\\nb \\\\ c\n"),
            "{page}"
        );
        assert_eq!(page.lines().count(), 3);
    }
}
