//! `tracker --http PORT`: the dashboard as a web page that refreshes
//! itself (its script reloads the page's content every 2 s; without
//! JavaScript a meta refresh does). Drawn from the same `Summary` as the
//! terminal dashboard: counts, the swarm's rate, a completion histogram,
//! per-item totals (version, owner, peers current, updating and on older
//! versions) and at most `WEB_ROWS` peer rows, so a thousand peers
//! make a page of the same size as ten.

use super::escape::{html, human_bytes};
use super::http::{HttpRequest, Method, Response};
use super::{asset, method_not_allowed, metrics_response, render, App, Page};
use crate::tracker::dashboard::{format_ago, format_rate, format_uptime, left_out, SummarySource};
use crate::tracker::summary::{Summary, HISTOGRAM_BUCKETS};
use crate::units::{count_of, percent};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the page refreshes itself.
pub const REFRESH_SECS: u32 = 2;
/// The most peer rows on the page.
pub const WEB_ROWS: usize = 50;
/// The most file rows on the page.
pub const WEB_FILES: usize = 50;

pub struct TrackerUi {
    source: Box<dyn SummarySource + Sync>,
    started: Instant,
    /// Where peers reach the tracker, shown on the page.
    listen: String,
    /// The `/metrics` page.
    metrics: Box<dyn Fn() -> String + Send + Sync>,
}

impl TrackerUi {
    /// `source` gives the summary to draw, asked for `WEB_ROWS` rows (any
    /// `Fn(usize) -> Summary + Send + Sync` is one); `metrics` the text
    /// of `GET /metrics`.
    pub fn new(
        source: impl SummarySource + Sync,
        started: Instant,
        listen: String,
        metrics: impl Fn() -> String + Send + Sync + 'static,
    ) -> Arc<TrackerUi> {
        Arc::new(TrackerUi {
            source: Box::new(source),
            started,
            listen,
            metrics: Box::new(metrics),
        })
    }

    fn page(&self, status: u16, main: String) -> Response {
        Response::html(
            status,
            render(&Page {
                title: "Dashboard",
                brand: "p2pshare · tracker",
                nav: &[("/", "Dashboard")],
                current: "/",
                kind: "dashboard",
                main,
                script: Some("/static/tracker.js"),
                noscript_refresh: Some(REFRESH_SECS),
            }),
        )
    }
}

impl App for TrackerUi {
    fn handle(&self, req: &mut HttpRequest<'_>) -> Response {
        let get = matches!(req.head.method, Method::Get | Method::Head);
        let path = req.head.path.as_str();
        match path {
            "/" if get => {
                let summary = self.source.summary(WEB_ROWS);
                self.page(
                    200,
                    dashboard(&summary, self.started.elapsed(), &self.listen),
                )
            }
            "/" => method_not_allowed("GET, HEAD"),
            "/metrics" if get => metrics_response((self.metrics)()),
            "/metrics" => method_not_allowed("GET, HEAD"),
            p => match p.strip_prefix("/static/").and_then(asset) {
                Some(r) if get => r,
                Some(_) => method_not_allowed("GET, HEAD"),
                None => self.page(
                    404,
                    format!(
                        "<h1>404 Not Found</h1>\n<p class=\"error\">nothing at {}</p>\n\
                         <p><a href=\"/\">Back to the dashboard</a></p>",
                        html(p)
                    ),
                ),
            },
        }
    }
}

/// `n` and the noun, singular or plural.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("<b>{n}</b> {}", if n == 1 { one } else { many })
}

/// The page's content: uptime and counts, the histogram, per-file
/// totals, then the peer rows (at most `WEB_ROWS`, `WEB_FILES` files).
pub fn dashboard(s: &Summary, uptime: Duration, listen: &str) -> String {
    let mut out = format!(
        "<p class=\"summary\">Up <b id=\"uptime\">{}</b> · {} · {} · {} · {} · \
         swarm <b id=\"rate\">{}</b> · <b>{:.1}</b> announces/s, every {} s · \
         peers reach the tracker on {}</p>\n",
        format_uptime(uptime),
        count(s.peers, "peer", "peers"),
        count(s.files, "file", "files"),
        count(s.seeders, "seeder", "seeders"),
        count(s.leechers, "leecher", "leechers"),
        html(&format_rate(s.rate_bps)),
        s.announces_per_s.max(0.0),
        s.interval.as_secs(),
        html(listen)
    );
    histogram(&mut out, &s.histogram);
    files(&mut out, s);
    peers(&mut out, s);
    let _ = writeln!(
        out,
        "<p class=\"dim\">Refreshes every {REFRESH_SECS} s.</p>"
    );
    out
}

