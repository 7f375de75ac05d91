//! Turns for large replies (a record: about 1 MiB for a 128 MiB file): a
//! few at a time, in the order asked, instead of all at once.
//!
//! Why: leechers that start together each ask the tracker for the record
//! first. Sent side by side, TCP shares the tracker's link fairly, so
//! every record arrives at the end, after all of them have crossed the
//! link; no leecher can ask the seeder for a block before then, and the
//! seeder's uplink, the swarm's bound, sits idle. Taken in turns, the
//! first leecher has its record after one record's time and the seeder
//! is busy from then on; the mean wait halves (shortest job first) and
//! the last record arrives no later than before.
//!
//! A turn is a lease: one held past `lease` (a client that stops reading)
//! no longer counts, and nobody waits longer than `patience` for a turn.
//! A slow or hostile reader delays the others by at most that.
//!
//! `Turns` is the rule, a pure machine; `TurnGate` puts threads to sleep
//! on it.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Who holds a turn and who waits for one, in order of asking.
#[derive(Debug)]
pub struct Turns {
    slots: usize,
    lease: Duration,
    /// Tickets holding a turn, each with the end of its lease.
    running: Vec<(u64, Instant)>,
    queue: VecDeque<u64>,
    next: u64,
}

impl Turns {
    pub fn new(slots: usize, lease: Duration) -> Turns {
        Turns {
            slots: slots.max(1),
            lease,
            running: Vec::new(),
            queue: VecDeque::new(),
            next: 0,
        }
    }

    /// Joins the queue: the ticket to start and finish with.
    pub fn ask(&mut self) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.queue.push_back(ticket);
        ticket
    }

    /// Whether `ticket` may go now: it is first in line and a turn is
    /// free (expired leases free theirs). If so it holds that turn until
    /// `done` or until its lease ends.
    pub fn try_start(&mut self, ticket: u64, now: Instant) -> bool {
        self.running.retain(|&(_, end)| end > now);
        if self.running.len() >= self.slots || self.queue.front() != Some(&ticket) {
            return false;
        }
        self.queue.pop_front();
        self.running.push((ticket, now + self.lease));
        true
    }

    /// When a turn frees itself by its lease ending, if one is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.running.iter().map(|&(_, end)| end).min()
    }

    /// `ticket` has finished, or gives up waiting: its turn or its place
    /// in line goes to the next.
    pub fn done(&mut self, ticket: u64) {
        self.running.retain(|&(t, _)| t != ticket);
        self.queue.retain(|&t| t != ticket);
    }

    /// How many wait for a turn.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }
}

/// `Turns` for threads: `wait` blocks until the caller's turn (or its
/// patience runs out), and the returned `Turn` gives it back when dropped.
pub struct TurnGate {
    turns: Mutex<Turns>,
    changed: Condvar,
    patience: Duration,
}

/// A turn held (or, when patience ran out, the right to go anyway); the
/// next in line is woken when it is dropped.
pub struct Turn<'a> {
    gate: &'a TurnGate,
    ticket: Option<u64>,
    until: Instant,
}

impl TurnGate {
    pub fn new(slots: usize, lease: Duration, patience: Duration) -> TurnGate {
        TurnGate {
            turns: Mutex::new(Turns::new(slots, lease)),
            changed: Condvar::new(),
            patience,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Turns> {
        // `Turns` does not panic; a poisoned lock is still consistent.
        self.turns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a turn, at most `patience`.
    pub fn wait(&self) -> Turn<'_> {
        let give_up = Instant::now() + self.patience;
        let mut turns = self.lock();
        let ticket = turns.ask();
        loop {
            let now = Instant::now();
            if turns.try_start(ticket, now) {
                let until = now + turns.lease;
                return Turn {
                    gate: self,
                    ticket: Some(ticket),
                    until,
                };
            }
            if now >= give_up {
                // Out of line at once, so those behind move up.
                turns.done(ticket);
                self.changed.notify_all();
                return Turn {
                    gate: self,
                    ticket: None,
                    until: now + turns.lease,
                };
            }
            let wake = turns.next_expiry().map_or(give_up, |e| e.min(give_up));
            turns = self
                .changed
                .wait_timeout(turns, wake.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// How many wait for a turn (for metrics and tests).
    pub fn waiting(&self) -> usize {
        self.lock().waiting()
    }
}

impl Turn<'_> {
    /// When this turn's lease ends: no point holding it longer.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Whether it was given a turn (false: patience ran out).
    pub fn granted(&self) -> bool {
        self.ticket.is_some()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.gate.lock().done(ticket);
            self.gate.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LEASE: Duration = Duration::from_secs(2);

    #[test]
    fn turns_go_in_the_order_asked_and_no_more_than_the_slots() {
        let now = Instant::now();
        let mut t = Turns::new(2, LEASE);
        let (a, b, c) = (t.ask(), t.ask(), t.ask());
        assert!(!t.try_start(b, now), "b is behind a");
        assert!(t.try_start(a, now));
        assert!(t.try_start(b, now));
        assert!(!t.try_start(c, now), "both turns are taken");
        t.done(a);
        assert!(t.try_start(c, now));
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn a_lease_held_too_long_frees_its_turn() {
        let now = Instant::now();
        let mut t = Turns::new(1, LEASE);
        let (a, b) = (t.ask(), t.ask());
        assert!(t.try_start(a, now));
        assert_eq!(t.next_expiry(), Some(now + LEASE));
        assert!(!t.try_start(b, now + LEASE - Duration::from_millis(1)));
        assert!(t.try_start(b, now + LEASE), "a's lease is over");
        // a finishing late does not free b's turn.
        t.done(a);
        let c = t.ask();
        assert!(!t.try_start(c, now + LEASE));
    }

    #[test]
    fn one_giving_up_lets_those_behind_it_move_up() {
        let now = Instant::now();
        let mut t = Turns::new(1, LEASE);
        let (a, b, c) = (t.ask(), t.ask(), t.ask());
        assert!(t.try_start(a, now));
        t.done(b);
        t.done(a);
        assert!(t.try_start(c, now));
    }

    #[test]
    fn threads_wait_for_their_turn_and_the_impatient_go_anyway() {
        let gate = Arc::new(TurnGate::new(1, LEASE, Duration::from_millis(50)));
        let held = gate.wait();
        assert!(held.granted());
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.wait().granted())
        };
        assert!(
            !waiter.join().unwrap(),
            "patience ran out behind a held turn"
        );
        assert_eq!(gate.waiting(), 0);
        drop(held);
        let next = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.wait().granted())
        };
        assert!(next.join().unwrap());
    }

    #[test]
    fn a_waiter_is_woken_when_the_turn_is_given_back() {
        let gate = Arc::new(TurnGate::new(1, LEASE, Duration::from_secs(30)));
        let held = gate.wait();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.wait().granted())
        };
        while gate.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
