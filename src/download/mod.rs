//! One download: a coordinator thread (the caller) spawns a worker per
//! holder, a hasher and a refresher, then watches. Workers claim pieces from
//! the shared plan, verify them and write them through the reassembler; the
//! hasher follows the written prefix with the whole-file MD5; the refresher
//! asks the tracker for holders, so a slow tracker never blocks the
//! coordinator. The coordinator saves resume state every second and ends
//! the download when the plan is complete, when a local failure (a full
//! disk) makes going on pointless, or when no holder is left for the
//! missing pieces.

pub mod fetch;
pub mod holders;
pub mod plan;
pub mod progress;
pub mod reassembler;
pub mod resume;
pub mod reuse;
pub mod room;
pub mod worker;

#[cfg(test)]
mod tests;

use crate::bitfield::Bitfield;
use crate::digest::Md5Digest;
use crate::error::{code, Error, Result};
use crate::metrics::peer::PeerMetrics;
use crate::ratelimit::RateLimiter;
use crate::record::FileRecord;
use crate::units::{fraction, percent};
use crate::wire::Holder;
use crossbeam_channel::{select, Receiver, Sender};
use holders::{Holders, Verdict};
use log::{debug, info, warn};
use plan::Plan;
use progress::Progress;
use reassembler::Reassembler;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use worker::{Source, SourceStats};

const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How often to ask the tracker for holders while workers run...
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);
/// ...and while none does, or early on, when peers that started with us
/// are just joining: sooner, but not in a tight loop.
pub const IDLE_REFRESH_EVERY: Duration = Duration::from_secs(1);
pub const EARLY_REFRESH_EVERY: Duration = Duration::from_millis(500);
/// Early on, while every holder the tracker named is complete: the
/// leechers that started with us may have joined since. Until this
/// download hears of them it is not in a swarm, and reads a seeder told
/// everything in order from the front, where the seeder offers the
/// others their fresh pieces: at `make swarm N=8` the first leecher made
/// the seeder send some 300 blocks twice in its first half second.
pub const ALONE_REFRESH_EVERY: Duration = Duration::from_millis(150);
pub const EARLY: Duration = Duration::from_secs(4);
/// With holders connected but none having anything we miss (they are
/// downloading too), how long to wait for one of them to get something.
const STUCK_AFTER: Duration = Duration::from_secs(20);
/// Failed connections per holder in one download.
pub const MAX_ATTEMPTS: u32 = 2;
/// Holders one download fetches from at once. The tracker's answers are
/// samples of 64 and each refresh brings new ones: without a cap a peer in
/// a swarm of a thousand would end up connected to most of them.
pub const MAX_WORKERS: usize = 64;
/// BUSY answers per holder before it counts as a failed attempt.
pub const MAX_BUSY: u32 = 10;
/// Longest a worker with nothing to request waits for the plan to change.
pub const WORK_WAIT: Duration = Duration::from_millis(100);

/// What the refresher sends back: the tracker's holder list, or why not.
type HolderAnswer = Result<Vec<Holder>>;

/// Asks the tracker again who holds the file.
pub type Refresh = Arc<dyn Fn() -> Result<Vec<Holder>> + Send + Sync>;

/// What a download needs from its surroundings.
pub struct Job<'a> {
    pub record: Arc<FileRecord>,
    pub holders: Vec<Holder>,
    pub partial_dir: &'a Path,
    pub self_id: &'a str,
    /// This peer's site (`--site`): holders of other sites give only what
    /// the site lacks (`Plan::claim_remote`). None: every holder is local.
    pub site: Option<&'a str>,
    pub limiter: Option<Arc<RateLimiter>>,
    /// The peer's counters: bytes received, pieces verified and rejected,
    /// holders banned.
    pub metrics: Arc<PeerMetrics>,
    /// The peer's shutdown flag: stops this download and keeps its state.
    pub cancel: Arc<AtomicBool>,
    pub refresh: Refresh,
    pub progress: Arc<Progress>,
    /// Called once the partial file is open, so its verified pieces can be
    /// served while the download runs (leechers share).
    pub share_partial: Option<&'a dyn Fn(Arc<Reassembler>)>,
    /// Local payloads whose pieces are copied before anything is fetched
    /// (the previous version of the item, other items sharing pieces).
    pub reuse: Vec<reuse::Candidate>,
}

pub struct SourceReport {
    pub peer_id: String,
    pub blocks: u64,
    pub rtt_ms: f64,
}

