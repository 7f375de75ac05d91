//! The tracker binary, spoken to directly with `net::Conn`.

mod common;

use common::*;
use p2pshare::error::{code, Error};
use p2pshare::net::Conn;
use p2pshare::record::FileRecord;
use p2pshare::wire::message::ty;
use p2pshare::wire::{FileHave, FileSummary, FrameReader, Holder, Msg, MAX_FRAME};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// An owned copy of an answer, so the connection can be used again.
fn owned(m: Msg<'_>) -> Msg<'static> {
    match m {
        Msg::Welcome { host } => Msg::Welcome { host },
        Msg::Ok => Msg::Ok,
        Msg::FileList { files } => Msg::FileList { files },
        Msg::Record { record } => Msg::Record { record },
        Msg::Holders { holders } => Msg::Holders { holders },
        Msg::Pong { nonce } => Msg::Pong { nonce },
        Msg::Error { code, message } => Msg::Error { code, message },
        other => panic!("unexpected answer {}", other.kind()),
    }
}

fn call(c: &mut Conn, m: &Msg<'_>) -> Result<Msg<'static>, Error> {
    c.call(m).map(owned)
}

fn connect(t: &TrackerProc) -> Conn {
    Conn::connect(&t.addr(), MAX_FRAME).expect("connecting to the tracker")
}

fn register(c: &mut Conn, id: &str, port: u16) -> String {
    let m = Msg::Register {
        peer_id: id.into(),
        port,
        advertise: String::new(),
    };
    match call(c, &m).expect("REGISTER") {
        Msg::Welcome { host } => host,
        other => panic!("REGISTER answered {other:?}"),
    }
}

fn new_file(c: &mut Conn, record: &FileRecord) -> Result<Msg<'static>, Error> {
    call(
        c,
        &Msg::NewFile {
            record: record.clone(),
        },
    )
}

fn who_has(t: &TrackerProc, name: &str) -> Result<Vec<Holder>, Error> {
    let mut c = connect(t);
    match call(&mut c, &Msg::WhoHas { name: name.into() })? {
        Msg::Holders { holders } => Ok(holders),
        other => panic!("WHO_HAS answered {other:?}"),
    }
}

fn list_files(t: &TrackerProc) -> Vec<FileSummary> {
    let mut c = connect(t);
    match call(&mut c, &Msg::ListFiles).expect("LIST_FILES") {
        Msg::FileList { files } => files,
        other => panic!("LIST_FILES answered {other:?}"),
    }
}

fn get_record(t: &TrackerProc, name: &str) -> Result<FileRecord, Error> {
    let mut c = connect(t);
    match call(&mut c, &Msg::GetRecord { name: name.into() })? {
        Msg::Record { record } => Ok(record),
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

    let mut a = connect(&t);
    assert_eq!(register(&mut a, "alice", 7001), "127.0.0.1");
    assert_eq!(new_file(&mut a, &rec).unwrap(), Msg::Ok);
    assert_eq!(new_file(&mut a, &rec).unwrap(), Msg::Ok, "identical again");

    let holders = who_has(&t, "song.ogg").unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    let h = &holders[0];
    assert_eq!(
        (h.peer_id.as_str(), h.host.as_str(), h.port),
        ("alice", "127.0.0.1", 7001)
    );
    assert!(h.have.is_full() && h.have.len() == rec.piece_count());

    let files = list_files(&t);
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].name.as_str(), files[0].size, files[0].md5),
        ("song.ogg", 10_000, rec.md5)
    );
    assert_eq!((files[0].holders, files[0].seeders), (1, 1));
    assert_eq!(get_record(&t, "song.ogg").unwrap(), rec);

    // A second peer announces part of it; an advertised host is used as is.
    let mut b = connect(&t);
    let welcome = call(
        &mut b,
        &Msg::Register {
            peer_id: "bob".into(),
            port: 7002,
            advertise: "bob.example".into(),
        },
    )
    .unwrap();
    assert_eq!(
        welcome,
        Msg::Welcome {
            host: "bob.example".into()
        }
    );
    let mut have = p2pshare::bitfield::Bitfield::new(rec.piece_count());
    have.set(1);
    let ann = Msg::Announce {
        files: vec![FileHave {
            name: "song.ogg".into(),
            md5: rec.md5,
            have,
        }],
    };
    assert_eq!(call(&mut b, &ann).unwrap(), Msg::Ok);
    let holders = who_has(&t, "song.ogg").unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(
        (holders[1].host.as_str(), holders[1].port),
        ("bob.example", 7002)
    );
    assert_eq!(holders[1].have.count(), 1);
    let f = &list_files(&t)[0];
    assert_eq!((f.holders, f.seeders), (2, 1));
    assert_eq!(
        call(&mut b, &Msg::Ping { nonce: 5 }).unwrap(),
        Msg::Pong { nonce: 5 }
    );
}

