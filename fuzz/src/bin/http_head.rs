//! The web UI's request head (`web::http::read_head`, then `parse_head`),
//! and what every route does with it before anything else: the Host and
//! Origin checks, the path and query decoding. The head is read through a
//! small buffer, so lines and terminators arrive split as on a socket.
//! Round trip: a decoded path or query value percent-encodes and decodes
//! back to itself.

use p2pshare::web::escape::{percent_decode, percent_encode, query_param};
use p2pshare::web::http::{parse_head, read_head, MAX_HEAD, MAX_HEADERS};
use p2pshare::web::{check_host, check_origin};
use std::io::BufReader;
use std::time::{Duration, Instant};

fn check(data: &[u8]) {
    let buffer = 1 + data.first().map_or(0, |&b| b as usize % 16);
    let mut reader = BufReader::with_capacity(buffer, data);
    let far = Instant::now() + Duration::from_secs(3600);
    let Ok(Some(head)) = read_head(&mut reader, far) else {
        return;
    };
    assert!(head.len() <= MAX_HEAD);
    assert!(head.ends_with(b"\n\n") || head.ends_with(b"\r\n\r\n"));
    let Ok(h) = parse_head(&head) else {
        return;
    };
    assert!(h.headers.len() <= MAX_HEADERS);
    assert!(h.path.starts_with('/'));
    let _ = check_host(h.host(), &["p2p.lan".to_string()]);
    let _ = check_origin(&h, "0123456789abcdef0123456789abcdef");
    let decoded = [
        percent_decode(&h.path, false),
        query_param(&h.query, "name").flatten(),
        query_param(&h.query, "q").flatten(),
    ];
    for text in decoded.into_iter().flatten() {
        assert_eq!(
            percent_decode(&percent_encode(&text), true).as_ref(),
            Some(&text)
        );
    }
}

fn seeds() -> Vec<Vec<u8>> {
    [
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/html\r\n\r\n",
        "GET /api/files?name=a%20b.txt&q=x+y HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n",
        "POST /api/upload?name=na%C3%AFve.bin HTTP/1.1\r\nHost: [::1]:8080\r\nOrigin: http://[::1]:8080\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        "POST /api/get HTTP/1.0\nHost: p2p.lan\nSec-Fetch-Site: cross-site\nContent-Length: 0\n\n",
        "\r\n\r\nHEAD /static/app.js HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