/// A finished, verified download still in its partial file. The caller
/// moves `part` into place, then removes `state`.
pub struct Outcome {
    pub part: PathBuf,
    pub state: PathBuf,
    pub md5: Md5Digest,
    pub sources: Vec<SourceReport>,
}

/// State shared by the coordinator and the workers of one download.
pub struct DownloadState {
    pub record: Arc<FileRecord>,
    plan: Mutex<Plan>,
    changed: Condvar,
    /// Workers in `wait_for_work`: a notify with none costs a system call
    /// for nothing, and it comes with every verified run.
    waiting: AtomicUsize,
    pub reasm: Arc<Reassembler>,
    pub limiter: Option<Arc<RateLimiter>>,
    pub metrics: Arc<PeerMetrics>,
    /// The peer's shutdown flag.
    cancel: Arc<AtomicBool>,
    /// This download is over (complete or failed): workers stop now,
    /// whatever they still have in flight.
    stop: AtomicBool,
    progress: Arc<Progress>,
    events: Sender<Event>,
}

enum Event {
    Exited { peer_id: String, result: Result<()> },
    Complete,
}

impl DownloadState {
    /// The download started from pieces found in local files: an update
    /// of an item (its owner is then spared, `Plan::claim_as`).
    pub fn is_update(&self) -> bool {
        self.progress.is_update()
    }

    pub fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_cancelled(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.cancel.load(Ordering::Acquire)
    }

    pub fn notify(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
    }

    /// Blocks briefly until the plan changes; true when it is complete.
    pub fn wait_for_work(&self) -> bool {
        let plan = self.plan();
        if plan.is_complete() {
            return true;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let (plan, _) = self
            .changed
            .wait_timeout(plan, WORK_WAIT)
            .unwrap_or_else(|p| p.into_inner());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        plan.is_complete()
    }

    /// Verified blocks reached the disk; `complete` if the plan now is.
    /// The workers waiting for work hear of it only when it can give them
    /// some: the plan is complete, or every piece left is claimed (the
    /// endgame, where they may fetch second copies). A write claims and
    /// releases nothing, and waking them all at every write (hundreds a
    /// second) made most of a 100-leecher swarm's context switches, each
    /// worker taking the plan's lock to find nothing.
    pub fn progress_made(&self, blocks: u64, complete: bool) {
        self.progress.verified(blocks);
        if complete {
            let _ = self.events.send(Event::Complete);
        }
        if complete || (self.waiting.load(Ordering::SeqCst) > 0 && self.plan().nothing_needed()) {
            self.notify();
        }
    }
}

struct Running {
    stats: Arc<SourceStats>,
    thread: std::thread::JoinHandle<()>,
    /// A downloader of this peer's site: it shares out with us what the
    /// site fetches from outside (`Coordinator::share_out`).
    sibling: bool,
}

pub fn run(job: Job<'_>) -> Result<Outcome> {
    // Copying local pieces can take seconds on a busy host; by then other
    // peers updating have joined, and a download that went on with the
    // holders learnt before would take every new piece from the owner
    // (it sent 5.8 x the change in `make update-bench` under load). The
    // first refresh is due as if counted from here.
    let holders_at = Instant::now();
    let record = job.record.clone();
    std::fs::create_dir_all(job.partial_dir)
        .map_err(|e| Error::io(format!("creating {}", job.partial_dir.display()), e))?;
    let paths = resume::Paths::new(job.partial_dir, &record.name);
    let (file, mut on_disk) = resume::open(&paths, &record)?;
    if let Err(e) = room::check(
        job.partial_dir,
        &record.name,
        record.size,
        &file,
        resume::state_len(&record),
    ) {
        if on_disk.count() == 0 {
            let _ = std::fs::remove_file(&paths.part);
            resume::remove(&paths);
        }
        return Err(e);
    }
    // Room for the state, kept aside: a save on a disk that has filled
    // since frees it and writes the state there.
    if let Err(e) = resume::reserve(&paths, &record) {
        warn!("{e}");
    }
    let state_file = file
        .try_clone()
        .map_err(|e| Error::io("duplicating a file handle", e))?;
    let resumed = record.blocks_in(&on_disk);
    let reused = reuse_local(&job, &paths, &file, &mut on_disk)?;
    job.progress.starts_from(resumed, reused);
    let (events_tx, events) = crossbeam_channel::unbounded();
    let shared = Arc::new(DownloadState {
        record: record.clone(),
        plan: Mutex::new(Plan::new(
            record.piece_count(),
            record.blocks_per_piece,
            &on_disk,
        )),
        changed: Condvar::new(),
        waiting: AtomicUsize::new(0),
        reasm: Arc::new(Reassembler::new(file, record.clone(), on_disk)),
        limiter: job.limiter.clone(),
        metrics: job.metrics.clone(),
        cancel: job.cancel.clone(),
        stop: AtomicBool::new(false),
        progress: job.progress.clone(),
        events: events_tx,
    });
    if let Some(share) = job.share_partial {
        share(shared.reasm.clone());
    }
    let hasher = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("hasher".into())
            .spawn(move || shared.reasm.hash_prefix())
            .map_err(|e| Error::io("starting the hasher thread", e))?
    };
    let (ask, answers) = spawn_refresher(job.refresh.clone())?;
    let mut coord = Coordinator {
        job: &job,
        paths: &paths,
        state_file: &state_file,
        shared: shared.clone(),
        events,
        ask,
        answers,
        running: HashMap::new(),
        finished: Vec::new(),
        holders: Holders::new(Instant::now()),
    };
    // Everything found locally: no holder to bother.
    if !shared.plan().is_complete() {
        coord.add_holders(job.holders.clone());
    }
    let result = coord.watch(holders_at);
    // Over either way: stop the workers now, not when their last requests
    // come back, then keep what was verified.
    shared.stop.store(true, Ordering::Release);
    shared.notify();
    let sources = coord.join_all();
    if log::log_enabled!(log::Level::Debug) {
        let by: Vec<String> = sources
            .iter()
            .map(|s| format!("{}={}", s.peer_id, s.blocks))
            .collect();
        debug!("{}: blocks by holder: {}", record.name, by.join(" "));
    }
    match result {
        Ok(()) => {
            let md5 = hasher
                .join()
                .map_err(|_| Error::Integrity("the hasher thread failed".into()))??;
            if md5 != record.md5 {
                return Err(whole_file_mismatch(&paths, &record, &state_file, &md5));
            }
            // A complete state until the caller has moved the file: if that
            // fails, the next `get` finds everything verified.
            if let Err(e) = resume::save(&paths, &record, &state_file, &shared.reasm.on_disk()) {
                warn!("{e}");
            }
            resume::unreserve(&paths);
            Ok(Outcome {
                part: paths.part,
                state: paths.state,
                md5,
                sources,
            })
        }
        Err(e) => {
            shared.reasm.stop();
            let _ = hasher.join();
            let on_disk = shared.reasm.on_disk();
            let saved = resume::save(&paths, &record, &state_file, &on_disk);
            if let Err(se) = &saved {
                warn!("{se}");
            }
            Err(what_was_kept(
                e,
                &record,
                &paths,
                record.blocks_in(&on_disk),
                saved.is_ok(),
            ))
        }
    }
}