#[test]
fn same_name_other_content_is_refused_and_the_first_stays() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let first = record_of(tmp.path(), "report.pdf", &test_bytes(5000, 1));
    let second = record_of(tmp.path(), "report.pdf", &test_bytes(6000, 2));

    let mut a = connect(&t);
    register(&mut a, "A", 7001);
    assert_eq!(new_file(&mut a, &first).unwrap(), Msg::Ok);
    let mut b = connect(&t);
    register(&mut b, "B", 7002);
    let (c, message) = remote_code(new_file(&mut b, &second));
    assert_eq!(c, code::CONFLICT);
    assert!(
        message.contains("already shared with different content"),
        "{message}"
    );
    assert!(message.contains("rename"), "{message}");

    assert_eq!(get_record(&t, "report.pdf").unwrap(), first);
    assert_eq!(holder_ids(&t, "report.pdf"), ["A"]);
    // The session survives the refusal.
    assert_eq!(
        call(&mut b, &Msg::Announce { files: vec![] }).unwrap(),
        Msg::Ok
    );
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
fn session_messages_need_register_first() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "f", b"abc");
    let mut c = connect(&t);
    let (code_, message) = remote_code(new_file(&mut c, &rec));
    assert_eq!(code_, code::PROTOCOL);
    assert!(message.contains("register first"), "{message}");
    let (code_, _) = remote_code(call(&mut c, &Msg::Announce { files: vec![] }));
    assert_eq!(code_, code::PROTOCOL);
    // The connection still works, and nothing was added.
    assert!(list_files(&t).is_empty());
    register(&mut c, "late", 1);
    assert_eq!(new_file(&mut c, &rec).unwrap(), Msg::Ok);
}

#[test]
fn bye_removes_the_holder() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "f.bin", &test_bytes(9000, 3));
    let mut a = connect(&t);
    register(&mut a, "A", 7001);
    new_file(&mut a, &rec).unwrap();
    assert_eq!(holder_ids(&t, "f.bin"), ["A"]);
    assert_eq!(call(&mut a, &Msg::Bye).unwrap(), Msg::Ok);
    assert!(matches!(a.recv(), Ok(None) | Err(_)), "closed after BYE");
    assert!(holder_ids(&t, "f.bin").is_empty());
    // The record stays.
    assert_eq!(list_files(&t)[0].holders, 0);
}

#[test]
fn a_dropped_connection_removes_the_holder() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "f.bin", &test_bytes(9000, 4));
    let mut a = connect(&t);
    register(&mut a, "A", 7001);
    new_file(&mut a, &rec).unwrap();
    let mut b = connect(&t);
    register(&mut b, "B", 7002);
    new_file(&mut b, &rec).unwrap();
    assert_eq!(holder_ids(&t, "f.bin"), ["A", "B"]);
    drop(a);
    wait_until(WAIT, "A to disappear from WHO_HAS", || {
        !holder_ids(&t, "f.bin").contains(&"A".to_string())
    });
}

#[test]
fn registering_again_replaces_the_old_session() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "f", &test_bytes(100, 5));
    let mut old = connect(&t);
    register(&mut old, "A", 1);
    new_file(&mut old, &rec).unwrap();
    let mut new = connect(&t);
    register(&mut new, "A", 2);
    assert!(holder_ids(&t, "f").is_empty(), "old holdings dropped");
    new_file(&mut new, &rec).unwrap();
    // The old connection's session is stale: told to register again.
    let (c, _) = remote_code(call(&mut old, &Msg::Announce { files: vec![] }));
    assert_eq!(c, code::UNKNOWN_PEER);
    // Its goodbye does not remove the newer registration.
    assert_eq!(call(&mut old, &Msg::Bye).unwrap(), Msg::Ok);
    drop(old);
    let h = who_has(&t, "f").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].peer_id.as_str(), h[0].port), ("A", 2));
}

