//! The swarm secret end to end (`--secret-file`): a swarm with one moves
//! files as usual, and a party without it, or with another, fails with a
//! clear error and learns nothing: no file name, no byte of a file.

use crate::common::*;
use p2pshare::secure::channel::Initiator;
use p2pshare::secure::{seal, Keys};
use p2pshare::wire::datagram::search::Datagram;
use p2pshare::wire::datagram::tracker::{Reply, Request};
use p2pshare::wire::frame::write_header;
use p2pshare::wire::message::ty;
use p2pshare::wire::{Encode, PeerRequest, TrackerRequest};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// A name that must never reach an outsider.
const NAME: &str = "payroll-2026.bin";
const SIZE: usize = 1_500_000;
/// Secrets as `openssl rand -hex 32` makes them (a patterned one is refused).
const S1: &str = "0550c4c539041cfe51d79eb7489e6b968be7a66bfc178ba205ed43ed0a531196";
const S2: &str = "f5d08a91dbfebbddad6a46baa4b0736dfec32081004d0b7310f593a04b0fed41";
const S3: &str = "c21405b0807d6189eb0f4014b291d0a278544096c08dd4c69ceae78ea7067b25";
const S4: &str = "5b30562d3abb18cd997b1e79aacc3c928a819d8284c78654990e6575abeca129";
const S5: &str = "2964bf7985564d57e8ad639ff447c9b9954354b6d128a79581408d1b61f70e55";

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tracker and a seeder of `NAME`, both with the secret `s1`.
struct Swarm {
    dir: tempfile::TempDir,
    s1: PathBuf,
    data: Vec<u8>,
    tracker: TrackerProc,
    seeder: PeerProc,
    seeder_port: u16,
}

impl Swarm {
    fn start() -> Swarm {
        let dir = temp_dir();
        let s1 = secret_file(dir.path(), "s1", &format!("{S1}\n"), 0o600);
        let s1_arg = s1.to_str().unwrap().to_string();
        let tracker =
            TrackerProc::start_with(&dir.path().join("tracker"), &["--secret-file", &s1_arg]);
        let data = test_bytes(SIZE, 7);
        let files = dir.path().join("S/files");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join(NAME), &data).unwrap();
        let seeder_port = free_port();
        let port = seeder_port.to_string();
        let sdir = dir.path().join("S");
        let seeder = PeerProc::spawn_logged(
            &[
                "S",
                &port,
                &tracker.addr(),
                "--dir",
                sdir.to_str().unwrap(),
                "--serve",
                "--secret-file",
                &s1_arg,
            ],
            &dir.path().join("S.log"),
        );
        let swarm = Swarm {
            dir,
            s1,
            data,
            tracker,
            seeder,
            seeder_port,
        };
        swarm.wait_for_holder();
        swarm
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// A shell peer `id` with `extra` arguments running `commands`.
    fn shell(&self, id: &str, extra: &[&str], commands: &str) -> Output {
        let port = free_port().to_string();
        let dir = self.path(id);
        let mut args = vec![id, &port, "", "--dir", dir.to_str().unwrap()];
        let tracker = self.tracker.addr();
        args[2] = &tracker;
        args.extend_from_slice(extra);
        PeerProc::spawn(&args, Some(commands)).wait(WAIT)
    }

    fn wait_for_holder(&self) {
        let s1 = self.s1.to_str().unwrap().to_string();
        wait_until(WAIT, "the seeder to be listed as a holder", || {
            let out = self.shell("W", &["--secret-file", &s1], &format!("whohas {NAME}\n"));
            String::from_utf8_lossy(&out.stdout).contains(" 367/367")
        });
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- seeder log\n{}\n--- tracker\n{}",
                self.seeder.logs(),
                self.tracker.logs()
            );
        }
    }
}

/// The line an outsider with another secret gets.
fn mismatch(swarm: &Swarm) -> String {
    format!(
        "error: the tracker at {} refused us: the swarm secret does not match (check --secret-file)",
        swarm.tracker.addr()
    )
}

/// The line an outsider with no secret gets: told what it lacks.
fn no_secret(swarm: &Swarm) -> String {
    format!(
        "error: the tracker at {} runs a closed swarm and we have no secret, so the swarm secret does not match: start with --secret-file and the swarm's secret file",
        swarm.tracker.addr()
    )
}