/// A failed download's error, ending with what became of its verified
/// blocks, said only once that is known: kept with their state, or left
/// in the partial file for the next `get` to check again.
fn what_was_kept(
    e: Error,
    record: &FileRecord,
    paths: &resume::Paths,
    blocks: u64,
    saved: bool,
) -> Error {
    let name = &record.name;
    let kept = if saved {
        format!("the {blocks} verified blocks are kept")
    } else {
        format!(
            "its resume state could not be saved, so the next `get {name}` checks the {blocks} \
             verified blocks in {} again",
            paths.part.display()
        )
    };
    match e {
        Error::Local(m) if m.contains("No space left") || m.contains("os error 28") => {
            Error::Local(format!(
                "{m}: the disk is full; {kept}. Free some space (or give --dir a larger disk) \
                 and run `get {name}` again"
            ))
        }
        Error::Local(m) => {
            Error::Local(format!("{m}; {kept}; fix that and run `get {name}` again"))
        }
        Error::NoSources(m) if !saved => Error::NoSources(format!("{m} ({kept})")),
        other => other,
    }
}

/// Copies into the partial file the missing pieces that `job.reuse` holds
/// (`reuse::fill`), then saves the resume state so a crash keeps them.
/// From here on they are like resumed pieces: the plan skips them and the
/// hasher reads them back for the whole-file MD5. Returns the blocks
/// copied.
fn reuse_local(
    job: &Job<'_>,
    paths: &resume::Paths,
    file: &std::fs::File,
    on_disk: &mut Bitfield,
) -> Result<u64> {
    let record = &job.record;
    if job.reuse.is_empty() || on_disk.is_full() {
        return Ok(0);
    }
    let before = on_disk.clone();
    let got = reuse::fill(record, file, on_disk, &job.reuse, &job.cancel).map_err(|e| {
        Error::io(
            format!(
                "copying local pieces into the partial file of {}",
                record.name
            ),
            e,
        )
    })?;
    if got.pieces == 0 {
        return Ok(0);
    }
    job.metrics.reused(got.bytes);
    info!(
        "{}: {} of {} pieces ({} bytes) found in local files, not fetched",
        record.name,
        got.pieces,
        record.piece_count(),
        got.bytes
    );
    if let Err(e) = resume::save(paths, record, file, on_disk) {
        warn!("{e}");
    }
    Ok(record.blocks_in(&on_disk.minus(&before)))
}

