//! One node's copy of a file, held as the blocks it has written and the
//! blocks whose bytes differed from the original's, not as bytes: a
//! thousand simulated 16 MiB copies would not fit in memory, and a block
//! written with exactly the original's bytes needs no copy to be read back.
//! Every write is compared with the original byte for byte, so a copy
//! that is complete with no differing block is the original, byte for
//! byte. A read returns what was written.

use crate::bitfield::Bitfield;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct CopyStore {
    original: Arc<[u8]>,
    block_size: usize,
    written: Bitfield,
    /// Blocks written with other bytes than the original's, as written.
    differ: BTreeMap<u32, Vec<u8>>,
}

impl CopyStore {
    /// An empty copy of `original`, in blocks of `block_size` bytes (the
    /// last may be shorter).
    pub fn empty(original: Arc<[u8]>, block_size: usize) -> CopyStore {
        let block_size = block_size.max(1);
        let blocks = u32::try_from(original.len().div_ceil(block_size)).unwrap_or(u32::MAX);
        CopyStore {
            original,
            block_size,
            written: Bitfield::new(blocks),
            differ: BTreeMap::new(),
        }
    }

    /// The original itself: every block written, none differing.
    pub fn full(original: Arc<[u8]>, block_size: usize) -> CopyStore {
        let mut s = CopyStore::empty(original, block_size);
        s.written = Bitfield::full(s.written.len());
        s
    }

    /// The file this is a copy of.
    pub fn original(&self) -> &Arc<[u8]> {
        &self.original
    }

    pub fn blocks(&self) -> u32 {
        self.written.len()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes of block `i` in the original (the last block may be short).
    pub fn block_len(&self, i: u32) -> usize {
        let start = i as usize * self.block_size;
        self.original
            .len()
            .saturating_sub(start)
            .min(self.block_size)
    }

    pub fn has(&self, i: u32) -> bool {
        self.written.get(i)
    }

    pub fn written(&self) -> &Bitfield {
        &self.written
    }

    /// Writes block `i`. Returns whether the bytes are the original's.
    /// A block out of range is refused (false) and nothing is written.
    pub fn write(&mut self, i: u32, bytes: &[u8]) -> bool {
        if i >= self.blocks() {
            return false;
        }
        let start = i as usize * self.block_size;
        let same = self.original[start..start + self.block_len(i)] == *bytes;
        if same {
            self.differ.remove(&i);
        } else {
            self.differ.insert(i, bytes.to_vec());
        }
        self.written.set(i);
        same
    }

    /// What was written at block `i`, or `None` if nothing was.
    pub fn read(&self, i: u32) -> Option<&[u8]> {
        if !self.has(i) {
            return None;
        }
        if let Some(b) = self.differ.get(&i) {
            return Some(b);
        }
        let start = i as usize * self.block_size;
        Some(&self.original[start..start + self.block_len(i)])
    }

    /// Where block `i` lies in the original, as (offset, length), when
    /// what was written there is the original's bytes: a reader may take
    /// them from the original itself.
    pub fn original_run(&self, i: u32) -> Option<(usize, usize)> {
        (self.has(i) && !self.differ.contains_key(&i))
            .then(|| (i as usize * self.block_size, self.block_len(i)))
    }

    /// Blocks written with bytes other than the original's.
    pub fn differing(&self) -> usize {
        self.differ.len()
    }

    pub fn is_complete(&self) -> bool {
        self.written.is_full()
    }

    /// Complete and equal to the original, byte for byte.
    pub fn is_original(&self) -> bool {
        self.is_complete() && self.differ.is_empty()
    }

    /// Forgets everything: a copy that starts over.
    pub fn clear(&mut self) {
        self.written = Bitfield::new(self.written.len());
        self.differ.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> Arc<[u8]> {
        (0..10_000u32).map(|i| (i * 7) as u8).collect()
    }

    #[test]
    fn a_copy_written_block_by_block_is_the_original() {
        let o = original();
        let mut s = CopyStore::empty(o.clone(), 4096);
        assert_eq!(s.blocks(), 3);
        assert_eq!(s.block_len(2), 10_000 - 8192);
        for i in [2, 0, 1] {
            let b = &o[i as usize * 4096..(i as usize * 4096 + 4096).min(o.len())];
            assert!(s.write(i, b));
        }
        assert!(s.is_original());
        assert_eq!(s.original_run(2), Some((8192, 10_000 - 8192)));
        assert_eq!(s.read(1), Some(&o[4096..8192]));
    }

    #[test]
    fn a_differing_block_is_kept_and_read_back() {
        let o = original();
        let mut s = CopyStore::full(o.clone(), 4096);
        let mut bad = o[..4096].to_vec();
        bad[17] ^= 1;
        assert!(!s.write(0, &bad));
        assert!(s.is_complete() && !s.is_original());
        assert_eq!(s.read(0), Some(&bad[..]));
        assert_eq!(s.original_run(0), None, "read from the copy");
        assert_eq!(s.original_run(1), Some((4096, 4096)));
        assert!(s.write(0, &o[..4096]));
        assert!(s.is_original());
        assert!(!s.write(0, &o[..100]), "a short block differs");
        assert!(!s.write(3, &o[..10]), "out of range");
    }
}
