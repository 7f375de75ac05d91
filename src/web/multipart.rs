//! `multipart/form-data` request bodies (RFC 7578), what `curl -F
//! file=@x` and an HTML form send: the file part is found and its bytes are
//! streamed, without the MIME envelope, never whole in memory. Every line
//! of the envelope is bounded before it is kept.

use std::io::{self, BufRead, Read};

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;
/// Longest line of a part's head (`Content-Disposition: ...`).
const MAX_HEAD_LINE: usize = 4096;
/// Header lines in one part's head.
const MAX_HEAD_LINES: usize = 16;
/// Parts looked through for the file before giving up.
const MAX_PARTS: usize = 16;

/// The `boundary` parameter of a `multipart/form-data` content type, or
/// `None` for another type. `Err` when the type is multipart but the
/// boundary is missing or malformed.
pub fn boundary(content_type: &str) -> Option<Result<String, String>> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let b = params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    });
    Some(match b {
        Some(b) if valid_boundary(&b) => Ok(b),
        _ => Err("a multipart/form-data body needs a boundary of 1 to 70 letters, digits or '()+_,-./:=? (RFC 2046)".into()),
    })
}

/// RFC 2046's `bchars`, not ending in a space: a boundary with a line
/// break or another control character could never match a boundary line
/// (found by fuzzing: `fuzz/src/bin/multipart.rs`).
fn valid_boundary(b: &str) -> bool {
    (1..=MAX_BOUNDARY).contains(&b.len())
        && !b.ends_with(' ')
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

/// The file part of a form: its `filename`, and a reader of its bytes.
pub struct FilePart<R> {
    pub filename: String,
    pub body: PartBody<R>,
}

/// The body with room to put back what a part read past its end.
pub struct Stream<R> {
    back: Vec<u8>,
    inner: R,
}

impl<R: BufRead> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let chunk = self.fill_buf()?;
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Stream<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.back.is_empty() {
            self.inner.fill_buf()
        } else {
            Ok(&self.back)
        }
    }

    fn consume(&mut self, n: usize) {
        if self.back.is_empty() {
            self.inner.consume(n);
        } else {
            self.back.drain(..n.min(self.back.len()));
        }
    }
}

/// Finds the first part with a `filename` (the file input) in a body
/// read from `r`, skipping the preamble and any plain fields before it.
pub fn file_part<R: BufRead>(r: R, boundary: &str) -> Result<FilePart<R>, String> {
    let mut r = Stream {
        back: Vec::new(),
        inner: r,
    };
    let dash = format!("--{boundary}");
    // The preamble, up to the first boundary line.
    loop {
        let line = read_line(&mut r)?.ok_or("the form has no part")?;
        if line.trim_end() == dash {
            break;
        }
    }
    for _ in 0..MAX_PARTS {
        let filename = part_head(&mut r)?;
        let mut body = PartBody::new(r, boundary);
        match filename {
            Some(filename) => return Ok(FilePart { filename, body }),
            None => {
                // A plain field: skip its value.
                io::copy(&mut body, &mut io::sink()).map_err(|e| e.to_string())?;
                if body.last {
                    return Err("the form has no file in it".into());
                }
                r = body.into_inner();
            }
        }
    }
    Err(format!("no file in the form's first {MAX_PARTS} parts"))
}

/// Reads a part's head up to its blank line; the `filename` of its
/// `Content-Disposition`, if it has one.
fn part_head(r: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut filename = None;
    for _ in 0..MAX_HEAD_LINES {
        let line = read_line(r)?.ok_or("the form ends inside a part's head")?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(filename);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a part's head has a line without ':': {line:.60}"));
        };
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            filename = disposition_filename(value);
        }
    }
    Err(format!(
        "a part's head has more than {MAX_HEAD_LINES} lines"
    ))
}

/// `filename="x.txt"` of `form-data; name="file"; filename="x.txt"`, as a
/// plain name: a browser may send a path, of which the last part is kept.
fn disposition_filename(value: &str) -> Option<String> {
    let at = value.find("filename=")?;
    let rest = &value[at + "filename=".len()..];
    let name = match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?,
        None => rest.split(';').next()?.trim(),
    };
    let base = name.rsplit(['/', '\\']).next()?;
    Some(base.to_string())
}

/// One line, `\n` included, at most `MAX_HEAD_LINE` bytes; `None` at the
/// end of the body.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_HEAD_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_HEAD_LINE {
        return Err(format!(
            "a line of the form's envelope is over {MAX_HEAD_LINE} bytes"
        ));
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// A part's bytes, up to the `\r\n--boundary` that ends it. Bytes that
/// might be the start of that delimiter are held back until the next read
/// shows they are not.
pub struct PartBody<R> {
    inner: Stream<R>,
    delimiter: Vec<u8>,
    held: Vec<u8>,
    done: bool,
    /// The delimiter was the closing one (`--boundary--`).
    last: bool,
}