#[test]
fn records_survive_a_restart() {
    let tmp = temp_dir();
    let mut t = TrackerProc::start(&tmp.path().join("data"));
    let big = record_of(tmp.path(), "big.iso", &test_bytes(300_000, 6));
    let empty = record_of(tmp.path(), "empty", b"");
    let mut a = connect(&t);
    register(&mut a, "A", 7001);
    new_file(&mut a, &big).unwrap();
    new_file(&mut a, &empty).unwrap();
    assert_eq!(holder_ids(&t, "empty"), ["A"], "an empty file is held");
    drop(a);

    t.restart();
    let files = list_files(&t);
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["big.iso", "empty"], "{}", t.logs());
    assert!(files.iter().all(|f| f.holders == 0), "peers re-register");
    assert_eq!(get_record(&t, "big.iso").unwrap(), big);
    assert_eq!(get_record(&t, "empty").unwrap(), empty);

    // And the first record still wins after the restart.
    let other = record_of(tmp.path(), "big.iso", &test_bytes(10, 7));
    let mut b = connect(&t);
    register(&mut b, "B", 7002);
    assert_eq!(remote_code(new_file(&mut b, &other)).0, code::CONFLICT);
}

/// Reads the answer to a bad frame: an ERROR(PROTOCOL), then the end.
fn expect_protocol_error_then_close(mut s: TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = FrameReader::new(&mut s, MAX_FRAME);
    match r.read_frame() {
        Ok(Some((t, body))) => {
            assert_eq!(t, ty::ERROR);
            match Msg::decode(t, body).unwrap() {
                Msg::Error { code: c, .. } => assert_eq!(c, code::PROTOCOL),
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

#[test]
fn garbage_does_not_hurt_the_tracker() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let rec = record_of(tmp.path(), "keep.txt", b"keep me");
    let mut keeper = connect(&t);
    register(&mut keeper, "keeper", 9);
    new_file(&mut keeper, &rec).unwrap();

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
    Msg::Request {
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
    Msg::NewFile { record: bad }.encode(&mut bytes);
    s.write_all(&bytes).unwrap();
    expect_protocol_error_then_close(s);

    // A registered session that turns to garbage loses its peer.
    let mut victim = connect(&t);
    register(&mut victim, "victim", 10);
    new_file(&mut victim, &rec).unwrap();
    victim
        .writer()
        .write_all(&[0xde, 0xad, 0xbe, 0xef, 0])
        .unwrap();
    victim.flush().unwrap();
    wait_until(WAIT, "the garbled session to be removed", || {
        !holder_ids(&t, "keep.txt").contains(&"victim".to_string())
    });

    // A bad name is refused without closing the connection.
    let mut c = connect(&t);
    let mut body = Vec::new();
    p2pshare::wire::codec::put_str(&mut body, "../etc/passwd");
    p2pshare::wire::frame::write_header(c.writer(), ty::GET_RECORD, body.len()).unwrap();
    c.writer().write_all(&body).unwrap();
    c.flush().unwrap();
    let (code_, _) = remote_code(c.expect().map(owned));
    assert_eq!(code_, code::BAD_NAME);
    assert!(matches!(
        call(&mut c, &Msg::ListFiles),
        Ok(Msg::FileList { .. })
    ));

    // Everyone else is fine.
    assert_eq!(list_files(&t).len(), 1);
    assert_eq!(get_record(&t, "keep.txt").unwrap(), rec);
    let mut fresh = connect(&t);
    register(&mut fresh, "fresh", 11);
    assert_eq!(new_file(&mut fresh, &rec).unwrap(), Msg::Ok);
    assert!(holder_ids(&t, "keep.txt").contains(&"fresh".to_string()));
    drop(keeper);
}

#[test]
fn idle_connections_do_not_block_queries() {
    let tmp = temp_dir();
    let t = TrackerProc::start(&tmp.path().join("data"));
    let mut idle = Vec::new();
    for i in 0..50u8 {
        let mut s = TcpStream::connect(t.addr()).unwrap();
        if i % 2 == 0 {
            // Half a header, then silence.
            s.write_all(&[0, 0]).unwrap();
        }
        idle.push(s);
    }
    assert!(list_files(&t).is_empty());
    let mut c = connect(&t);
    register(&mut c, "busy", 1);
    let rec = record_of(tmp.path(), "x", b"x");
    assert_eq!(new_file(&mut c, &rec).unwrap(), Msg::Ok);
    assert_eq!(holder_ids(&t, "x"), ["busy"]);
    drop(idle);
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
            format!("tracker listening on 127.0.0.1:{port}"),
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
