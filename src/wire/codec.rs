//! Big-endian field encoding over a `Vec<u8>` and bounded decoding over a
//! byte slice. A decoded length is checked against what is left of the
//! frame (and a named maximum) before it is used, so no input allocates
//! more than the frame it came in.

use crate::error::{Error, Result};

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
/// Unsigned LEB128: 7 bits a byte, low first, the high bit says more follow.
pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes `put_varint` writes for `v`.
pub fn varint_len(v: u32) -> usize {
    (32 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A string: `u16` byte length, then UTF-8. Callers keep strings short
/// (names are at most 255 bytes), so the cast never truncates.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(s.len() <= u16::MAX as usize);
    put_u16(out, s.len() as u16);
    out.extend_from_slice(s.as_bytes());
}

/// A byte string: `u32` length, then the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next byte, not consumed.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::protocol(format!(
                "field of {n} bytes overruns the frame ({} left)",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// An unsigned LEB128 number of at most 5 bytes (a u32).
    pub fn varint(&mut self) -> Result<u32> {
        let mut v: u64 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| Error::protocol("varint beyond 32 bits"));
            }
        }
        Err(Error::protocol("varint longer than 5 bytes"))
    }

    pub fn str(&mut self, max: usize) -> Result<&'a str> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(Error::protocol(format!("string of {n} bytes, limit {max}")));
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| Error::protocol("string is not UTF-8"))
    }

    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(Error::protocol(format!(
                "byte field of {n} bytes, limit {max}"
            )));
        }
        self.take(n)
    }

    /// A count of items that each take at least `min_item` bytes: refused if
    /// the frame cannot hold that many, so a count never sizes an allocation
    /// beyond the frame.
    pub fn count(&mut self, min_item: usize, max: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > max || n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(Error::protocol(format!(
                "list of {n} items does not fit the frame"
            )));
        }
        Ok(n)
    }

    /// The rest of a datagram must be padding: zeros only.
    pub fn zero_padding(&mut self) -> Result<()> {
        let rest = self.take(self.remaining())?;
        if rest.iter().any(|&b| b != 0) {
            return Err(Error::protocol(
                "trailing bytes after the datagram's fields",
            ));
        }
        Ok(())
    }

    pub fn finish(&self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(Error::protocol(format!(
                "{} trailing bytes in frame",
                self.remaining()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut v = Vec::new();
        put_u8(&mut v, 1);
        put_u16(&mut v, 2);
        put_u32(&mut v, 3);
        put_u64(&mut v, 4);
        put_str(&mut v, "héllo");
        put_bytes(&mut v, b"xyz");
        let mut d = Decoder::new(&v);
        assert_eq!(d.u8().unwrap(), 1);
        assert_eq!(d.u16().unwrap(), 2);
        assert_eq!(d.u32().unwrap(), 3);
        assert_eq!(d.u64().unwrap(), 4);
        assert_eq!(d.str(255).unwrap(), "héllo");
        assert_eq!(d.bytes(10).unwrap(), b"xyz");
        d.finish().unwrap();
    }

    #[test]
    fn lengths_are_bounded() {
        let mut v = Vec::new();
        put_u32(&mut v, u32::MAX);
        assert!(Decoder::new(&v).bytes(usize::MAX).is_err());
        assert!(Decoder::new(&v).count(1, usize::MAX).is_err());
        let mut v = Vec::new();
        put_str(&mut v, "toolong");
        assert!(Decoder::new(&v).str(3).is_err());
        assert!(Decoder::new(&[0, 2, 0xff, 0xfe]).str(10).is_err());
    }

    #[test]
    fn varint_len_is_what_put_varint_writes() {
        for v in [0, 1, 127, 128, 16_383, 16_384, 1 << 21, 1 << 28, u32::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(varint_len(v), out.len(), "{v}");
        }
    }
}
