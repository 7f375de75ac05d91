//! Counters for `GET /metrics`, in the Prometheus text exposition format
//! (version 0.0.4): a `# HELP` and a `# TYPE` line, then the sample (or,
//! for a metric with labels, its samples), per metric. `peer` and `tracker` hold each side's counters as atomics that
//! the servers bump through a few small methods; `render` turns a list of
//! samples into the page, with no I/O, so the format is unit-tested.

pub mod peer;
pub mod tracker;

use std::fmt::Write as _;

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
}

/// One metric with its value, as scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Without `PREFIX`; a counter's ends in `_total`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// `(label, value)` pairs, in the order shown; none for most. The
    /// samples of one metric with labels come one after the other, each
    /// with the same `help` and `kind`.
    pub labels: Vec<(&'static str, String)>,
    pub value: u64,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        debug_assert!(name.ends_with("_total"), "{name}");
        Sample {
            name,
            help,
            kind: Kind::Counter,
            labels: Vec::new(),
            value,
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample {
            name,
            help,
            kind: Kind::Gauge,
            labels: Vec::new(),
            value,
        }
    }

    /// This sample with one more label (`label` is a valid label name:
    /// ours are fixed words; `value` may be anything, it is escaped).
    pub fn with_label(mut self, label: &'static str, value: impl Into<String>) -> Sample {
        self.labels.push((label, value.into()));
        self
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
        if last != Some(s.name) {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            // HELP text escapes `\` and newlines; ours are plain, but a
            // stray one must not break the page.
            let help = s.help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {PREFIX}{} {help}", s.name);
            let _ = writeln!(out, "# TYPE {PREFIX}{} {kind}", s.name);
            last = Some(s.name);
        }
        let _ = write!(out, "{PREFIX}{}", s.name);
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
/// for tests and scripts that check a scrape.
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
            Sample::counter("bytes_up_total", "Bytes of blocks sent.", 4096),
            Sample::gauge("downloads_active", "Downloads now.", 2),
        ]);
        assert_eq!(
            page,
            "# HELP p2pshare_bytes_up_total Bytes of blocks sent.\n\
             # TYPE p2pshare_bytes_up_total counter\n\
             p2pshare_bytes_up_total 4096\n\
             # HELP p2pshare_downloads_active Downloads now.\n\
             # TYPE p2pshare_downloads_active gauge\n\
             p2pshare_downloads_active 2\n"
        );
        assert_eq!(value_in(&page, "bytes_up_total"), Some(4096));
        assert_eq!(value_in(&page, "downloads_active"), Some(2));
        assert_eq!(value_in(&page, "bytes_up"), None);
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
    fn help_cannot_break_a_line() {
        let page = render(&[Sample::gauge("x", "a\nb \\ c", 0)]);
        assert!(
            page.starts_with("# HELP p2pshare_x a\\nb \\\\ c\n"),
            "{page}"
        );
        assert_eq!(page.lines().count(), 3);
    }
}
