//! The watched `files/` as a pure function: what is in the folder now
//! (a listing), what the store shares (with the stamp it was shared at)
//! and the time in; what to do out: share a new item, re-hash a changed
//! one, withdraw one that went. No disk, clock or thread inside: the
//! `watcher` thread lists the folder about once a second and carries the
//! actions out.
//!
//! An item is shared once it has stopped changing: two listings at least
//! `settle` apart that see the same stamp (size and mtime; for a folder,
//! a fingerprint of its whole tree). A copy still being written changes
//! between listings, so it waits. A shared item whose stamp moved is
//! withdrawn at once (the bytes on disk are no longer those its record
//! describes, so serving them would only earn bad-piece bans) and
//! re-hashed once it settles.

use crate::fsutil::Stamp;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An item of `files/` as one listing saw it.
pub type Listing = BTreeMap<String, Stamp>;

/// What the store shares, by name, with the stamp it was shared at.
pub type SharedStamps = BTreeMap<String, Stamp>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchAction {
    /// A new item has settled: hash it, publish it, share it.
    Share(String),
    /// A shared item changed (it was withdrawn then) and has settled:
    /// hash it again and publish the new record.
    Rehash(String),
    /// A shared item is gone or changing: stop serving it and tell the
    /// tracker.
    Withdraw(String),
}

/// Seen, not yet settled.
struct Pending {
    stamp: Stamp,
    since: Instant,
    /// It was shared before this change: a `Rehash` when it settles.
    was_shared: bool,
}

pub struct Changes {
    settle: Duration,
    retry: Duration,
    pending: BTreeMap<String, Pending>,
    /// Sharing failed at this stamp (a bad name, a conflict on the
    /// tracker): not tried again before `retry`, or before it changes.
    failed: BTreeMap<String, (Stamp, Instant)>,
}

