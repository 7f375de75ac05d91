//! The tracker binary, spoken to directly: queries with `net::conn::Conn` over
//! TCP, sessions with hand-made UDP datagrams (`common::udp_peer`).

use crate::common::udp_peer::{entry, UdpPeer};
use crate::common::*;
use p2pshare::error::{code, Error};
use p2pshare::net::conn::Conn;
use p2pshare::record::FileRecord;
use p2pshare::wire::datagram::tracker::{
    Announce, Held, Refusal, Reply, Request, CONNECT_LEN, FLAG_REGISTER, MAX_TRACKER_DATAGRAM,
};
use p2pshare::wire::message::ty;
use p2pshare::wire::{
    Decode, Encode, FileSummary, FrameReader, Holder, PeerRequest, TrackerReply, TrackerRequest,
    MAX_FRAME,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn call(c: &mut Conn, m: &TrackerRequest) -> Result<TrackerReply, Error> {
    c.call(m)
}

fn connect(t: &TrackerProc) -> Conn {
    Conn::connect(&t.addr(), MAX_FRAME).expect("connecting to the tracker")
}

/// NEW_FILE on a fresh connection.
fn publish(t: &TrackerProc, record: &FileRecord) -> Result<TrackerReply, Error> {
    call(
        &mut connect(t),
        &TrackerRequest::NewFile {
            publisher: String::new(),
            record: record.clone(),
        },
    )
}

/// A peer registered over UDP from 127.0.0.1, holding all of `records`.
fn seeder(t: &TrackerProc, id: &str, port: u16, records: &[&FileRecord]) -> UdpPeer {
    let mut p = UdpPeer::new("127.0.0.1", &t.addr(), id, port);
    let a = p.register(records.iter().map(|r| entry(r, Held::Complete)).collect());
    assert!(a.unknown.is_empty(), "{a:?}");
    p
}

fn who_has(t: &TrackerProc, name: &str) -> Result<Vec<Holder>, Error> {
    let mut c = connect(t);
    match call(
        &mut c,
        &TrackerRequest::WhoHas {
            name: name.into(),
            md5: None,
            site: None,
        },
    )? {
        TrackerReply::Holders { holders, .. } => Ok(holders),
        other => panic!("WHO_HAS answered {other:?}"),
    }
}

fn list_files(t: &TrackerProc) -> Vec<FileSummary> {
    let mut c = connect(t);
    match call(&mut c, &TrackerRequest::ListFiles).expect("LIST_FILES") {
        TrackerReply::FileList { files } => files,
        other => panic!("LIST_FILES answered {other:?}"),
    }
}

fn get_record(t: &TrackerProc, name: &str) -> Result<FileRecord, Error> {
    let mut c = connect(t);
    match call(&mut c, &TrackerRequest::GetRecord { name: name.into() })? {
        TrackerReply::Record { record } => Ok(record),
        other => panic!("GET_RECORD answered {other:?}"),
    }
}

fn remote_code(r: Result<impl std::fmt::Debug, Error>) -> (u16, String) {
    match r {
        Err(Error::Remote { code, message }) => (code, message),
        other => panic!("expected an ERROR answer, got {other:?}"),
    }
}

fn holder_ids(t: &TrackerProc, name: &str) -> Vec<String> {
    who_has(t, name)
        .expect("WHO_HAS")
        .into_iter()
        .map(|h| h.peer_id)
        .collect()
}

#[test]
fn register_share_and_find_the_holder() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "song.ogg", &test_bytes(10_000, 1));

    // Announcing a file the tracker has no record of: flagged unknown.
    let mut a = UdpPeer::new("127.0.0.1", &t.addr(), "alice", 7001);
    let got = a.register(vec![entry(&rec, Held::Complete)]);
    assert_eq!(got.unknown, [true]);
    assert_eq!((got.interval_secs, got.peers), (3, 1));
    assert_eq!(got.source.to_string(), "127.0.0.1");
    assert_eq!(publish(&t, &rec).unwrap(), TrackerReply::Ok);
    assert_eq!(
        publish(&t, &rec).unwrap(),
        TrackerReply::Ok,
        "identical again"
    );
    assert!(a
        .announce(vec![entry(&rec, Held::Complete)])
        .unwrap()
        .unknown
        .is_empty());

    let holders = who_has(&t, "song.ogg").unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    let h = &holders[0];
    assert_eq!(
        (
            h.peer_id.as_str(),
            h.host.as_str(),
            h.port,
            h.blocks,
            h.complete
        ),
        ("alice", "127.0.0.1", 7001, 3, true)
    );
    let files = list_files(&t);
    assert_eq!(
        (files[0].name.as_str(), files[0].size, files[0].md5),
        ("song.ogg", 10_000, rec.md5)
    );
    assert_eq!((files[0].holders, files[0].seeders), (1, 1));
    assert_eq!(get_record(&t, "song.ogg").unwrap(), rec);

    // A second peer, from another address, has one block.
    let mut b = UdpPeer::new("127.0.0.2", &t.addr(), "bob", 7002);
    b.register(vec![entry(&rec, Held::Partial(1))]);
    let holders = who_has(&t, "song.ogg").unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(
        (holders[1].host.as_str(), holders[1].port, holders[1].blocks),
        ("127.0.0.2", 7002, 1)
    );
    let f = &list_files(&t)[0];
    assert_eq!((f.holders, f.seeders), (2, 1));
    assert_eq!(
        call(&mut connect(&t), &TrackerRequest::Ping { nonce: 5 }).unwrap(),
        TrackerReply::Pong { nonce: 5 }
    );
}

