//! A small xorshift generator for tie-breaking and sampling. Not for
//! secrets: nothing here needs unpredictability, only spread.

use std::time::{SystemTime, UNIX_EPOCH};

pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from the clock and the thread, so threads and processes
    /// started together still differ.
    pub fn new() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let tid = format!("{:?}", std::thread::current().id());
        let mix = tid.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        Rng::seeded(t ^ mix ^ (std::process::id() as u64) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `k` of `items` picked at random without repeats (all of them, in
    /// order, when there are at most `k`), in O(k): a partial
    /// Fisher-Yates over positions that leaves `items` as it is.
    pub fn sample<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let n = items.len();
        if n <= k {
            return items.to_vec();
        }
        let mut moved: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
        (0..k)
            .map(|i| {
                let j = i + self.below((n - i) as u64) as usize;
                let at_j = *moved.get(&j).unwrap_or(&j);
                let at_i = *moved.get(&i).unwrap_or(&i);
                moved.insert(j, at_i);
                items[at_j]
            })
            .collect()
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}
