//! The event queue: earliest first, ties in the order scheduled, as a
//! binary heap would give them, but cheaper for how a run schedules.
//!
//! Most events are scheduled a fixed delay ahead of the clock: the
//! latency (every frame's arrival), a block's time on the link (every
//! link carries blocks of one size at one rate), a timer's period, zero
//! (a wake-up in the same instant). Events of one delay, scheduled while
//! the clock only moves forward, come out of a FIFO already in order. So
//! each delay in use gets a lane (a `VecDeque`), and only the rest go to
//! a heap: a push is O(1) for most events, and a pop compares a few lane
//! fronts and the heap's top instead of sifting a heap of every event.

use super::time::SimTime;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Lanes at most: a pop scans their fronts. A lane keeps its delay while
/// it is used; an empty one unused of late goes to a delay that has none
/// and comes again soon (`lane_for`), so rare delays do not take one.
const LANES: usize = 12;

/// Every so many pushes, the count of each lane's uses is halved: a lane
/// used since is not given to another delay.
const AGE_EVERY: u32 = 1 << 14;

/// The delays without a lane remembered (see `lane_for`).
const MISSED: usize = 4;

pub(super) struct Queue<T> {
    seq: u64,
    /// The delay each lane holds, and its events in order.
    delays: [u64; LANES],
    lanes: Vec<VecDeque<Scheduled<T>>>,
    /// The key of each lane's first event (`EMPTY` for none), side by
    /// side: a pop compares these instead of reading every lane's buffer.
    fronts: [(SimTime, u64); LANES],
    heap: BinaryHeap<Scheduled<T>>,
    /// The last delays that found no lane, and how often each lane was
    /// used since it was last halved (see `lane_for`).
    missed: [u64; MISSED],
    hits: [u32; LANES],
    pushes: u32,
    /// The lane of the last push (`None`: the heap), for `last_mut`.
    last: Option<usize>,
}

const EMPTY: (SimTime, u64) = (SimTime::NEVER, u64::MAX);

/// An event with the instant it is due; `seq` keeps ties in the order scheduled.
struct Scheduled<T> {
    at: SimTime,
    seq: u64,
    ev: T,
}

impl<T> Scheduled<T> {
    fn key(&self) -> (SimTime, u64) {
        (self.at, self.seq)
    }
}

impl<T> PartialEq for Scheduled<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<T> Eq for Scheduled<T> {}
impl<T> PartialOrd for Scheduled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Scheduled<T> {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest comes first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// Where the earliest event is.
#[derive(Clone, Copy)]
enum Head {
    Lane(usize),
    Heap,
}

impl<T> Queue<T> {
    pub(super) fn new() -> Queue<T> {
        Queue {
            seq: 0,
            delays: [0; LANES],
            lanes: (0..LANES).map(|_| VecDeque::new()).collect(),
            fronts: [EMPTY; LANES],
            heap: BinaryHeap::new(),
            missed: [u64::MAX; MISSED],
            hits: [0; LANES],
            pushes: 0,
            last: None,
        }
    }

    /// Schedules `ev` at `at`, which is `now` or later; `now` never goes
    /// back between pushes.
    pub(super) fn push(&mut self, now: SimTime, at: SimTime, ev: T) {
        self.seq += 1;
        let e = Scheduled {
            at,
            seq: self.seq,
            ev,
        };
        let delay = at.as_nanos().wrapping_sub(now.as_nanos());
        if at >= now {
            if let Some(i) = self.lane_for(delay) {
                if self.fronts[i] == EMPTY {
                    self.fronts[i] = e.key();
                }
                self.last = Some(i);
                return self.lanes[i].push_back(e);
            }
        }
        self.last = None;
        self.heap.push(e);
    }

    /// The event pushed last, if it is still queued, due at `at` and in a
    /// lane: nothing can come out between it and one pushed now at `at`,
    /// so the caller may fold the new one into it.
    pub(super) fn last_mut(&mut self, at: SimTime) -> Option<&mut T> {
        let e = self.lanes[self.last?].back_mut()?;
        (e.seq == self.seq && e.at == at).then_some(&mut e.ev)
    }

    fn lane_for(&mut self, delay: u64) -> Option<usize> {
        self.pushes = self.pushes.wrapping_add(1);
        if self.pushes.is_multiple_of(AGE_EVERY) {
            for h in &mut self.hits {
                *h /= 2;
            }
        }
        if let Some(i) = self.delays.iter().position(|&d| d == delay) {
            self.hits[i] = self.hits[i].saturating_add(1);
            return Some(i);
        }
        // A delay takes a lane only when it comes again among the last
        // few that found none, and only an empty lane unused of late: the
        // workers' wake-ups come at odd delays, and they had taken the
        // lanes while the frames' arrivals, all at one delay, went to the
        // heap.
        if !self.missed.contains(&delay) {
            self.missed[self.pushes as usize % MISSED] = delay;
            return None;
        }
        let i = (0..LANES).find(|&i| self.fronts[i] == EMPTY && self.hits[i] == 0)?;
        self.delays[i] = delay;
        Some(i)
    }