/// Ten columns, one per 10 % of completion, each as tall as its share of
/// the largest; CSS classes give the heights (the page's policy allows no
/// inline style).
fn histogram(out: &mut String, h: &[u32; HISTOGRAM_BUCKETS]) {
    out.push_str("<h1>Downloads by completion</h1>\n");
    if h.iter().all(|&n| n == 0) {
        out.push_str("<p class=\"dim\" id=\"histogram\">No downloads in progress.</p>\n");
        return;
    }
    let max = h.iter().copied().max().unwrap_or(1).max(1);
    out.push_str("<ol id=\"histogram\" class=\"histogram\">\n");
    for (i, &n) in h.iter().enumerate() {
        // Ceiling: one download still shows.
        let tenths = (u64::from(n) * 10).div_ceil(u64::from(max));
        let (lo, hi) = (i * 10, i * 10 + 10);
        let _ = writeln!(
            out,
            "<li title=\"{n} {} {lo}–{hi} % done\"><span class=\"count\">{n}</span>\
             <span class=\"col\"><span class=\"bar h{tenths}\"></span></span>\
             <span class=\"label\">{lo}%</span></li>",
            if n == 1 { "download" } else { "downloads" }
        );
    }
    out.push_str("</ol>\n");
}

/// Columns of the files table.
const FILE_COLUMNS: usize = 9;

