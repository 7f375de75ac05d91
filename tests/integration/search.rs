//! Tracker-less search end to end: real peers on loopback, linked only by
//! `--neighbor`, with a tracker address that nothing listens on.

use crate::common::*;
use p2pshare::net::conn::Conn;
use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::search::{Datagram, Query, HELLO_LEN, QUERY_LEN};
use p2pshare::wire::{PeerReply, PeerRequest, MAX_FRAME};
use std::fs;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// Search debug lines on top of the usual info.
const SEARCH_DEBUG: &str = "info,p2pshare::search=debug";

/// A port nothing listens on (it was free a moment ago): the tracker that
/// cannot be reached.
fn dead_tracker() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Peers that serve until dropped, each with its directory and port.
struct Net {
    dir: tempfile::TempDir,
    tracker: String,
    ports: Vec<u16>,
    procs: Vec<PeerProc>,
}

impl Net {
    fn new(peers: usize) -> Net {
        let ports: Vec<u16> = (0..peers).map(|_| free_port()).collect();
        // The kernel may hand a freed port out again: a peer listening on
        // the dead tracker's port would answer as its tracker.
        let tracker = loop {
            let t = dead_tracker();
            if !ports.iter().any(|p| t.ends_with(&format!(":{p}"))) {
                break t;
            }
        };
        Net {
            dir: temp_dir(),
            tracker,
            ports,
            procs: Vec::new(),
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn give(&self, id: &str, name: &str, data: &[u8]) {
        let files = self.path(id).join("files");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join(name), data).unwrap();
    }

    /// Starts peer `id` on port `i` with `--serve` and the given
    /// neighbours, and waits for its banner.
    fn serve(&mut self, id: &str, i: usize, neighbours: &[usize], extra: &[&str]) {
        let port = self.ports[i].to_string();
        let dir = self.path(id);
        let mut args: Vec<String> = vec![
            id.into(),
            port,
            self.tracker.clone(),
            "--dir".into(),
            dir.to_str().unwrap().into(),
            "--serve".into(),
        ];
        for n in neighbours {
            args.push("--neighbor".into());
            args.push(addr(self.ports[*n]));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.path(&format!("{id}.log"));
        let p = PeerProc::spawn_logged_at(&args, &log, SEARCH_DEBUG);
        wait_until(WAIT, &format!("{id} to start"), || {
            p.logs().contains(&format!("peer {id} listening on"))
        });
        self.procs.push(p);
    }

    /// Runs peer `id` on port `i` with `commands` on stdin until it exits.
    fn shell(
        &self,
        id: &str,
        i: usize,
        neighbours: &[usize],
        extra: &[&str],
        commands: &str,
    ) -> Output {
        let port = self.ports[i].to_string();
        let dir = self.path(id);
        let mut args: Vec<String> = vec![
            id.into(),
            port,
            self.tracker.clone(),
            "--dir".into(),
            dir.to_str().unwrap().into(),
        ];
        for n in neighbours {
            args.push("--neighbor".into());
            args.push(addr(self.ports[*n]));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        PeerProc::spawn(&args, Some(commands)).wait(WAIT)
    }

    fn log(&self, i: usize) -> String {
        self.procs[i].logs()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, p) in self.procs.iter().enumerate() {
                eprintln!("--- peer {i} log\n{}", p.logs());
            }
        }
    }
}

/// A-B-C-D-E in a line, each linked to the peers next to it; A (index 0)
/// is started by the test as a shell; `d.bin` is on D (3 hops from A),
/// `e.bin` on E (4 hops).
fn line_of_five(d: &[u8], e: &[u8]) -> Net {
    let mut net = Net::new(5);
    net.give("D", "d.bin", d);
    net.give("E", "e.bin", e);
    for (i, id) in ["B", "C", "D", "E"].iter().enumerate() {
        let i = i + 1;
        let neighbours: Vec<usize> = [i - 1, i + 1].into_iter().filter(|n| *n < 5).collect();
        net.serve(id, i, &neighbours, &[]);
    }
    net
}

#[test]
fn a_line_of_five_without_a_tracker_finds_what_the_ttl_reaches() {
    // d.bin's record (733 pieces) is too big to ride in an answer and is
    // fetched over TCP; e.bin's travels inline.
    let d = test_bytes(3_000_000, 21);
    let e = test_bytes(50_000, 22);
    let net = line_of_five(&d, &e);

    let out = net.shell("A", 0, &[1], &[], "whohas d.bin\nget d.bin\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let whohas = format!("D {} 733/733", addr(net.ports[3]));
    assert!(stdout.lines().any(|l| l == whohas), "{stdout}");
    assert!(stdout.contains("done d.bin bytes=3000000 "), "{stdout}");
    assert!(stdout.contains("from D blocks=733 "), "{stdout}");
    assert_eq!(fs::read(net.path("A/files/d.bin")).unwrap(), d);

    // E is 4 hops away: out of reach of the default TTL of 3.
    let out = net.shell("A", 0, &[1], &[], "get e.bin\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("error: no tracker and no neighbour knows e.bin")
            && stderr.contains("within 3 hops")
            && stderr.contains("raise --ttl"),
        "{stderr}"
    );
    assert!(!net.path("A/files/e.bin").exists());

    let out = net.shell("A", 0, &[1], &["--ttl", "4"], "get e.bin\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("from E blocks=13 "), "{stdout}");
    assert_eq!(fs::read(net.path("A/files/e.bin")).unwrap(), e);

    // D saw the TTL-3 query for e.bin with its last hop, and kept it.
    let d_log = net.log(2);
    assert!(
        d_log
            .lines()
            .any(|l| l.contains("for e.bin from") && l.contains("handled (hop 3, ttl 1,")),
        "{d_log}"
    );
}

/// The query ids a peer's log says it handled, in order, with repeats.
fn handled(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(": handled ("))
        .filter_map(|l| l.split("search: query ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn duplicates(log: &str, id: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(&format!("query {id} from")) && l.contains("duplicate, dropped"))
        .count()
}

#[test]
fn a_query_in_a_ring_is_answered_and_handled_once_by_each_peer() {
    // R0..R4 in a ring; Q asks R0 with a TTL far larger than the ring, so
    // only the seen-id cache stops the query going round.
    let mut net = Net::new(6);
    let data = test_bytes(40_000, 31);
    net.give("R2", "ring.bin", &data);
    for i in 0..5 {
        net.serve(&format!("R{i}"), i, &[(i + 4) % 5, (i + 1) % 5], &[]);
    }
    let out = net.shell("Q", 5, &[0], &["--ttl", "16"], "get ring.bin\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("from R2 blocks=10 "), "{stdout}");
    assert_eq!(fs::read(net.path("Q/files/ring.bin")).unwrap(), data);

    let first = handled(&net.log(0))
        .into_iter()
        .next()
        .expect("R0 handled Q's query");
    wait_until(WAIT, "every ring peer to handle the query", || {
        (0..5).all(|i| handled(&net.log(i)).contains(&first))
            && (0..5)
                .map(|i| duplicates(&net.log(i), &first))
                .sum::<usize>()
                > 0
    });
    for i in 0..5 {
        let log = net.log(i);
        let times = handled(&log).iter().filter(|id| **id == first).count();
        assert_eq!(times, 1, "R{i} handled query {first} {times} times:\n{log}");
        // Every id is handled once, whatever else Q asked meanwhile.
        let mut ids = handled(&log);
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "R{i} handled an id twice:\n{log}");
    }
}

#[test]
fn whohas_works_without_a_tracker_and_lists_every_holder() {
    let mut net = Net::new(4);
    let data = test_bytes(100_000, 41);
    net.give("H1", "w.bin", &data);
    net.give("H2", "w.bin", &data);
    net.serve("H1", 1, &[0, 2], &[]);
    net.serve("H2", 2, &[1, 3], &[]);
    net.serve("N", 3, &[2], &[]);
    let expected = vec![
        format!("H1 {} 25/25", addr(net.ports[1])),
        format!("H2 {} 25/25", addr(net.ports[2])),
    ];
    // UDP may lose an answer, or a loaded machine deliver one after the
    // window: ask again until both holders are listed, as a user would.
    let mut last = String::new();
    wait_until(WAIT, "whohas to list both holders", || {
        let out = net.shell("W", 0, &[1], &[], "whohas w.bin\n");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
        let mut lines: Vec<String> = stdout
            .lines()
            .filter(|l| l.starts_with('H'))
            .map(String::from)
            .collect();
        lines.sort();
        last = stdout;
        lines == expected
    });
    assert_eq!(
        last.lines().filter(|l| !l.starts_with("peer W")).count(),
        2,
        "{last}"
    );
    let out = net.shell("W", 0, &[1], &[], "whohas nothere.bin\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("error: no tracker and no neighbour knows nothere.bin"),
        "{stderr}"
    );
}

#[test]
fn a_peer_starts_and_serves_when_its_tracker_cannot_be_reached() {
    let mut net = Net::new(2);
    let data = test_bytes(20_000, 51);
    net.give("S", "s.bin", &data);
    net.give("S", "empty", b"");
    net.serve("S", 0, &[], &[]);
    // Its block server answers.
    let mut conn = Conn::connect(&addr(net.ports[0]), MAX_FRAME).unwrap();
    match conn.call::<PeerReply>(&PeerRequest::GetRecord {
        name: "s.bin".into(),
    }) {
        Ok(PeerReply::Record { record }) => {
            // Version 1, owned by S: no tracker said otherwise.
            assert_eq!(
                *record,
                FileRecord::from_bytes("s.bin", &data).versioned(1, "S")
            );
        }
        other => panic!("expected RECORD, got {other:?}"),
    }
    // Without neighbours, a get says what is wrong with the tracker, as
    // before tracker-less search existed.
    let out = net.shell("G", 1, &[], &[], "get s.bin\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("error: cannot reach the tracker at"),
        "{stderr}"
    );
    // With S as its neighbour, the same get succeeds; an empty file too.
    let out = net.shell("G", 1, &[0], &[], "get s.bin\nget empty\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(net.path("G/files/s.bin")).unwrap(), data);
    assert!(stdout.contains("done empty bytes=0 md5=d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(fs::metadata(net.path("G/files/empty")).unwrap().len(), 0);
}

#[test]
fn a_file_the_tracker_does_not_know_is_found_through_a_neighbour() {
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    let mut net = Net::new(2);
    let data = test_bytes(200_000, 61);
    // H registers with a tracker nobody else uses (unreachable): the real
    // one never hears of h.bin.
    net.give("H", "h.bin", &data);
    net.serve("H", 0, &[], &[]);
    let gdir = net.path("G");
    let (gport, hport) = (net.ports[1].to_string(), addr(net.ports[0]));
    let args = [
        "G",
        gport.as_str(),
        &tracker.addr(),
        "--dir",
        gdir.to_str().unwrap(),
        "--neighbor",
        &hport,
    ];
    let out = PeerProc::spawn(&args, Some("get h.bin\n")).wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("from H blocks=49 "), "{stdout}");
    assert_eq!(fs::read(gdir.join("files/h.bin")).unwrap(), data);
}

/// Sends `bytes` to a peer's UDP port.
fn poke(port: u16, bytes: &[u8]) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = s.send_to(bytes, addr(port));
}

#[test]
fn garbage_datagrams_and_query_floods_harm_nobody() {
    let mut net = Net::new(3);
    let data = test_bytes(30_000, 71);
    net.give("B", "b.bin", &data);
    net.serve("B", 1, &[0, 2], &[]);
    net.serve("C", 2, &[1], &[]);
    let b = net.ports[1];
    poke(b, &test_bytes(5000, 1));
    poke(b, b"p2");
    poke(b, &[b'p', b'2', 1, 3, 0, 0]);
    poke(b, &vec![0u8; 65_000]);
    // A query flood from one origin: some are handled, the rest dropped
    // over the rate, and B keeps working.
    let origin = UdpSocket::bind("127.0.0.1:0").unwrap();
    for id in 0..500u64 {
        let q = Datagram::Query(Query {
            id: 1_000_000 + id,
            ttl: 255,
            hops: 0,
            origin: None,
            name: "b.bin".into(),
        });
        let _ = origin.send_to(&q.encode_padded(QUERY_LEN).unwrap(), addr(b));
    }
    wait_until(WAIT, "B to drop queries over the rate", || {
        net.log(0).contains("over the rate, dropped")
    });
    // Each handled query drew exactly one answer, at most, from B.
    let log = net.log(0);
    let answers = log.lines().filter(|l| l.contains(": answered ")).count();
    let handled = handled(&log).len();
    assert!(
        answers <= handled && handled < 500,
        "{answers} answers, {handled} handled"
    );
    let out = net.shell("A", 0, &[1], &[], "get b.bin\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(fs::read(net.path("A/files/b.bin")).unwrap(), data);
}

#[test]
fn a_leecher_answers_with_the_pieces_it_has_so_far() {
    let mut net = Net::new(3);
    let data = test_bytes(4 << 20, 81);
    net.give("S", "big.bin", &data);
    net.serve("S", 0, &[], &[]);
    // L fetches slowly through its neighbour S (4 MiB at 256 KiB/s).
    net.serve(
        "L",
        1,
        &[0],
        &["--get", "big.bin", "--download-limit", "256K"],
    );
    let state = net.path("L/partial/big.bin.state");
    wait_until(WAIT, "L to have verified pieces", || state.exists());
    // TTL 1: only L hears W's query, and answers with what it has.
    let out = net.shell("W", 2, &[1], &["--ttl", "1"], "whohas big.bin\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let prefix = format!("L {} ", addr(net.ports[1]));
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for L in:\n{stdout}"));
    let (have, total) = line[prefix.len()..].split_once('/').unwrap();
    let have: u64 = have.parse().unwrap();
    assert_eq!(total, "1024", "{line}");
    assert!(have > 0 && have < 1024, "{line}");
    assert!(
        !stdout.contains("S 127.0.0.1"),
        "S is 2 hops away: {stdout}"
    );
}

/// A QUERY for `name` with id `id`, from the socket's own address.
fn query(id: u64, name: &str) -> Datagram {
    Datagram::Query(Query {
        id,
        ttl: 3,
        hops: 0,
        origin: None,
        name: name.into(),
    })
}

/// Every datagram waiting on `s` (it is not read again until they are in).
fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    s.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut got = Vec::new();
    while let Ok(n) = s.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    s.set_nonblocking(false).unwrap();
    got
}

#[test]
fn no_answer_to_a_raw_datagram_is_larger_than_it() {
    // A holder with a long peer id (its HELLO is larger than a tiny one):
    // small.bin (5 pieces) has its record inline, big.bin (245) does not.
    let mut net = Net::new(2);
    let id = "holder-with-a-rather-long-peer-id";
    let (small, big) = (test_bytes(20_000, 91), test_bytes(1_000_000, 92));
    net.give(id, "small.bin", &small);
    net.give(id, "big.bin", &big);
    net.serve(id, 1, &[0], &[]);
    let holder = addr(net.ports[1]);
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.connect(&holder).unwrap();

    // Unpadded queries (as an old or hostile sender would send them, or
    // a spoofer naming a victim) and a tiny HELLO asking for a reply.
    let mut sent = Vec::new();
    for (i, name) in ["small.bin", "big.bin"].into_iter().enumerate() {
        sent.push(query(0xa0 + i as u64, name).encode().unwrap());
    }
    let hello = Datagram::Hello {
        peer_id: "x".into(),
        want_reply: true,
        challenge: 0,
        echo: 0,
    };
    sent.push(hello.encode().unwrap());
    for d in &sent {
        raw.send(d).unwrap();
    }
    let smallest = sent.iter().map(Vec::len).min().unwrap();
    // Once the holder's log says it decided, anything it sent is queued.
    wait_until(WAIT, "the holder to turn down all three", || {
        let log = net.log(0);
        log.matches("no answer fits in its").count() == 2 && log.contains("no HELLO back")
    });
    let got = drain(&raw);
    assert!(
        got.iter().all(|d| d.len() <= smallest),
        "answers of {:?} bytes to datagrams of {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        sent.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(got.is_empty(), "nothing fits in so few bytes");

    // Padded as a peer sends them: answered, within the same size.
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 65_536];
    for (i, name) in ["small.bin", "big.bin"].into_iter().enumerate() {
        let q = query(0xb0 + i as u64, name)
            .encode_padded(QUERY_LEN)
            .unwrap();
        raw.send(&q).unwrap();
        let n = raw.recv(&mut buf).unwrap();
        assert!(
            n <= q.len(),
            "a CHUNK_INFO of {n} bytes to a QUERY of {}",
            q.len()
        );
        let Ok(Datagram::ChunkInfo(c)) = Datagram::decode(&buf[..n]) else {
            panic!("not a CHUNK_INFO: {:?}", &buf[..n]);
        };
        assert_eq!((c.name.as_str(), c.have.is_full()), (name, true));
        assert_eq!(c.record.is_some(), name == "small.bin", "{name}: {n} bytes");
    }
    let padded = hello.encode_padded(HELLO_LEN).unwrap();
    raw.send(&padded).unwrap();
    let n = raw.recv(&mut buf).unwrap();
    assert_eq!(n, 23 + id.len());
    assert!(n <= padded.len());

    // Peers find and fetch both files through the holder as ever.
    let out = net.shell(
        "A",
        0,
        &[1],
        &[],
        "whohas big.bin\nget small.bin\nget big.bin\n",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("{id} {holder} 245/245")),
        "{stdout}"
    );
    assert_eq!(fs::read(net.path("A/files/small.bin")).unwrap(), small);
    assert_eq!(fs::read(net.path("A/files/big.bin")).unwrap(), big);
}