impl Changes {
    /// `settle`: how long a stamp must hold before the item is shared;
    /// `retry`: how long a failure holds an unchanged item back.
    pub fn new(settle: Duration, retry: Duration) -> Changes {
        Changes {
            settle,
            retry,
            pending: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// One listing: the actions it calls for, withdrawals first.
    pub fn step(
        &mut self,
        listing: &Listing,
        shared: &SharedStamps,
        now: Instant,
    ) -> Vec<WatchAction> {
        let mut withdraw = Vec::new();
        let mut share = Vec::new();
        for name in shared.keys().filter(|n| !listing.contains_key(*n)) {
            withdraw.push(WatchAction::Withdraw(name.clone()));
        }
        self.pending.retain(|n, _| listing.contains_key(n));
        self.failed.retain(|n, _| listing.contains_key(n));
        for (name, &stamp) in listing {
            match shared.get(name) {
                Some(&s) if s == stamp => {
                    self.pending.remove(name);
                    self.failed.remove(name);
                    continue;
                }
                Some(_) => {
                    withdraw.push(WatchAction::Withdraw(name.clone()));
                    self.pending.insert(
                        name.clone(),
                        Pending {
                            stamp,
                            since: now,
                            was_shared: true,
                        },
                    );
                    continue;
                }
                None => {}
            }
            if let Some(&(s, at)) = self.failed.get(name) {
                if s == stamp && now < at + self.retry {
                    continue;
                }
                self.failed.remove(name);
            }
            match self.pending.get_mut(name) {
                Some(p) if p.stamp == stamp => {
                    if now.saturating_duration_since(p.since) >= self.settle {
                        let p = self.pending.remove(name).expect("pending");
                        share.push(if p.was_shared {
                            WatchAction::Rehash(name.clone())
                        } else {
                            WatchAction::Share(name.clone())
                        });
                    }
                }
                Some(p) => {
                    p.stamp = stamp;
                    p.since = now;
                }
                None => {
                    self.pending.insert(
                        name.clone(),
                        Pending {
                            stamp,
                            since: now,
                            was_shared: false,
                        },
                    );
                }
            }
        }
        withdraw.extend(share);
        withdraw
    }

    /// Sharing `name` at `stamp` failed: leave it until it changes or
    /// `retry` has passed.
    pub fn failed(&mut self, name: &str, stamp: Stamp, now: Instant) {
        self.failed.insert(name.to_string(), (stamp, now));
    }

    /// Items seen and waiting to settle (for logs and tests).
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.pending.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WatchAction::*;

    const SETTLE: Duration = Duration::from_secs(1);

    fn stamp(size: u64, mtime: u128) -> Stamp {
        Stamp {
            size,
            mtime_ns: mtime,
        }
    }

    fn listing(items: &[(&str, Stamp)]) -> Listing {
        items.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    fn watch() -> Changes {
        Changes::new(SETTLE, Duration::from_secs(30))
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_new_file_is_shared_once_it_has_settled() {
        let (mut w, t0) = (watch(), Instant::now());
        let l = listing(&[("a", stamp(5, 1))]);
        assert!(w.step(&l, &SharedStamps::new(), t0).is_empty());
        assert!(w.step(&l, &SharedStamps::new(), at(t0, 500)).is_empty());
        assert_eq!(
            w.step(&l, &SharedStamps::new(), at(t0, 1000)),
            [Share("a".into())]
        );
        // Shared now: nothing more to do.
        assert!(w.step(&l, &l, at(t0, 2000)).is_empty());
        assert_eq!(w.pending().count(), 0);
    }

    #[test]
    fn a_file_still_growing_waits() {
        let (mut w, t0) = (watch(), Instant::now());
        let none = SharedStamps::new();
        for i in 0..10u64 {
            let l = listing(&[("big", stamp(i * 100, i as u128))]);
            assert!(w.step(&l, &none, at(t0, i * 1000)).is_empty(), "{i}");
        }
        let done = listing(&[("big", stamp(1000, 10))]);
        assert!(w.step(&done, &none, at(t0, 10_000)).is_empty());
        assert_eq!(w.step(&done, &none, at(t0, 11_000)), [Share("big".into())]);
    }

    #[test]
    fn a_removed_file_is_withdrawn_and_a_vanished_pending_one_forgotten() {
        let (mut w, t0) = (watch(), Instant::now());
        let shared = listing(&[("a", stamp(5, 1))]);
        let l = listing(&[("b", stamp(1, 1))]);
        assert_eq!(w.step(&l, &shared, t0), [Withdraw("a".into())]);
        assert!(w
            .step(&Listing::new(), &SharedStamps::new(), at(t0, 2000))
            .is_empty());
        assert_eq!(w.pending().count(), 0);
    }

    #[test]
    fn a_changed_file_is_withdrawn_at_once_and_rehashed_once_settled() {
        let (mut w, t0) = (watch(), Instant::now());
        let shared = listing(&[("a", stamp(5, 1))]);
        let changed = listing(&[("a", stamp(7, 2))]);
        assert_eq!(w.step(&changed, &shared, t0), [Withdraw("a".into())]);
        // Withdrawn: the store no longer has it.
        let none = SharedStamps::new();
        assert!(w.step(&changed, &none, at(t0, 400)).is_empty());
        assert_eq!(w.step(&changed, &none, at(t0, 1000)), [Rehash("a".into())]);
    }

    #[test]
    fn a_file_the_peer_placed_itself_is_not_hashed_again() {
        // A finished `get` is renamed into files/ and put in the store
        // with the stamp it has there: the listing agrees, nothing to do.
        let (mut w, t0) = (watch(), Instant::now());
        let l = listing(&[("got", stamp(9, 3))]);
        assert!(w.step(&l, &l, t0).is_empty());
        assert!(w.step(&l, &l, at(t0, 5000)).is_empty());
        // Seen a moment before the store had it: forgotten once it has.
        let mut w = watch();
        assert!(w.step(&l, &SharedStamps::new(), t0).is_empty());
        assert!(w.step(&l, &l, at(t0, 1000)).is_empty());
        assert_eq!(w.pending().count(), 0);
    }

    #[test]
    fn a_failure_waits_for_a_change_or_the_retry_time() {
        let (mut w, t0) = (watch(), Instant::now());
        let none = SharedStamps::new();
        let l = listing(&[("bad", stamp(1, 1))]);
        w.step(&l, &none, t0);
        assert_eq!(w.step(&l, &none, at(t0, 1000)), [Share("bad".into())]);
        w.failed("bad", stamp(1, 1), at(t0, 1000));
        assert!(w.step(&l, &none, at(t0, 2000)).is_empty());
        assert!(w.step(&l, &none, at(t0, 20_000)).is_empty());
        // After the retry time it is tried again (settling first).
        assert!(w.step(&l, &none, at(t0, 31_000)).is_empty());
        assert_eq!(w.step(&l, &none, at(t0, 32_000)), [Share("bad".into())]);
        // A change retries at once.
        w.failed("bad", stamp(1, 1), at(t0, 32_000));
        let l2 = listing(&[("bad", stamp(2, 2))]);
        assert!(w.step(&l2, &none, at(t0, 33_000)).is_empty());
        assert_eq!(w.step(&l2, &none, at(t0, 34_000)), [Share("bad".into())]);
    }

    #[test]
    fn withdrawals_come_before_shares() {
        let (mut w, t0) = (watch(), Instant::now());
        let shared = listing(&[("old", stamp(1, 1))]);
        let l = listing(&[("new", stamp(1, 1))]);
        w.step(&l, &shared, t0);
        let acts = w.step(&l, &shared, at(t0, 1000));
        assert_eq!(acts, [Withdraw("old".into()), Share("new".into())]);
    }
}
