//! Counters for `GET /metrics`, in the Prometheus text exposition format
//! (version 0.0.4): a `# HELP` and a `# TYPE` line, then the sample, per
//! metric. `peer` and `tracker` hold each side's counters as atomics that
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
    pub value: u64,
}

impl Sample {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        debug_assert!(name.ends_with("_total"), "{name}");
        Sample {
            name,
            help,
            kind: Kind::Counter,
            value,
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample {
            name,
            help,
            kind: Kind::Gauge,
            value,
        }
    }
}

/// The exposition page: for each sample `# HELP`, `# TYPE`, then
/// `p2pshare_<name> <value>`, every line ended by `\n`.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::with_capacity(samples.len() * 120);
    for s in samples {
        let kind = match s.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // HELP text escapes `\` and newlines; ours are plain, but a
        // stray one must not break the page.
        let help = s.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {PREFIX}{} {help}", s.name);
        let _ = writeln!(out, "# TYPE {PREFIX}{} {kind}", s.name);
        let _ = writeln!(out, "{PREFIX}{} {}", s.name, s.value);
    }
    out
}

/// Reads one sample's value back from a page (`name` without `PREFIX`);
/// for tests and scripts that check a scrape.
pub fn value_in(page: &str, name: &str) -> Option<u64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
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
    fn help_cannot_break_a_line() {
        let page = render(&[Sample::gauge("x", "a\nb \\ c", 0)]);
        assert!(
            page.starts_with("# HELP p2pshare_x a\\nb \\\\ c\n"),
            "{page}"
        );
        assert_eq!(page.lines().count(), 3);
    }
}
