//! A fixed-length set of piece indices, with a count kept up to date so
//! progress is O(1), and conversion to and from runs for compact announces.

#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{} {:?})", self.ones, self.len, self.runs())
    }
}

impl Bitfield {
    pub fn new(len: u32) -> Bitfield {
        // Not `vec![0; n]`: that is calloc, which glibc serves without its
        // per-thread cache; a HAVE decoded builds one of these each time.
        let n = (len as usize).div_ceil(64);
        #[allow(clippy::slow_vector_initialization)]
        let mut words = Vec::with_capacity(n);
        words.resize(n, 0);
        Bitfield {
            words,
            len,
            ones: 0,
        }
    }

    pub fn full(len: u32) -> Bitfield {
        let mut b = Bitfield::new(len);
        b.set_range(0, len);
        b
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn count(&self) -> u32 {
        self.ones
    }

    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`; returns true when it was not set before.
    pub fn set(&mut self, i: u32) -> bool {
        assert!(i < self.len, "bit {i} out of range {}", self.len);
        let w = &mut self.words[(i / 64) as usize];
        let m = 1u64 << (i % 64);
        if *w & m == 0 {
            *w |= m;
            self.ones += 1;
            true
        } else {
            false
        }
    }

    pub fn clear(&mut self, i: u32) {
        assert!(i < self.len);
        let w = &mut self.words[(i / 64) as usize];
        let m = 1u64 << (i % 64);
        if *w & m != 0 {
            *w &= !m;
            self.ones -= 1;
        }
    }

    pub fn set_range(&mut self, start: u32, len: u32) {
        for i in start..start + len {
            self.set(i);
        }
    }

    /// The first index >= `from` whose bit equals `value`.
    pub fn next(&self, from: u32, value: bool) -> Option<u32> {
        let mut i = from;
        while i < self.len {
            let word = self.words[(i / 64) as usize];
            let word = if value { word } else { !word };
            let masked = word >> (i % 64);
            if masked != 0 {
                let found = i + masked.trailing_zeros();
                return (found < self.len).then_some(found);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// The first index >= `from` set both here and in `other` (same
    /// length), a word at a time.
    pub fn next_common(&self, other: &Bitfield, from: u32) -> Option<u32> {
        let mut i = from;
        while i < self.len {
            let w = (i / 64) as usize;
            let masked = (self.words[w] & other.words[w]) >> (i % 64);
            if masked != 0 {
                let found = i + masked.trailing_zeros();
                return (found < self.len).then_some(found);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// Sets every bit set in `other` (same length).
    pub fn union_with(&mut self, other: &Bitfield) {
        self.combine(other, |a, b| a | b);
    }

    /// Keeps only the bits also set in `other` (same length).
    pub fn intersect_with(&mut self, other: &Bitfield) {
        self.combine(other, |a, b| a & b);
    }

    /// Each word becomes `f(word, other's word)` (same length); then the
    /// count of set bits is taken again.
    fn combine(&mut self, other: &Bitfield, f: impl Fn(u64, u64) -> u64) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a = f(*a, *b);
        }
        self.ones = self.words.iter().map(|w| w.count_ones()).sum();
    }

    /// The bits set here and not in `other` (same length).
    pub fn minus(&self, other: &Bitfield) -> Bitfield {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Clears every bit set in `other` (same length): `minus` in place,
    /// for a set that is not needed afterwards (no copy made).
    pub fn subtract(&mut self, other: &Bitfield) {
        self.combine(other, |a, b| a & !b);
    }

    /// Becomes `whole.minus(self)` (same length) in place: what a larger
    /// set adds to this one, in this one's words.
    pub fn rest_of(&mut self, whole: &Bitfield) {
        self.combine(whole, |a, b| b & !a);
    }

    /// True when some bit is set here and not in `other` (same length).
    pub fn any_and_not(&self, other: &Bitfield) -> bool {
        self.words
            .iter()
            .zip(&other.words)
            .any(|(a, b)| a & !b != 0)
    }

    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        // A word at a time, its lowest set bit cleared per step: this runs
        // over every piece a holder has whenever one connects or leaves.
        let (mut w, mut word) = (0usize, self.words.first().copied().unwrap_or(0));
        std::iter::from_fn(move || loop {
            if word != 0 {
                let i = w as u32 * 64 + word.trailing_zeros();
                word &= word - 1;
                return (i < self.len).then_some(i);
            }
            w += 1;
            word = *self.words.get(w)?;
        })
    }

    /// Maximal runs of set bits, as (start, length).
    pub fn runs(&self) -> Vec<(u32, u32)> {
        self.iter_runs().collect()
    }