/// Asserts an outsider's run failed with `line` and learnt nothing of the
/// swarm.
fn refused(out: &Output, swarm: &Swarm, id: &str, line: &str) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.lines().any(|l| l == line), "{stderr}");
    assert!(
        !stdout.contains(NAME) && !stderr.contains(NAME) || !stdout.contains(NAME),
        "{stdout}"
    );
    assert!(!stdout.contains(NAME), "a file name leaked:\n{stdout}");
    assert!(!swarm.path(&format!("{id}/files/{NAME}")).exists());
}

#[test]
fn a_swarm_with_a_secret_works_and_outsiders_get_nothing() {
    let swarm = Swarm::start();
    let s1 = swarm.s1.to_str().unwrap();
    let out = swarm.shell("B", &["--secret-file", s1], &format!("files\nget {NAME}\n"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("done {NAME} bytes={SIZE} ")),
        "{stdout}"
    );
    assert!(stdout.contains("from S blocks=367 "), "{stdout}");
    assert_eq!(
        fs::read(swarm.path(&format!("B/files/{NAME}"))).unwrap(),
        swarm.data
    );

    // Another secret, then none: one clear line each, and nothing learnt.
    let s2 = secret_file(swarm.dir.path(), "s2", S2, 0o600);
    let commands = format!("files\nwhohas {NAME}\nget {NAME}\n");
    let out = swarm.shell("C", &["--secret-file", s2.to_str().unwrap()], &commands);
    refused(&out, &swarm, "C", &mismatch(&swarm));
    let out = swarm.shell("D", &[], &commands);
    refused(&out, &swarm, "D", &no_secret(&swarm));
}

/// Reads what a server sends until it closes (or 5 s pass).
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn a_client_that_skips_the_handshake_gets_only_a_refusal() {
    let swarm = Swarm::start();
    let mut frame = Vec::new();
    TrackerRequest::ListFiles.encode(&mut frame);
    let mut s = TcpStream::connect(swarm.tracker.addr()).unwrap();
    s.write_all(&frame).unwrap();
    let got = read_until_closed(&mut s);
    let got_text = String::from_utf8_lossy(&got);
    assert!(
        got_text.contains("the swarm secret does not match"),
        "{got_text}"
    );
    assert!(!got_text.contains(NAME), "{got_text}");
    assert!(got.len() < 200, "only the refusal: {} bytes", got.len());

    // A frame larger than a handshake is refused from its header on
    // (20 KiB of it: more than the gate's lobby waits for).
    let mut s = TcpStream::connect(swarm.tracker.addr()).unwrap();
    s.write_all(&[0x00, 0x0f, 0x42, 0x40, 0x02]).unwrap();
    s.write_all(&[0u8; 20 << 10]).unwrap();
    let got = read_until_closed(&mut s);
    let got_text = String::from_utf8_lossy(&got);
    assert!(
        got_text.contains("the swarm secret does not match"),
        "{got_text}"
    );

    // The seeder's block port: asking for the file by name gets no block.
    let mut frame = Vec::new();
    fs::create_dir_all(swarm.path("x")).unwrap();
    let md5 = record_of(&swarm.path("x"), NAME, &swarm.data).md5;
    PeerRequest::Open {
        name: NAME.into(),
        md5,
    }
    .encode(&mut frame);
    PeerRequest::Request {
        handle: 0,
        block: 0,
        count: 8,
    }
    .encode(&mut frame);
    let mut s = TcpStream::connect(("127.0.0.1", swarm.seeder_port)).unwrap();
    s.write_all(&frame).unwrap();
    let got = read_until_closed(&mut s);
    assert!(got.len() < 200, "only the refusal: {} bytes", got.len());
    assert!(!got.windows(16).any(|w| w == &swarm.data[..16]));
}

