//! Background downloads, in one place: a `get` typed on a terminal, each
//! `--get`, the web page's Fetch and the follower's downloads all start
//! here. One cap (`MAX_RUNNING` at once; the rest wait their turn in
//! order), one refusal of a name already on its way, and one record of
//! how the last `KEEP_OUTCOMES` ended, which `status` and the web UI show.
//!
//! The bookkeeping (`Book`) is pure; `Downloads` puts it behind a mutex
//! (held for a map update, never across I/O) and runs the jobs: a
//! `download` thread per free slot, which, when its job ends, takes the
//! next waiting one rather than ending and starting another.

use super::get::GetReport;
use super::Peer;
use crate::error::{Error, Result};
use crate::names::check_file_name;
use log::warn;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Background downloads running at once; more wait their turn.
pub const MAX_RUNNING: usize = 4;
/// Ended downloads remembered for `status` and the web UI.
pub const KEEP_OUTCOMES: usize = 32;

/// Who asked for a background download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `get` typed on a terminal.
    Shell,
    /// `--get` on the command line.
    Startup,
    /// The web page's Fetch.
    Web,
    /// A follow pattern.
    Follow,
}

impl Origin {
    /// How `status` names it.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Shell => "get",
            Origin::Startup => "--get",
            Origin::Web => "web",
            Origin::Follow => "follow",
        }
    }
}

/// A download that ended well: the contract's `done` line and what the
/// web page shows of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    pub line: String,
    pub bytes: u64,
    pub secs: f64,
}

/// How a background download ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub name: String,
    pub origin: Origin,
    pub at: Instant,
    /// The error's text (without `error: `) when it failed.
    pub result: std::result::Result<Done, String>,
}

impl Finished {
    fn of(name: String, origin: Origin, at: Instant, result: &Result<GetReport>) -> Finished {
        let result = match result {
            Ok(report) => Ok(Done {
                line: done_line(report),
                bytes: report.bytes,
                secs: report.secs,
            }),
            Err(e) => Err(e.to_string()),
        };
        Finished {
            name,
            origin,
            at,
            result,
        }
    }

    /// `done <name> bytes=...` or `error: ...`.
    pub fn line(&self) -> String {
        match &self.result {
            Ok(done) => done.line.clone(),
            Err(e) => format!("error: {e}"),
        }
    }
}

/// The report's `done` line alone (not a `resumed` line before it, nor
/// the `from` lines after).
pub fn done_line(report: &GetReport) -> String {
    let text = report.to_string();
    text.lines()
        .find(|l| l.starts_with("done "))
        .unwrap_or(&text)
        .to_string()
}

/// Where a name stands, for the web page.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Waiting,
    Running,
    Done(Done),
    Failed(String),
}

/// Who runs, who waits, and what ended. `J` is the job itself (a closure
/// for `Downloads`, `()` in the tests).
struct Book<J> {
    running: BTreeMap<String, Origin>,
    waiting: VecDeque<(String, Origin, J)>,
    /// Newest last.
    recent: VecDeque<Finished>,
}

