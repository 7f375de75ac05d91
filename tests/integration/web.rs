//! The web UI over plain HTTP, without a browser: the real tracker and
//! peers with `--http 0`, probed with hand-written requests. Safety first
//! (Host, Origin, sizes, names), then an upload that streams to disk, is
//! announced, fetched by another peer and saved back over HTTP.

use crate::common::http;
use crate::common::*;
use p2pshare::record::md5_of;
use p2pshare::units::hex;
use std::io::Write;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}'])?;
    Some(&rest[..end])
}

fn fetch_state(progress: &str, name: &str) -> Option<String> {
    let at = progress.find(&format!("{{\"name\":\"{name}\",\"state\":"))?;
    json_field(&progress[at..], "state").map(str::to_string)
}

#[test]
fn only_our_own_host_names_and_origin_are_served() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start_with(
        &tmp.path().join("tracker"),
        &["--http", "0", "--http-host", "dash.test"],
    );
    let (peer, base) = web_peer("A", &tracker, &tmp.path().join("A"), &[]);
    let port = http::authority(&base)
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();

    // A DNS-rebinding page reaches us under its own name: refused, saying why.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("localhost.evil.example:{port}"),
    ] {
        let r = http::request(&base, "GET", "/", &[("Host", &host)], b"");
        assert_eq!(r.status, 421, "{host}: {}", r.text());
        assert!(r.text().contains("DNS rebinding") && r.text().contains("--http-host"));
        let r = http::request(&base, "GET", "/api/files", &[("Host", &host)], b"");
        assert_eq!(r.status, 421);
        assert!(r.text().starts_with("{\"error\":"), "{}", r.text());
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = http::request(&base, "GET", "/", &[("Host", &host)], b"");
        assert_eq!(r.status, 200, "{host}");
        assert!(r.text().contains("Peer <b>A</b>"), "{}", r.text());
    }

    // A page of another origin cannot start a download (CSRF), nor can a
    // browser that says the request is cross-site.
    for (name, value) in [
        ("Origin", "http://evil.example".to_string()),
        ("Origin", "null".to_string()),
        ("Sec-Fetch-Site", "cross-site".to_string()),
    ] {
        let r = http::request(
            &base,
            "POST",
            "/api/fetch?name=x.bin",
            &[(name, &value)],
            b"",
        );
        assert_eq!(r.status, 403, "{name}: {value}");
        assert!(r.text().contains("cross-site request forgery"));
    }
    // Issue 22 item 16: a POST saying nothing of its origin (no Origin, no
    // Sec-Fetch-Site) passed. Now /api/ wants its header, a form its token.
    let auth = http::authority(&base).to_string();
    for (what, path) in [
        ("the API", "/api/fetch?name=x.bin".to_string()),
        ("a form", "/fetch?name=x.bin".to_string()),
        (
            "a form with a wrong token",
            "/fetch?name=x.bin&csrf=0123".to_string(),
        ),
    ] {
        let bare = format!("POST {path} HTTP/1.1\r\nHost: {auth}\r\nContent-Length: 0\r\n\r\n");
        let r = http::raw(&auth, bare.as_bytes());
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert!(r.text().contains("cross-site request forgery"), "{what}");
    }
    let progress = http::get(&base, "/api/progress").text();
    assert!(
        progress.contains("\"fetches\":[]"),
        "nothing started: {progress}"
    );
    // The token our own pages carry works for a form.
    let page = http::get(&base, "/").text();
    let token = page
        .split("name=\"p2p-form-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its form token")
        .to_string();
    let r = http::post(&base, &format!("/fetch?name=y.bin&csrf={token}"), b"");
    assert_eq!(r.status, 303, "{}", r.text());
    let own = base.clone();
    let r = http::request(
        &base,
        "POST",
        "/api/fetch?name=x.bin",
        &[("Origin", &own), ("Accept", "application/json")],
        b"",
    );
    assert_eq!(r.status, 202, "our own origin is fine: {}", r.text());

    // The tracker's page: same rule, plus the name allowed with --http-host.
    let dash = tracker.web_url();
    let r = http::request(&dash, "GET", "/", &[("Host", "evil.example")], b"");
    assert_eq!(r.status, 421);
    let r = http::request(&dash, "GET", "/", &[("Host", "DASH.test:1234")], b"");
    assert_eq!(r.status, 200);
    wait_until(WAIT, "peer A on the tracker's page", || {
        http::get(&dash, "/")
            .text()
            .contains("<tr data-peer=\"A\">")
    });
    drop(peer);
}

