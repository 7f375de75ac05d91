//! Which holders a download fetches from: a pure machine, driven by the
//! coordinator (`download/mod.rs`) and by the simulator (`sim::peer`).
//!
//! In: the tracker's answers (`offer`) and the workers' exits (`exited`).
//! Out: which holders to start, where each starts in the file, whether
//! the swarm rules apply, what an exit means (retry later, ban, give up
//! the download), and when to ask the tracker again (`refresh_every`).
//!
//! The rules: at most `MAX_WORKERS` holders at once; at most
//! `MAX_ATTEMPTS` connections per holder, where a BUSY answer does not use
//! up an attempt until a holder has said it `MAX_BUSY` times; a holder that
//! sent bad data is never asked again. No socket, clock or thread inside:
//! `(event, now) -> actions`. Generic over how a holder is named (a peer id
//! for the coordinator, a node number for the simulator).

use super::{
    ALONE_REFRESH_EVERY, EARLY, EARLY_REFRESH_EVERY, IDLE_REFRESH_EVERY, MAX_ATTEMPTS, MAX_BUSY,
    MAX_WORKERS, REFRESH_EVERY,
};
use crate::error::{code, Error};
use crate::wire::message::MAX_HOLDERS;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A worker to start: the holder, and the piece its requests start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start<K> {
    pub holder: K,
    pub cursor: u32,
}

/// What the holders of one tracker answer call for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer<K> {
    /// Some holder is downloading too: the plan's swarm rules apply.
    pub swarm: bool,
    /// The answer was as long as the tracker makes one: a sample of a
    /// swarm larger than the holders this download will see, where a
    /// piece none of them has may still be with others
    /// (`Fetch::spare_as_seeder`).
    pub sampled: bool,
    pub start: Vec<Start<K>>,
}

/// What a worker's exit means for its holder and the download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It ended well, or was told to stop.
    Done,
    /// It sent data that failed verification: never asked again.
    Banned,
    /// It was full: asked again later, usually without using an attempt.
    Busy,
    /// It failed (gone, broke the protocol, timed out): one attempt used.
    Dropped,
    /// A local failure (a full disk): no other holder can fix it, the
    /// download ends.
    Fatal,
}

pub struct Holders<K> {
    started: Instant,
    running: HashSet<K>,
    attempts: HashMap<K, u32>,
    busy: HashMap<K, u32>,
    banned: HashSet<K>,
    /// Some answer named a holder still downloading.
    swarm: bool,
}

impl<K: Clone + Eq + Hash> Holders<K> {
    pub fn new(now: Instant) -> Holders<K> {
        Holders {
            started: now,
            running: HashSet::new(),
            attempts: HashMap::new(),
            busy: HashMap::new(),
            banned: HashSet::new(),
            swarm: false,
        }
    }

    /// Workers running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Connections made to holders so far, failed ones included.
    pub fn attempts(&self) -> u32 {
        self.attempts.values().sum()
    }

    /// A tracker answer (`(holder, complete)`, in the tracker's order,
    /// `me` perhaps among them): the holders to start now. Each starts in
    /// its own region of a file of `pieces` pieces, by its place in the
    /// answer.
    pub fn offer(&mut self, answer: &[(K, bool)], me: &K, pieces: u32) -> Offer<K> {
        // Holders with nothing yet are peers downloading too: they tell
        // us (HAVE) what they get.
        let usable: Vec<&(K, bool)> = answer.iter().filter(|h| &h.0 != me).collect();
        let swarm = usable.iter().any(|h| !h.1);
        self.swarm |= swarm;
        let sampled = answer.len() >= MAX_HOLDERS;
        let n = usable.len().max(1) as u64;
        let mut start = Vec::new();
        for (i, (holder, _)) in usable.into_iter().enumerate() {
            if self.running.len() >= MAX_WORKERS {
                break;
            }
            if self.running.contains(holder) || self.banned.contains(holder) {
                continue;
            }
            let attempts = self.attempts.entry(holder.clone()).or_insert(0);
            if *attempts >= MAX_ATTEMPTS {
                continue;
            }
            *attempts += 1;
            self.running.insert(holder.clone());
            start.push(Start {
                holder: holder.clone(),
                cursor: (pieces as u64 * i as u64 / n) as u32,
            });
        }
        Offer {
            swarm,
            sampled,
            start,
        }
    }

    /// A worker `offer` asked for could not be started (no thread): the
    /// attempt stays used.
    pub fn not_started(&mut self, holder: &K) {
        self.running.remove(holder);
    }

    /// A worker ended with `result`.
    pub fn exited(&mut self, holder: &K, result: &Result<(), Error>) -> Verdict {
        self.running.remove(holder);
        match result {
            Ok(()) | Err(Error::Cancelled) => Verdict::Done,
            Err(Error::Integrity(_)) => {
                self.banned.insert(holder.clone());
                Verdict::Banned
            }
            Err(Error::Remote {
                code: code::BUSY, ..
            }) => {
                // Full, not failing: try again later without using up an
                // attempt, unless it keeps saying so.
                let busy = self.busy.entry(holder.clone()).or_insert(0);
                *busy += 1;
                if *busy < MAX_BUSY {
                    if let Some(a) = self.attempts.get_mut(holder) {
                        *a = a.saturating_sub(1);
                    }
                }
                Verdict::Busy
            }
            Err(e) if e.is_remote_fault() => Verdict::Dropped,
            Err(_) => Verdict::Fatal,
        }
    }

