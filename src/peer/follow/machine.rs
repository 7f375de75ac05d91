//! What a follower fetches, and when: a pure machine. The follow thread
//! feeds it the swarm's listing, the local items and the time; it answers
//! with the downloads to start, and is told how each ended.
//!
//! An item is wanted when a pattern matches its name, someone holds it,
//! and it is missing locally or the swarm's version is newer than the
//! local one. At most `MAX_AT_ONCE` follow downloads run at once. A failed
//! one waits before the next try: 2 s, doubling to 60 s, plus up to a
//! quarter more at random (so followers that failed together do not come
//! back together); the wait starts over when the swarm's version changes.

use super::pattern::Pattern;
use crate::digest::Md5Digest;
use crate::wire::FileSummary;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Follow downloads running at once.
pub const MAX_AT_ONCE: usize = 3;
/// The wait after a first failure; it doubles with each one after.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two tries, jitter aside.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// What the machine needs of one line of the swarm's listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmItem {
    pub name: String,
    pub size: u64,
    pub md5: Md5Digest,
    pub version: u32,
    /// Peers holding any of it; with none there is nothing to fetch.
    pub holders: u32,
}

impl SwarmItem {
    /// From the tracker's listing.
    pub fn of(f: &FileSummary) -> SwarmItem {
        SwarmItem {
            name: f.name.clone(),
            size: f.size,
            md5: f.md5,
            version: f.version,
            holders: f.holders,
        }
    }

    /// What names this version: a retry waits only for the same one.
    fn key(&self) -> Key {
        (self.version, self.md5)
    }
}

/// A local item: its MD5 and its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub md5: Md5Digest,
    pub version: u32,
}

/// A download to start: the swarm's current version of `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    /// For the free-space check before it starts.
    pub size: u64,
    pub version: u32,
}

type Key = (u32, Md5Digest);

/// A failed item's wait.
#[derive(Clone, Debug)]
struct Retry {
    /// The version that failed; another one starts over.
    key: Key,
    failures: u32,
    not_before: Instant,
}

#[derive(Default)]
pub struct Follower {
    /// Follow downloads started and not finished, with the version asked.
    running: BTreeMap<String, Key>,
    retries: BTreeMap<String, Retry>,
}

impl Follower {
    pub fn new() -> Follower {
        Follower::default()
    }

    /// The downloads to start now. `busy` names downloads this machine did
    /// not start (a `get`, the web page's Fetch): left to them.
    pub fn step(
        &mut self,
        now: Instant,
        patterns: &[Pattern],
        swarm: &[SwarmItem],
        local: &BTreeMap<String, Local>,
        busy: &BTreeSet<String>,
    ) -> Vec<Wanted> {
        self.forget_stale_retries(swarm);
        let mut out = Vec::new();
        for item in swarm {
            if self.running.len() >= MAX_AT_ONCE {
                break;
            }
            let wanted = item.holders > 0
                && patterns.iter().any(|p| p.matches(&item.name))
                && local
                    .get(&item.name)
                    .is_none_or(|l| item.version > l.version);
            if !wanted || busy.contains(&item.name) || self.running.contains_key(&item.name) {
                continue;
            }
            if self
                .retries
                .get(&item.name)
                .is_some_and(|r| now < r.not_before)
            {
                continue;
            }
            self.running.insert(item.name.clone(), item.key());
            out.push(Wanted {
                name: item.name.clone(),
                size: item.size,
                version: item.version,
            });
        }
        out
    }

    /// A download `step` asked for ended. `random` spreads the wait after
    /// a failure (any value; the caller's `crate::rng`).
    pub fn finished(&mut self, name: &str, ok: bool, now: Instant, random: u64) {
        let Some(key) = self.running.remove(name) else {
            return;
        };
        if ok {
            self.retries.remove(name);
            return;
        }
        let failures = match self.retries.get(name) {
            Some(r) if r.key == key => r.failures + 1,
            _ => 1,
        };
        let retry = Retry {
            key,
            failures,
            not_before: now + retry_delay(failures, random),
        };
        self.retries.insert(name.to_string(), retry);
    }

    /// Follow downloads running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Items waiting to be tried again, with how long is left.
    pub fn waiting(&self, now: Instant) -> Vec<(String, Duration)> {
        self.retries
            .iter()
            .filter(|(_, r)| now < r.not_before)
            .map(|(n, r)| (n.clone(), r.not_before - now))
            .collect()
    }