impl<J> Book<J> {
    fn new() -> Book<J> {
        Book {
            running: BTreeMap::new(),
            waiting: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    /// Takes a job: `Some(job)` to run it now (a slot was free), `None`
    /// when it waits. A name already running or waiting is refused.
    fn submit(&mut self, name: &str, origin: Origin, job: J) -> Result<Option<J>> {
        if self.running.contains_key(name) {
            return Err(Error::Conflict(format!(
                "{name} is already being downloaded"
            )));
        }
        if self.waiting.iter().any(|(n, _, _)| n == name) {
            return Err(Error::Conflict(format!(
                "{name} is already waiting its turn to download"
            )));
        }
        if self.running.len() < MAX_RUNNING {
            self.running.insert(name.to_string(), origin);
            return Ok(Some(job));
        }
        self.waiting.push_back((name.to_string(), origin, job));
        Ok(None)
    }

    /// A running job ended: its outcome is kept, and its slot goes to the
    /// first waiting job, returned for the same thread to run.
    fn finish(&mut self, outcome: Finished) -> Option<(String, Origin, J)> {
        self.running.remove(&outcome.name);
        self.recent.push_back(outcome);
        while self.recent.len() > KEEP_OUTCOMES {
            self.recent.pop_front();
        }
        let next = self.waiting.pop_front()?;
        self.running.insert(next.0.clone(), next.1);
        Some(next)
    }

    /// A job given a slot that could not start (no thread): as if never
    /// submitted.
    fn abandon(&mut self, name: &str) {
        self.running.remove(name);
    }

    fn states(&self) -> BTreeMap<String, State> {
        let mut out = BTreeMap::new();
        for o in &self.recent {
            let state = match &o.result {
                Ok(done) => State::Done(done.clone()),
                Err(e) => State::Failed(e.clone()),
            };
            out.insert(o.name.clone(), state);
        }
        for (name, _, _) in &self.waiting {
            out.insert(name.clone(), State::Waiting);
        }
        for name in self.running.keys() {
            out.insert(name.clone(), State::Running);
        }
        out
    }
}

type Run = Box<dyn FnOnce() -> Result<GetReport> + Send>;
type Then = Box<dyn FnOnce(&Result<GetReport>) + Send>;

struct Job {
    run: Run,
    then: Then,
    completion: Completion,
}

/// The background downloads of one peer.
pub struct Downloads {
    book: Mutex<Book<Job>>,
    /// The peer's shutdown flag: waiting jobs are not started after it.
    cancel: Arc<AtomicBool>,
}

impl Downloads {
    pub fn new(cancel: Arc<AtomicBool>) -> Arc<Downloads> {
        Arc::new(Downloads {
            book: Mutex::new(Book::new()),
            cancel,
        })
    }

    /// Starts `run` now if a slot is free, else when one frees. `then`
    /// gets the result on the download's thread, before the completion says
    /// it is over.
    pub fn start(
        self: &Arc<Self>,
        name: &str,
        origin: Origin,
        run: impl FnOnce() -> Result<GetReport> + Send + 'static,
        then: impl FnOnce(&Result<GetReport>) + Send + 'static,
    ) -> Result<Completion> {
        if self.cancel.load(Ordering::Acquire) {
            return Err(Error::Cancelled);
        }
        let completion = Completion::new();
        let job = Job {
            run: Box::new(run),
            then: Box::new(then),
            completion: completion.clone(),
        };
        let Some(job) = self.lock().submit(name, origin, job)? else {
            return Ok(completion);
        };
        let (me, n) = (self.clone(), name.to_string());
        let spawned = std::thread::Builder::new()
            .name("download".into())
            .spawn(move || me.work(n, origin, job));
        if let Err(e) = spawned {
            self.lock().abandon(name);
            return Err(Error::io("starting a download thread", e));
        }
        Ok(completion)
    }

    /// Runs a job, then each waiting one its slot is handed to.
    fn work(&self, name: String, origin: Origin, job: Job) {
        let mut next = Some((name, origin, job));
        while let Some((name, origin, job)) = next.take() {
            let result = if self.cancel.load(Ordering::Acquire) {
                Err(Error::Cancelled)
            } else {
                catch_unwind(AssertUnwindSafe(job.run)).unwrap_or_else(|_| {
                    warn!("the download of {name} panicked (a bug); its slot is free again");
                    Err(Error::Local(format!(
                        "the download of {name} failed on a bug"
                    )))
                })
            };
            let outcome = Finished::of(name, origin, Instant::now(), &result);
            next = self.lock().finish(outcome);
            (job.then)(&result);
            job.completion.set(result.is_ok());
        }
    }

    /// Names running or waiting.
    pub fn busy(&self) -> BTreeSet<String> {
        let book = self.lock();
        book.running
            .keys()
            .cloned()
            .chain(book.waiting.iter().map(|(n, _, _)| n.clone()))
            .collect()
    }

    /// Jobs waiting their turn, first to start first.
    pub fn waiting(&self) -> Vec<(String, Origin)> {
        self.lock()
            .waiting
            .iter()
            .map(|(n, o, _)| (n.clone(), *o))
            .collect()
    }

    /// How the last downloads ended, newest first.
    pub fn recent(&self) -> Vec<Finished> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    /// Each name's latest state: running, waiting, or its last outcome.
    pub fn states(&self) -> BTreeMap<String, State> {
        self.lock().states()
    }

    fn lock(&self) -> MutexGuard<'_, Book<Job>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `peer.get(name)` in the background, for `origin`; `then` gets the
/// result (prints it, for the shell and `--get`).
pub fn get(
    peer: &Arc<Peer>,
    name: &str,
    origin: Origin,
    then: impl FnOnce(&Result<GetReport>) + Send + 'static,
) -> Result<Completion> {
    check_file_name(name)?;
    let (p, n) = (peer.clone(), name.to_string());
    peer.downloads()
        .start(name, origin, move || p.get(&n), then)
}

/// Says when a background download is over, and whether it succeeded.
#[derive(Clone)]
pub struct Completion(Arc<(Mutex<Option<bool>>, Condvar)>);

impl Completion {
    fn new() -> Completion {
        Completion(Arc::new((Mutex::new(None), Condvar::new())))
    }

    /// Waits until it is over; true if it succeeded.
    pub fn wait(&self) -> bool {
        let (lock, over) = &*self.0;
        let mut ended = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ok) = *ended {
                return ok;
            }
            ended = over.wait(ended).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn is_finished(&self) -> bool {
        self.0
             .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn set(&self, ok: bool) {
        let (lock, over) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(ok);
        over.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(name: &str, ok: bool) -> Finished {
        Finished {
            name: name.into(),
            origin: Origin::Shell,
            at: Instant::now(),
            result: if ok {
                Ok(Done {
                    line: format!("done {name} bytes=1"),
                    bytes: 1,
                    secs: 0.5,
                })
            } else {
                Err("no holder".into())
            },
        }
    }

    #[test]
    fn beyond_the_cap_jobs_wait_and_start_in_order_as_slots_free() {
        let mut b = Book::new();
        for i in 0..MAX_RUNNING {
            assert_eq!(b.submit(&format!("r{i}"), Origin::Web, i).unwrap(), Some(i));
        }
        assert_eq!(b.submit("w1", Origin::Follow, 10).unwrap(), None);
        assert_eq!(b.submit("w2", Origin::Startup, 11).unwrap(), None);
        assert_eq!(b.states()["w1"], State::Waiting);
        let next = b.finish(ended("r2", true)).unwrap();
        assert_eq!(
            (next.0.as_str(), next.1, next.2),
            ("w1", Origin::Follow, 10)
        );
        assert_eq!(b.running.len(), MAX_RUNNING);
        assert_eq!(b.states()["w1"], State::Running);
        assert_eq!(b.finish(ended("r0", true)).unwrap().0, "w2");
        assert!(b.finish(ended("r1", true)).is_none());
        assert_eq!(b.running.len(), MAX_RUNNING - 1);
    }

    #[test]
    fn a_name_on_its_way_is_refused_once_ended_it_may_come_again() {
        let mut b = Book::new();
        b.submit("a", Origin::Shell, ()).unwrap();
        let e = b.submit("a", Origin::Web, ()).unwrap_err().to_string();
        assert!(e.contains("already being downloaded"), "{e}");
        for i in 1..MAX_RUNNING {
            b.submit(&format!("r{i}"), Origin::Shell, ()).unwrap();
        }
        b.submit("w", Origin::Follow, ()).unwrap();
        let e = b.submit("w", Origin::Follow, ()).unwrap_err().to_string();
        assert!(e.contains("waiting its turn"), "{e}");
        b.finish(ended("a", false));
        assert_eq!(b.states()["a"], State::Failed("no holder".into()));
        assert_eq!(
            b.submit("a", Origin::Shell, ()).unwrap(),
            None,
            "a retry waits its turn"
        );
    }

    #[test]
    fn the_record_keeps_the_last_outcomes() {
        let mut b: Book<()> = Book::new();
        for i in 0..KEEP_OUTCOMES + 5 {
            let name = format!("f{i}");
            b.submit(&name, Origin::Shell, ()).unwrap();
            b.finish(ended(&name, i % 2 == 0));
        }
        assert_eq!(b.recent.len(), KEEP_OUTCOMES);
        assert_eq!(
            b.recent.front().unwrap().name,
            "f5",
            "the oldest went first"
        );
        assert_eq!(
            b.recent.back().unwrap().line(),
            format!("done f{} bytes=1", KEEP_OUTCOMES + 4)
        );
        assert_eq!(b.recent[0].line(), "error: no holder");
    }

    fn report(name: &str) -> GetReport {
        GetReport {
            name: name.into(),
            bytes: 10,
            resumed: 4,
            reused: 0,
            md5: [0; 16],
            secs: 1.0,
            sources: Vec::new(),
        }
    }

    #[test]
    fn jobs_run_on_their_threads_and_completions_say_how_they_ended() {
        let d = Downloads::new(Arc::new(AtomicBool::new(false)));
        let (tx, rx) = crossbeam_channel::unbounded();
        let (gate_tx, gate) = crossbeam_channel::unbounded::<()>();
        let mut completions = Vec::new();
        for i in 0..MAX_RUNNING + 2 {
            let (gate, tx) = (gate.clone(), tx.clone());
            let name = format!("f{i}");
            let t = d
                .start(
                    &name.clone(),
                    Origin::Web,
                    move || {
                        let _ = gate.recv();
                        if i == 1 {
                            Err(Error::NoSources("nobody".into()))
                        } else {
                            Ok(report(&name))
                        }
                    },
                    move |r| tx.send(r.is_ok()).unwrap(),
                )
                .unwrap();
            completions.push(t);
        }
        assert_eq!(d.waiting().len(), 2, "beyond the cap");
        assert!(d
            .start("f0", Origin::Shell, || Ok(report("x")), |_| {})
            .is_err());
        for _ in 0..MAX_RUNNING + 2 {
            gate_tx.send(()).unwrap();
        }
        let oks: Vec<bool> = completions.iter().map(Completion::wait).collect();
        assert_eq!(oks, [true, false, true, true, true, true]);
        assert_eq!(rx.try_iter().filter(|ok| !ok).count(), 1);
        let recent = d.recent();
        assert_eq!(recent.len(), MAX_RUNNING + 2);
        let f1 = recent.iter().find(|o| o.name == "f1").unwrap();
        assert_eq!(f1.line(), "error: nobody");
        let f0 = recent.iter().find(|o| o.name == "f0").unwrap();
        assert!(f0.line().starts_with("done f0 bytes=10 "), "{}", f0.line());
        assert!(d.busy().is_empty());
    }

    #[test]
    fn after_shutdown_waiting_jobs_are_not_started() {
        let cancel = Arc::new(AtomicBool::new(false));
        let d = Downloads::new(cancel.clone());
        let (gate_tx, gate) = crossbeam_channel::unbounded::<()>();
        let (started_tx, started) = crossbeam_channel::unbounded::<usize>();
        let mut completions = Vec::new();
        for i in 0..MAX_RUNNING + 1 {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            let run = move || {
                started_tx.send(i).unwrap();
                let _ = gate.recv();
                Err(Error::Cancelled)
            };
            completions.push(
                d.start(&format!("f{i}"), Origin::Startup, run, |_| {})
                    .unwrap(),
            );
        }
        for _ in 0..MAX_RUNNING {
            started.recv().unwrap();
        }
        cancel.store(true, Ordering::Release);
        drop(gate_tx);
        assert!(completions.iter().all(|t| !t.wait()));
        let ran: Vec<usize> = started.try_iter().collect();
        assert!(ran.is_empty(), "the waiting one never ran: {ran:?}");
        assert_eq!(d.recent().len(), MAX_RUNNING + 1);
        assert!(matches!(
            d.start("late", Origin::Shell, || Ok(report("late")), |_| {}),
            Err(Error::Cancelled)
        ));
    }

    #[test]
    fn a_panicking_job_gives_its_slot_back() {
        let d = Downloads::new(Arc::new(AtomicBool::new(false)));
        let t = d
            .start("p", Origin::Follow, || panic!("boom"), |_| {})
            .unwrap();
        assert!(!t.wait());
        assert!(d.busy().is_empty());
        assert!(d.recent()[0].line().contains("failed on a bug"));
    }
}