    /// How long after a tracker question to ask again: often early on,
    /// when peers that started with us are just joining (most often while
    /// no answer has named one), sooner when no worker runs, else every
    /// `REFRESH_EVERY`.
    pub fn refresh_every(&self, now: Instant) -> Duration {
        if now.saturating_duration_since(self.started) < EARLY {
            if self.swarm {
                EARLY_REFRESH_EVERY
            } else {
                ALONE_REFRESH_EVERY
            }
        } else if self.running.is_empty() {
            IDLE_REFRESH_EVERY
        } else {
            REFRESH_EVERY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ids: &[u32]) -> Vec<(u32, bool)> {
        ids.iter().map(|&i| (i, true)).collect()
    }

    fn busy() -> Result<(), Error> {
        Err(Error::Remote {
            code: code::BUSY,
            message: "busy".into(),
        })
    }

    fn started(o: &Offer<u32>) -> Vec<u32> {
        o.start.iter().map(|s| s.holder).collect()
    }

    #[test]
    fn each_holder_starts_once_in_its_own_region_and_never_myself() {
        let mut h = Holders::new(Instant::now());
        let o = h.offer(&answer(&[1, 2, 3, 4]), &2, 300);
        assert_eq!(started(&o), vec![1, 3, 4]);
        let cursors: Vec<u32> = o.start.iter().map(|s| s.cursor).collect();
        assert_eq!(cursors, vec![0, 100, 200]);
        assert!(!o.swarm);
        assert!(h.offer(&answer(&[1, 3, 4]), &2, 300).start.is_empty());
        assert_eq!(h.running(), 3);
    }

    #[test]
    fn a_holder_still_downloading_makes_it_a_swarm() {
        let mut h = Holders::new(Instant::now());
        assert!(h.offer(&[(1, true), (2, false)], &0, 10).swarm);
        // Only the asker downloading is no swarm.
        let mut h = Holders::new(Instant::now());
        assert!(!h.offer(&[(0, false), (1, true)], &0, 10).swarm);
    }

    #[test]
    fn an_answer_as_long_as_the_tracker_gives_is_a_sample() {
        let ids: Vec<u32> = (1..=MAX_HOLDERS as u32).collect();
        let mut h = Holders::new(Instant::now());
        assert!(h.offer(&answer(&ids), &0, 1000).sampled);
        let mut h = Holders::new(Instant::now());
        assert!(!h.offer(&answer(&ids[1..]), &0, 1000).sampled);
    }

    #[test]
    fn no_more_than_max_workers_run_at_once() {
        let mut h = Holders::new(Instant::now());
        let ids: Vec<u32> = (1..=MAX_WORKERS as u32 + 10).collect();
        assert_eq!(h.offer(&answer(&ids), &0, 1000).start.len(), MAX_WORKERS);
        assert!(h.offer(&answer(&ids), &0, 1000).start.is_empty());
        h.exited(&1, &Ok(()));
        assert_eq!(started(&h.offer(&answer(&ids), &0, 1000)), vec![1]);
    }

    #[test]
    fn a_failing_holder_gets_two_attempts() {
        let mut h = Holders::new(Instant::now());
        let fail = Err(Error::protocol("gone"));
        for _ in 0..MAX_ATTEMPTS {
            assert_eq!(started(&h.offer(&answer(&[7]), &0, 10)), vec![7]);
            assert_eq!(h.exited(&7, &fail), Verdict::Dropped);
        }
        assert!(h.offer(&answer(&[7]), &0, 10).start.is_empty());
        assert_eq!(h.attempts(), MAX_ATTEMPTS);
    }

    #[test]
    fn busy_answers_do_not_use_attempts_until_max_busy() {
        let mut h = Holders::new(Instant::now());
        for _ in 0..MAX_BUSY - 1 {
            assert_eq!(started(&h.offer(&answer(&[7]), &0, 10)), vec![7]);
            assert_eq!(h.exited(&7, &busy()), Verdict::Busy);
        }
        // From the tenth BUSY on, each uses an attempt.
        let mut more = 0;
        while !h.offer(&answer(&[7]), &0, 10).start.is_empty() {
            h.exited(&7, &busy());
            more += 1;
        }
        assert_eq!(more, MAX_ATTEMPTS);
    }

    #[test]
    fn bad_data_bans_a_holder_for_good() {
        let mut h = Holders::new(Instant::now());
        h.offer(&answer(&[7]), &0, 10);
        let bad = Err(Error::Integrity("piece 3 does not match".into()));
        assert_eq!(h.exited(&7, &bad), Verdict::Banned);
        assert!(h.offer(&answer(&[7]), &0, 10).start.is_empty());
    }

    #[test]
    fn a_local_failure_ends_the_download_and_a_stop_is_no_failure() {
        let mut h = Holders::new(Instant::now());
        h.offer(&answer(&[7, 8]), &0, 10);
        assert_eq!(h.exited(&7, &Err(Error::Cancelled)), Verdict::Done);
        assert_eq!(
            h.exited(&8, &Err(Error::Local("disk full".into()))),
            Verdict::Fatal
        );
    }

    #[test]
    fn the_tracker_is_asked_often_early_then_by_whether_workers_run() {
        let t0 = Instant::now();
        let mut h = Holders::new(t0);
        // Only the seeder so far: the leechers that started with us are
        // looked for sooner.
        h.offer(&answer(&[1]), &0, 10);
        assert_eq!(h.refresh_every(t0), ALONE_REFRESH_EVERY);
        // A holder downloading too: a swarm, and it stays one.
        h.offer(&[(2, false)], &0, 10);
        h.offer(&answer(&[1]), &0, 10);
        assert_eq!(h.refresh_every(t0), EARLY_REFRESH_EVERY);
        let mut h = Holders::new(t0);
        let later = t0 + EARLY;
        assert_eq!(h.refresh_every(later), IDLE_REFRESH_EVERY);
        h.offer(&answer(&[1]), &0, 10);
        assert_eq!(h.refresh_every(later), REFRESH_EVERY);
    }
}
