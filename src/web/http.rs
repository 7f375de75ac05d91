//! The HTTP/1.1 the web UI needs, bounded in every dimension: a request
//! head is read up to `MAX_HEAD` bytes and `MAX_HEADERS` lines within
//! `HEAD_TIMEOUT`, then parsed by a pure function (`parse_head`); a body is
//! read only up to its `Content-Length`; responses carry their length and
//! close the connection. No keep-alive, no chunked request bodies, no
//! pipelining: a page and its polls are a handful of short connections.

use std::io::{self, BufRead, Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Request line plus headers, terminator included.
pub const MAX_HEAD: usize = 16 << 10;
/// Header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// The whole head must arrive within this, however it trickles in.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The body a request may carry unless its route takes more (uploads).
pub const MAX_SMALL_BODY: u64 = 16 << 10;
/// Bytes copied per read and write when streaming a body.
pub const STREAM_CHUNK: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// Anything else: answered 405.
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The path before `?`, still percent-encoded.
    pub path: String,
    /// What follows `?`, still encoded; empty if none.
    pub query: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body's length; 0 when the request has none.
    pub content_length: u64,
}

impl Head {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Host` header, which `parse_head` guarantees is present.
    pub fn host(&self) -> &str {
        self.header("host").unwrap_or("")
    }

    fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    /// True when the client asked for JSON (the UI's scripts do).
    pub fn wants_json(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.contains("application/json"))
    }
}

/// A request refused before or while it is handled: the status and a
/// sentence the user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
        }
    }

    /// The error as plain text, or as `{"error": ...}` for a script.
    pub fn into_response(self, json: bool) -> Response {
        if json {
            Response::json(
                self.status,
                format!("{{\"error\":{}}}", super::escape::json_str(&self.message)),
            )
        } else {
            Response::text(self.status, format!("{}\n", self.message))
        }
    }
}

/// Reads a request head up to and including its blank line. `Ok(None)`
/// when the client closed without sending anything. Empty lines before
/// the request line are skipped, as RFC 9112 allows.
pub fn read_head(r: &mut impl BufRead, deadline: Instant) -> Result<Option<Vec<u8>>, HttpError> {
    let mut head = Vec::with_capacity(1024);
    loop {
        if Instant::now() > deadline {
            return Err(head_timeout());
        }
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(head_timeout())
            }
            Err(e) => return Err(HttpError::new(400, format!("reading the request: {e}"))),
        };
        if buf.is_empty() {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(HttpError::new(400, "the request ended inside its head"))
            };
        }
        let mut used = 0;
        let mut complete = false;
        for &b in buf {
            used += 1;
            if head.is_empty() && (b == b'\r' || b == b'\n') {
                continue;
            }
            head.push(b);
            if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
                complete = true;
                break;
            }
            if head.len() >= MAX_HEAD {
                return Err(HttpError::new(
                    431,
                    format!("the request head is over the limit of {MAX_HEAD} bytes"),
                ));
            }
        }
        r.consume(used);
        if complete {
            return Ok(Some(head));
        }
    }
}

/// `408`: the request head did not arrive within `HEAD_TIMEOUT`.
pub fn head_timeout() -> HttpError {
    HttpError::new(
        408,
        format!(
            "the request head did not arrive within {} s",
            HEAD_TIMEOUT.as_secs()
        ),
    )
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses what `read_head` returned. Refuses what we do not take rather
/// than guessing: folded headers, a missing or repeated Host, conflicting
/// lengths, and chunked bodies (uploads send `Content-Length`).
pub fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let bad = |m: &str| HttpError::new(400, m.to_string());
    let text = std::str::from_utf8(bytes).map_err(|_| bad("the request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("a request line is METHOD /path HTTP/1.1"));
    };
    if !is_token(method) {
        return Err(bad("the method is not a token"));
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => {
            return Err(HttpError::new(505, "only HTTP/1.0 and HTTP/1.1 are served"))
        }
        _ => return Err(bad("the request line does not end with an HTTP version")),
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("the request target must be a path starting with '/'"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            return Err(bad("folded header lines are not accepted"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a header line has no ':'"))?;
        if !is_token(name) {
            return Err(bad("a header name is not a token"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad("a header value contains control characters"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(HttpError::new(
                431,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    let count = |n: &str| headers.iter().filter(|(h, _)| h == n).count();
    if count("host") != 1 {
        return Err(bad("a request needs exactly one Host header"));
    }
    if count("transfer-encoding") > 0 {
        return Err(HttpError::new(
            411,
            "chunked request bodies are not accepted; send Content-Length",
        ));
    }
    let mut content_length = None;
    for (_, v) in headers.iter().filter(|(n, _)| n == "content-length") {
        let n = v
            .parse::<u64>()
            .ok()
            .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("Content-Length is not a number"))?;
        if content_length.is_some_and(|c| c != n) {
            return Err(bad("conflicting Content-Length headers"));
        }
        content_length = Some(n);
    }
    Ok(Head {
        method: match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        },
        path: path.to_string(),
        query: query.to_string(),
        headers,
        content_length: content_length.unwrap_or(0),
    })
}

/// A request being handled: its head and its body, read on demand and
/// never past `Content-Length`. `100 Continue` is sent on the first read
/// of a body the client holds back until asked.
pub struct HttpRequest<'a> {
    pub head: Head,
    pub remote: std::net::SocketAddr,
    reader: &'a mut dyn BufRead,
    interim: &'a mut dyn Write,
    remaining: u64,
    continue_pending: bool,
}

impl<'a> HttpRequest<'a> {
    pub fn new(
        head: Head,
        remote: std::net::SocketAddr,
        reader: &'a mut dyn BufRead,
        interim: &'a mut dyn Write,
    ) -> HttpRequest<'a> {
        HttpRequest {
            remaining: head.content_length,
            continue_pending: head.expects_continue() && head.content_length > 0,
            head,
            remote,
            reader,
            interim,
        }
    }

    /// Body bytes not read yet.
    pub fn unread(&self) -> u64 {
        self.remaining
    }

    /// True when the client holds the body back until told to send it, so
    /// an unread body costs nothing to leave.
    pub fn body_withheld(&self) -> bool {
        self.continue_pending
    }
}

impl Read for HttpRequest<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.continue_pending {
            self.continue_pending = false;
            self.interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            self.interim.flush()?;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the client stopped sending {} bytes early", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Static(&'static [u8]),
    /// Exactly `len` bytes read from `reader` as they are sent.
    Stream {
        reader: Box<dyn Read + Send>,
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Static(b) => b.len() as u64,
            Body::Stream { len, .. } => *len,
        }
    }
}

pub struct Response {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

/// Sent with every response: no sniffing, no framing by other sites, no
/// script or style from anywhere but this server, no referrer leaks.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
];

impl Response {
    pub fn new(status: u16, content_type: &str, body: Body) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body,
        }
    }

    pub fn html(status: u16, page: String) -> Response {
        Response::new(status, "text/html; charset=utf-8", Body::Bytes(page.into()))
    }

    pub fn json(status: u16, json: String) -> Response {
        Response::new(status, "application/json", Body::Bytes(json.into()))
    }

    pub fn text(status: u16, text: String) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            Body::Bytes(text.into()),
        )
    }

    /// `303 See Other` to a path of ours (after a form POST).
    pub fn see_other(location: &str) -> Response {
        Response::new(303, "text/plain; charset=utf-8", Body::Empty).header("Location", location)
    }

    /// Adds a header. CR and LF are dropped from the value, so nothing a
    /// user controls can split the response.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        let value: String = value.into().chars().filter(|c| !c.is_control()).collect();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value));
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Writes the whole response (no body for HEAD) and closes nothing: the
    /// caller owns the connection. A streamed body that ends early is an
    /// error, so the client sees a short response rather than a wrong one.
    pub fn write_to(self, w: &mut impl Write, head_only: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            http_date(SystemTime::now()),
            self.body.len()
        );
        if !self.has_header("Cache-Control") {
            head.push_str("Cache-Control: no-store\r\n");
        }
        for (n, v) in SECURITY_HEADERS {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        for (n, v) in &self.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        if !head_only {
            match self.body {
                Body::Empty => {}
                Body::Bytes(b) => w.write_all(&b)?,
                Body::Static(b) => w.write_all(b)?,
                Body::Stream { reader, len } => stream(reader, len, w)?,
            }
        }
        w.flush()
    }
}

fn stream(mut reader: Box<dyn Read + Send>, len: u64, w: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended {left} bytes early"),
            ));
        }
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate).
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head_of(text: &str) -> Result<Head, HttpError> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_a_browser_request() {
        let h = head_of(
            "POST /api/upload?name=a%20b.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
             Content-Length: 12\r\nAccept:  application/json \r\nX-Empty:\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path, "/api/upload");
        assert_eq!(h.query, "name=a%20b.txt");
        assert_eq!(h.host(), "127.0.0.1:8080");
        assert_eq!(h.content_length, 12);
        assert!(h.wants_json());
        assert_eq!(h.header("x-empty"), Some(""));
        let h = head_of("DELETE / HTTP/1.0\nHost: x\n\n").unwrap();
        assert_eq!((h.method, h.content_length), (Method::Other, 0));
    }

    #[test]
    fn refuses_what_it_does_not_take() {
        for (text, status) in [
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("GET /\r\nHost: a\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
        ] {
            let e = head_of(text).unwrap_err();
            assert_eq!(e.status, status, "{text:?}: {e:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let e = head_of(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err();
        assert_eq!(e.status, 431);
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn reads_a_head_and_leaves_the_body() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut r = Cursor::new(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nBODY".to_vec());
        let head = read_head(&mut r, far).unwrap().unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "BODY");
        assert_eq!(read_head(&mut Cursor::new(Vec::new()), far).unwrap(), None);
        let e = read_head(&mut Cursor::new(b"GET / HTTP/1.1\r\nHo".to_vec()), far).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn head_size_is_bounded() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD * 4, b'a');
        let mut r = std::io::BufReader::with_capacity(1000, Cursor::new(big));
        let e = read_head(&mut r, far).unwrap_err();
        assert_eq!(e.status, 431);
        // It stopped at the limit instead of reading everything.
        assert!(r.get_ref().position() as usize <= MAX_HEAD + 1000);
        let past = Instant::now() - Duration::from_secs(1);
        let e = read_head(&mut Cursor::new(b"GET".to_vec()), past).unwrap_err();
        assert_eq!(e.status, 408);
    }

    #[test]
    fn body_reads_stop_at_content_length_and_ask_to_continue() {
        let head = head_of(
            "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        let mut input = Cursor::new(b"12345NEXT".to_vec());
        let mut interim = Vec::new();
        let remote = "127.0.0.1:1".parse().unwrap();
        let mut req = HttpRequest::new(head, remote, &mut input, &mut interim);
        assert!(req.body_withheld());
        let mut body = Vec::new();
        req.read_to_end(&mut body).unwrap();
        assert_eq!(body, b"12345");
        assert_eq!(req.unread(), 0);
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");

        let head = head_of("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n").unwrap();
        let mut input = Cursor::new(b"short".to_vec());
        let mut interim = Vec::new();
        let mut req = HttpRequest::new(head, remote, &mut input, &mut interim);
        let e = req.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(interim.is_empty());
    }

    #[test]
    fn responses_carry_length_and_safety_headers() {
        let mut out = Vec::new();
        Response::text(200, "hi".into())
            .header("X-Test", "a\r\nInjected: yes")
            .write_to(&mut out, false)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("X-Content-Type-Options: nosniff\r\n"));
        assert!(text.contains("Content-Security-Policy: default-src 'self'"));
        assert!(text.contains("X-Test: aInjected: yes\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhi"));

        let mut out = Vec::new();
        let body = Body::Stream {
            reader: Box::new(Cursor::new(vec![7u8; 10])),
            len: 10,
        };
        Response::new(200, "application/octet-stream", body)
            .write_to(&mut out, true)
            .unwrap();
        assert!(out.ends_with(b"\r\n\r\n"));
        assert!(String::from_utf8_lossy(&out).contains("Content-Length: 10\r\n"));
        assert!(!out.contains(&7u8), "HEAD sends no body");

        let body = Body::Stream {
            reader: Box::new(Cursor::new(vec![7u8; 3])),
            len: 10,
        };
        let e = Response::new(200, "application/octet-stream", body)
            .write_to(&mut Vec::new(), false)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
