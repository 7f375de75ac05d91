//! Which of several trackers to ask, in what order (BEP 12 style), as a
//! pure machine: it is told which tracker answered or failed and when,
//! and says in which order to ask them now. No socket or clock inside:
//! `trackers` asks, the tests feed made-up instants.
//!
//! A tracker that fails moves to the back of the order and is left alone
//! for a backoff that doubles with each failure in a row (up to
//! `MAX_BACKOFF`); it is asked first again only after that, or when it
//! answers (its UDP session, which keeps trying, says so). When every
//! tracker is backing off, they are all still asked, soonest due first:
//! the user asked for something, and the caller has no better source
//! before tracker-less search.

use std::time::{Duration, Instant};

/// The wait after a first failure; doubled with each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait before a failing tracker is asked first again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What is known of one tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not asked yet.
    Unknown,
    /// Answered last, at this instant.
    Answering(Instant),
    /// Failed every time since `since` (`failures` in a row); asked
    /// first again from `retry_at`.
    Failing {
        since: Instant,
        failures: u32,
        retry_at: Instant,
    },
}

/// The order and health of a peer's trackers (indices into its list).
#[derive(Debug)]
pub struct Rotation {
    /// Tracker indices, the next to ask first.
    order: Vec<usize>,
    health: Vec<Health>,
}

impl Rotation {
    /// `count` trackers, asked in the order they were named.
    pub fn new(count: usize) -> Rotation {
        Rotation {
            order: (0..count).collect(),
            health: vec![Health::Unknown; count],
        }
    }

    /// How many trackers there are.
    pub fn len(&self) -> usize {
        self.health.len()
    }

    /// Whether there are none (a peer always has one).
    pub fn is_empty(&self) -> bool {
        self.health.is_empty()
    }

    /// What is known of tracker `i`.
    pub fn health(&self, i: usize) -> Health {
        self.health[i]
    }

    /// Whether any tracker answered last.
    pub fn any_answering(&self) -> bool {
        self.health
            .iter()
            .any(|h| matches!(h, Health::Answering(_)))
    }

    /// The order to ask the trackers in at `now`: those not backing off,
    /// in rotation order, then those backing off, soonest due first.
    pub fn plan(&self, now: Instant) -> Vec<usize> {
        let retry_at = |i: usize| match self.health[i] {
            Health::Failing { retry_at, .. } if now < retry_at => Some(retry_at),
            _ => None,
        };
        let mut ready: Vec<usize> = Vec::with_capacity(self.order.len());
        let mut waiting: Vec<(Instant, usize)> = Vec::new();
        for &i in &self.order {
            match retry_at(i) {
                None => ready.push(i),
                Some(at) => waiting.push((at, i)),
            }
        }
        waiting.sort();
        ready.extend(waiting.into_iter().map(|(_, i)| i));
        ready
    }

    /// How many trackers of `plan(now)` are not backing off.
    pub fn ready(&self, now: Instant) -> usize {
        self.health
            .iter()
            .filter(|h| !matches!(h, Health::Failing { retry_at, .. } if now < *retry_at))
            .count()
    }

    /// Tracker `i` answered at `now`: it keeps its place.
    pub fn answered(&mut self, i: usize, now: Instant) {
        self.health[i] = Health::Answering(now);
    }

    /// Tracker `i` failed at `now`: to the back, backing off. A failure
    /// reported while it already backs off (a second caller that asked it
    /// at the same time) does not lengthen the wait.
    pub fn failed(&mut self, i: usize, now: Instant) {
        let (since, failures) = match self.health[i] {
            Health::Failing { retry_at, .. } if now < retry_at => return,
            Health::Failing {
                since, failures, ..
            } => (since, failures.saturating_add(1)),
            _ => (now, 1),
        };
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_BACKOFF);
        self.health[i] = Health::Failing {
            since,
            failures,
            retry_at: now + backoff,
        };
        self.order.retain(|&j| j != i);
        self.order.push(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn trackers_are_asked_in_the_order_they_were_named() {
        let r = Rotation::new(3);
        assert_eq!(r.plan(Instant::now()), [0, 1, 2]);
        assert!(!r.any_answering());
    }

    #[test]
    fn a_failing_tracker_moves_to_the_back_and_the_next_one_is_asked_first() {
        let t0 = Instant::now();
        let mut r = Rotation::new(3);
        r.failed(0, t0);
        assert_eq!(r.plan(t0), [1, 2, 0]);
        assert_eq!(r.ready(t0), 2);
        r.answered(1, t0);
        assert_eq!(
            r.plan(t0 + secs(1)),
            [1, 2, 0],
            "the one that answers stays first"
        );
        assert!(r.any_answering());
    }

    #[test]
    fn the_backoff_doubles_with_each_failure_in_a_row_up_to_a_cap() {
        let t0 = Instant::now();
        let mut r = Rotation::new(1);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            r.failed(0, now);
            let Health::Failing {
                retry_at, since, ..
            } = r.health(0)
            else {
                panic!("failing");
            };
            assert_eq!(since, t0, "failing since the first failure");
            waits.push(retry_at - now);
            now = retry_at;
        }
        assert_eq!(
            waits,
            [2, 4, 8, 16, 32, 60, 60, 60].map(secs),
            "2 s doubled, capped at a minute"
        );
    }

    #[test]
    fn a_failure_told_twice_while_backing_off_counts_once() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2);
        r.failed(0, t0);
        r.failed(0, t0 + secs(1));
        let Health::Failing {
            failures, retry_at, ..
        } = r.health(0)
        else {
            panic!("failing");
        };
        assert_eq!((failures, retry_at), (1, t0 + FIRST_BACKOFF));
    }

    #[test]
    fn a_tracker_whose_backoff_is_over_is_asked_again_in_its_place() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2);
        r.failed(0, t0);
        assert_eq!(r.plan(t0 + FIRST_BACKOFF), [1, 0], "at the back, but ready");
        assert_eq!(r.ready(t0 + FIRST_BACKOFF), 2);
        r.failed(1, t0 + FIRST_BACKOFF);
        assert_eq!(r.plan(t0 + FIRST_BACKOFF), [0, 1]);
    }

    #[test]
    fn when_every_tracker_backs_off_all_are_still_asked_soonest_due_first() {
        let t0 = Instant::now();
        let mut r = Rotation::new(3);
        r.failed(2, t0);
        r.failed(2, t0 + secs(2));
        r.failed(0, t0 + secs(2));
        r.failed(1, t0 + secs(3));
        let now = t0 + secs(3);
        assert_eq!(r.ready(now), 0);
        assert_eq!(r.plan(now), [0, 1, 2], "due at 4 s, 5 s and 6 s");
    }

    #[test]
    fn an_answer_ends_the_failure_and_its_backoff() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2);
        r.failed(0, t0);
        r.answered(0, t0 + secs(1));
        assert_eq!(r.health(0), Health::Answering(t0 + secs(1)));
        assert_eq!(r.ready(t0 + secs(1)), 2);
        r.failed(0, t0 + secs(5));
        let Health::Failing {
            since, failures, ..
        } = r.health(0)
        else {
            panic!("failing");
        };
        assert_eq!(
            (since, failures),
            (t0 + secs(5), 1),
            "a new run of failures"
        );
    }
}
