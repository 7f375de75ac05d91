//! A peer's trackers: the positional one and each `--tracker`. They share
//! nothing, so the peer tells each of them everything (one UDP session
//! per tracker, `tracker_client::run`, and NEW_FILE to each) and asks its
//! queries of the first that answers, in the order `rotation` keeps.

use super::rotation::{Health, Rotation};
use super::tracker_client;
use crate::digest::Md5Digest;
use crate::error::{code, Error, Result};
use crate::metrics::Sample;
use crate::record::FileRecord;
use crate::wire::{FileSummary, Holder};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The trackers' addresses (`host:port`) and what is known of each.
pub struct Trackers {
    addrs: Vec<String>,
    rotation: Mutex<Rotation>,
}

/// What one tracker's try says about asking the next.
enum Tried<T> {
    Answer(T),
    /// It answered, and did not know: another may.
    Unknown(Error),
    /// It did not answer.
    Down(Error),
    /// It answered with a refusal that stands.
    Refused(Error),
}

/// How long a query keeps asking when a tracker says it is busy (each
/// try already asks a busy tracker a few times, `tracker_client::query`):
/// a fleet that starts at once behind one address, hundreds of hosts
/// against the tracker's 32 connections per address, takes turns on an
/// overloaded tracker rather than failing.
const BUSY_PATIENCE: Duration = Duration::from_secs(30);
/// The pause between two rounds, plus as much again at random so that
/// hosts refused together do not come back together.
const BUSY_PAUSE: Duration = Duration::from_millis(500);

/// The tracker's own word that it is full for now.
fn is_busy(e: &Error) -> bool {
    matches!(
        e,
        Error::Remote {
            code: code::BUSY,
            ..
        }
    )
}

/// Sorts a query's error: is it the tracker's verdict, or its absence?
fn tried<T>(result: Result<T>) -> Tried<T> {
    match result {
        Ok(v) => Tried::Answer(v),
        Err(e @ Error::NotFound(_)) => Tried::Unknown(e),
        Err(
            e @ (Error::NoSources(_)
            | Error::Net { .. }
            | Error::Timeout(_)
            | Error::Protocol(_)
            | Error::FrameTooLarge { .. }
            | Error::Secret { .. }),
        ) => Tried::Down(e),
        Err(
            e @ Error::Remote {
                code: code::BUSY | code::INTERNAL | code::PROTOCOL | code::SECRET,
                ..
            },
        ) => Tried::Down(e),
        Err(e) => Tried::Refused(e),
    }
}

impl Trackers {
    /// `addrs`: at least one, the positional tracker first.
    pub fn new(addrs: Vec<String>) -> Trackers {
        assert!(!addrs.is_empty(), "a peer has a tracker");
        Trackers {
            rotation: Mutex::new(Rotation::new(addrs.len())),
            addrs,
        }
    }

    fn rotation(&self) -> MutexGuard<'_, Rotation> {
        self.rotation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every tracker's address, in the order they were named.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Tracker `i`'s address.
    pub fn addr(&self, i: usize) -> &str {
        &self.addrs[i]
    }

