//! What a newcomer tripped on (issue 13, item 6), each with the real
//! binaries: a second peer with the same ID, `share ~/...`, and the like.

use crate::common::swarm::*;
use crate::common::*;

/// `--serve` peer `id` on a free port with directory `dir`, logged to
/// `<dir>.log`.
fn serving(id: &str, tracker: &TrackerProc, dir: &std::path::Path) -> (PeerProc, u16) {
    let port = free_port();
    let p = PeerProc::spawn_logged(
        &[
            id,
            &port.to_string(),
            &tracker.addr(),
            "--dir",
            dir.to_str().unwrap(),
            "--serve",
        ],
        &dir.with_extension("log"),
    );
    (p, port)
}

#[test]
fn a_second_peer_with_the_same_id_is_refused_clearly() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start(&tmp.path().join("tracker"));
    let dir = tmp.path().join("A");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files/a.txt"), b"first A's file").unwrap();
    let (first, first_port) = serving("A", &tracker, &dir);
    let holder_ports = || -> Vec<u16> {
        p2pshare::peer::session::tracker_client::who_has(&tracker.addr(), "a.txt", None)
            .map(|h| h.iter().map(|h| h.port).collect())
            .unwrap_or_default()
    };
    wait_until(WAIT, "A registered with its file", || {
        holder_ports() == [first_port]
    });

    // The same directory on this machine: the lock says who has it.
    let port = free_port().to_string();
    let out = spawn_peer(
        &[
            "A",
            &port,
            &tracker.addr(),
            "--dir",
            dir.to_str().unwrap(),
            "--serve",
        ],
        None,
    );
    let out = wait_output(out, WAIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: peer A is already running here (pid {})",
            first.pid()
        )),
        "{err}"
    );

    // Another directory (as on another host): the tracker says where the
    // live A is, and keeps the first one registered.
    let (second, _) = serving("A", &tracker, &tmp.path().join("A2"));
    let said = format!("peer id A is in use at 127.0.0.1:{first_port}");
    wait_until(WAIT, "the second A to be told", || {
        second.logs().contains(&said)
    });
    assert_eq!(
        second.logs().matches("is in use at").count(),
        1,
        "told once, not at every retry: {}",
        second.logs()
    );
    assert!(!first.logs().contains("not registered"), "{}", first.logs());
    assert_eq!(
        holder_ports(),
        [first_port],
        "the first A is still the one registered"
    );
}

