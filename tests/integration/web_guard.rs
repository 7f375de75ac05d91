//! The web UI under a slow-loris from its own address (issue 22 item 1):
//! 32 connections from 127.0.0.1 trickling a header byte every second
//! shut the user out (0 of 5 page loads served) and each refusal was a
//! WARN line (10,834 in 35 s). Now the UI admits connections as the block
//! port's gate does: page loads are served while hundreds trickle, the
//! refusals are counted in /metrics and logged at most once a minute.
//! Nothing here is timed: `make web-loris` measures.

use crate::common::http;
use crate::common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// More than the UI lets one address hold (`web::admission::ADMISSION`).
const CROWD: usize = 300;
const LOADS: usize = 5;

/// Keeps `CROWD` connections trickling a never-ending head until `stop`,
/// reconnecting each one the server closes.
fn crowd(auth: String, stop: Arc<AtomicBool>) {
    let connect = || TcpStream::connect(&auth).ok();
    let mut conns: Vec<Option<TcpStream>> = (0..CROWD).map(|_| connect()).collect();
    let mut sent = 0usize;
    while !stop.load(Relaxed) {
        let byte = b"GET / HTTP/1.1\r\nX-Slow: "
            .get(sent)
            .copied()
            .unwrap_or(b'a');
        sent += 1;
        for c in &mut conns {
            let alive = c.as_mut().is_some_and(|s| s.write_all(&[byte]).is_ok());
            if !alive {
                *c = connect();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn page_loads_are_served_while_a_crowd_trickles_and_the_log_stays_short() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start(&tmp.path().join("tracker"));
    let (peer, base) = web_peer("A", &tracker, &tmp.path().join("A"), &[]);
    let auth = http::authority(&base).to_string();
    let before = peer.logs().lines().count();

    let stop = Arc::new(AtomicBool::new(false));
    let trickling = {
        let (auth, stop) = (auth.clone(), stop.clone());
        std::thread::spawn(move || crowd(auth, stop))
    };
    // The crowd is in place, and over the UI's room, once some of it has
    // been turned away.
    // While it fills, our own /metrics may be the one turned away: ask
    // again then.
    wait_until(Duration::from_secs(60), "the crowd to fill the UI", || {
        refused_count(&base).is_some_and(|n| n > 0)
    });
    for i in 0..LOADS {
        let r = http::get(&base, "/");
        assert_eq!(r.status, 200, "page load {i} while {CROWD} trickle");
        assert!(r.text().contains("Peer <b>A</b>"), "{}", r.text());
    }
    stop.store(true, Relaxed);
    trickling.join().unwrap();

    let logs = peer.logs();
    let during: Vec<&str> = logs.lines().skip(before).collect();
    let refusal_lines = during
        .iter()
        .filter(|l| l.contains("refused or closed since the last such line"))
        .count();
    // The first refusal at once, then at most one a minute: the test runs
    // well under two minutes, but a slow machine may take longer.
    assert!(
        (1..=3).contains(&refusal_lines),
        "{refusal_lines} refusal lines:\n{}",
        during.join("\n")
    );
    assert!(
        during.len() <= 20,
        "{} log lines during the crowd:\n{}",
        during.len(),
        during.join("\n")
    );
    assert!(refused(&base) > 0);
}

/// `p2pshare_web_connections_refused_total` from the UI's /metrics.
fn refused(base: &str) -> u64 {
    let page = http::get(base, "/metrics").text();
    count_in(&page).unwrap_or_else(|| panic!("the refusal count in\n{page}"))
}

/// `refused`, or None when the page has no count (the request was itself
/// turned away).
fn refused_count(base: &str) -> Option<u64> {
    count_in(&http::get(base, "/metrics").text())
}

fn count_in(page: &str) -> Option<u64> {
    page.lines()
        .find_map(|l| l.strip_prefix("p2pshare_web_connections_refused_total "))
        .and_then(|v| v.trim().parse().ok())
}