#[test]
fn same_name_other_content_is_refused_and_the_first_stays() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let first = record_of(tmp.path(), "report.pdf", &test_bytes(5000, 1));
    let second = record_of(tmp.path(), "report.pdf", &test_bytes(6000, 2));
    assert_eq!(publish(&t, &first).unwrap(), TrackerReply::Ok);
    seeder(&t, "A", 7001, &[&first]);
    let (c, message) = remote_code(publish(&t, &second));
    assert_eq!(c, code::CONFLICT);
    assert!(
        message.contains("already shared with different content"),
        "{message}"
    );
    assert!(message.contains("rename"), "{message}");
    assert_eq!(get_record(&t, "report.pdf").unwrap(), first);
    // B announcing the other version is not counted as a holder.
    let mut b = UdpPeer::new("127.0.0.1", &t.addr(), "B", 7002);
    b.register(vec![entry(&second, Held::Complete)]);
    assert_eq!(holder_ids(&t, "report.pdf"), ["A"]);
}

#[test]
fn unknown_names_are_not_found() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let (c, message) = remote_code(get_record(&t, "ghost.txt"));
    assert_eq!(c, code::NOT_FOUND);
    assert!(message.contains("no file named ghost.txt"), "{message}");
    assert_eq!(remote_code(who_has(&t, "ghost.txt")).0, code::NOT_FOUND);
    assert!(list_files(&t).is_empty());
}

#[test]
fn tcp_sessions_are_gone() {
    // The old REGISTER frame (type 0x01) is not a query.
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let mut s = raw(&t);
    let mut body = Vec::new();
    p2pshare::wire::codec::put_str(&mut body, "A");
    body.extend_from_slice(&[0x1b, 0x58, 0, 0]);
    p2pshare::wire::frame::write_header(&mut s, 0x01, body.len()).unwrap();
    s.write_all(&body).unwrap();
    expect_protocol_error_then_close(s);
}

#[test]
fn bye_removes_the_holder_and_only_the_current_session_may() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "f.bin", &test_bytes(9000, 3));
    publish(&t, &rec).unwrap();
    let mut a = seeder(&t, "A", 7001, &[&rec]);
    let old = a.session;
    assert_eq!(holder_ids(&t, "f.bin"), ["A"]);
    // Another peer with the same id, at another port, while A lives: refused,
    // told where A is; A keeps its id.
    let mut other = UdpPeer::new("127.0.0.1", &t.addr(), "A", 7002);
    other.connect();
    let tx = other.next_tx();
    let req = Request::Announce(Announce {
        tx,
        cookie: other.cookie,
        session: 0,
        flags: FLAG_REGISTER,
        port: 7002,
        peer_id: "A",
        advertise: "",
        site: "",
        entries: vec![],
    });
    assert_eq!(
        other.exchange(&req),
        Reply::InUse {
            tx,
            at: "127.0.0.1:7001".into()
        }
    );
    assert_eq!(holder_ids(&t, "f.bin"), ["A"]);
    // Registering again from A's own address (a restart) replaces it.
    let mut again = seeder(&t, "A", 7001, &[&rec]);
    assert_ne!(again.session, old);
    assert_eq!(a.announce(vec![]).unwrap_err(), Refusal::UnknownSession);
    assert_eq!(a.bye().unwrap_err(), Refusal::UnknownSession);
    let h = who_has(&t, "f.bin").unwrap();
    assert_eq!(
        (h.len(), h[0].port),
        (1, 7001),
        "the late goodbye changed nothing"
    );
    again.bye().unwrap();
    assert!(holder_ids(&t, "f.bin").is_empty());
    assert_eq!(list_files(&t)[0].holders, 0, "the record stays");
}