impl<R: BufRead> PartBody<R> {
    fn new(inner: Stream<R>, boundary: &str) -> PartBody<R> {
        PartBody {
            inner,
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            held: Vec::new(),
            done: false,
            last: false,
        }
    }

    fn into_inner(self) -> Stream<R> {
        self.inner
    }

    /// After the delimiter: `--` closes the form, `\r\n` starts a part.
    fn after_delimiter(&mut self) -> io::Result<()> {
        let mut two = [0u8; 2];
        self.inner.read_exact(&mut two)?;
        self.last = &two == b"--";
        if !self.last && &two != b"\r\n" {
            // Transport padding before the line break.
            let mut rest = Vec::new();
            (&mut self.inner)
                .take(MAX_HEAD_LINE as u64)
                .read_until(b'\n', &mut rest)?;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for PartBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(at) = find(&self.held, &self.delimiter) {
                if at > 0 {
                    let n = at.min(buf.len());
                    buf[..n].copy_from_slice(&self.held[..n]);
                    self.held.drain(..n);
                    return Ok(n);
                }
                // What was read past the delimiter goes back to the stream.
                let mut after = self.held.split_off(self.delimiter.len());
                after.append(&mut self.inner.back);
                self.inner.back = after;
                self.held.clear();
                self.done = true;
                self.after_delimiter()?;
                return Ok(0);
            }
            if self.done {
                return Ok(0);
            }
            // What cannot be the start of a delimiter goes out now.
            let safe = self.held.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                let n = safe.min(buf.len());
                buf[..n].copy_from_slice(&self.held[..n]);
                self.held.drain(..n);
                return Ok(n);
            }
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the form ended before its closing boundary",
                ));
            }
            let n = chunk.len();
            self.held.extend_from_slice(chunk);
            self.inner.consume(n);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "------------------------d74496d66958873e";

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = b"preamble to ignore\r\n".to_vec();
        for (name, filename, data) in parts {
            out.extend_from_slice(format!("--{B}\r\n").as_bytes());
            let file = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
            out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n").as_bytes(),
            );
            out.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        out
    }

    /// A reader that hands out `step` bytes at a time: delimiters split
    /// across reads.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn extract(body: &[u8], step: usize) -> Result<(String, Vec<u8>), String> {
        let r = io::BufReader::with_capacity(step.max(1), Trickle(body, step));
        let mut part = file_part(r, B)?;
        let mut data = Vec::new();
        part.body
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        Ok((part.filename, data))
    }

    #[test]
    fn the_file_part_without_its_envelope() {
        // Bytes that look like a delimiter's start, inside the file.
        let data: Vec<u8> = b"hello\r\n--\r\n-"
            .iter()
            .copied()
            .chain(0..=255u8)
            .collect();
        let body = form(&[("note", None, b"a field"), ("file", Some("x.txt"), &data)]);
        for step in [1, 2, 3, 7, 64, 100_000] {
            assert_eq!(
                extract(&body, step),
                Ok(("x.txt".into(), data.clone())),
                "{step}"
            );
        }
        let empty = form(&[("file", Some("C:\\Users\\ann\\e.bin"), b"")]);
        assert_eq!(extract(&empty, 5), Ok(("e.bin".into(), Vec::new())));
    }

    #[test]
    fn broken_forms_are_errors_not_files() {
        let no_file = form(&[("note", None, b"x")]);
        assert!(extract(&no_file, 4).unwrap_err().contains("no file"));
        let body = form(&[("file", Some("x.txt"), b"abc")]);
        let cut = &body[..body.len() - 30];
        let r = io::BufReader::new(cut);
        let mut part = file_part(r, B).unwrap();
        assert!(
            part.body.read_to_end(&mut Vec::new()).is_err(),
            "no closing boundary"
        );
        assert!(extract(b"", 4).is_err());
        let long_line = format!("--{B}\r\n{}\r\n", "x".repeat(5000));
        assert!(extract(long_line.as_bytes(), 64)
            .unwrap_err()
            .contains("over"));
    }

    #[test]
    fn boundaries_from_the_content_type() {
        assert_eq!(boundary("application/octet-stream"), None);
        assert_eq!(
            boundary("multipart/form-data; boundary=abc"),
            Some(Ok("abc".into()))
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"a b\""),
            Some(Ok("a b".into()))
        );
        assert!(matches!(boundary("multipart/form-data"), Some(Err(_))));
        // Found by fuzzing: a boundary with a line break in it was taken,
        // and then no boundary line could ever match it.
        for bad in ["a\r\nb", "a\tb", "a\u{7f}b", "a\"b"] {
            let ct = format!("multipart/form-data; boundary={bad}");
            assert!(matches!(boundary(&ct), Some(Err(_))), "{bad:?}");
        }
        let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
        assert!(matches!(boundary(&long), Some(Err(_))));
    }
}
