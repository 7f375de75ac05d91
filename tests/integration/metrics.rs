//! `GET /metrics` on the peer's and the tracker's `--http` port: after a
//! real transfer between two peers, the counters on each side have moved
//! as the transfer says they should; after the owner's next version, the
//! tracker's per-item gauges (and its web dashboard) show who is on which.
//! Every page passes `promtool check metrics` where promtool is installed.

use crate::common::http;
use crate::common::*;
use p2pshare::metrics::value_in;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// One scrape, checked for the text format on the way.
fn scrape(base: &str) -> String {
    let r = http::get(base, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let page = r.text();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        // `name value` or `name{labels} value`; a label value may hold
        // spaces, the value never does.
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let sample = series.split('{').next().unwrap();
        assert!(
            sample.starts_with("p2pshare_") || sample == "process_start_time_seconds",
            "{line}"
        );
        assert!(value.parse::<f64>().is_ok(), "{line}");
        // A histogram's samples carry a suffix its TYPE line has not.
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| sample.strip_suffix(s))
            .filter(|base| page.contains(&format!("# TYPE {base} histogram")))
            .unwrap_or(sample);
        assert!(
            page.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE"
        );
        assert!(
            page.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    promtool_check(&page);
    page
}

/// `promtool check metrics` on `page`, when promtool is installed
/// (`apt-get install prometheus`); nothing otherwise.
fn promtool_check(page: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool check metrics skipped: no promtool (apt-get install prometheus)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn value(page: &str, name: &str) -> u64 {
    value_in(page, name).unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

#[test]
fn both_sides_count_a_transfer() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start_with(&tmp.path().join("tracker"), &["--http", "0"]);
    let dash = tracker.web_url();
    let before = scrape(&dash);
    assert_eq!(value(&before, "tracker_peers"), 0);
    assert_eq!(value(&before, "tracker_files"), 0);

    let size = 1024 * 1024 + 77;
    let data = test_bytes(size, 9);
    let (dir_a, dir_b) = (tmp.path().join("A"), tmp.path().join("B"));
    std::fs::create_dir_all(dir_a.join("files")).unwrap();
    std::fs::write(dir_a.join("files/m.bin"), &data).unwrap();
    let (_a, base_a) = web_peer("A", &tracker, &dir_a, &[]);
    wait_until(WAIT, "A's file at the tracker", || {
        p2pshare::peer::session::tracker_client::list_files(&tracker.addr())
            .is_ok_and(|f| f.iter().any(|f| f.name == "m.bin" && f.holders > 0))
    });
    // Its one tracker answers (the session said so, or a query did).
    let up = format!(
        "p2pshare_peer_tracker_up{{tracker=\"{}\"}} 1\n",
        tracker.addr()
    );
    wait_until(WAIT, "A's tracker up in its metrics", || {
        scrape(&base_a).contains(&up)
    });
    let idle = scrape(&base_a);
    assert_eq!(value(&idle, "peer_sent_bytes_total"), 0);
    assert_eq!(value(&idle, "peer_downloads_active"), 0);

    let (_b, base_b) = web_peer("B", &tracker, &dir_b, &["--get", "m.bin"]);
    wait_until(WAIT, "B's download", || {
        std::fs::read(dir_b.join("files/m.bin")).is_ok_and(|d| d == data)
    });

    let a = scrape(&base_a);
    let b = scrape(&base_b);
    let size = size as u64;
    // Every byte came from A, the only holder; endgame duplicates may add
    // a little, never take away.
    assert!(value(&a, "peer_sent_bytes_total") >= size, "{a}");
    assert!(value(&b, "peer_received_bytes_total") >= size, "{b}");
    assert_eq!(
        value(&b, "peer_sent_bytes_total"),
        value(&b, "peer_sent_bytes_total")
    );
    assert_eq!(value(&a, "peer_received_bytes_total"), 0, "{a}");
    assert!(value(&b, "peer_pieces_verified_total") >= 1, "{b}");
    assert_eq!(value(&b, "peer_pieces_rejected_total"), 0, "{b}");
    assert_eq!(value(&b, "peer_peers_banned_total"), 0, "{b}");
    assert!(value(&a, "peer_connections_accepted_total") >= 1, "{a}");
    assert_eq!(value(&a, "peer_connections_refused_total"), 0, "{a}");
    assert_eq!(value(&b, "peer_downloads_active"), 0, "{b}");
    assert_eq!(value(&b, "peer_download_duration_seconds_count"), 1, "{b}");
    assert_eq!(value(&a, "peer_download_duration_seconds_count"), 0, "{a}");
    for page in [&a, &b] {
        let version = format!("build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
        assert_eq!(value(page, &version), 1, "{page}");
        let started = page
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no process_start_time_seconds in\n{page}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(started > 1.6e9 && started <= now, "{started}");
    }

    // The tracker sees both peers, one file, and has counted their traffic.
    wait_until(WAIT, "both peers seeding at the tracker", || {
        let t = scrape(&dash);
        value(&t, "tracker_peers") == 2 && value(&t, "tracker_seeders") == 2
    });
    let t = scrape(&dash);
    assert_eq!(value(&t, "tracker_files"), 1, "{t}");
    assert_eq!(value(&t, "tracker_leechers"), 0, "{t}");
    assert!(value(&t, "tracker_announces_total") >= 2, "{t}");
    assert!(value(&t, "tracker_queries_total") >= 2, "{t}");
    assert!(
        value(&t, "tracker_datagrams_total") >= value(&t, "tracker_announces_total"),
        "{t}"
    );
    // Counters never go down between scrapes.
    for name in ["tracker_announces_total", "tracker_queries_total"] {
        assert!(value(&t, name) >= value(&before, name), "{name}");
    }
    // Per item: A published m.bin, so owns it; both hold version 1.
    assert_eq!(
        value(&t, r#"tracker_item_version{name="m.bin",owner="A"}"#),
        1
    );
    let peers = |page: &str, state: &str| {
        value(
            page,
            &format!(r#"tracker_item_peers{{name="m.bin",state="{state}"}}"#),
        )
    };
    assert_eq!(
        (
            peers(&t, "current"),
            peers(&t, "updating"),
            peers(&t, "older")
        ),
        (2, 0, 0)
    );

    // A changes the file: version 2, which A holds and B does not yet.
    let mut v2 = data.clone();
    v2[5000..5100].copy_from_slice(&[0xee; 100]);
    std::fs::write(dir_a.join("files/m.bin"), &v2).unwrap();
    wait_until(WAIT, "version 2 held by A, B still on version 1", || {
        let t = scrape(&dash);
        value_in(&t, r#"tracker_item_version{name="m.bin",owner="A"}"#) == Some(2)
            && (peers(&t, "current"), peers(&t, "older")) == (1, 1)
    });
    // The web dashboard says the same.
    let page = http::get(&dash, "/").text();
    assert!(
        page.contains(
            "<td class=\"name\">m.bin</td><td class=\"num\">v2</td><td class=\"owner\">A</td>"
        ) && page.contains("<td class=\"num current\">1</td>")
            && page.contains("<td class=\"num older\">1</td>"),
        "{page}"
    );
}
