//! Token buckets per key (an IP address) and in all, so one sender (or a
//! spoofer varying its claimed origin) can make a peer handle only so many
//! datagrams per second. Pure: the caller passes the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Tokens (datagrams) the bucket holds when full.
    pub burst: f64,
    /// Tokens added per second.
    pub per_sec: f64,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + secs * rate.per_sec).min(rate.burst);
        self.last = now;
    }
}

pub struct Limiter<K> {
    per_key: Rate,
    overall: Rate,
    /// Most keys tracked at once; beyond, idle keys are forgotten, and if
    /// none is idle a new key is refused (fail closed under a flood).
    max_keys: usize,
    keys: HashMap<K, Bucket>,
    all: Bucket,
}

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub fn new(per_key: Rate, overall: Rate, max_keys: usize, now: Instant) -> Limiter<K> {
        Limiter {
            per_key,
            overall,
            max_keys: max_keys.max(1),
            keys: HashMap::new(),
            all: Bucket::full(overall, now),
        }
    }

    /// True when one more datagram from `key` may be handled now; it is
    /// then charged to both `key`'s bucket and the overall one.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        self.all.refill(self.overall, now);
        if self.all.tokens < 1.0 {
            return false;
        }
        if !self.keys.contains_key(&key) && self.keys.len() >= self.max_keys {
            let (rate, burst) = (self.per_key, self.per_key.burst);
            self.keys.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < burst
            });
            if self.keys.len() >= self.max_keys {
                return false;
            }
        }
        let bucket = self
            .keys
            .entry(key)
            .or_insert_with(|| Bucket::full(self.per_key, now));
        bucket.refill(self.per_key, now);
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.all.tokens -= 1.0;
        true
    }

    pub fn tracked(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(burst: f64, per_sec: f64) -> Rate {
        Rate { burst, per_sec }
    }

    #[test]
    fn a_key_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(3.0, 2.0), rate(100.0, 100.0), 10, t0);
        assert!((0..3).all(|_| l.allow(1u32, t0)));
        assert!(!l.allow(1, t0), "burst used up");
        assert!(l.allow(2, t0), "another key is not affected");
        assert!(!l.allow(1, t0 + Duration::from_millis(400)));
        assert!(
            l.allow(1, t0 + Duration::from_millis(500)),
            "refilled at 2/s"
        );
    }

    #[test]
    fn the_overall_rate_caps_every_key_together() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(5.0, 5.0), rate(10.0, 1.0), 1000, t0);
        let allowed = (0..100u32).filter(|k| l.allow(*k, t0)).count();
        assert_eq!(allowed, 10);
        assert!(l.allow(500, t0 + Duration::from_secs(1)));
        assert!(!l.allow(501, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn keys_are_bounded_and_idle_ones_are_forgotten() {
        let t0 = Instant::now();
        let mut l = Limiter::new(rate(2.0, 1.0), rate(1e9, 1e9), 4, t0);
        for k in 0..4u32 {
            assert!(l.allow(k, t0));
        }
        assert!(!l.allow(99, t0), "every tracked key is busy: refuse");
        assert_eq!(l.tracked(), 4);
        // Three seconds on, every bucket is full again: they are dropped.
        assert!(l.allow(99, t0 + Duration::from_secs(3)));
        assert!(l.tracked() <= 4);
    }
}
