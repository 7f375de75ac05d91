//! Framing: `u32` big-endian length of what follows, then a one-byte message
//! type, then the body. The length counts the type byte, so it is >= 1.

use crate::error::{Error, Result};
use std::io::{self, BufRead, Read, Write};

pub const HEADER_LEN: usize = 5;
/// Largest frame anyone sends: a record with 65,536 SHA-256 piece hashes
/// (2 MiB) and as many weak sums (256 KiB) or a holder list, plus headroom
/// for names and counts.
pub const MAX_FRAME: usize = (2 << 20) + (256 << 10) + (64 << 10);
/// What a block server accepts from its clients: only small requests.
pub const MAX_CONTROL_FRAME: usize = 64 << 10;

/// Decodes a frame header: the type and the body length, checked against
/// `max` before the caller allocates anything for the body.
pub fn parse_header(header: &[u8; HEADER_LEN], max: usize) -> Result<(u8, usize)> {
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        return Err(Error::protocol("frame of length 0"));
    }
    if len > max {
        return Err(Error::FrameTooLarge { len, max });
    }
    Ok((header[4], len - 1))
}

/// Finds one whole frame at the start of `buf` without allocating.
/// `Ok(None)`: more bytes are needed. `Ok(Some((type, body, consumed)))`.
pub fn parse(buf: &[u8], max: usize) -> Result<Option<(u8, &[u8], usize)>> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (ty, body_len) = parse_header(header, max)?;
    let end = HEADER_LEN + body_len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((ty, &buf[HEADER_LEN..end], end)))
}

/// Writes one frame header for a body of `body_len` bytes.
pub fn write_header(w: &mut impl Write, ty: u8, body_len: usize) -> io::Result<()> {
    let len = u32::try_from(body_len + 1).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&header(ty, len))
}

/// A frame's header, for a frame of `len` bytes after the length field
/// (the type byte and the body).
pub fn header(ty: u8, len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&len.to_be_bytes());
    h[4] = ty;
    h
}

/// Appends one whole frame to `out`: its header, then the body `body`
/// appends, whose type code it returns.
pub fn put_frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>) -> u8) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let ty = body(out);
    // The length counts the type byte and the body.
    let len = (out.len() - start - (HEADER_LEN - 1)) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4] = ty;
}