    /// Bits `64 * i` to `64 * i + 63`, bit `64 * i` lowest; 0 past the end.
    pub fn word(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    /// How many maximal runs of set bits there are (`runs().len()`), a
    /// word at a time: a run starts at a set bit whose predecessor is
    /// clear.
    pub fn count_runs(&self) -> u32 {
        let mut carry = 0u64;
        let mut n = 0;
        for &w in &self.words {
            n += (w & !((w << 1) | carry)).count_ones();
            carry = w >> 63;
        }
        n
    }

    /// `runs`, without collecting them.
    pub fn iter_runs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let start = self.next(at, true)?;
            let end = self.next(start, false).unwrap_or(self.len);
            at = end;
            Some((start, end - start))
        })
    }

    /// Builds a bitfield from runs; None if a run is empty, leaves
    /// `0..len`, or does not start after the previous one ends. Sorted,
    /// disjoint runs keep decoding linear in `len`, whatever the input.
    pub fn from_runs(len: u32, runs: &[(u32, u32)]) -> Option<Bitfield> {
        let mut b = Bitfield::new(len);
        let mut prev_end = None;
        for &(start, n) in runs {
            prev_end = Some(b.add_run(start, n, prev_end)?);
        }
        Some(b)
    }

    /// Sets the run of `n` bits from `start`, the next of a decoded list
    /// whose previous run ended at `prev_end` (None: the first): None,
    /// with nothing set, when the run is empty, leaves `0..len`, or does
    /// not start after the previous one ends (`from_runs`'s rules, for a
    /// decoder that builds the set as it reads). Where the run ends.
    pub fn add_run(&mut self, start: u32, n: u32, prev_end: Option<u32>) -> Option<u32> {
        let end = start.checked_add(n)?;
        if n == 0 || end > self.len || prev_end.is_some_and(|p| start <= p) {
            return None;
        }
        self.set_range(start, n);
        Some(end)
    }

    /// The raw bytes, bit i at byte i/8, least significant bit first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate((self.len as usize).div_ceil(8));
        out
    }

    /// The inverse of `to_bytes`; None when the length is wrong or bits
    /// past `len` are set.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Option<Bitfield> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let mut words = Bitfield::new(len).words;
        for (i, b) in bytes.iter().enumerate() {
            words[i / 8] |= (*b as u64) << ((i % 8) * 8);
        }
        if !len.is_multiple_of(64) {
            if let Some(last) = words.last() {
                if last >> (len % 64) != 0 {
                    return None;
                }
            }
        }
        let ones = words.iter().map(|w| w.count_ones()).sum();
        Some(Bitfield { words, len, ones })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_count_runs() {
        let mut b = Bitfield::new(130);
        assert!(b.set(0));
        assert!(!b.set(0));
        b.set_range(5, 3);
        b.set(64);
        b.set(129);
        assert_eq!(b.count(), 6);
        assert_eq!(b.runs(), vec![(0, 1), (5, 3), (64, 1), (129, 1)]);
        assert_eq!(b.count_runs(), 4);
        b.set_range(60, 4);
        assert_eq!(b.runs(), vec![(0, 1), (5, 3), (60, 5), (129, 1)]);
        assert_eq!(b.count_runs(), 4, "a run across a word boundary is one");
        b.clear(60);
        b.clear(61);
        b.clear(62);
        b.clear(63);
        assert_eq!(Bitfield::from_runs(130, &b.runs()).unwrap(), b);
        assert_eq!(b.next(8, true), Some(64));
        assert_eq!(b.next(0, false), Some(1));
        b.clear(64);
        assert_eq!(b.count(), 5);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 5, 6, 7, 129]);
    }

    #[test]
    fn any_and_not() {
        let mut a = Bitfield::new(100);
        let mut b = Bitfield::new(100);
        assert!(!a.any_and_not(&b));
        a.set(99);
        assert!(a.any_and_not(&b));
        b.set(99);
        assert!(!a.any_and_not(&b));
    }

    #[test]
    fn common_and_minus() {
        let a = Bitfield::from_runs(200, &[(3, 4), (100, 50)]).unwrap();
        let b = Bitfield::from_runs(200, &[(5, 1), (140, 60)]).unwrap();
        assert_eq!(a.next_common(&b, 0), Some(5));
        assert_eq!(a.next_common(&b, 6), Some(140));
        assert_eq!(a.next_common(&b, 150), None);
        let d = a.minus(&b);
        assert_eq!(d.runs(), vec![(3, 2), (6, 1), (100, 40)]);
        assert_eq!(d.count(), 43);
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u.runs(), vec![(3, 4), (100, 100)]);
        assert_eq!(u.count(), 104);
    }

    #[test]
    fn bytes_round_trip() {
        let mut b = Bitfield::new(77);
        for i in [0, 9, 63, 64, 76] {
            b.set(i);
        }
        assert_eq!(Bitfield::from_bytes(77, &b.to_bytes()).unwrap(), b);
        assert!(Bitfield::from_bytes(77, &[0xff; 10]).is_none());
        assert!(Bitfield::from_bytes(77, &[0; 3]).is_none());
    }

    #[test]
    fn full_and_bounds() {
        let b = Bitfield::full(70);
        assert!(b.is_full());
        assert_eq!(b.runs(), vec![(0, 70)]);
        assert_eq!(b.next(0, false), None);
        assert!(Bitfield::from_runs(10, &[(8, 3)]).is_none());
        assert!(Bitfield::from_runs(10, &[(u32::MAX, 3)]).is_none());
        assert!(
            Bitfield::from_runs(10, &[(0, 5), (2, 5)]).is_none(),
            "overlapping"
        );
        assert!(
            Bitfield::from_runs(10, &[(5, 1), (0, 1)]).is_none(),
            "unsorted"
        );
        assert!(
            Bitfield::from_runs(10, &[(0, 1), (1, 1)]).is_none(),
            "adjacent runs are one run"
        );
        assert!(Bitfield::from_runs(10, &[(0, 0)]).is_none(), "empty run");
    }
}