/// Per item, the fleet at a glance: its current version and owner, how
/// many peers hold that version complete, how many are still fetching it,
/// how many are on an older version; then the fetchers' mean completion
/// and rate.
fn files(out: &mut String, s: &Summary) {
    out.push_str(
        "<h1>Files</h1>\n<table id=\"files\">\n<thead><tr><th>Name</th>\
         <th class=\"num\">Version</th><th>Owner</th><th class=\"num\">Size</th>\
         <th class=\"num\" title=\"Peers holding the current version complete\">Current</th>\
         <th class=\"num\" title=\"Peers still fetching the current version\">Updating</th>\
         <th class=\"num\" title=\"Peers on an older version\">Older</th>\
         <th>Mean completion</th><th class=\"num\">Rate</th></tr></thead>\n<tbody>\n",
    );
    if s.file_totals.is_empty() {
        let _ = writeln!(
            out,
            "<tr class=\"empty\"><td colspan=\"{FILE_COLUMNS}\">No files yet.</td></tr>"
        );
    }
    for f in s.file_totals.iter().take(WEB_FILES) {
        let done = if f.leechers == 0 {
            "<span class=\"dim\">nothing downloading</span>".to_string()
        } else {
            let pct = percent(f.mean_fraction, false);
            format!(
                "<progress max=\"100\" value=\"{pct:.1}\"></progress> \
                 <span class=\"pct\">{pct:.1}%</span>"
            )
        };
        let owner = if f.owner.is_empty() {
            "<span class=\"dim\">nobody</span>".to_string()
        } else {
            html(&f.owner)
        };
        let _ = writeln!(
            out,
            "<tr data-file=\"{name}\"><td class=\"name\">{name}</td>\
             <td class=\"num\">v{}</td><td class=\"owner\">{owner}</td>\
             <td class=\"num\" title=\"{} bytes\">{}</td><td class=\"num current\">{}</td>\
             <td class=\"num updating\">{}</td><td class=\"num older\">{}</td>\
             <td>{done}</td><td class=\"num\">{}</td></tr>",
            f.version,
            f.size,
            human_bytes(f.size),
            f.seeders,
            f.leechers,
            f.older,
            html(&format_rate(f.rate_bps)),
            name = html(&f.name),
        );
    }
    if s.file_totals.len() > WEB_FILES {
        let _ = writeln!(
            out,
            "<tr class=\"more\"><td colspan=\"{FILE_COLUMNS}\">… and {} more files</td></tr>",
            s.file_totals.len() - WEB_FILES
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn peers(out: &mut String, s: &Summary) {
    out.push_str(
        "<h1>Peers</h1>\n<p class=\"dim\">The slowest downloads first, then the peers \
         seen most recently.</p>\n<table id=\"peers\">\n<thead><tr><th>Peer</th>\
         <th>Address</th><th>File</th><th>Progress</th><th class=\"num\">Rate</th>\
         <th class=\"num\">Seen</th></tr></thead>\n<tbody>\n",
    );
    if s.rows.is_empty() && s.peers == 0 {
        out.push_str("<tr class=\"empty\"><td colspan=\"6\">No peers registered.</td></tr>\n");
    }
    let shown = s.rows.len().min(WEB_ROWS);
    for r in &s.rows[..shown] {
        let (id, addr) = (html(&r.peer_id), html(&r.addr));
        let seen = format!("{} ago", format_ago(r.seen_ago));
        if r.file.is_empty() {
            let _ = writeln!(
                out,
                "<tr data-peer=\"{id}\"><td class=\"name\">{id}</td><td>{addr}</td>\
                 <td colspan=\"3\" class=\"dim\">no files</td><td class=\"num\">{seen}</td></tr>"
            );
            continue;
        }
        let pct = percent(r.fraction, r.complete);
        let rate = if r.complete {
            String::new()
        } else {
            html(&format_rate(r.rate_bps))
        };
        let _ = writeln!(
            out,
            "<tr data-peer=\"{id}\"><td class=\"name\">{id}</td><td>{addr}</td>\
             <td class=\"name\">{}</td><td><progress max=\"100\" value=\"{pct:.1}\"></progress> \
             <span class=\"pct\">{pct:.1}%</span>{}</td><td class=\"num\">{rate}</td>\
             <td class=\"num\">{seen}</td></tr>",
            html(&r.file),
            if r.complete {
                " <span class=\"ok\">seeding</span>"
            } else {
                ""
            }
        );
    }
    match left_out(s, shown) {
        (0, 0) => {}
        (0, rows) => {
            let _ = writeln!(
                out,
                "<tr class=\"more\"><td colspan=\"6\">… and {}</td></tr>",
                count_of(rows, "more row", "more rows")
            );
        }
        (peers, _) => {
            let _ = writeln!(
                out,
                "<tr class=\"more\"><td colspan=\"6\">… and {}</td></tr>",
                count_of(peers, "more peer", "more peers")
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::summary::{FileTotals, PeerRow};

    fn row(peer: &str, file: &str, fraction: f64, complete: bool) -> PeerRow {
        PeerRow {
            peer_id: peer.into(),
            addr: "10.0.0.1:7000".into(),
            file: file.into(),
            fraction,
            complete,
            rate_bps: if complete { 0.0 } else { 2e6 },
            seen_ago: Duration::from_secs(1),
        }
    }

    #[test]
    fn counts_histogram_files_and_peers_escaped() {
        let s = Summary {
            peers: 3,
            seeders: 1,
            leechers: 1,
            files: 1,
            rate_bps: 2e6,
            histogram: [0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            file_totals: vec![FileTotals {
                name: "<movie>.bin".into(),
                size: 2_000_000,
                version: 1,
                seeders: 1,
                leechers: 1,
                mean_fraction: 0.9999,
                rate_bps: 2e6,
                ..FileTotals::default()
            }],
            rows: vec![
                row("bob", "<movie>.bin", 0.9999, false),
                row("alice", "<movie>.bin", 1.0, true),
                row("carol", "", 0.0, false),
            ],
            interval: Duration::from_secs(3),
            announces_per_s: 1.0,
        };
        let out = dashboard(&s, Duration::from_secs(3723), "0.0.0.0:8000");
        assert!(out.contains(
            "Up <b id=\"uptime\">1:02:03</b> · <b>3</b> peers · <b>1</b> file · \
             <b>1</b> seeder · <b>1</b> leecher · swarm <b id=\"rate\">2.0 MB/s</b>"
        ));
        assert!(!out.contains("<movie>"), "names are escaped");
        assert!(out.contains("&lt;movie&gt;.bin"));
        // A bar per file in progress and per peer row with a file.
        assert_eq!(out.matches("<progress").count(), 3);
        assert!(out.contains("value=\"100.0\"></progress> <span class=\"pct\">100.0%</span> <span class=\"ok\">seeding"));
        assert_eq!(out.matches("seeding").count(), 1);
        assert!(
            out.contains("<span class=\"pct\">99.9%</span></td><td class=\"num\">2.0 MB/s"),
            "almost is not done: {out}"
        );
        assert!(out.contains("<tr data-peer=\"carol\">"));
        // The histogram: the full column for 90 %, nothing elsewhere.
        assert!(out.contains("<span class=\"bar h10\"></span></span><span class=\"label\">90%"));
        assert_eq!(out.matches("class=\"bar h0\"").count(), 9);
        assert!(!out.contains("more peers"));
        let empty = dashboard(&Summary::default(), Duration::ZERO, "x");
        assert!(empty.contains("No peers registered.") && empty.contains("No files yet."));
        assert!(empty.contains("No downloads in progress."));
    }

    #[test]
    fn each_item_shows_its_version_owner_and_who_is_on_which() {
        let s = Summary {
            files: 2,
            file_totals: vec![
                FileTotals {
                    name: "new.bin".into(),
                    size: 64_000_000,
                    version: 3,
                    owner: "<A>".into(),
                    seeders: 6,
                    leechers: 2,
                    older: 1,
                    mean_fraction: 0.5,
                    ..FileTotals::default()
                },
                FileTotals {
                    name: "free.bin".into(),
                    version: 1,
                    seeders: 1,
                    ..FileTotals::default()
                },
            ],
            ..Summary::default()
        };
        let out = dashboard(&s, Duration::ZERO, "x");
        assert!(
            out.contains(
                "<tr data-file=\"new.bin\"><td class=\"name\">new.bin</td>\
                 <td class=\"num\">v3</td><td class=\"owner\">&lt;A&gt;</td>"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "<td class=\"num current\">6</td><td class=\"num updating\">2</td>\
                 <td class=\"num older\">1</td>"
            ),
            "{out}"
        );
        assert!(
            out.contains("v1</td><td class=\"owner\"><span class=\"dim\">nobody</span>"),
            "{out}"
        );
        // Every row has as many cells as the header has columns.
        let head = &out[out.find("<table id=\"files\">").unwrap()..];
        let head = &head[..head.find("</thead>").unwrap()];
        let cells = head.matches("<th>").count() + head.matches("<th ").count();
        assert_eq!(cells, FILE_COLUMNS);
        for row in out.lines().filter(|l| l.starts_with("<tr data-file=")) {
            assert_eq!(row.matches("<td").count(), FILE_COLUMNS, "{row}");
        }
        // The word the end-to-end tests count belongs to peer rows only.
        assert!(!out.contains("seeding"));
    }

    #[test]
    fn a_thousand_peers_make_a_page_of_fifty_rows() {
        let rows: Vec<PeerRow> = (0..1000)
            .map(|i| row(&format!("p{i}"), "f", i as f64 / 1000.0, false))
            .collect();
        let s = Summary {
            peers: 1000,
            leechers: 1000,
            histogram: [100; HISTOGRAM_BUCKETS],
            file_totals: (0..80)
                .map(|i| FileTotals {
                    name: format!("f{i}"),
                    ..FileTotals::default()
                })
                .collect(),
            rows,
            ..Summary::default()
        };
        let out = dashboard(&s, Duration::ZERO, "x");
        assert_eq!(out.matches("<tr data-peer=").count(), WEB_ROWS);
        assert!(out.contains("… and 950 more peers"));
        assert_eq!(out.matches("<tr data-file=").count(), WEB_FILES);
        assert!(out.contains("… and 30 more files"));
        assert!(out.len() < 64 * 1024, "{} bytes", out.len());
        // One peer with more files than rows: rows are left out, not peers.
        let one = Summary {
            peers: 1,
            rows: (0..60)
                .map(|i| row("solo", &format!("f{i}"), 1.0, true))
                .collect(),
            ..Summary::default()
        };
        assert!(dashboard(&one, Duration::ZERO, "x").contains("… and 10 more rows"));
    }

    #[test]
    fn the_source_is_asked_for_the_rows_the_page_shows() {
        let ui = TrackerUi::new(
            |rows: usize| Summary {
                peers: rows,
                ..Summary::default()
            },
            Instant::now(),
            "x".into(),
            String::new,
        );
        assert_eq!(ui.source.summary(WEB_ROWS).peers, WEB_ROWS);
    }
}
