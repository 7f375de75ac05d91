//! Sites (`peer --site`) end to end on loopback: two sites, the seeder in
//! one. The first peer of the other site fetches the file from outside;
//! the next takes it all from its own site. `whohas` lists the asker's
//! site first, and `/metrics` counts bytes per site apart.

use crate::common::swarm::*;
use crate::common::*;
use p2pshare::metrics::value_in;
use std::fs;

fn scrape(base: &str) -> String {
    let r = http::get(base, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

fn value(page: &str, name: &str) -> u64 {
    value_in(page, name).unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

/// The holder lines of `whohas` output: (peer id, site suffix if any).
fn holder_lines(stdout: &str) -> Vec<(String, Option<String>)> {
    stdout
        .lines()
        .map(|l| l.trim_start_matches("> "))
        .filter(|l| l.split(' ').nth(2).is_some_and(|f| f.contains('/')))
        .map(|l| {
            let id = l.split(' ').next().unwrap().to_string();
            let site = l
                .split(' ')
                .find_map(|f| f.strip_prefix("site="))
                .map(str::to_string);
            (id, site)
        })
        .collect()
}

#[test]
fn a_site_takes_from_outside_only_what_it_lacks_and_lists_its_own_first() {
    let s = Swarm::new();
    let data = test_bytes(2 << 20, 19);
    let size = data.len() as u64;
    s.give("A-seed", "f.bin", &data);
    let (_seed, _) = web_peer("A-seed", &s.tracker, &s.path("A-seed"), &["--site", "one"]);
    let tracker = s.tracker.addr();
    wait_until(WAIT, "the seeder at the tracker", || {
        holders(&tracker, "f.bin").iter().any(|h| h == "A-seed")
    });

    // The first of site two: everything from outside.
    let get = ["--site", "two", "--get", "f.bin"];
    let (_z, z_url) = web_peer("Z-two", &s.tracker, &s.path("Z-two"), &get);
    wait_until(WAIT, "Z-two's download", || {
        fs::read(s.path("Z-two/files/f.bin")).is_ok_and(|d| d == data)
    });
    let z = scrape(&z_url);
    assert!(
        value(&z, "peer_received_other_sites_bytes_total") >= size,
        "{z}"
    );
    assert_eq!(value(&z, "peer_received_own_site_bytes_total"), 0, "{z}");
    wait_until(WAIT, "Z-two seeding at the tracker", || {
        p2pshare::peer::session::tracker_client::who_has(&tracker, "f.bin", None)
            .is_ok_and(|h| h.iter().any(|h| h.peer_id == "Z-two" && h.complete))
    });

    // The next of site two: nothing from outside, the seeder a holder.
    let (_m, m_url) = web_peer("M-two", &s.tracker, &s.path("M-two"), &get);
    wait_until(WAIT, "M-two's download", || {
        fs::read(s.path("M-two/files/f.bin")).is_ok_and(|d| d == data)
    });
    let m = scrape(&m_url);
    assert_eq!(value(&m, "peer_received_other_sites_bytes_total"), 0, "{m}");
    assert!(
        value(&m, "peer_received_own_site_bytes_total") >= size,
        "{m}"
    );
    wait_until(WAIT, "M-two seeding at the tracker", || {
        holders(&tracker, "f.bin").len() == 3
    });

    // whohas from site two: its own holders first, each with its site.
    let out = s.shell("Q", "whohas f.bin\n", &["--site", "two"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        holder_lines(&stdout),
        [
            ("M-two".to_string(), some("two")),
            ("Z-two".to_string(), some("two")),
            ("A-seed".to_string(), some("one")),
        ],
        "{stdout}"
    );
    // Without a site: by id, as before, no sites named.
    let out = s.shell("P", "whohas f.bin\n", &[]);
    let (stdout, _) = text(&out);
    let ids: Vec<(String, Option<String>)> = ["A-seed", "M-two", "Z-two"]
        .iter()
        .map(|id| (id.to_string(), None))
        .collect();
    assert_eq!(holder_lines(&stdout), ids, "{stdout}");
}
