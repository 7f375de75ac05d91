//! Hash maps and sets keyed by numbers this program chose itself (piece
//! numbers it asked for, weak sums it computed), hashed with one multiply.
//! SipHash, std's default, protects a map against keys an attacker picks
//! to collide; where nobody else picks the keys it buys nothing and costs
//! most of a lookup (a download looks up the piece of every block it
//! receives). Iteration order is the same in every run.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;
pub type IntSet<K> = HashSet<K, BuildHasherDefault<IntHasher>>;

/// Fibonacci hashing: the key times 2^64 / phi.
#[derive(Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    /// The product's high half folded into the low one: the table picks
    /// buckets with the low bits, which alone depend only on the key's
    /// low bits.
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_keys_spread_over_the_low_bits() {
        let mut buckets = [0u32; 64];
        for k in 0u32..4096 {
            let mut h = IntHasher::default();
            h.write_u32(k);
            buckets[(h.finish() % 64) as usize] += 1;
        }
        // 64 keys per bucket on average; none empty, none crowded.
        assert!(
            buckets.iter().all(|&n| (32..=96).contains(&n)),
            "{buckets:?}"
        );
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut m: IntMap<u32, u32> = IntMap::default();
        for k in 0..1000 {
            m.insert(k * 7, k);
        }
        assert!((0..1000).all(|k| m.get(&(k * 7)) == Some(&k)));
        assert_eq!(m.get(&1), None);
    }
}
