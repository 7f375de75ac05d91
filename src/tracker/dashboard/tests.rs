use super::*;
use crate::tracker::summary::PeerRow;

fn row(peer: &str, file: &str, fraction: f64, complete: bool, rate: f64) -> PeerRow {
    PeerRow {
        peer_id: peer.into(),
        addr: format!("10.0.0.1:{}", 7000 + peer.len()),
        file: file.into(),
        fraction,
        complete,
        rate_bps: rate,
        seen_ago: Duration::from_secs(2),
    }
}

fn small() -> Summary {
    Summary {
        peers: 3,
        seeders: 1,
        leechers: 1,
        files: 2,
        rate_bps: 12_345_678.0,
        histogram: [0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        file_totals: vec![
            FileTotals {
                name: "a".into(),
                size: 1000,
                version: 1,
                seeders: 1,
                ..FileTotals::default()
            },
            FileTotals {
                name: "movie.bin".into(),
                size: 734_003_200,
                version: 1,
                owner: "alice".into(),
                seeders: 0,
                leechers: 2,
                older: 0,
                mean_fraction: 0.786,
                rate_bps: 12_345_678.0,
            },
        ],
        rows: vec![
            row("alice", "movie.bin", 0.573, false, 2_000_000.0),
            row("bob", "movie.bin", 0.9999, false, 10_345_678.0),
            row("alice", "a", 1.0, true, 0.0),
            row("carol", "", 0.0, false, 0.0),
        ],
        interval: Duration::from_secs(3),
        announces_per_s: 1.5,
    }
}

/// `n` peers downloading one file at spread-out completions.
fn thousand(n: usize) -> Summary {
    let mut histogram = [0; HISTOGRAM_BUCKETS];
    let rows: Vec<PeerRow> = (0..n)
        .map(|i| {
            let fraction = (i % 100) as f64 / 100.0;
            histogram[i % 100 / 10] += 1;
            row(
                &format!("peer-{i:04}"),
                "ubuntu-24.04-desktop-amd64.iso",
                fraction,
                false,
                1e5 + i as f64,
            )
        })
        .collect();
    Summary {
        peers: n,
        seeders: 0,
        leechers: n,
        files: 12,
        rate_bps: 1e8,
        histogram,
        file_totals: (0..12)
            .map(|i| FileTotals {
                name: format!("file-{i}.bin"),
                size: 1 << 30,
                version: 1 + i,
                owner: "peer-0000".into(),
                seeders: 3,
                leechers: 80,
                older: i,
                mean_fraction: 0.5,
                rate_bps: 8e6,
            })
            .collect(),
        rows,
        interval: Duration::from_secs(3),
        announces_per_s: 333.3,
    }
}

fn check_fits(text: &str, width: usize, height: usize) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        lines.len() <= height,
        "{} lines at {width}x{height}:\n{text}",
        lines.len()
    );
    for l in &lines {
        assert!(l.chars().count() <= width, "wider than {width}: {l:?}");
    }
    assert!(
        lines[0].starts_with(&fit("p2pshare tracker", width)),
        "{text}"
    );
}

#[test]
fn a_small_swarm() {
    let text = render(&small(), Duration::from_secs(3723), 80, 24);
    check_fits(&text, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "p2pshare tracker   up 1:02:03   peers 3   files 2"
    );
    assert_eq!(
        lines[1],
        "seeders 1   leechers 1   swarm 12.3 MB/s   announces 1.5/s   interval 3s"
    );
    // The histogram: bounds, then a level and a count under each.
    let bounds = lines.iter().position(|l| l.starts_with("% done")).unwrap();
    assert!(lines[bounds].ends_with("80%    90%"), "{text}");
    assert!(lines[bounds + 1].starts_with("downloads"), "{text}");
    assert!(lines[bounds + 1].ends_with("0    █ 1"), "{text}");
    // Per-file totals: no bar for a file nothing downloads.
    let a = lines.iter().find(|l| l.starts_with("a ")).unwrap();
    assert!(
        !a.contains('[') && a.contains("1.0 kB") && a.contains(" - "),
        "{a:?}"
    );
    let m = lines.iter().find(|l| l.starts_with("movie.bin ")).unwrap();
    assert!(
        m.contains("734.0 MB") && m.contains("  78.6%") && m.ends_with("12.3 MB/s"),
        "{m:?}"
    );
    // The peers, in the summary's order.
    let table = lines.iter().position(|l| l.starts_with("peer ")).unwrap();
    let rows = &lines[table + 1..];
    assert!(rows[0].starts_with("alice movie.bin  [#####"), "{text}");
    assert!(rows[0].ends_with(".]  57.3%   2.0 MB/s   2s"), "{text}");
    assert!(
        rows[1].contains(".]  99.9%  10.3 MB/s"),
        "almost is not done: {text}"
    );
    assert!(
        rows[2].starts_with("alice a ") && rows[2].ends_with("#] 100.0%    seeding   2s"),
        "{text}"
    );
    assert!(
        rows[3].starts_with("carol (no files) 10.0.0.1:7005"),
        "{text}"
    );
    assert_eq!(rows.len(), 4, "nothing left out, no 'more' line: {text}");
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
}

