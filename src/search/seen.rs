//! The ids of queries already handled, so a query that comes back around a
//! loop is dropped. Bounded in size and in time: an id is forgotten after
//! its expiry or when the cache is full and it is the oldest. Forgetting
//! early is safe, because a query's TTL bounds how far it can travel anyway.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct SeenCache {
    expiry: Duration,
    capacity: usize,
    when: HashMap<u64, Instant>,
    /// Ids in the order they were first seen, oldest first.
    order: VecDeque<(u64, Instant)>,
}

impl SeenCache {
    pub fn new(capacity: usize, expiry: Duration) -> SeenCache {
        SeenCache {
            expiry,
            capacity: capacity.max(1),
            when: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `id`; true when it is new, false when it was seen within
    /// the expiry (a duplicate, to be dropped).
    pub fn insert(&mut self, id: u64, now: Instant) -> bool {
        self.expire(now);
        if self.when.contains_key(&id) {
            return false;
        }
        if self.when.len() >= self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                self.when.remove(&old);
            }
        }
        self.when.insert(id, now);
        self.order.push_back((id, now));
        true
    }

    pub fn len(&self) -> usize {
        self.when.len()
    }

    pub fn is_empty(&self) -> bool {
        self.when.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.expiry {
                break;
            }
            self.order.pop_front();
            self.when.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_is_refused_until_it_expires() {
        let t0 = Instant::now();
        let mut s = SeenCache::new(10, Duration::from_secs(60));
        assert!(s.insert(7, t0));
        assert!(!s.insert(7, t0 + Duration::from_secs(1)));
        assert!(!s.insert(7, t0 + Duration::from_secs(59)));
        assert!(s.insert(7, t0 + Duration::from_secs(60)), "expired");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_size_is_bounded_and_the_oldest_goes_first() {
        let t0 = Instant::now();
        let mut s = SeenCache::new(3, Duration::from_secs(60));
        for id in 1..=3 {
            assert!(s.insert(id, t0));
        }
        assert!(s.insert(4, t0), "full: 1 is dropped");
        assert_eq!(s.len(), 3);
        assert!(!s.insert(2, t0));
        assert!(!s.insert(4, t0));
        assert!(s.insert(1, t0), "1 was forgotten");
        for id in 100..10_000 {
            s.insert(id, t0);
        }
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn expiry_empties_the_cache() {
        let t0 = Instant::now();
        let mut s = SeenCache::new(100, Duration::from_secs(1));
        for id in 0..50 {
            s.insert(id, t0);
        }
        assert!(s.insert(1000, t0 + Duration::from_secs(2)));
        assert_eq!(s.len(), 1);
    }
}