#[test]
fn announces_without_the_secret_get_no_answer() {
    let swarm = Swarm::start();
    let mut connect = Vec::new();
    Request::Connect { tx: 77 }.encode(&mut connect);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(swarm.tracker.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let answered = |bytes: &[u8], buf: &mut [u8]| -> Option<usize> {
        (0..5).find_map(|_| {
            socket.send(bytes).unwrap();
            socket.recv(buf).ok()
        })
    };
    assert_eq!(answered(&connect, &mut buf), None, "plain CONNECT answered");
    let mut sealed = Vec::new();
    let (to, from) = (seal::Purpose::ToTracker, seal::Purpose::FromTracker);
    Keys::derive(&[b'x'; 64])
        .sealer(to)
        .seal(to, &connect, &mut sealed);
    assert_eq!(
        answered(&sealed, &mut buf),
        None,
        "wrong-secret CONNECT answered"
    );

    // With the secret, the same CONNECT is answered, sealed.
    let keys = Keys::derive(S1.as_bytes());
    keys.sealer(to).seal(to, &connect, &mut sealed);
    let n = answered(&sealed, &mut buf).expect("a sealed CONNECT is answered");
    assert!(n <= sealed.len(), "never larger than the request");
    let mut opened = Vec::new();
    keys.sealer(from)
        .open(
            from,
            &buf[..n],
            &mut seal::ReplayGuard::new(),
            seal::unix_ms(),
            &mut opened,
        )
        .unwrap();
    assert_eq!(Reply::decode(&opened).unwrap().tx(), 77);
    // The same datagram again is a replay: no answer.
    assert_eq!(
        answered(&sealed, &mut buf),
        None,
        "replayed CONNECT answered"
    );
}

#[test]
fn a_peer_with_a_secret_refuses_an_open_tracker() {
    let dir = temp_dir();
    let tracker = TrackerProc::start(&dir.path().join("tracker"));
    let s = secret_file(dir.path(), "s", S3, 0o600);
    let port = free_port().to_string();
    let pdir = dir.path().join("P");
    let out = PeerProc::spawn(
        &[
            "P",
            &port,
            &tracker.addr(),
            "--dir",
            pdir.to_str().unwrap(),
            "--secret-file",
            s.to_str().unwrap(),
        ],
        Some("files\n"),
    )
    .wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = format!(
        "error: the tracker at {} runs an open swarm (no secret) but we have --secret-file",
        tracker.addr()
    );
    assert!(stderr.lines().any(|l| l.starts_with(&line)), "{stderr}");
}

#[test]
fn secret_files_are_checked() {
    let dir = temp_dir();
    let short = secret_file(dir.path(), "short", "0123456789abcdef\n", 0o600);
    let missing = dir.path().join("missing");
    // Issue 22 item 15: 32 x `a` passed the length check.
    let weak = secret_file(dir.path(), "weak", &"a".repeat(32), 0o600);
    let patterned = secret_file(dir.path(), "patterned", &"a".repeat(64), 0o600);
    let writable = secret_file(dir.path(), "writable", S4, 0o664);
    let data = dir.path().join("tracker");
    for (file, says) in [
        (&short, "holds a secret of 16 bytes; the minimum is 32"),
        (&missing, "cannot read the secret file"),
        (&weak, "worth at most 128 bits"),
        (&patterned, "not random"),
        (&writable, "can be changed by other users"),
    ] {
        let f = file.to_str().unwrap();
        let out = run_tracker(&[
            "--port",
            "0",
            "--data",
            data.to_str().unwrap(),
            "--secret-file",
            f,
        ]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{stderr}"
        );
        assert!(
            stderr.contains("openssl rand -hex 32") || stderr.contains("chmod 600"),
            "says what to do: {stderr}"
        );
        let out = PeerProc::spawn(
            &[
                "P",
                "9",
                "127.0.0.1:9",
                "--dir",
                data.to_str().unwrap(),
                "--secret-file",
                f,
            ],
            None,
        )
        .wait(WAIT);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{stderr}"
        );
    }
    // Readable by others: used, with a warning.
    let loose = secret_file(dir.path(), "loose", S4, 0o644);
    let tracker = TrackerProc::start_with(&data, &["--secret-file", loose.to_str().unwrap()]);
    wait_until(WAIT, "the warning", || {
        tracker.logs().contains("is readable by other users")
    });
    assert!(tracker.logs().contains("chmod 600"), "{}", tracker.logs());
}