#[test]
fn silent_peers_expire_after_three_intervals() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "f.bin", &test_bytes(9000, 4));
    publish(&t, &rec).unwrap();
    seeder(&t, "A", 7001, &[&rec]);
    let mut b = seeder(&t, "B", 7002, &[&rec]);
    let start = Instant::now();
    wait_until(WAIT, "A to expire while B announces", || {
        b.announce(vec![]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        holder_ids(&t, "f.bin") == ["B"]
    });
    assert!(
        start.elapsed() >= Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn hundreds_of_peers_behind_one_address() {
    // A lab behind one NAT: 300 peers from 127.0.0.1, each on its own
    // port, all registered and listed; a query from that address works.
    let tmp = temp_dir();
    let t = TrackerProc::start_with(&tmp.path().join("data"), &[]);
    let rec = record_of(tmp.path(), "lab.img", &test_bytes(50_000, 8));
    publish(&t, &rec).unwrap();
    let peers: Vec<UdpPeer> = (0..300)
        .map(|i| seeder(&t, &format!("lab-{i:03}"), 10_000 + i, &[&rec]))
        .collect();
    let f = &list_files(&t)[0];
    assert_eq!((f.holders, f.seeders), (300, 300));
    let sample = who_has(&t, "lab.img").unwrap();
    assert_eq!(sample.len(), 64, "a sample of WHO_HAS's limit");
    assert!(sample.iter().all(|h| h.host == "127.0.0.1" && h.complete));
    // Many queries at once from the same address all get through, more
    // than the per-address cap lets in at once.
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let addr = t.addr();
            // The peer's own client: it waits and asks again when the
            // tracker says it is busy.
            std::thread::spawn(move || {
                p2pshare::peer::session::tracker_client::list_files(&addr).is_ok()
            })
        })
        .collect();
    for th in threads {
        assert!(th.join().unwrap());
    }
    drop(peers);
}

#[test]
fn records_survive_a_restart_and_peers_come_back() {
    let tmp = temp_dir();
    let mut t = TrackerProc::start(&tmp.path().join("data"));
    let big = record_of(tmp.path(), "big.iso", &test_bytes(300_000, 6));
    let empty = record_of(tmp.path(), "empty", b"");
    publish(&t, &big).unwrap();
    publish(&t, &empty).unwrap();
    let mut a = seeder(&t, "A", 7001, &[&big, &empty]);
    assert_eq!(holder_ids(&t, "empty"), ["A"], "an empty file is held");

    t.restart();
    let files = list_files(&t);
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["big.iso", "empty"], "{}", t.logs());
    assert!(files.iter().all(|f| f.holders == 0), "peers re-register");
    assert_eq!(get_record(&t, "big.iso").unwrap(), big);
    assert_eq!(get_record(&t, "empty").unwrap(), empty);

    // The old connection id is refused: the new process has a new key.
    assert_eq!(a.announce(vec![]).unwrap_err(), Refusal::BadCookie);
    a.connect();
    assert_eq!(a.announce(vec![]).unwrap_err(), Refusal::UnknownSession);

    // And the first record still wins after the restart.
    let other = record_of(tmp.path(), "big.iso", &test_bytes(10, 7));
    assert_eq!(remote_code(publish(&t, &other)).0, code::CONFLICT);
}

