//! A web upload's `multipart/form-data` body (`web::multipart`): the
//! boundary from the Content-Type, then `file_part` streaming the file's
//! bytes out of the envelope, read through a small buffer and in odd-sized
//! reads as from a socket. What it streams never holds the delimiter and
//! is a stretch of the body as sent; and the input itself, wrapped in a
//! form (encode), comes back out of it exactly (decode).
//!
//! Input: a control byte (the buffer's and the reads' sizes), the
//! boundary's length, the boundary, then the body.

use p2pshare::web::multipart::{boundary, file_part};
use std::io::{BufReader, Read};

/// Bytes streamed at most, so a run stays short whatever the input.
const MAX_OUT: usize = 1 << 20;

fn check(data: &[u8]) {
    let [control, blen, rest @ ..] = data else {
        return;
    };
    let Some((b, body)) = rest.split_at_checked(*blen as usize) else {
        return;
    };
    let Ok(b) = std::str::from_utf8(b) else {
        return;
    };
    let cap = 1 + usize::from(control & 0x0f) * 7;
    let read_size = 1 + usize::from(control >> 4) * 37;
    let Some(Ok(b)) = boundary(&format!("multipart/form-data; boundary={b}")) else {
        return;
    };
    if let Some(out) = stream(body, &b, cap, read_size) {
        let delimiter = format!("\r\n--{b}").into_bytes();
        assert!(
            find(&out, &delimiter).is_none(),
            "the delimiter leaked into the file"
        );
        assert!(
            out.is_empty() || find(body, &out).is_some(),
            "bytes that were not sent"
        );
    }
    // The body as a file: wrapped in a form, it comes back whole.
    if find(body, format!("\r\n--{b}").as_bytes()).is_none()
        && !body.starts_with(format!("--{b}").as_bytes())
    {
        let mut form = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\r\n"
        )
        .into_bytes();
        form.extend_from_slice(body);
        form.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        assert_eq!(stream(&form, &b, cap, read_size).as_deref(), Some(body));
    }
}

/// The file part's bytes, or `None` where the form is refused.
fn stream(body: &[u8], b: &str, cap: usize, read_size: usize) -> Option<Vec<u8>> {
    let mut part = file_part(BufReader::with_capacity(cap, body), b).ok()?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; read_size];
    loop {
        match part.body.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => {
                assert!(n <= buf.len());
                out.extend_from_slice(&buf[..n]);
                assert!(out.len() <= MAX_OUT.max(body.len()));
            }
            Err(_) => return None,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn seeds() -> Vec<Vec<u8>> {
    let form = |control: u8, b: &str, body: &str| {
        let mut v = vec![control, b.len() as u8];
        v.extend_from_slice(b.as_bytes());
        v.extend_from_slice(body.as_bytes());
        v
    };
    let curl = "------------------------abc123\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n\
        hello\r\nworld\r\n------------------------abc123--\r\n";
    let browser = "preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"note\"\r\n\r\n\
        a plain field\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"C:\\dir\\b.bin\"\r\n\r\n\
        file data\r\n-- not a boundary\r\n--XyZ--\r\n";
    vec![
        form(0x00, "----------------------abc123", curl),
        form(0x3f, "XyZ", browser),
        form(0x91, "XyZ", browser),
    ]
}

fn main() {
    p2pshare_fuzz::main(check, seeds);
}