/// Reads frames from a byte stream into one reused buffer. A read timeout
/// is not fatal: the bytes already read are kept and the next call picks up
/// where this one stopped, so a short socket timeout (used to poll for
/// cancellation) never tears a frame that arrives slowly.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    header: [u8; HEADER_LEN],
    header_got: usize,
    body_got: usize,
    /// Type and body length once the header is complete.
    current: Option<(u8, usize)>,
    /// How long one `fill` may keep reading before it reports a timeout,
    /// even while bytes trickle in: a peer sending one byte per read
    /// timeout must not keep the caller from its own deadlines.
    budget: Option<std::time::Duration>,
    /// A frame `fill_buffered` found whole in the inner reader's buffer:
    /// its type and body length, left there for `take_buffered`.
    in_place: Option<(u8, usize)>,
    /// Bytes of the inner reader's buffer that the frame taken in place
    /// still occupies: consumed by the next call.
    taken_in_place: usize,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: Vec::new(),
            max,
            header: [0; HEADER_LEN],
            header_got: 0,
            body_got: 0,
            current: None,
            budget: None,
            in_place: None,
            taken_in_place: 0,
        }
    }

    /// The largest frame the next `fill` takes (a server lowers it until
    /// the client has authenticated).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// See `budget`; `None` reads for as long as bytes keep coming.
    pub fn set_budget(&mut self, budget: Option<std::time::Duration>) {
        self.budget = budget;
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The next frame, or `None` on a clean end of stream between frames.
    /// A stream that ends inside a frame is a protocol error; a timeout is
    /// `Error::Timeout` and may be retried.
    pub fn read_frame(&mut self) -> Result<Option<(u8, &[u8])>> {
        if self.fill()? {
            Ok(Some(self.take()))
        } else {
            Ok(None)
        }
    }

    /// Reads until a whole frame is buffered (`true`) or the stream ends
    /// cleanly between frames (`false`). Holds no borrow, so callers can
    /// poll it in a loop and then `take` the frame.
    pub fn fill(&mut self) -> Result<bool> {
        if self.current.is_some() && self.body_got == self.current.map_or(0, |c| c.1) {
            return Ok(true);
        }
        let deadline = self.budget.map(|b| std::time::Instant::now() + b);
        // Checked after each read that made progress, so every call reads
        // at least once, however small the budget.
        let over = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
        while self.header_got < HEADER_LEN {
            let n = read_some(&mut self.inner, &mut self.header[self.header_got..])?;
            if n == 0 {
                if self.header_got == 0 {
                    return Ok(false);
                }
                return Err(Error::protocol("connection closed inside a frame header"));
            }
            self.header_got += n;
            if self.header_got < HEADER_LEN && over() {
                return Err(Error::Timeout("a frame header arriving too slowly".into()));
            }
        }
        let (_, body_len) = match self.current {
            Some(c) => c,
            None => {
                let c = parse_header(&self.header, self.max)?;
                self.buf.resize(c.1, 0);
                self.body_got = 0;
                self.current = Some(c);
                c
            }
        };
        while self.body_got < body_len {
            let n = read_some(&mut self.inner, &mut self.buf[self.body_got..])?;
            if n == 0 {
                return Err(Error::protocol("connection closed inside a frame"));
            }
            self.body_got += n;
            if self.body_got < body_len && over() {
                return Err(Error::Timeout("a frame arriving too slowly".into()));
            }
        }
        Ok(true)
    }

    /// The frame `fill` buffered; the next `fill` starts a new one.
    /// Panics if no whole frame is buffered (a caller bug, not input).
    pub fn take(&mut self) -> (u8, &[u8]) {
        let (ty, body_len) = self
            .current
            .take()
            .expect("take() after fill() returned true");
        assert_eq!(self.body_got, body_len, "take() after fill() returned true");
        self.header_got = 0;
        self.body_got = 0;
        (ty, &self.buf[..body_len])
    }
}