    /// Each tracker's address and health, in the order they were named.
    pub fn health(&self) -> Vec<(String, Health)> {
        let r = self.rotation();
        self.addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), r.health(i)))
            .collect()
    }

    /// For `/metrics`: per tracker, whether it answers, and for how long
    /// it has been failing.
    pub fn samples(&self, now: Instant) -> Vec<Sample> {
        let health = self.health();
        let up = health.iter().map(|(addr, h)| {
            let answering = matches!(h, Health::Answering(_));
            Sample::gauge(
                "peer_tracker_up",
                "1 while the tracker answers, 0 while it fails or was not reached yet.",
                answering as u64,
            )
            .with_label("tracker", addr.clone())
        });
        let failing = health.iter().map(|(addr, h)| {
            let secs = match h {
                Health::Failing { since, .. } => now.saturating_duration_since(*since).as_secs(),
                _ => 0,
            };
            Sample::gauge(
                "peer_tracker_failing_seconds",
                "How long the tracker has failed every exchange (0 while it answers).",
                secs,
            )
            .with_label("tracker", addr.clone())
        });
        up.chain(failing).collect()
    }

    /// Whether any tracker answered its last exchange.
    pub fn any_answering(&self) -> bool {
        self.rotation().any_answering()
    }

    /// Tracker `i` answered (a query, or its UDP session).
    pub fn answered(&self, i: usize) {
        self.rotation().answered(i, Instant::now());
    }

    /// Tracker `i` did not answer.
    pub fn failed(&self, i: usize) {
        self.rotation().failed(i, Instant::now());
    }

    /// Asks `ask` of each tracker in turn until one answers. One that
    /// answers "not found" does not end the round (a tracker started
    /// empty learns from the peers within two intervals); one that
    /// refuses does.
    /// When no tracker answers and one says it is busy, the round is
    /// tried again after a pause, for up to `BUSY_PATIENCE`.
    fn first<T>(&self, ask: impl Fn(&str) -> Result<T>) -> Result<T> {
        let give_up = Instant::now() + BUSY_PATIENCE;
        loop {
            match self.round(&ask) {
                Err(e) if is_busy(&e) && Instant::now() + BUSY_PAUSE < give_up => {
                    tracker_client::sleep_jittered(BUSY_PAUSE);
                }
                other => return other,
            }
        }
    }

    /// One try of `ask` on each tracker, in the rotation's order.
    fn round<T>(&self, ask: &impl Fn(&str) -> Result<T>) -> Result<T> {
        let plan = self.rotation().plan(Instant::now());
        let (mut unknown, mut down) = (None, Vec::new());
        for i in plan {
            let result = tried(ask(&self.addrs[i]));
            if matches!(result, Tried::Down(_)) {
                self.failed(i);
            } else {
                self.answered(i);
            }
            match result {
                Tried::Answer(v) => return Ok(v),
                Tried::Refused(e) => return Err(e),
                Tried::Unknown(e) => {
                    unknown.get_or_insert(e);
                }
                Tried::Down(e) => down.push(e),
            }
        }
        Err(unknown.unwrap_or_else(|| self.none_answered(down)))
    }

    /// The error when no tracker answered: BUSY when one said so (it is
    /// there, and worth asking again); else the one tracker's own, or the
    /// first one's with a word on the others.
    fn none_answered(&self, mut down: Vec<Error>) -> Error {
        if let Some(busy) = down.iter().position(is_busy) {
            return down.swap_remove(busy);
        }
        let others = down.len().saturating_sub(1);
        let first = down.swap_remove(0);
        match first {
            Error::NoSources(m) if others > 0 => Error::NoSources(format!(
                "{m}; nor did the {others} other tracker{} answer",
                if others == 1 { "" } else { "s" }
            )),
            e => e,
        }
    }

    /// The record of `name`, from the first tracker that has it.
    pub fn fetch_record(&self, name: &str) -> Result<FileRecord> {
        self.first(|t| tracker_client::fetch_record(t, name))
    }

    /// The record of `name` and, asked with it, its current holders
    /// (`tracker_client::fetch_record_and_holders`), from the first tracker
    /// that has it.
    pub fn fetch_record_and_holders(
        &self,
        name: &str,
        site: Option<&str>,
    ) -> Result<(FileRecord, Option<Vec<Holder>>)> {
        self.first(|t| tracker_client::fetch_record_and_holders(t, name, site))
    }

    /// Who holds `name` (or its version `md5`), from the first tracker
    /// that knows it.
    pub fn who_has(&self, name: &str, md5: Option<&Md5Digest>) -> Result<Vec<Holder>> {
        self.who_has_at(name, md5, None)
    }

    /// `who_has` for a peer in `site`: that site's holders first, each
    /// with its site (`tracker_client::who_has_at`).
    pub fn who_has_at(
        &self,
        name: &str,
        md5: Option<&Md5Digest>,
        site: Option<&str>,
    ) -> Result<Vec<Holder>> {
        self.first(|t| tracker_client::who_has_at(t, name, md5, site))
    }

    /// Every item the first tracker that answers knows.
    pub fn list_files(&self) -> Result<Vec<FileSummary>> {
        self.first(tracker_client::list_files)
    }

    /// Publishes `record` (NEW_FILE) on every tracker not backing off (on
    /// all when every one is): Ok when one took it and none refused it.
    /// A tracker that is down learns it from our announces when it is
    /// back (it flags the item unknown, and the session publishes it).
    pub fn publish(&self, publisher: &str, record: &FileRecord) -> Result<()> {
        let (plan, ready) = {
            let r = self.rotation();
            let now = Instant::now();
            (r.plan(now), r.ready(now))
        };
        let ask = if ready == 0 { plan.len() } else { ready };
        let (mut taken, mut down) = (false, Vec::new());
        for &i in &plan[..ask] {
            let result = tracker_client::publish(&self.addrs[i], publisher, record);
            match tried(result) {
                Tried::Answer(()) => {
                    self.answered(i);
                    taken = true;
                }
                Tried::Down(e) => {
                    self.failed(i);
                    down.push(e);
                }
                Tried::Unknown(e) | Tried::Refused(e) => {
                    self.answered(i);
                    return Err(e);
                }
            }
        }
        if taken {
            return Ok(());
        }
        Err(self.none_answered(down))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tracker_that_does_not_know_a_name_is_not_the_last_word() {
        let t = Trackers::new(vec!["a:1".into(), "b:1".into()]);
        let got = t.first(|addr| match addr {
            "a:1" => Err(Error::NotFound("x".into())),
            _ => Ok(addr.to_string()),
        });
        assert_eq!(got.unwrap(), "b:1");
        assert!(matches!(t.health()[0].1, Health::Answering(_)));
    }

    #[test]
    fn a_tracker_that_is_down_is_skipped_and_moves_to_the_back() {
        let t = Trackers::new(vec!["a:1".into(), "b:1".into()]);
        let asked = Mutex::new(Vec::new());
        let ask = |addr: &str| {
            asked.lock().unwrap().push(addr.to_string());
            match addr {
                "a:1" => Err(Error::NoSources("cannot reach a".into())),
                _ => Ok(()),
            }
        };
        t.first(ask).unwrap();
        t.first(ask).unwrap();
        assert_eq!(*asked.lock().unwrap(), ["a:1", "b:1", "b:1"]);
        assert!(matches!(t.health()[0].1, Health::Failing { .. }));
    }

    #[test]
    fn metrics_say_which_tracker_answers_and_how_long_one_has_failed() {
        let t = Trackers::new(vec!["a:1".into(), "b:1".into()]);
        t.answered(0);
        let failed_at = Instant::now();
        t.failed(1);
        let page = crate::metrics::render(&t.samples(failed_at + Duration::from_secs(42)));
        for line in [
            "p2pshare_peer_tracker_up{tracker=\"a:1\"} 1",
            "p2pshare_peer_tracker_up{tracker=\"b:1\"} 0",
            "p2pshare_peer_tracker_failing_seconds{tracker=\"a:1\"} 0",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in\n{page}");
        }
        let failing = page
            .lines()
            .find_map(|l| l.strip_prefix("p2pshare_peer_tracker_failing_seconds{tracker=\"b:1\"} "))
            .unwrap();
        assert!(
            (41..=42).contains(&failing.parse::<u64>().unwrap()),
            "{page}"
        );
    }

    #[test]
    fn a_refusal_ends_the_round_and_no_answer_names_every_tracker() {
        let t = Trackers::new(vec!["a:1".into(), "b:1".into(), "c:1".into()]);
        let e = t
            .first(|_| -> Result<()> { Err(Error::Conflict("taken".into())) })
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        let e = t
            .first(|a| -> Result<()> { Err(Error::NoSources(format!("cannot reach {a}"))) })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            Error::NoSources("cannot reach a:1; nor did the 2 other trackers answer".into())
                .to_string()
        );
        assert!(!t.any_answering());
    }

    fn busy() -> Error {
        Error::Remote {
            code: code::BUSY,
            message: "server busy".into(),
        }
    }

    #[test]
    fn a_busy_tracker_is_asked_again_until_it_answers() {
        // One tracker is down, the other busy for two rounds: the query
        // waits its turn instead of failing.
        let t = Trackers::new(vec!["a:1".into(), "b:1".into()]);
        let busy_left = Mutex::new(2);
        let got = t.first(|addr| match addr {
            "a:1" => Err(Error::NoSources("cannot reach a".into())),
            _ => {
                let mut left = busy_left.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Err(busy());
                }
                Ok(addr.to_string())
            }
        });
        assert_eq!(got.unwrap(), "b:1");
        assert_eq!(*busy_left.lock().unwrap(), 0);
    }

    #[test]
    fn when_none_answers_busy_is_the_word_that_stands() {
        let t = Trackers::new(vec!["a:1".into(), "b:1".into()]);
        let e = t.none_answered(vec![Error::NoSources("cannot reach a".into()), busy()]);
        assert!(is_busy(&e), "{e}");
    }
}