#[test]
fn a_thousand_peers_fit_any_screen() {
    let s = thousand(1000);
    for (w, h) in [
        (80, 24),
        (60, 12),
        (200, 50),
        (80, 12),
        (120, 40),
        (40, 10),
        (20, 5),
        (10, 3),
        (5, 2),
        (1, 1),
    ] {
        let text = render(&s, Duration::from_secs(90_061), w, h);
        check_fits(&text, w, h);
        let lines: Vec<&str> = text.split('\n').collect();
        if h >= 8 {
            assert!(
                lines.last().unwrap().starts_with("… and ")
                    && lines.last().unwrap().ends_with(" more peers"),
                "{w}x{h}:\n{text}"
            );
            // Every line left is used: the screen is full.
            assert_eq!(lines.len(), h, "{w}x{h}:\n{text}");
        }
    }
    // 80x24: the header, the histogram, some files, many rows.
    let text = render(&s, Duration::ZERO, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    assert!(text.contains("… and 8 more files"), "{text}");
    let rows = lines.iter().filter(|l| l.starts_with("peer-")).count();
    assert!(rows >= 8, "{text}");
    assert_eq!(
        *lines.last().unwrap(),
        format!("… and {} more peers", 1000 - rows)
    );
    // Counts of a thousand still fit the histogram's cells.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("downloads") && l.contains("█ 100")),
        "{text}"
    );
    // 80x12 still shows the histogram, one file and some peers.
    let text = render(&s, Duration::ZERO, 80, 12);
    assert!(
        text.contains("% done") && text.contains("file-0.bin") && text.contains("peer-0000"),
        "{text}"
    );
}

/// A fleet after its owner published version 3 of new.bin.
fn fleet() -> Summary {
    Summary {
        peers: 9,
        seeders: 6,
        leechers: 2,
        files: 1,
        histogram: [0, 0, 0, 0, 1, 0, 0, 1, 0, 0],
        file_totals: vec![FileTotals {
            name: "new.bin".into(),
            size: 64_000_000,
            version: 3,
            owner: "A".into(),
            seeders: 6,
            leechers: 2,
            older: 1,
            mean_fraction: 0.6,
            rate_bps: 5e6,
        }],
        rows: vec![row("B", "new.bin", 0.4, false, 2e6)],
        interval: Duration::from_secs(3),
        ..Summary::default()
    }
}

/// The words of the line that starts with `first`.
fn words_of<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no {first} line in\n{text}"));
    line.split_whitespace().collect()
}

#[test]
fn each_item_shows_its_version_and_who_is_on_which() {
    // Wide: every column, the owner last.
    let text = render(&fleet(), Duration::ZERO, 120, 24);
    check_fits(&text, 120, 24);
    assert_eq!(
        words_of(&text, "file"),
        [
            "file", "ver", "size", "current", "updating", "older", "mean", "done", "%", "rate",
            "owner"
        ]
    );
    let row = words_of(&text, "new.bin");
    assert_eq!(
        row[..7],
        ["new.bin", "v3", "64.0", "MB", "6", "2", "1"],
        "{text}"
    );
    assert_eq!(row[8..], ["60.0%", "5.0", "MB/s", "A"], "{text}");
    // 80 columns (drawn 79): the owner gives way first, the rate next,
    // never the version nor the three counts.
    for (w, last) in [(79, "5.0 MB/s"), (70, "60.0%"), (50, "1")] {
        let text = render(&fleet(), Duration::ZERO, w, 24);
        check_fits(&text, w, 24);
        let line = text.lines().find(|l| l.starts_with("new.bin ")).unwrap();
        assert!(line.ends_with(last), "{w}: {line:?}");
        assert_eq!(
            words_of(&text, "new.bin")[..7],
            ["new.bin", "v3", "64.0", "MB", "6", "2", "1"],
            "{w}: {text}"
        );
    }
    // Nobody owns it, nobody downloads it: a dash, no bar.
    let mut s = fleet();
    s.file_totals[0].owner.clear();
    s.file_totals[0].leechers = 0;
    let text = render(&s, Duration::ZERO, 120, 24);
    let line = text.lines().find(|l| l.starts_with("new.bin ")).unwrap();
    assert!(!line.contains('['), "{line:?}");
    assert!(line.ends_with(" -"), "{line:?}");
    // A new version, another owner or a peer moving on is an event for
    // a plain log.
    let a = fleet();
    for change in [
        |s: &mut Summary| s.file_totals[0].version += 1,
        |s: &mut Summary| s.file_totals[0].owner = "B".into(),
        |s: &mut Summary| s.file_totals[0].older -= 1,
    ] {
        let mut b = a.clone();
        change(&mut b);
        assert!(!same_swarm(&a, &b));
    }
}