/// Reads the answer to a bad frame: an ERROR(PROTOCOL), then the end.
fn expect_protocol_error_then_close(mut s: TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = FrameReader::new(&mut s, MAX_FRAME);
    match r.read_frame() {
        Ok(Some((t, body))) => {
            assert_eq!(t, ty::ERROR);
            match TrackerReply::decode(t, body).unwrap() {
                TrackerReply::Error { code: c, .. } => assert_eq!(c, code::PROTOCOL),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected an ERROR frame, got {other:?}"),
    }
    assert!(matches!(r.read_frame(), Ok(None) | Err(_)), "closed");
}

fn raw(t: &TrackerProc) -> TcpStream {
    let s = TcpStream::connect(t.addr()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Records go out in turns (`net::turns`). Clients that ask for a large
/// one and stop reading each hold a turn for at most its lease: more of
/// them than there are turns still leave the next asker its record, well
/// within its own timeout.
#[test]
fn readers_stalled_on_records_do_not_hold_back_the_next() {
    let dir = temp_dir();
    let t = TrackerProc::start(&dir.path().join("t"));
    // 64 MiB: a record of 590 KB, far more than a socket that is not
    // read takes in.
    let record = FileRecord::from_bytes("big.bin", &vec![7u8; 64 << 20]);
    assert!(matches!(publish(&t, &record), Ok(TrackerReply::Ok)));
    let mut ask = Vec::new();
    TrackerRequest::GetRecord {
        name: "big.bin".into(),
    }
    .encode(&mut ask);
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = raw(&t);
            s.write_all(&ask).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let got = get_record(&t, "big.bin").expect("the record, once the stalled turns lapse");
    assert_eq!(got, record);
    drop(stalled);
}

#[test]
fn garbage_does_not_hurt_the_tracker() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "keep.txt", b"keep me");
    publish(&t, &rec).unwrap();
    let keeper = seeder(&t, "keeper", 9, &[&rec]);

    // Random bytes, a few times.
    for seed in 1..6 {
        let mut s = raw(&t);
        let _ = s.write_all(&test_bytes(5000, seed));
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }

    // A length header of 4 GiB.
    let mut s = raw(&t);
    s.write_all(&[0xff, 0xff, 0xff, 0xff, ty::LIST_FILES])
        .unwrap();
    expect_protocol_error_then_close(s);

    // A zero length (a header is five bytes: length and type).
    let mut s = raw(&t);
    s.write_all(&[0, 0, 0, 0, 1]).unwrap();
    expect_protocol_error_then_close(s);

    // A truncated frame: 100 bytes announced, 10 sent, then the end.
    let mut s = raw(&t);
    s.write_all(&[0, 0, 0, 101, ty::WHO_HAS]).unwrap();
    s.write_all(&[1; 10]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    expect_protocol_error_then_close(s);

    // An unknown type, and a peer-protocol message sent to the tracker.
    let mut s = raw(&t);
    s.write_all(&[0, 0, 0, 1, 0x42]).unwrap();
    expect_protocol_error_then_close(s);
    let mut s = raw(&t);
    PeerRequest::Request {
        handle: 1,
        block: 0,
        count: 1,
    }
    .write_to(&mut s)
    .unwrap();
    expect_protocol_error_then_close(s);

    // A frame whose body does not decode (a bad record).
    let mut s = raw(&t);
    let mut bad = rec.clone();
    bad.piece_hashes.clear();
    let mut bytes = Vec::new();
    TrackerRequest::NewFile {
        publisher: String::new(),
        record: bad,
    }
    .encode(&mut bytes);
    s.write_all(&bytes).unwrap();
    expect_protocol_error_then_close(s);

    // A bad name is refused without closing the connection.
    let mut c = connect(&t);
    let mut body = Vec::new();
    p2pshare::wire::codec::put_str(&mut body, "../etc/passwd");
    p2pshare::wire::frame::write_header(c.writer(), ty::GET_RECORD, body.len()).unwrap();
    c.writer().write_all(&body).unwrap();
    c.flush().unwrap();
    let (code_, _) = remote_code(c.expect::<TrackerReply>());
    assert_eq!(code_, code::BAD_NAME);
    assert!(matches!(
        call(&mut c, &TrackerRequest::ListFiles),
        Ok(TrackerReply::FileList { .. })
    ));

    // Everyone else is fine.
    assert_eq!(list_files(&t).len(), 1);
    assert_eq!(get_record(&t, "keep.txt").unwrap(), rec);
    assert_eq!(publish(&t, &rec).unwrap(), TrackerReply::Ok);
    seeder(&t, "fresh", 11, &[&rec]);
    assert_eq!(holder_ids(&t, "keep.txt"), ["fresh", "keeper"]);
    drop(keeper);
}

#[test]
fn idle_connections_do_not_block_queries() {
    // Idle and half-sent connections, more than one address may hold,
    // from one address: refused or closed after a short silence, while
    // announces still go through.
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let mut idle = Vec::new();
    for i in 0..100u8 {
        let Ok(mut s) = TcpStream::connect(t.addr()) else {
            continue;
        };
        if i % 2 == 0 {
            // Half a header, then silence.
            let _ = s.write_all(&[0, 0]);
        }
        idle.push(s);
    }
    let rec = record_of(tmp.path(), "x", b"x");
    // Announces do not wait on TCP at all.
    let mut busy = UdpPeer::new("127.0.0.1", &t.addr(), "busy", 1);
    assert_eq!(
        busy.register(vec![entry(&rec, Held::Complete)]).unknown,
        [true]
    );
    // Once the idle ones time out, the same address is served again.
    wait_until(WAIT, "a query from the idle address", || {
        Conn::connect(&t.addr(), MAX_FRAME)
            .and_then(|mut c| {
                c.call(&TrackerRequest::ListFiles)
                    .map(|m| matches!(m, TrackerReply::FileList { .. }))
            })
            .unwrap_or(false)
    });
    publish(&t, &rec).unwrap();
    busy.announce(vec![entry(&rec, Held::Complete)]).unwrap();
    assert_eq!(holder_ids(&t, "x"), ["busy"]);
    drop(idle);
}

#[test]
fn hostile_datagrams_draw_nothing_larger() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "k", b"keep");
    publish(&t, &rec).unwrap();
    let attacker = UdpSocket::bind("127.0.0.3:0").unwrap();
    attacker.connect(("127.0.0.1", t.port())).unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let answer = |bytes: &[u8]| -> Option<usize> {
        attacker.send(bytes).ok()?;
        let mut buf = [0u8; 4096];
        attacker.recv(&mut buf).ok()
    };
    // Garbage, truncated and oversized datagrams: no answer at all.
    let mut connect = Vec::new();
    Request::Connect { tx: 1 }.encode(&mut connect);
    for junk in [
        test_bytes(100, 1),
        connect[..CONNECT_LEN - 1].to_vec(),
        vec![b'p', b'2', 1, 0x11],
        vec![0; MAX_TRACKER_DATAGRAM + 1],
        vec![0xff; 60_000],
    ] {
        assert_eq!(answer(&junk), None, "{} bytes", junk.len());
    }
    // Forged connection ids: a short refusal, nothing registered.
    let mut forger = UdpPeer::new("127.0.0.3", &t.addr(), "forger", 1);
    for cookie in [0, 1, u64::MAX, 0x1234_5678_9abc_def0] {
        forger.cookie = cookie;
        let r = forger.announce_with(
            p2pshare::wire::datagram::tracker::FLAG_REGISTER,
            vec![entry(&rec, Held::Complete)],
        );
        assert_eq!(r.unwrap_err(), Refusal::BadCookie);
    }
    // Another source's id does not work from here.
    let honest = seeder(&t, "honest", 2, &[&rec]);
    forger.cookie = honest.cookie;
    assert_eq!(forger.announce(vec![]).unwrap_err(), Refusal::BadCookie);
    assert_eq!(holder_ids(&t, "k"), ["honest"]);
    // A CONNECT's answer is as long as the CONNECT.
    assert_eq!(answer(&connect), Some(CONNECT_LEN));
    // A flood: thousands of datagrams, garbage and CONNECTs, then the
    // tracker still answers everyone.
    for i in 0..5_000u32 {
        let _ = attacker.send(if i % 2 == 0 { &connect } else { &connect[..8] });
    }
    let mut late = UdpPeer::new("127.0.0.4", &t.addr(), "late", 3);
    late.register(vec![entry(&rec, Held::Partial(0))]);
    assert_eq!(holder_ids(&t, "k"), ["honest", "late"]);
    // Every answer the flood drew was a CONNECTED of the CONNECT's size.
    let mut buf = [0u8; 4096];
    attacker
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while let Ok(n) = attacker.recv(&mut buf) {
        assert_eq!(n, CONNECT_LEN);
        assert!(matches!(
            Reply::decode(&buf[..n]),
            Ok(Reply::Connected { .. })
        ));
    }
}

#[test]
fn prints_its_addresses_and_stops_cleanly() {
    let tmp = temp_dir();
    let mut t = TrackerProc::start(&tmp.path().join("data"));
    let port = t.port();
    wait_until(WAIT, "the banner", || t.stdout().contains("reachable at"));
    let out = t.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("tracker listening on 127.0.0.1:{port} (TCP and UDP)"),
            format!("reachable at 127.0.0.1:{port}")
        ],
        "{out}"
    );
    let status = t.stop();
    assert!(status.success(), "{status:?}\n{}", t.logs());
    assert!(t.stdout().ends_with("tracker stopped\n"), "{}", t.logs());
}

#[test]
fn command_line_errors() {
    let o = run_tracker(&["--http", "nine"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: --http expects a port number from 0 to 65535"),
        "{err}"
    );

    let o = run_tracker(&["--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("error: unknown option"), "{err}");
    assert!(err.contains("usage: tracker"), "{err}");

    let o = run_tracker(&["--port", "eighty"]);
    assert_eq!(o.status.code(), Some(2));

    let o = run_tracker(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("--dashboard"));

    // The port is taken.
    let tmp = temp_dir();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = tmp.path().join("data");
    let o = run_tracker(&[
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("error: cannot listen on 127.0.0.1:{port}: "))
            && err.contains("(is another tracker running? try --port)"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}