/// Over a buffered reader, a frame that arrived whole in the reader's
/// buffer is decoded from there: on a download's busiest thread, copying
/// each block out of the socket's read buffer into the frame buffer cost
/// as much as the read itself. Frames that straddle the buffer's end, or
/// are larger than it, are read as `fill` reads them.
impl<R: Read> FrameReader<io::BufReader<R>> {
    /// As `fill`, leaving a frame found whole in the inner buffer there.
    /// Every read of a reader used this way goes through `fill_buffered`
    /// and `take_buffered` (or `settle` first).
    pub fn fill_buffered(&mut self) -> Result<bool> {
        self.settle();
        if self.in_place.is_some() {
            return Ok(true);
        }
        if self.header_got > 0 || self.current.is_some() {
            return self.fill();
        }
        let buf = loop {
            match self.inner.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::net("reading a frame", e)),
            }
        };
        let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
            if buf.is_empty() {
                return Ok(false);
            }
            return self.fill();
        };
        let (ty, body_len) = parse_header(header, self.max)?;
        if buf.len() < HEADER_LEN + body_len {
            return self.fill();
        }
        self.in_place = Some((ty, body_len));
        Ok(true)
    }

    /// The frame `fill_buffered` found, from wherever it is.
    pub fn take_buffered(&mut self) -> (u8, &[u8]) {
        let Some((ty, body_len)) = self.in_place.take() else {
            return self.take();
        };
        self.taken_in_place = HEADER_LEN + body_len;
        (ty, &self.inner.buffer()[HEADER_LEN..HEADER_LEN + body_len])
    }

    /// Consumes the frame last taken in place, so the inner reader's
    /// buffer holds only what is still unread.
    pub fn settle(&mut self) {
        let n = std::mem::take(&mut self.taken_in_place);
        self.inner.consume(n);
    }

    /// Bytes buffered and not yet taken.
    pub fn unread(&self) -> usize {
        self.inner.buffer().len() - self.taken_in_place
    }
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::net("reading a frame", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_header(&mut v, ty, body.len()).unwrap();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn round_trip_in_memory_and_stream() {
        let mut bytes = frame(7, b"hello");
        bytes.extend(frame(8, b""));
        let (ty, body, used) = parse(&bytes, 100).unwrap().unwrap();
        assert_eq!((ty, body, used), (7, &b"hello"[..], 10));
        let (ty, body, _) = parse(&bytes[used..], 100).unwrap().unwrap();
        assert_eq!((ty, body), (8, &b""[..]));

        let mut r = FrameReader::new(&bytes[..], 100);
        assert_eq!(r.read_frame().unwrap().unwrap(), (7, &b"hello"[..]));
        assert_eq!(r.read_frame().unwrap().unwrap(), (8, &b""[..]));
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn truncated_needs_more_or_errors() {
        let bytes = frame(7, b"hello");
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut], 100).unwrap().is_none());
        }
        for cut in 1..bytes.len() {
            let mut r = FrameReader::new(&bytes[..cut], 100);
            assert!(
                matches!(r.read_frame(), Err(Error::Protocol(_))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn oversize_is_refused_before_allocation() {
        let header = [0xff, 0xff, 0xff, 0xff, 1];
        assert!(matches!(
            parse(&header, 1000),
            Err(Error::FrameTooLarge { .. })
        ));
        let mut r = FrameReader::new(&header[..], 1000);
        assert!(matches!(r.read_frame(), Err(Error::FrameTooLarge { .. })));
        assert!(r.buf.capacity() < 1000);
        assert!(parse(&[0, 0, 0, 0, 1], 1000).is_err());
    }

    /// A reader that returns one byte per call and a timeout between.
    struct Trickle<'a> {
        data: &'a [u8],
        pos: usize,
        tick: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tick = !self.tick;
            if self.tick {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.pos == self.data.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[self.pos];
            self.pos += 1;
            Ok(1)
        }
    }

    #[test]
    fn a_trickling_frame_times_out_within_the_budget_and_resumes() {
        let bytes = frame(7, &[1u8; 64]);
        let slow = Trickle {
            data: &bytes,
            pos: 0,
            tick: true,
        };
        let mut r = FrameReader::new(slow, 100);
        r.set_budget(Some(std::time::Duration::ZERO));
        let mut timeouts = 0u32;
        let got = loop {
            assert!(timeouts < 10_000, "no progress");
            match r.read_frame() {
                Ok(Some((ty, body))) => break (ty, body.len()),
                Err(Error::Timeout(_)) => timeouts += 1,
                other => panic!("{:?}", other.map(|o| o.map(|f| f.0))),
            }
        };
        assert_eq!(got, (7, 64));
        assert!(
            timeouts >= 60,
            "a zero budget returns after each byte: {timeouts}"
        );
    }

    #[test]
    fn timeouts_mid_frame_resume() {
        let mut bytes = frame(7, b"slow body");
        bytes.extend(frame(9, b"x"));
        let mut r = FrameReader::new(
            Trickle {
                data: &bytes,
                pos: 0,
                tick: false,
            },
            100,
        );
        let mut got = Vec::new();
        let mut timeouts = 0;
        loop {
            match r.read_frame() {
                Ok(Some((ty, body))) => got.push((ty, body.to_vec())),
                Ok(None) => break,
                Err(Error::Timeout(_)) => timeouts += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(timeouts > 10);
        assert_eq!(got, vec![(7, b"slow body".to_vec()), (9, b"x".to_vec())]);
    }
}