    fn head(&self) -> Option<(Head, (SimTime, u64))> {
        let mut best = self.heap.peek().map(|e| (Head::Heap, e.key()));
        for (i, &key) in self.fronts.iter().enumerate() {
            if key != EMPTY && best.is_none_or(|(_, k)| key < k) {
                best = Some((Head::Lane(i), key));
            }
        }
        best
    }

    /// The earliest event.
    pub(super) fn peek(&self) -> Option<&T> {
        match self.head()?.0 {
            Head::Lane(i) => self.lanes[i].front().map(|e| &e.ev),
            Head::Heap => self.heap.peek().map(|e| &e.ev),
        }
    }

    /// When the earliest event is due.
    pub(super) fn peek_at(&self) -> Option<SimTime> {
        self.head().map(|(_, (at, _))| at)
    }

    /// The earliest event and its time.
    pub(super) fn pop(&mut self) -> Option<(SimTime, T)> {
        let (head, _) = self.head()?;
        let e = match head {
            Head::Lane(i) => {
                let e = self.lanes[i].pop_front();
                self.fronts[i] = self.lanes[i].front().map_or(EMPTY, Scheduled::key);
                e
            }
            Head::Heap => self.heap.pop(),
        }?;
        Some((e.at, e.ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain sort by (time, order scheduled), with the clock
    /// moving forward to each popped event, as the simulator moves it.
    #[test]
    fn pops_in_time_order_ties_in_the_order_scheduled() {
        let mut rng = crate::rng::Rng::seeded(7);
        let mut q = Queue::new();
        let mut reference: Vec<(SimTime, u64)> = Vec::new();
        let mut now = SimTime::ZERO;
        let mut n = 0u64;
        let mut popped = Vec::new();
        for round in 0..20_000 {
            for _ in 0..rng.below(3) {
                // A few common delays, and rare ones.
                let delay = match rng.below(5) {
                    0 => 0,
                    1 => 50_000,
                    2 => 3_900_000,
                    3 => 50_000_000,
                    _ => rng.below(10_000_000),
                };
                let at = SimTime::from_nanos(now.as_nanos() + delay);
                n += 1;
                q.push(now, at, n);
                reference.push((at, n));
            }
            if round % 3 != 0 {
                if let Some((at, ev)) = q.pop() {
                    now = now.max(at);
                    popped.push((at, ev));
                }
            }
        }
        while let Some(e) = q.pop() {
            popped.push(e);
        }
        assert!(q.pop().is_none());
        // Every pop was the earliest of what was queued then; so popping
        // is sorted whenever pushes never go before the last pop.
        let mut sorted = popped.clone();
        sorted.sort();
        reference.sort();
        assert_eq!(sorted, reference);
        assert!(popped.windows(2).all(|w| w[0] <= w[1]));
    }

    /// Odd delays, each once, between pushes of one common delay: they go
    /// to the heap and the common one keeps its lane.
    #[test]
    fn a_common_delay_keeps_its_lane_among_odd_ones() {
        let mut q = Queue::new();
        let mut now = SimTime::ZERO;
        for i in 0..10_000u64 {
            q.push(now, SimTime::from_nanos(now.as_nanos() + 50_000), i);
            let odd = 1_000_000 + i * 7;
            q.push(now, SimTime::from_nanos(now.as_nanos() + odd), i);
            if i % 2 == 1 {
                if let Some((at, _)) = q.pop() {
                    now = now.max(at);
                }
            }
        }
        assert!(q.heap.len() <= 10_000, "{} in the heap", q.heap.len());
        let in_lanes: usize = q.lanes.iter().map(VecDeque::len).sum();
        assert!(in_lanes > 0);
        assert!(q.heap.iter().all(|e| e.at.as_nanos() >= 1_000_000));
    }

    /// `last_mut` finds the event pushed last while it is queued, in a
    /// lane and due then; not once it is out, nor another event.
    #[test]
    fn the_last_push_is_found_while_queued() {
        let mut q = Queue::new();
        let now = SimTime::ZERO;
        let at = SimTime::from_nanos(50_000);
        for i in 0..3u64 {
            // The delay takes a lane once it comes again.
            q.push(now, at, i);
        }
        assert_eq!(q.last_mut(at).copied(), Some(2));
        assert!(q.last_mut(SimTime::from_nanos(1)).is_none());
        *q.last_mut(at).unwrap() = 7;
        q.push(now, SimTime::from_nanos(12_345), 3);
        assert!(
            q.last_mut(SimTime::from_nanos(12_345)).is_none(),
            "in the heap"
        );
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, [3, 0, 1, 7]);
        assert!(q.last_mut(at).is_none(), "popped");
    }
}