#[test]
fn ctrl_c_during_a_get_says_what_was_kept_and_the_resume_says_so() {
    let s = Swarm::new();
    let data = test_bytes(4 << 20, 11);
    s.give("A", "f.bin", &data);
    let _a = s.serve("A", "f.bin", &[]);
    let g = s.slow_get("1M", "partial/f.bin.state");
    signal(g.pid(), "INT");
    let out = g.wait(WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let kept = stdout
        .lines()
        .find(|l| l.starts_with("f.bin: "))
        .unwrap_or_else(|| panic!("nothing said about f.bin:\n{stdout}"));
    assert!(
        kept.ends_with(" % verified and kept; run `get f.bin` to resume"),
        "{kept}"
    );
    let pct: f64 = kept["f.bin: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pct > 0.0 && pct < 100.0, "{kept}");

    let out = s.shell("G", "get f.bin\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(std::fs::read(s.path("G/files/f.bin")).unwrap(), data);
    let resumed = stdout
        .lines()
        .find(|l| l.starts_with("resumed f.bin: "))
        .unwrap_or_else(|| panic!("the resume is not said:\n{stdout}"));
    let words: Vec<&str> = resumed.split_whitespace().collect();
    let (before, total, this_run): (u64, u64, u64) = (
        words[2].parse().unwrap(),
        words[4].parse().unwrap(),
        words.last().unwrap().parse().unwrap(),
    );
    assert_eq!(total, data.len() as u64, "{resumed}");
    assert!(before > 0 && before + this_run == total, "{resumed}");
    // The contract's lines stay last and exact.
    assert!(done_line(&stdout, "f.bin").contains(&format!(" bytes={total} ")));
}

#[test]
fn a_closed_stdout_ends_the_peer_quietly() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let tmp = temp_dir();
    let port = free_port().to_string();
    let dir = tmp.path().join("P");
    // `peer ... | head -1`: read the first line, then close the pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["P", &port, "127.0.0.1:1", "--dir", dir.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("peer P listening"), "{first}");
    let mut stdin = child.stdin.take().unwrap();
    // Each `help` writes lines nobody reads any more.
    let _ = stdin.write_all("help\n".repeat(50).as_bytes());
    drop(stdin);
    let out = wait_output(child, WAIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn a_multipart_form_upload_stores_the_file_not_its_envelope() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start(&tmp.path().join("tracker"));
    let dir = tmp.path().join("W");
    let (_w, base) = web_peer("W", &tracker, &dir, &[]);
    // What `curl -F note=hi -F file=@x.txt URL` sends.
    let boundary = "------------------------d74496d66958873e";
    let data = test_bytes(300_000, 12);
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    let post = |path: &str, ct: &str, body: &[u8]| {
        http::request(&base, "POST", path, &[("Content-Type", ct)], body)
    };
    // Named by the form's filename, or by ?name= when given.
    let r = post("/api/upload", &ct, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(std::fs::read(dir.join("files/x.txt")).unwrap() == data);
    let r = post("/api/upload?name=y.bin", &ct, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(std::fs::read(dir.join("files/y.bin")).unwrap() == data);
    // The filename follows the name rules like any name.
    let bad = String::from_utf8_lossy(&body).replace("filename=\"x.txt\"", "filename=\"..\"");
    let r = post("/api/upload", &ct, bad.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    // A form cut short is not shared.
    let r = post("/api/upload?name=cut.bin", &ct, &body[..body.len() - 40]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!dir.join("files/cut.bin").exists());
    // Another multipart type is not a form: refused, saying what works.
    let mixed = ct.replace("form-data", "mixed");
    let r = post("/api/upload?name=z.txt", &mixed, &body);
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(r.text().contains("--data-binary") && r.text().contains("-F file=@"));
    assert!(!dir.join("files/z.txt").exists());
    // `curl --data-binary @z.txt` says urlencoded, and sends the file as is.
    let r = post(
        "/api/upload?name=z.txt",
        "application/x-www-form-urlencoded",
        b"file=abc",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(std::fs::read(dir.join("files/z.txt")).unwrap(), b"file=abc");
}

#[test]
fn share_expands_the_home_directory_and_empty_lists_say_so() {
    let s = Swarm::new();
    let home = s.path("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("big.iso"), test_bytes(10_000, 13)).unwrap();
    let port = free_port().to_string();
    let dir = s.path("A");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args([
        "A",
        &port,
        &s.tracker.addr(),
        "--dir",
        dir.to_str().unwrap(),
    ])
    .env("HOME", &home)
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = spawn_noted(&mut cmd, &[]);
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"myfiles\nfiles\nshare ~/big.iso\nmyfiles\n")
            .unwrap();
    }
    let out = wait_output(child, WAIT);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines[0], "no files", "{stdout}");
    assert_eq!(lines[1], "no files in the swarm", "{stdout}");
    assert!(lines[2].starts_with("shared big.iso 10000 "), "{stdout}");
    assert!(lines[3].starts_with("big.iso 10000 "), "{stdout}");
}

#[test]
fn files_marks_a_file_whose_holders_all_left() {
    let s = Swarm::new();
    s.give("A", "gone.bin", &test_bytes(20_000, 21));
    let a = s.serve("A", "gone.bin", &[]);
    // A leaves cleanly (BYE): the record stays, with nobody holding it.
    let out = a.stop(WAIT);
    assert!(out.status.success());
    wait_until(WAIT, "A to leave", || {
        holders(&s.tracker.addr(), "gone.bin").is_empty()
    });
    let out = s.shell("B", "files\n", &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("gone.bin"))
        .unwrap_or_else(|| panic!("gone.bin not listed:\n{stdout}"));
    assert!(line.ends_with("(no holder)"), "{line}");
}

#[test]
fn the_web_dashboard_shows_addresses_a_peer_can_reach() {
    let tmp = temp_dir();
    // Bound to every address (the default): 0.0.0.0 is no address to dial.
    let tracker = TrackerProc::start_with(&tmp.path().join("tracker"), &["--http", "0"]);
    let page = http::get(&tracker.web_url(), "/");
    assert_eq!(page.status, 200);
    let body = String::from_utf8_lossy(&page.body);
    assert!(!body.contains("0.0.0.0:"), "{body}");
    let port = format!(":{}", tracker.port());
    assert!(
        body.contains(&format!("127.0.0.1{port}")),
        "loopback, at least, with the tracker's port:\n{body}"
    );
}