#[test]
fn tiny_screens_keep_the_header() {
    let s = thousand(50);
    let text = render(&s, Duration::ZERO, 80, 1);
    assert_eq!(text, "p2pshare tracker   up 0:00:00   peers 50   files 12");
    let text = render(&s, Duration::ZERO, 80, 3);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("seeders 0   leechers 50   swarm "),
        "{text}"
    );
    assert_eq!(text.lines().nth(2).unwrap(), "… 50 peers", "{text}");
    // A screen as wide as everything takes the header on one line.
    let text = render(&s, Duration::ZERO, 200, 1);
    assert!(
        text.ends_with("interval 3s") && !text.contains('\n'),
        "{text}"
    );
}

#[test]
fn long_names_are_cut_and_narrow_screens_drop_columns() {
    let mut s = small();
    s.rows = vec![row(&"p".repeat(40), &"f".repeat(100), 0.25, false, 1.0)];
    s.peers = 1;
    let text = render(&s, Duration::ZERO, 80, 24);
    check_fits(&text, 80, 24);
    let line = text.lines().last().unwrap();
    assert!(
        line.starts_with(&format!("{}… {}…", "p".repeat(19), "f".repeat(31))),
        "{line}"
    );
    assert!(line.contains(" 25.0%"), "{line}");
    // At 40 columns the rate and the age give way to the bar and the %.
    let text = render(&s, Duration::ZERO, 40, 24);
    check_fits(&text, 40, 24);
    let line = text.lines().last().unwrap();
    assert!(
        line.ends_with(".]  25.0%") && line.contains("[##"),
        "{line}"
    );
}

#[test]
fn an_empty_tracker() {
    let text = render(&Summary::default(), Duration::from_secs(5), 80, 24);
    assert!(
        text.starts_with("p2pshare tracker   up 0:00:05   peers 0   files 0"),
        "{text}"
    );
    assert!(text.contains("no downloads in progress"), "{text}");
    assert!(text.ends_with("no peers registered"), "{text}");
}

#[test]
fn helpers() {
    assert_eq!(bar(0.5, 10), "[#####.....]");
    assert_eq!(bar(0.0, 4), "[....]");
    assert_eq!(bar(2.0, 4), "[####]");
    assert_eq!(format_uptime(Duration::from_secs(90_061)), "1d 01:01:01");
    assert_eq!(format_rate(6_658_400_000.0), "6.66 GB/s");
    assert_eq!(format_rate(412_300_000.0), "412 MB/s");
    assert_eq!(format_rate(12_345_678.0), "12.3 MB/s");
    assert_eq!(format_rate(999_999.0), "1.0 MB/s");
    assert_eq!(format_rate(51_200.0), "51 kB/s");
    assert_eq!(format_rate(12.0), "12 B/s");
    assert_eq!(format_rate(f64::NAN), "0 B/s");
    assert_eq!(format_ago(Duration::from_secs(7)), "7s");
    assert_eq!(format_ago(Duration::from_secs(600)), "10m");
    assert_eq!(format_ago(Duration::from_secs(7200)), "2h");
    assert_eq!(format_ago(Duration::from_secs(3 * 86_400)), "3d");
    assert_eq!(fit("abcdef", 4), "abc…");
    assert_eq!(fit("abc", 4), "abc");
    assert_eq!(fit("abc", 0), "");
    assert_eq!(compact_count(1234, 4), "1234");
    assert_eq!(compact_count(12_345, 4), "12k");
    assert_eq!(compact_count(100, 2), "9+");
    assert_eq!(compact_count(100_000, 3), "99+");
    assert_eq!(compact_count(7, 1), "7");
}

#[test]
fn terminal_frames_overwrite_in_place_without_scrolling() {
    // No line feed after the last line: a full-height frame never scrolls.
    assert_eq!(in_place("a\nbb"), "\x1b[Ha\x1b[K\nbb\x1b[K\x1b[J");
    let text = render(&thousand(1000), Duration::ZERO, 80, 12);
    assert_eq!(in_place(&text).matches('\n').count(), 11);
}

#[test]
fn plain_frames_follow_the_swarm_not_the_clock() {
    let a = small();
    let mut b = a.clone();
    b.rate_bps *= 2.0;
    b.announces_per_s += 1.0;
    b.rows[0].rate_bps = 1.0;
    b.rows[0].seen_ago = Duration::from_secs(9);
    b.file_totals[1].rate_bps = 5.0;
    assert!(same_swarm(&a, &b), "rates and ages alone are no event");
    b.rows[0].fraction = 0.6;
    assert!(!same_swarm(&a, &b));
    let mut c = a.clone();
    c.peers += 1;
    assert!(!same_swarm(&a, &c));
}

#[test]
fn closures_are_sources() {
    let source = |rows: usize| Summary {
        rows: vec![PeerRow::default(); rows],
        ..Summary::default()
    };
    assert_eq!(SummarySource::summary(&source, 3).rows.len(), 3);
}