    /// A retry is for one version: a new version, or the item gone from
    /// the swarm, starts over.
    fn forget_stale_retries(&mut self, swarm: &[SwarmItem]) {
        let current: BTreeMap<&str, Key> =
            swarm.iter().map(|i| (i.name.as_str(), i.key())).collect();
        self.retries
            .retain(|name, r| current.get(name.as_str()) == Some(&r.key));
    }
}

/// The wait after `failures` failures in a row: 2 s doubling to 60 s,
/// plus up to a quarter of it from `random`.
pub fn retry_delay(failures: u32, random: u64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = (FIRST_RETRY * (1u32 << doublings)).min(MAX_RETRY);
    let quarter_ms = base.as_millis() as u64 / 4;
    base + Duration::from_millis(random % (quarter_ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5(b: u8) -> Md5Digest {
        [b; 16]
    }

    fn item(name: &str, version: u32, holders: u32) -> SwarmItem {
        SwarmItem {
            name: name.into(),
            size: 1000,
            md5: md5(version as u8),
            version,
            holders,
        }
    }

    fn patterns(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    fn local(list: &[(&str, u32)]) -> BTreeMap<String, Local> {
        list.iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    Local {
                        md5: md5(*v as u8),
                        version: *v,
                    },
                )
            })
            .collect()
    }

    fn names(fetches: &[Wanted]) -> Vec<&str> {
        fetches.iter().map(|f| f.name.as_str()).collect()
    }

    struct Setup {
        f: Follower,
        t0: Instant,
        all: Vec<Pattern>,
        none: BTreeSet<String>,
    }

    fn setup() -> Setup {
        Setup {
            f: Follower::new(),
            t0: Instant::now(),
            all: patterns(&["*"]),
            none: BTreeSet::new(),
        }
    }

    #[test]
    fn a_missing_matching_item_is_fetched_once() {
        let mut s = setup();
        let swarm = [item("a", 1, 1)];
        let got = s.f.step(s.t0, &s.all, &swarm, &local(&[]), &s.none);
        assert_eq!(
            got,
            [Wanted {
                name: "a".into(),
                size: 1000,
                version: 1
            }]
        );
        assert!(
            s.f.step(s.t0, &s.all, &swarm, &local(&[]), &s.none)
                .is_empty(),
            "already running"
        );
        s.f.finished("a", true, s.t0, 0);
        assert!(
            s.f.step(s.t0, &s.all, &swarm, &local(&[("a", 1)]), &s.none)
                .is_empty(),
            "held now"
        );
    }

    #[test]
    fn only_names_a_pattern_matches_are_fetched() {
        let mut s = setup();
        let swarm = [
            item("logs-1", 1, 1),
            item("movie", 1, 1),
            item("logs-2", 1, 1),
        ];
        let got =
            s.f.step(s.t0, &patterns(&["logs-*"]), &swarm, &local(&[]), &s.none);
        assert_eq!(names(&got), ["logs-1", "logs-2"]);
        let mut s = setup();
        assert!(
            s.f.step(s.t0, &[], &swarm, &local(&[]), &s.none).is_empty(),
            "no pattern, nothing"
        );
    }

    #[test]
    fn a_newer_swarm_version_is_fetched_an_equal_or_older_one_is_not() {
        let mut s = setup();
        let swarm = [item("new", 3, 1), item("same", 2, 1), item("older", 1, 1)];
        let mine = local(&[("new", 2), ("same", 2), ("older", 2)]);
        let got = s.f.step(s.t0, &s.all, &swarm, &mine, &s.none);
        assert_eq!(
            got,
            [Wanted {
                name: "new".into(),
                size: 1000,
                version: 3
            }]
        );
    }

    #[test]
    fn an_item_nobody_holds_is_not_attempted() {
        let mut s = setup();
        let swarm = [item("orphan", 1, 0), item("held", 1, 2)];
        let got = s.f.step(s.t0, &s.all, &swarm, &local(&[]), &s.none);
        assert_eq!(names(&got), ["held"]);
    }

    #[test]
    fn at_most_three_run_at_once_and_the_next_starts_when_one_ends() {
        let mut s = setup();
        let swarm: Vec<SwarmItem> = (0..5).map(|i| item(&format!("f{i}"), 1, 1)).collect();
        let got = s.f.step(s.t0, &s.all, &swarm, &local(&[]), &s.none);
        assert_eq!(names(&got), ["f0", "f1", "f2"]);
        assert_eq!(s.f.running(), MAX_AT_ONCE);
        assert!(s
            .f
            .step(s.t0, &s.all, &swarm, &local(&[]), &s.none)
            .is_empty());
        s.f.finished("f1", true, s.t0, 0);
        let got =
            s.f.step(s.t0, &s.all, &swarm, &local(&[("f1", 1)]), &s.none);
        assert_eq!(names(&got), ["f3"]);
    }

    #[test]
    fn a_download_someone_else_started_is_left_to_them() {
        let mut s = setup();
        let swarm = [item("a", 1, 1), item("b", 1, 1)];
        let busy = BTreeSet::from(["a".to_string()]);
        let got = s.f.step(s.t0, &s.all, &swarm, &local(&[]), &busy);
        assert_eq!(names(&got), ["b"]);
    }

    #[test]
    fn failures_back_off_doubling_to_a_minute() {
        let mut s = setup();
        let swarm = [item("a", 1, 1)];
        let mut now = s.t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert_eq!(
                names(&s.f.step(now, &s.all, &swarm, &local(&[]), &s.none)),
                ["a"]
            );
            s.f.finished("a", false, now, 0);
            let wait = s.f.waiting(now)[0].1;
            // Not a moment before the wait is over.
            let early = now + wait - Duration::from_millis(1);
            assert!(s
                .f
                .step(early, &s.all, &swarm, &local(&[]), &s.none)
                .is_empty());
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let mut s = setup();
        let swarm = [item("a", 1, 1)];
        for _ in 0..3 {
            s.f.step(
                s.t0 + Duration::from_secs(600),
                &s.all,
                &swarm,
                &local(&[]),
                &s.none,
            );
            s.f.finished("a", false, s.t0, 0);
        }
        let later = s.t0 + Duration::from_secs(600);
        assert_eq!(
            names(&s.f.step(later, &s.all, &swarm, &local(&[]), &s.none)),
            ["a"]
        );
        s.f.finished("a", true, later, 0);
        assert!(s.f.waiting(later).is_empty());
        // Deleted by hand later: fetched again, and a failure waits 2 s again.
        s.f.step(later, &s.all, &swarm, &local(&[]), &s.none);
        s.f.finished("a", false, later, 0);
        assert_eq!(s.f.waiting(later), [("a".to_string(), FIRST_RETRY)]);
    }

    #[test]
    fn a_new_swarm_version_ends_the_wait() {
        let mut s = setup();
        let v2 = [item("a", 2, 1)];
        let mine = local(&[("a", 1)]);
        for _ in 0..4 {
            s.f.step(s.t0 + Duration::from_secs(600), &s.all, &v2, &mine, &s.none);
            s.f.finished("a", false, s.t0, 0);
        }
        assert!(
            s.f.step(s.t0, &s.all, &v2, &mine, &s.none).is_empty(),
            "waiting"
        );
        let v3 = [item("a", 3, 1)];
        let got = s.f.step(s.t0, &s.all, &v3, &mine, &s.none);
        assert_eq!(names(&got), ["a"], "a new version is tried at once");
        s.f.finished("a", false, s.t0, 0);
        assert_eq!(
            s.f.waiting(s.t0)[0].1,
            FIRST_RETRY,
            "and its wait starts over"
        );
    }

    #[test]
    fn an_item_gone_from_the_swarm_forgets_its_wait() {
        let mut s = setup();
        let swarm = [item("a", 1, 1)];
        s.f.step(s.t0, &s.all, &swarm, &local(&[]), &s.none);
        s.f.finished("a", false, s.t0, 0);
        s.f.step(s.t0, &s.all, &[], &local(&[]), &s.none);
        assert!(s.f.waiting(s.t0).is_empty());
    }

    #[test]
    fn the_jitter_adds_at_most_a_quarter() {
        assert_eq!(retry_delay(1, 0), Duration::from_secs(2));
        assert_eq!(retry_delay(1, 500), Duration::from_millis(2500));
        assert_eq!(retry_delay(1, 501), Duration::from_millis(2000));
        for r in [0, 1, 7, 9_999, u64::MAX] {
            for failures in 1..40 {
                let d = retry_delay(failures, r);
                let base = retry_delay(failures, 0);
                assert!(d >= base && d <= base + base / 4, "{failures} {r}: {d:?}");
                assert!(d <= MAX_RETRY + MAX_RETRY / 4);
            }
        }
    }
}