#[test]
fn search_without_a_tracker_works_only_with_the_secret() {
    let dir = temp_dir();
    let s1 = secret_file(dir.path(), "s1", S5, 0o600);
    let s1 = s1.to_str().unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let data = test_bytes(200_000, 3);
    let files = dir.path().join("H/files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join(NAME), &data).unwrap();
    let (hport, hdir) = (free_port().to_string(), dir.path().join("H"));
    let holder = PeerProc::spawn_logged(
        &[
            "H",
            &hport,
            &dead,
            "--dir",
            hdir.to_str().unwrap(),
            "--serve",
            "--secret-file",
            s1,
        ],
        &dir.path().join("H.log"),
    );
    wait_until(WAIT, "the holder to start", || {
        holder.logs().contains("peer H listening on")
    });
    let neighbour = format!("127.0.0.1:{hport}");
    let asker = |id: &str, extra: &[&str]| {
        let port = free_port().to_string();
        let pdir = dir.path().join(id);
        let mut args = vec![
            id,
            &port,
            &dead,
            "--dir",
            pdir.to_str().unwrap(),
            "--neighbor",
            &neighbour,
        ];
        args.extend_from_slice(extra);
        PeerProc::spawn(&args, Some(&format!("get {NAME}\n"))).wait(WAIT)
    };
    let out = asker("Q", &["--secret-file", s1]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nholder:\n{}",
        holder.logs()
    );
    assert_eq!(
        fs::read(dir.path().join(format!("Q/files/{NAME}"))).unwrap(),
        data
    );

    // No secret: the holder drops its QUERY unanswered; nothing is found.
    let out = asker("R", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(!stdout.contains(NAME), "{stdout}");
    assert!(!dir.path().join(format!("R/files/{NAME}")).exists());
}

/// Issue 22 item 5: a sealed announce captured before the tracker
/// restarted, replayed after, was opened and answered (the replay guard
/// is in memory). A tracker takes nothing stamped before it started.
#[test]
fn a_datagram_sealed_before_the_tracker_restarted_gets_no_answer() {
    let dir = temp_dir();
    let s1 = secret_file(dir.path(), "s1", S2, 0o600);
    let mut tracker = TrackerProc::start_with(
        &dir.path().join("tracker"),
        &["--secret-file", s1.to_str().unwrap()],
    );
    let keys = Keys::derive(S2.as_bytes());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(tracker.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut answered = |bytes: &[u8]| -> bool {
        (0..5).any(|_| {
            socket.send(bytes).unwrap();
            socket.recv(&mut buf).is_ok()
        })
    };
    let mut connect = Vec::new();
    Request::Connect { tx: 5 }.encode(&mut connect);
    let mut captured = Vec::new();
    let to = seal::Purpose::ToTracker;
    keys.sealer(to).seal(to, &connect, &mut captured);
    assert!(answered(&captured), "the original is answered");

    tracker.restart();
    assert!(
        !answered(&captured),
        "the replay after the restart is answered"
    );
    let mut fresh = Vec::new();
    keys.sealer(to).seal(to, &connect, &mut fresh);
    assert!(answered(&fresh), "a fresh CONNECT is answered");
    assert!(
        tracker.logs().contains("BeforeStart"),
        "the log says why: {}",
        tracker.logs()
    );
}

/// Issue 22 item 12, end to end: a member's message 1 with 250,000 bytes
/// behind it, sent more times than the tracker has query threads. The
/// tracker serves on, and counts no panic. With the kernel's default
/// receive buffer the tracker's first read takes only part of the
/// surplus, which never reached the panic; the regression test that puts
/// all of it in the first read is `net::conn::tests::a_large_surplus_
/// after_message_1_is_kept_not_a_panic` (a large SO_RCVBUF), and the gate's
/// `the_pool_serves_on_after_its_handlers_panic` covers the threads.
#[test]
fn message_1_with_a_large_surplus_leaves_the_tracker_serving() {
    let dir = temp_dir();
    let s1 = secret_file(dir.path(), "s1", S3, 0o600);
    let s1_arg = s1.to_str().unwrap();
    let tracker = TrackerProc::start_with(
        &dir.path().join("tracker"),
        &["--secret-file", s1_arg, "--http", "0"],
    );
    let keys = Keys::derive(S3.as_bytes());
    for _ in 0..20 {
        let (_, msg1) = Initiator::start(keys.psk(), seal::unix_ms());
        let mut burst = Vec::new();
        write_header(&mut burst, ty::HANDSHAKE, msg1.len()).unwrap();
        burst.extend_from_slice(&msg1);
        burst.extend((0..250_000u32).map(|i| (i % 251) as u8));
        let mut s = TcpStream::connect(tracker.addr()).unwrap();
        // The server may close before it has read it all.
        let _ = s.write_all(&burst);
        read_until_closed(&mut s);
    }
    let port = free_port().to_string();
    let pdir = dir.path().join("P");
    let out = PeerProc::spawn(
        &[
            "P",
            &port,
            &tracker.addr(),
            "--dir",
            pdir.to_str().unwrap(),
            "--secret-file",
            s1_arg,
        ],
        Some("files\n"),
    )
    .wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let page = http::get(&tracker.web_url(), "/metrics").text();
    assert_eq!(
        p2pshare::metrics::value_in(&page, "tracker_handler_panics_total"),
        Some(0),
        "{page}"
    );
    assert!(!tracker.logs().contains("panicked"), "{}", tracker.logs());
}

/// Issue 22 item 13: a sealed HELLO from D, captured and replayed from
/// another address to A and B, made both log `neighbour D at <attacker's
/// address> is up` and answer. Now a HELLO teaches a neighbour only when
/// it echoes a challenge sent to its address: the replay gets at most a
/// challenge back, sealed, that the attacker cannot answer.
#[test]
fn a_captured_hello_replayed_to_other_peers_is_ignored() {
    let dir = temp_dir();
    let s = secret_file(dir.path(), "s", S5, 0o600);
    let s = s.to_str().unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let keys = Keys::derive(S5.as_bytes());
    let search = seal::Purpose::Search;

    // The capture point: D's configured neighbour, which D greets at start.
    let trap = UdpSocket::bind("127.0.0.1:0").unwrap();
    trap.set_read_timeout(Some(WAIT)).unwrap();
    let trap_addr = trap.local_addr().unwrap().to_string();
    let serve = |id: &str, extra: &[&str]| {
        let (port, pdir) = (free_port().to_string(), dir.path().join(id));
        let mut args = vec![
            id,
            &port,
            &dead,
            "--dir",
            pdir.to_str().unwrap(),
            "--serve",
            "--secret-file",
            s,
        ];
        args.extend_from_slice(extra);
        let p = PeerProc::spawn_logged_at(&args, &dir.path().join(format!("{id}.log")), "debug");
        wait_until(WAIT, "the peer to start", || {
            p.logs().contains(&format!("peer {id} listening on"))
        });
        (p, port)
    };
    // A and B run before D's HELLO is made (one stamped before a peer
    // started is refused anyway: issue 22 item 5).
    let others = [serve("A", &[]), serve("B", &[])];
    let (_d, _) = serve("D", &["--neighbor", &trap_addr]);
    let mut buf = [0u8; 2048];
    let (n, _) = trap.recv_from(&mut buf).expect("D's HELLO");
    let captured = buf[..n].to_vec();
    let mut opened = Vec::new();
    keys.sealer(search)
        .open_into(search, &captured, &mut opened)
        .expect("sealed for search");
    let Datagram::Hello {
        peer_id,
        challenge: d_challenge,
        ..
    } = Datagram::decode(&opened).unwrap()
    else {
        panic!("not a HELLO: {opened:?}");
    };
    assert_eq!(peer_id, "D");

    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_read_timeout(Some(WAIT)).unwrap();
    for (id, (peer, port)) in ["A", "B"].into_iter().zip(&others) {
        attacker
            .send_to(&captured, format!("127.0.0.1:{port}"))
            .unwrap();
        // Its answer, if any, is a challenge of its own: it has not taken
        // the attacker's address for D's.
        let (n, _) = attacker.recv_from(&mut buf).expect("a challenge back");
        keys.sealer(search)
            .open_into(search, &buf[..n], &mut opened)
            .unwrap();
        let Datagram::Hello {
            want_reply,
            challenge,
            echo,
            ..
        } = Datagram::decode(&opened).unwrap()
        else {
            panic!("not a HELLO: {opened:?}");
        };
        assert!(!want_reply && challenge != 0 && echo == d_challenge);
        wait_until(WAIT, "the peer to log the HELLO", || {
            peer.logs()
                .contains("not echoing our challenge: not learnt")
        });
        assert!(
            !peer.logs().contains("neighbour D at"),
            "{id} learnt D from a replay:\n{}",
            peer.logs()
        );
    }
}