#[test]
fn oversized_and_malformed_requests_are_refused() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start(&tmp.path().join("tracker"));
    let dir = tmp.path().join("A");
    let (_peer, base) = web_peer("A", &tracker, &dir, &[]);
    let auth = http::authority(&base).to_string();

    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: {auth}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(http::raw(&auth, big_header.as_bytes()).status, 431);
    let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: {auth}\r\n{many}\r\n");
    assert_eq!(http::raw(&auth, many.as_bytes()).status, 431);

    // Bodies are bounded before they are read: the head alone gets the answer.
    let r = http::raw(
        &auth,
        format!(
            "POST /api/fetch?name=a HTTP/1.1\r\nHost: {auth}\r\nX-Requested-With: p2pshare\r\nContent-Length: 1000000\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let huge = 17u64 << 30;
    let r = http::raw(&auth, format!("POST /api/upload?name=huge.bin HTTP/1.1\r\nHost: {auth}\r\nX-Requested-With: p2pshare\r\nContent-Length: {huge}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("over the limit"), "{}", r.text());
    assert!(!dir.join("partial/huge.bin.upload").exists());

    let chunked = format!("POST /api/upload?name=c.bin HTTP/1.1\r\nHost: {auth}\r\nX-Requested-With: p2pshare\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(http::raw(&auth, chunked.as_bytes()).status, 411);
    for garbage in [
        "HELLO\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        "\u{1}\u{2}\r\n\r\n",
    ] {
        let status = http::raw(&auth, garbage.as_bytes()).status;
        assert!(status == 400 || status == 505, "{garbage:?}: {status}");
    }
    assert_eq!(http::request(&base, "DELETE", "/", &[], b"").status, 405);
    assert_eq!(
        http::request(&base, "GET", "/api/upload", &[], b"").status,
        405
    );
    assert_eq!(http::get(&base, "/no/such/page").status, 404);

    // A head that never ends is cut off, not waited for forever.
    let mut slow = http::connect(&auth);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: ").unwrap();
    let r = http::read_reply(&mut slow);
    assert_eq!(r.status, 408);

    // And the server is still fine.
    let r = http::get(&base, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
}

#[test]
fn bad_names_are_refused_before_any_path_is_built() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start(&tmp.path().join("tracker"));
    let dir = tmp.path().join("A");
    let (_peer, base) = web_peer("A", &tracker, &dir, &[]);
    std::fs::write(tmp.path().join("secret"), b"do not serve").unwrap();

    for name in [
        "..%2Fescape",
        "..",
        "a%2Fb",
        "a%5Cb",
        "x%00",
        "%0Aline",
        "%20lead",
        "%zz",
        &"x".repeat(256),
    ] {
        let r = http::post(&base, &format!("/api/upload?name={name}"), b"data");
        assert_eq!(r.status, 400, "upload {name}: {}", r.text());
        assert!(r.text().contains("\"error\""));
        let r = http::post(&base, &format!("/api/fetch?name={name}"), b"");
        assert_eq!(r.status, 400, "fetch {name}");
        let r = http::get(&base, &format!("/files/{name}"));
        assert_eq!(r.status, 400, "save {name}");
    }
    assert_eq!(
        http::post(&base, "/api/upload", b"data").status,
        400,
        "no name"
    );
    let r = http::get(&base, "/files/..%2F..%2Fsecret");
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("do not serve"));
    assert_eq!(http::get(&base, "/files/missing.bin").status, 404);
    assert_eq!(http::get(&base, "/static/..%2F..%2FCargo.toml").status, 404);
    assert!(!dir.join("escape").exists() && !tmp.path().join("escape").exists());
    let files: Vec<_> = std::fs::read_dir(dir.join("files")).unwrap().collect();
    assert!(files.is_empty(), "nothing was written: {files:?}");
}

#[test]
fn an_upload_streams_to_disk_is_announced_fetched_and_saved() {
    let tmp = temp_dir();
    let tracker = TrackerProc::start_with(&tmp.path().join("tracker"), &["--http", "0"]);
    let (dir_a, dir_b) = (tmp.path().join("A"), tmp.path().join("B"));
    let (_a, base_a) = web_peer("A", &tracker, &dir_a, &[]);
    let (_b, base_b) = web_peer("B", &tracker, &dir_b, &[]);
    let data = test_bytes(3 * 1024 * 1024 + 123, 6);
    let md5 = hex(&md5_of(&data));

    // Half the body, then a pause: the half is already on disk in partial/.
    let auth = http::authority(&base_a).to_string();
    let mut s = http::connect(&auth);
    let head = format!(
        "POST /api/upload?name=big%20file.bin HTTP/1.1\r\nHost: {auth}\r\nX-Requested-With: p2pshare\r\nOrigin: {base_a}\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let half = data.len() / 2;
    s.write_all(&data[..half]).unwrap();
    let scratch = dir_a.join("partial/big file.bin.upload");
    wait_until(WAIT, "the first half of the upload on disk", || {
        std::fs::metadata(&scratch).is_ok_and(|m| m.len() >= 1 << 20)
    });
    assert!(
        !dir_a.join("files/big file.bin").exists(),
        "not shared before it is whole"
    );
    s.write_all(&data[half..]).unwrap();
    let r = http::read_reply(&mut s);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json_field(&r.text(), "md5"), Some(md5.as_str()));
    assert_eq!(
        std::fs::read(dir_a.join("files/big file.bin")).unwrap(),
        data
    );
    assert!(!scratch.exists(), "the scratch file was moved, not left");

    // Announced: the tracker lists it, and B's Download page offers it.
    let files = p2pshare::peer::session::tracker_client::list_files(&tracker.addr()).unwrap();
    assert!(files
        .iter()
        .any(|f| f.name == "big file.bin" && hex(&f.md5) == md5));
    let page = http::get(&base_b, "/download").text();
    assert!(page.contains("<tr data-name=\"big file.bin\">"), "{page}");
    assert!(
        page.contains("action=\"/fetch?name=big%20file.bin&amp;csrf="),
        "{page}"
    );

    // B fetches it in the background, then serves it as an attachment.
    let r = http::request(
        &base_b,
        "POST",
        "/api/fetch?name=big%20file.bin",
        &[("Accept", "application/json")],
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    wait_until(WAIT, "B's fetch to finish", || {
        let p = http::get(&base_b, "/api/progress").text();
        match fetch_state(&p, "big file.bin").as_deref() {
            Some("running") => false,
            Some("done") => true,
            other => panic!("fetch ended {other:?}: {p}"),
        }
    });
    let r = http::get(&base_b, "/files/big%20file.bin");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"big file.bin\"; filename*=UTF-8''big%20file.bin")
    );
    assert!(r.body == data, "the saved bytes are the uploaded bytes");
    assert!(
        http::get(&base_b, "/").text().contains(&md5),
        "Home lists it with its MD5"
    );
    assert!(http::get(&base_b, "/api/files")
        .text()
        .contains(&format!("\"md5\":\"{md5}\"")));

    // The same name: same bytes are fine; other bytes from B, who does
    // not own the name, are a conflict that leaves the shared file alone.
    let r = http::post(&base_a, "/api/upload?name=big%20file.bin", &data);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("already shared"), "{}", r.text());
    let r = http::post(&base_b, "/api/upload?name=big%20file.bin", b"other bytes");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("owned by A"), "{}", r.text());
    assert_eq!(
        std::fs::read(dir_a.join("files/big file.bin")).unwrap(),
        data
    );

    // An upload cut off halfway is not shared and leaves nothing behind.
    let mut s = http::connect(&auth);
    s.write_all(format!("POST /api/upload?name=cut.bin HTTP/1.1\r\nHost: {auth}\r\nX-Requested-With: p2pshare\r\nContent-Length: 100000\r\n\r\n").as_bytes()).unwrap();
    s.write_all(&data[..1000]).unwrap();
    drop(s);
    let cut = dir_a.join("partial/cut.bin.upload");
    wait_until(WAIT, "the cut-off upload to be cleaned up", || {
        !cut.exists()
    });
    assert!(!dir_a.join("files/cut.bin").exists());

    // The tracker's page shows both peers with the file complete.
    let dash = tracker.web_url();
    wait_until(WAIT, "both peers seeding on the dashboard", || {
        let page = http::get(&dash, "/").text();
        page.contains("<tr data-peer=\"A\">")
            && page.contains("<tr data-peer=\"B\">")
            && page.matches("seeding").count() == 2
    });

    // Other bytes from the owner, A, are the name's next version: they
    // replace A's copy in one step.
    let r = http::post(&base_a, "/api/upload?name=big%20file.bin", b"version two");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read(dir_a.join("files/big file.bin")).unwrap(),
        b"version two"
    );
}

#[test]
fn a_taken_web_port_is_a_clear_error() {
    let tmp = temp_dir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = run_tracker(&[
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--data",
        tmp.path().join("t").to_str().unwrap(),
        "--http",
        &port,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: cannot listen for the web UI"), "{err}");
    let peer_port = free_port().to_string();
    let dir = tmp.path().join("P");
    let out = spawn_peer(
        &[
            "P",
            &peer_port,
            "127.0.0.1:1",
            "--dir",
            dir.to_str().unwrap(),
            "--http",
            &port,
        ],
        None,
    );
    let out = wait_output(out, START_TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: cannot listen for the web UI"));
    let out = run_tracker(&["--http-bind", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("need --http PORT"));
}