/// A thread that runs `refresh` each time it is asked and sends back the
/// answer. It ends when the download drops its end of the channels, even if
/// a query is still under way (its answer is then simply dropped).
fn spawn_refresher(refresh: Refresh) -> Result<(Sender<()>, Receiver<HolderAnswer>)> {
    let (ask, asked) = crossbeam_channel::bounded::<()>(1);
    let (reply, answers) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("refresher".into())
        .spawn(move || {
            for () in asked {
                if reply.send(refresh()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| Error::io("starting the refresher thread", e))?;
    Ok((ask, answers))
}

/// Every piece passed its hash, yet the whole file does not. Either the
/// partial file was damaged on disk after pieces were verified (keep what
/// still verifies, fetch the rest next time) or the record contradicts
/// itself (nothing is worth keeping).
fn whole_file_mismatch(
    paths: &resume::Paths,
    record: &FileRecord,
    file: &std::fs::File,
    md5: &Md5Digest,
) -> Error {
    let intact = resume::reverify(record, file, &Bitfield::full(record.piece_count()));
    if intact.is_full() {
        let _ = std::fs::remove_file(&paths.part);
        resume::remove(paths);
        return Error::Integrity(format!(
            "{}: whole-file MD5 {} does not match the record's {} although every piece matches its hash; the record is inconsistent and the download was discarded",
            record.name,
            crate::units::hex(md5),
            crate::units::hex(&record.md5)
        ));
    }
    let damaged = record.piece_count() - intact.count();
    if let Err(e) = resume::save(paths, record, file, &intact) {
        warn!("{e}");
    }
    Error::Integrity(format!(
        "{}: {damaged} pieces were damaged on disk after they were verified; the rest is kept, run `get {}` again to fetch them",
        record.name, record.name
    ))
}

/// What `Coordinator::watch` keeps from one turn of its loop to the next.
struct Clock {
    last_save: Instant,
    last_refresh: Instant,
    /// A question to the refresher is unanswered.
    refreshing: bool,
    /// Verified pieces when the resume state was last written.
    saved_count: u32,
    /// Verified pieces, and since when there have been that many.
    progress: (u32, Instant),
}

impl Clock {
    /// `holders_at`: when the holders the download starts with were
    /// learnt.
    fn new(count: u32, holders_at: Instant) -> Clock {
        let now = Instant::now();
        Clock {
            last_save: now,
            last_refresh: holders_at,
            refreshing: false,
            saved_count: count,
            progress: (count, now),
        }
    }
}

struct Coordinator<'j, 'a> {
    job: &'j Job<'a>,
    paths: &'j resume::Paths,
    /// A handle on the partial file, for the stamp in the resume state.
    state_file: &'j std::fs::File,
    shared: Arc<DownloadState>,
    events: Receiver<Event>,
    /// Asks the refresher for holders; its answers come on `answers`.
    ask: Sender<()>,
    answers: Receiver<HolderAnswer>,
    running: HashMap<String, Running>,
    finished: Vec<(String, Arc<SourceStats>)>,
    /// Which holders to start, retry or ban (`holders`).
    holders: Holders<String>,
}

impl Coordinator<'_, '_> {
    /// Runs the download to its end: each turn checks whether it is over,
    /// asks for holders when due, handles one event, saves when due.
    fn watch(&mut self, holders_at: Instant) -> Result<()> {
        let mut clock = Clock::new(self.shared.reasm.count(), holders_at);
        loop {
            if let Some(end) = self.ended(&mut clock) {
                return end;
            }
            self.refresh_if_due(&mut clock);
            self.handle_next_event(&mut clock)?;
            self.save_if_due(&mut clock);
        }
    }

    /// `Some` once the download is over: complete, cancelled, or no piece
    /// verified and no holder useful for `STUCK_AFTER`.
    fn ended(&self, clock: &mut Clock) -> Option<Result<()>> {
        if self.shared.plan().is_complete() {
            return Some(Ok(()));
        }
        if self.shared.is_cancelled() {
            return Some(Err(Error::Cancelled));
        }
        let count = self.shared.reasm.count();
        if count != clock.progress.0 || self.any_useful() {
            clock.progress = (count, Instant::now());
        } else if clock.progress.1.elapsed() > STUCK_AFTER {
            return Some(Err(self.stuck_error()));
        }
        None
    }

    /// Asks the refresher for holders when `Holders::refresh_every` says;
    /// one question at a time.
    fn refresh_if_due(&self, clock: &mut Clock) {
        let due = self.holders.refresh_every(Instant::now());
        if !clock.refreshing && clock.last_refresh.elapsed() >= due {
            clock.refreshing = self.ask.try_send(()).is_ok();
            clock.last_refresh = Instant::now();
        }
    }

    /// Waits up to 200 ms for a worker's exit or the refresher's answer
    /// and handles it; an answer that leaves no worker running and the
    /// download incomplete ends it.
    fn handle_next_event(&mut self, clock: &mut Clock) -> Result<()> {
        select! {
            recv(self.events) -> ev => match ev {
                Ok(Event::Exited { peer_id, result }) => self.reap(&peer_id, result)?,
                Ok(Event::Complete) | Err(_) => {}
            },
            recv(self.answers) -> answer => {
                clock.refreshing = false;
                let spawned = match answer {
                    Ok(Ok(holders)) => self.add_holders(holders),
                    Ok(Err(e)) => {
                        debug!("refreshing holders failed: {e}");
                        0
                    }
                    Err(_) => 0,
                };
                if spawned == 0 && self.running.is_empty() && !self.shared.plan().is_complete() {
                    return Err(self.stuck_error());
                }
            },
            default(Duration::from_millis(200)) => {}
        }
        Ok(())
    }

    /// Writes the resume state every `SAVE_EVERY` if pieces were verified
    /// since the last write.
    fn save_if_due(&self, clock: &mut Clock) {
        if clock.last_save.elapsed() < SAVE_EVERY {
            return;
        }
        let count = self.shared.reasm.count();
        if count != clock.saved_count {
            let on_disk = self.shared.reasm.on_disk();
            if let Err(e) = resume::save(self.paths, &self.shared.record, self.state_file, &on_disk)
            {
                warn!("{e}");
            }
            clock.saved_count = count;
        }
        clock.last_save = Instant::now();
    }

    /// Some connected holder has a piece we still miss.
    fn any_useful(&self) -> bool {
        self.running
            .values()
            .any(|r| r.stats.useful.load(Ordering::Relaxed))
    }

    fn stuck_error(&self) -> Error {
        let record = &self.shared.record;
        let plan = self.shared.plan();
        let have = record.blocks_in(plan.done());
        let pct = percent(fraction(have, record.block_count() as u64), false);
        Error::NoSources(format!(
            "{}: no reachable holder has the remaining {} blocks (stopped at {pct:.1}%); the {have} verified blocks are kept, run `get {}` again to resume",
            record.name,
            record.block_count() as u64 - have,
            record.name
        ))
    }

    /// Starts a worker for every holder `Holders::offer` picks; returns
    /// how many were started.
    fn add_holders(&mut self, answer: Vec<Holder>) -> usize {
        let pairs: Vec<(String, bool)> = answer
            .iter()
            .map(|h| (h.peer_id.clone(), h.complete))
            .collect();
        let me = self.job.self_id.to_string();
        let offer = self
            .holders
            .offer(&pairs, &me, self.shared.record.piece_count());
        if offer.swarm {
            self.shared.plan().set_swarm();
        }
        let mut started = 0;
        for start in offer.start {
            let Some(h) = answer.iter().find(|h| h.peer_id == start.holder) else {
                continue;
            };
            if self.spawn(h.clone(), start.cursor, offer.sampled) {
                started += 1;
            } else {
                self.holders.not_started(&start.holder);
            }
        }
        self.share_out();
        self.job.progress.set_sources(self.running.len() as u64);
        started
    }

    /// Tells the plan this peer's share of what its site fetches from
    /// outside (`plan::site_share` over the downloaders of its site it is
    /// connected to).
    fn share_out(&self) {
        if self.job.site.is_none() {
            return;
        }
        let siblings: Vec<&str> = self
            .running
            .iter()
            .filter(|(_, r)| r.sibling)
            .map(|(id, _)| id.as_str())
            .collect();
        let (rank, size) = plan::site_share(&self.job.self_id, &siblings);
        self.shared.plan().set_site_share(rank, size);
    }

    /// `sampled`: the tracker's answer was a sample (`Offer::sampled`).
    fn spawn(&mut self, h: Holder, cursor: u32, sampled: bool) -> bool {
        let stats = Arc::new(SourceStats::default());
        let local = h.is_local_to(self.job.site);
        let source = Source {
            peer_id: h.peer_id.clone(),
            addr: crate::net::addrs::join_host_port(&h.host, h.port),
            remote: !local,
            spare: h.complete && sampled,
        };
        let shared = self.shared.clone();
        let st = stats.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{}", h.peer_id))
            .spawn(move || {
                // A bug in a worker costs that holder, not the download.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    worker::run(&shared, &source, &st, cursor)
                }))
                .unwrap_or_else(|_| Err(Error::protocol("the worker thread panicked")));
                let _ = shared.events.send(Event::Exited {
                    peer_id: source.peer_id.clone(),
                    result,
                });
            });
        match spawned {
            Ok(thread) => {
                let sibling = local && self.job.site.is_some() && !h.complete;
                let running = Running {
                    stats,
                    thread,
                    sibling,
                };
                self.running.insert(h.peer_id, running);
                true
            }
            Err(e) => {
                warn!("cannot start a worker thread: {e}");
                false
            }
        }
    }

    /// A worker ended. Its holder may be retried, banned (bad data), or the
    /// whole download ends: a local failure such as a full disk is not
    /// something another holder can fix.
    fn reap(&mut self, peer_id: &str, result: Result<()>) -> Result<()> {
        if let Some(r) = self.running.remove(peer_id) {
            let _ = r.thread.join();
            self.finished.push((peer_id.to_string(), r.stats));
            if r.sibling {
                self.share_out();
            }
        }
        self.job.progress.set_sources(self.running.len() as u64);
        match (self.holders.exited(&peer_id.to_string(), &result), result) {
            (Verdict::Done, _) => Ok(()),
            (Verdict::Banned, e) => {
                if let Err(e) = e {
                    warn!("{e}");
                }
                self.shared.metrics.banned();
                Ok(())
            }
            (Verdict::Busy, _) => {
                info!("holder {peer_id} is busy; will retry");
                Ok(())
            }
            // Our clock or its own, refused at the handshake: said where a
            // user sees it, or a skewed swarm only ever says "no holder".
            (
                Verdict::Dropped,
                Err(
                    e @ Error::Remote {
                        code: code::STALE, ..
                    },
                ),
            ) => {
                warn!("holder {peer_id} dropped: {e}");
                Ok(())
            }
            (Verdict::Dropped, e) => {
                if let Err(e) = e {
                    info!("holder {peer_id} dropped: {e}");
                }
                Ok(())
            }
            // `run` says what became of the verified blocks.
            (Verdict::Fatal, e) => Err(Error::Local(
                e.err().map(|e| e.to_string()).unwrap_or_default(),
            )),
        }
    }

    /// Waits for every worker and sums what each holder delivered.
    fn join_all(&mut self) -> Vec<SourceReport> {
        for (peer_id, r) in self.running.drain() {
            let _ = r.thread.join();
            self.finished.push((peer_id, r.stats));
        }
        while self.events.try_recv().is_ok() {}
        let mut by_peer: Vec<SourceReport> = Vec::new();
        for (peer_id, stats) in &self.finished {
            let blocks = stats.blocks.load(Ordering::Relaxed);
            let rtt_ms = stats.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0;
            match by_peer.iter_mut().find(|s| &s.peer_id == peer_id) {
                Some(s) => {
                    s.blocks += blocks;
                    if rtt_ms > 0.0 {
                        s.rtt_ms = rtt_ms;
                    }
                }
                None => by_peer.push(SourceReport {
                    peer_id: peer_id.clone(),
                    blocks,
                    rtt_ms,
                }),
            }
        }
        by_peer.sort_by(|a, b| b.blocks.cmp(&a.blocks).then(a.peer_id.cmp(&b.peer_id)));
        by_peer
    }
}
