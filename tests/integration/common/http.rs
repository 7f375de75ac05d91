//! A minimal HTTP/1.1 client for the tests: one request per connection,
//! raw bytes in, status, headers and body out. Enough to probe the web UI
//! with hostile requests and to drive chromedriver's WebDriver API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one exchange may wait for the other side (generous: the
/// machine may be loaded).
pub const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `host:port` of a base URL such as `http://127.0.0.1:8080`.
pub fn authority(base: &str) -> &str {
    base.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
}

pub fn connect(authority: &str) -> TcpStream {
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .expect("resolving the test server")
        .next()
        .expect("an address");
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connecting to the test server");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Sends `raw` as is and reads the reply.
pub fn raw(authority: &str, raw: &[u8]) -> Reply {
    let mut s = connect(authority);
    // The server may answer (and close) before taking all of a refused body.
    let _ = s.write_all(raw);
    read_reply(&mut s)
}

/// A request with `Host` set to the server's own authority unless
/// `headers` names one, `Content-Length` for a body, and for a POST under
/// `/api/` the header the UI requires there.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let auth = authority(base);
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {auth}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    // What the UI's own script adds to every change under /api/ (CSRF);
    // tests of its absence write the request with `raw`.
    if method == "POST" && path.starts_with("/api/") {
        head.push_str("X-Requested-With: p2pshare\r\n");
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw(auth, &bytes)
}

pub fn get(base: &str, path: &str) -> Reply {
    request(base, "GET", path, &[], b"")
}

pub fn post(base: &str, path: &str, body: &[u8]) -> Reply {
    request(base, "POST", path, &[], body)
}

/// Reads one response: the head, then `Content-Length` bytes (or to EOF).
/// Interim `100 Continue` answers are skipped.
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).expect("reading an HTTP response");
            assert!(
                n > 0,
                "the server closed without a complete response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
        if status == 100 {
            buf.drain(..head_end);
            continue;
        }
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = buf[head_end..].to_vec();
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        match len {
            Some(len) => {
                while body.len() < len {
                    let mut chunk = vec![0u8; 64 << 10];
                    let n = s.read(&mut chunk).expect("reading an HTTP body");
                    assert!(n > 0, "the body ended after {} of {len} bytes", body.len());
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(len);
            }
            None => {
                let _ = s.read_to_end(&mut body);
            }
        }
        return Reply {
            status,
            headers,
            body,
        };
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
