//! `tracker --http PORT`: the dashboard as a web page that refreshes
//! itself (its script reloads the page's content every 2 s; without
//! JavaScript a meta refresh does). Drawn from the same catalogue
//! `Snapshot` as the terminal dashboard, taken under the lock and rendered
//! without it.

use super::escape::{html, human_bytes};
use super::http::{Method, Request, Response};
use super::{asset, method_not_allowed, render, App, Page};
use crate::tracker::dashboard::format_uptime;
use crate::tracker::{Shared, Snapshot};
use crate::units::hex;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the page refreshes itself.
pub const REFRESH_SECS: u32 = 2;

pub struct TrackerUi {
    shared: Arc<Shared>,
    started: Instant,
    /// Where the tracker listens, shown on the page.
    listen: String,
}

impl TrackerUi {
    pub fn new(shared: Arc<Shared>, started: Instant, listen: String) -> Arc<TrackerUi> {
        Arc::new(TrackerUi {
            shared,
            started,
            listen,
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
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let get = matches!(req.head.method, Method::Get | Method::Head);
        let path = req.head.path.as_str();
        match path {
            "/" if get => {
                let snap = self.shared.lock().snapshot();
                self.page(200, dashboard(&snap, self.started.elapsed(), &self.listen))
            }
            "/" => method_not_allowed("GET, HEAD"),
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

/// One percentage, never 100.0% for an incomplete file.
fn percent(fraction: f64, complete: bool) -> f64 {
    if complete {
        100.0
    } else {
        (fraction.clamp(0.0, 1.0) * 100.0).min(99.9)
    }
}

/// The page's content: uptime and counts, one progress bar per peer per
/// file, then the catalogue.
pub fn dashboard(snap: &Snapshot, uptime: Duration, listen: &str) -> String {
    let mut out = format!(
        "<p class=\"summary\">Up <b id=\"uptime\">{}</b> · <b>{}</b> {} · <b>{}</b> {} · \
         peers reach the tracker on {}</p>\n<h1>Peers</h1>\n",
        format_uptime(uptime),
        snap.peers.len(),
        if snap.peers.len() == 1 {
            "peer"
        } else {
            "peers"
        },
        snap.files.len(),
        if snap.files.len() == 1 {
            "file"
        } else {
            "files"
        },
        html(listen)
    );
    out.push_str(
        "<table id=\"peers\">\n<thead><tr><th>Peer</th><th>Address</th><th>File</th>\
         <th>Progress</th></tr></thead>\n<tbody>\n",
    );
    if snap.peers.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"4\">No peers registered.</td></tr>\n");
    }
    for p in &snap.peers {
        let (id, addr) = (html(&p.peer_id), html(&p.addr));
        if p.files.is_empty() {
            let _ = writeln!(
                out,
                "<tr data-peer=\"{id}\"><td class=\"name\">{id}</td><td>{addr}</td>\
                 <td colspan=\"2\" class=\"dim\">no files</td></tr>"
            );
        }
        for (i, f) in p.files.iter().enumerate() {
            let (shown_id, shown_addr) = if i == 0 {
                (id.as_str(), addr.as_str())
            } else {
                ("", "")
            };
            let pct = percent(f.fraction, f.complete);
            let _ = writeln!(
                out,
                "<tr data-peer=\"{id}\"><td class=\"name\">{shown_id}</td><td>{shown_addr}</td>\
                 <td class=\"name\">{}</td><td><progress max=\"100\" value=\"{pct:.1}\"></progress> \
                 <span class=\"pct\">{pct:.1}%</span>{}</td></tr>",
                html(&f.name),
                if f.complete {
                    " <span class=\"ok\">seeding</span>"
                } else {
                    ""
                }
            );
        }
    }
    out.push_str("</tbody>\n</table>\n<h1>Files</h1>\n");
    out.push_str(
        "<table id=\"files\">\n<thead><tr><th>Name</th><th class=\"num\">Size</th><th>MD5</th>\
         <th class=\"num\">Holders</th><th class=\"num\">Complete</th></tr></thead>\n<tbody>\n",
    );
    if snap.files.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"5\">No files yet.</td></tr>\n");
    }
    for f in &snap.files {
        let _ = writeln!(
            out,
            "<tr><td class=\"name\">{}</td><td class=\"num\" title=\"{} bytes\">{}</td>\
             <td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            html(&f.name),
            f.size,
            human_bytes(f.size),
            hex(&f.md5),
            f.holders,
            f.seeders
        );
    }
    let _ = writeln!(
        out,
        "</tbody>\n</table>\n<p class=\"dim\">Refreshes every {REFRESH_SECS} s.</p>"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::{FileProgress, PeerView};
    use crate::wire::FileSummary;

    #[test]
    fn one_bar_per_peer_per_file_escaped() {
        let snap = Snapshot {
            files: vec![FileSummary {
                name: "<movie>.bin".into(),
                size: 2_000_000,
                md5: [0xab; 16],
                holders: 2,
                seeders: 1,
            }],
            peers: vec![
                PeerView {
                    peer_id: "alice".into(),
                    addr: "10.0.0.1:7000".into(),
                    files: vec![FileProgress {
                        name: "<movie>.bin".into(),
                        fraction: 1.0,
                        complete: true,
                    }],
                },
                PeerView {
                    peer_id: "bob".into(),
                    addr: "10.0.0.2:7000".into(),
                    files: vec![FileProgress {
                        name: "<movie>.bin".into(),
                        fraction: 0.9999,
                        complete: false,
                    }],
                },
                PeerView {
                    peer_id: "carol".into(),
                    addr: "10.0.0.3:7000".into(),
                    files: vec![],
                },
            ],
        };
        let out = dashboard(&snap, Duration::from_secs(3723), "0.0.0.0:8000");
        assert!(out.contains("Up <b id=\"uptime\">1:02:03</b> · <b>3</b> peers · <b>1</b> file"));
        assert!(!out.contains("<movie>"), "names are escaped");
        assert!(out.contains("&lt;movie&gt;.bin"));
        assert_eq!(out.matches("<progress").count(), 2);
        assert!(out.contains("value=\"100.0\"></progress> <span class=\"pct\">100.0%</span> <span class=\"ok\">seeding"));
        assert!(
            out.contains("<span class=\"pct\">99.9%</span>"),
            "almost is not done"
        );
        assert!(out.contains("<tr data-peer=\"carol\">"));
        assert!(out.contains(&"ab".repeat(16)));
        let empty = dashboard(&Snapshot::default(), Duration::ZERO, "x");
        assert!(empty.contains("No peers registered.") && empty.contains("No files yet."));
    }
}
