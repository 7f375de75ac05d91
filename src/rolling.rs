//! The weak rolling checksum of a piece (rsync's, as zsync uses it): cheap
//! to slide one byte along a file, so a downloader can find the pieces of
//! a new version at any offset of the version it already holds, then
//! confirm each candidate with the piece's SHA-256. Records carry one
//! weak sum per piece (PROTOCOL.md §8).
//!
//! `a` is the sum of the window's bytes and `b` the sum of its prefix sums,
//! each modulo 2^16; the sum is `a | b << 16`. Both slide in O(1):
//! dropping byte `x` and taking byte `y` into a window of `n` bytes,
//! `a += y - x` and `b += a_new - n·x`.

/// The weak sum of `data`, as a record carries it for a piece.
pub fn weak_sum(data: &[u8]) -> u32 {
    Roller::new(data).sum()
}

/// A window sliding along a file one byte at a time.
#[derive(Clone, Copy, Debug)]
pub struct Roller {
    a: u32,
    b: u32,
    len: u32,
}

impl Roller {
    /// The window over `data` (its whole length).
    pub fn new(data: &[u8]) -> Roller {
        // b, the sum of the prefix sums, counts byte i (from 0) n - i
        // times: written so, the loop has no carried dependency and the
        // compiler vectorises it (hashing a file computes one per piece).
        let n = data.len() as u32;
        let (mut a, mut b) = (0u32, 0u32);
        for (i, &x) in data.iter().enumerate() {
            a = a.wrapping_add(x as u32);
            b = b.wrapping_add(n.wrapping_sub(i as u32).wrapping_mul(x as u32));
        }
        Roller {
            a: a & 0xffff,
            b: b & 0xffff,
            len: data.len() as u32,
        }
    }

    /// The window's weak sum.
    #[inline]
    pub fn sum(&self) -> u32 {
        (self.a & 0xffff) | (self.b << 16)
    }

    /// Slides the window one byte: `out` leaves at its start, `inp` joins
    /// at its end. `a` and `b` wrap at 2^32 and are reduced to 16 bits
    /// only in `sum` (the same value modulo 2^16): two instructions fewer
    /// on the path a scan takes once per byte.
    #[inline]
    pub fn roll(&mut self, out: u8, inp: u8) {
        self.a = self.a.wrapping_add((inp as u32).wrapping_sub(out as u32));
        self.b = self
            .b
            .wrapping_add(self.a)
            .wrapping_sub(self.len.wrapping_mul(out as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_equals_recomputing_at_every_offset() {
        let mut rng = crate::rng::Rng::new();
        let data: Vec<u8> = (0..3000).map(|_| rng.next_u64() as u8).collect();
        for window in [1usize, 7, 64, 1000] {
            let mut r = Roller::new(&data[..window]);
            for start in 1..=data.len() - window {
                r.roll(data[start - 1], data[start + window - 1]);
                assert_eq!(
                    r.sum(),
                    weak_sum(&data[start..start + window]),
                    "{window} {start}"
                );
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(weak_sum(b""), 0);
        // a = 0x61 + 0x62 = 0xc3; b = 0x61 + 0xc3 = 0x124.
        assert_eq!(weak_sum(b"ab"), 0x0124_00c3);
        // Sums wrap at 2^16: 4096 bytes of 0xff.
        let a = (4096u32 * 255) & 0xffff;
        let b = ((1..=4096u32).map(|i| i * 255).sum::<u32>()) & 0xffff;
        assert_eq!(weak_sum(&[0xff; 4096]), a | b << 16);
    }

    #[test]
    fn a_shifted_window_differs() {
        assert_ne!(weak_sum(b"abcd"), weak_sum(b"bcda"));
    }
}
