//! A peer: `Peer` and the operations both front ends (`crate::shell`,
//! `crate::web::peer_ui`) call (`get`, `share`, `status`, ...). Its rooms:
//! `session` (the trackers), `block_server` (other peers fetch here),
//! `files` (the store and the watched `files/`), `get` (an item of the
//! swarm into `files/`), `install` (the one step every new item of
//! `files/` ends in), `downloads` (every background `get`), `follow`
//! (followers), `paused`, `config`.

pub mod block_server;
pub mod config;
pub mod downloads;
pub mod files;
pub mod follow;
pub mod get;
mod install;
pub mod paused;
pub mod session;

use crate::download::progress::{Progress, Snapshot};
use crate::error::{Error, Result};
use crate::fsutil::{DirLock, LockError};
use crate::metrics::peer::PeerMetrics;
use crate::names::check_file_name;
use crate::ratelimit::RateLimiter;
use crate::record::FileRecord;
use crate::search::{self, Holding, Search};
use crate::wire::FileSummary;
use config::Config;
use files::store::{self, SharedFile, Store};
use files::{publish, watcher};
use log::{info, warn};
use session::tracker_client::{self, Session};
use session::trackers::Trackers;
use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running peer. Its parts are its own (and its submodules'); the shell,
/// the binary and the web UI use the methods below.
pub struct Peer {
    config: Config,
    store: Store,
    upload: Option<Arc<RateLimiter>>,
    download: Option<Arc<RateLimiter>>,
    session: Session,
    /// Where the tracker sessions talk and queries go, and how each
    /// tracker fares.
    trackers: Arc<Trackers>,
    /// Set on shutdown: every running download stops and keeps its state.
    cancel: Arc<AtomicBool>,
    active: Mutex<HashMap<String, Arc<Progress>>>,
    listen: SocketAddr,
    /// Held while it runs: one peer per directory.
    _lock: DirLock,
    /// What `/metrics` reports; the block server and downloads count.
    metrics: Arc<PeerMetrics>,
    /// Tracker-less search over UDP (None if its socket could not be bound
    /// and no `--neighbor` asked for it).
    search: Option<Arc<Search>>,
    /// Every background download (`--get`, a terminal's `get`, the web
    /// page's Fetch, following): one cap, one record of outcomes.
    downloads: Arc<downloads::Downloads>,
    /// The follow patterns, and the way to the follow thread.
    following: follow::Following,
    /// Held while `files/` and the store change together (a new version
    /// swapped in) and while the watcher compares them, so the watcher
    /// never takes our own swap for a user's edit.
    swapping: Mutex<()>,
}

impl Peer {
    /// Opens the store, hashes what is new in `files/`, binds the server
    /// port and starts the server and tracker-session threads.
    pub fn start(config: Config) -> Result<Arc<Peer>> {
        let store = Store::open(&config.dir)?;
        let lock = lock_dir(&config)?;
        let (following, follow_events) = follow::Following::open(&config.dir, &config.follows)?;
        // One tracker that does not answer is enough: the other new items
        // are numbered from the peer's own records, not each after a
        // connect timeout (they are published when the tracker answers).
        let reachable = std::cell::Cell::new(true);
        let trackers = Arc::new(Trackers::new(config.trackers()));
        let found = store.scan(&|r, previous| {
            let swarm = reachable
                .get()
                .then(|| swarm_record(&trackers, &r.name, &reachable))
                .flatten();
            publish::assign(r, swarm.as_ref(), previous, &config.id)
        })?;
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr).map_err(|e| {
            Error::Usage(format!(
                "cannot listen on {addr}: {e} (is another peer using port {}? pick another PORT)",
                config.port
            ))
        })?;
        let search = match Search::bind(search::Settings {
            bind: addr,
            peer_id: config.id.clone(),
            advertise_host: config.advertise.as_ref().map(|a| a.0.clone()),
            port: config.advertised_port(),
            neighbours: config.neighbors.clone(),
        }) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) if config.neighbors.is_empty() => {
                warn!("{e}; tracker-less search is off");
                None
            }
            Err(e) => return Err(e),
        };
        let (session, commands) = Session::new(trackers.addrs().len());
        let cancel = Arc::new(AtomicBool::new(false));
        let peer = Arc::new(Peer {
            upload: config.upload_limit.map(|r| Arc::new(RateLimiter::new(r))),
            download: config.download_limit.map(|r| Arc::new(RateLimiter::new(r))),
            store,
            session,
            trackers,
            downloads: downloads::Downloads::new(cancel.clone()),
            following,
            cancel,
            active: Mutex::new(HashMap::new()),
            listen: addr,
            search,
            config,
            metrics: Arc::new(PeerMetrics::default()),
            swapping: Mutex::new(()),
            _lock: lock,
        });
        clear_scratch(&peer.scratch_dir());
        let shared = peer.publish_found(found);
        info!(
            "{shared} files shared from {}",
            peer.store.files_dir().display()
        );
        let server_peer = peer.clone();
        spawn("server", move || block_server::serve(server_peer, listener))?;
        let watch_peer = peer.clone();
        spawn("watch", move || watcher::run(watch_peer))?;
        for (index, commands) in commands.into_iter().enumerate() {
            let session_peer = peer.clone();
            spawn("tracker-session", move || {
                tracker_client::run(session_peer, index, commands)
            })?;
        }
        let follow_peer = peer.clone();
        spawn("follow", move || follow::run(follow_peer, follow_events))?;
        if let Some(search) = &peer.search {
            let (s, search_peer) = (search.clone(), peer.clone());
            spawn("search-udp", move || {
                s.serve(|name| search_peer.holding(name))
            })?;
            let s = search.clone();
            spawn("search-hello", move || s.keep_in_touch())?;
            if !peer.config.neighbors.is_empty() {
                info!("search: neighbours {}", search.describe_neighbours());
            }
        }
        Ok(peer)
    }

    /// Publishes the items found in `files/` at start and shares those
    /// the tracker takes (or all, when it cannot be reached: they are
    /// published when it answers). Returns how many are shared; the
    /// others are logged with the reason.
    fn publish_found(&self, found: Vec<store::Prepared>) -> usize {
        let mut reachable = true;
        let mut shared = 0;
        for item in found {
            let name = item.record.name.clone();
            if reachable {
                match self.publish_record(&item.record) {
                    Ok(()) => {}
                    Err(e) => match publish::refusal(&e) {
                        publish::PublishRefusal::Conflict if self.follows(&name) => {
                            drop(item);
                            warn!("not sharing {name}: {}", self.keep_local_edit(&name, true));
                            continue;
                        }
                        publish::PublishRefusal::Conflict => {
                            warn!("not sharing {name}: {e}");
                            continue;
                        }
                        publish::PublishRefusal::Outdated => info!("{name}: {e}"),
                        publish::PublishRefusal::Other => {
                            warn!("{e}; items are published when the tracker answers");
                            reachable = false;
                        }
                    },
                }
            }
            self.store.insert_prepared(item);
            shared += 1;
        }
        shared
    }

    /// Sends `record` to the tracker (NEW_FILE) as this peer.
    fn publish_record(&self, record: &FileRecord) -> Result<()> {
        self.trackers.publish(&self.config.id, record)
    }

    /// The version this peer publishes for a freshly hashed item
    /// (`publish::assign`).
    fn versioned(&self, hashed: FileRecord, previous: Option<&FileRecord>) -> FileRecord {
        assign_version(&self.trackers, &self.config.id, hashed, previous)
    }

    /// Holds `swapping` (see the field).
    pub(crate) fn swap_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.swapping.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings it was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the block server listens.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where the shared files live (`<dir>/files`).
    pub fn files_dir(&self) -> &Path {
        self.store.files_dir()
    }

    /// A complete shared file by name, with its open handle.
    pub fn shared(&self, name: &str) -> Option<Arc<SharedFile>> {
        self.store.get(name)
    }

    /// The records of the complete files it shares.
    pub fn records(&self) -> Vec<Arc<FileRecord>> {
        self.store.records()
    }

    /// The counters the block server and the downloads keep.
    pub fn metrics(&self) -> &PeerMetrics {
        &self.metrics
    }

    /// The `/metrics` page.
    pub fn metrics_text(&self) -> String {
        let mut samples = self.metrics.samples(self.progress().len());
        samples.extend(self.trackers.samples(Instant::now()));
        crate::metrics::render(&samples)
    }

    /// The background downloads (`downloads::get` starts one).
    pub fn downloads(&self) -> &Arc<downloads::Downloads> {
        &self.downloads
    }

    /// The follow patterns (`follow`, `unfollow`, `following`).
    pub fn following(&self) -> &follow::Following {
        &self.following
    }

    /// Whether a tracker answered its last exchange.
    pub fn is_connected(&self) -> bool {
        self.trackers.any_answering()
    }

    /// The trackers, and how each fares.
    pub fn trackers(&self) -> &Arc<Trackers> {
        &self.trackers
    }

    /// Every file the first tracker that answers knows of (a TCP query).
    pub fn swarm_files(&self) -> Result<Vec<FileSummary>> {
        self.trackers.list_files()
    }

    /// Whether `shutdown` has begun: downloads stop and keep their state.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// Leaves the tracker (waits up to 2 s for the goodbye's answer).
    pub fn leave(&self) {
        self.session.bye(Duration::from_secs(2));
    }

    /// The search, if there is anyone to ask (a configured neighbour, or
    /// one that greeted us).
    pub fn searcher(&self) -> Option<Arc<Search>> {
        self.search.clone().filter(|s| s.has_neighbours())
    }

    /// What this peer can serve of `name`, for answering a search: a
    /// complete file, or the verified pieces of a download in progress
    /// (none yet: nothing to offer, no answer).
    fn holding(&self, name: &str) -> Option<Holding> {
        let f = self.store.servable(name)?;
        let have = f.have();
        (have.count() > 0 || have.is_empty()).then(|| Holding {
            have,
            record: f.record.clone(),
        })
    }

    pub fn partial_dir(&self) -> PathBuf {
        self.config.dir.join("partial")
    }

    /// Where `bench` and `stress` put their throw-away copies.
    pub fn scratch_dir(&self) -> PathBuf {
        self.config.dir.join("scratch")
    }

    /// Where `bench` appends its rows.
    pub fn times_csv(&self) -> PathBuf {
        self.config.dir.join("download_times.csv")
    }

    /// A followed item is receive-only: `what` (share, an upload) may not
    /// publish other content under its name.
    fn refuse_if_followed(&self, name: &str, what: &str) -> Result<()> {
        if self.follows(name) {
            return Err(Error::Usage(format!(
                "{name} is followed here, so it is receive-only: a {what} under its name \
                 is never published; `unfollow` the pattern first, or use another name"
            )));
        }
        Ok(())
    }

    /// Whether a follow pattern of this peer matches `name`.
    pub fn follows(&self, name: &str) -> bool {
        self.following.covers(name)
    }

    /// A followed item found changed in `files/` (the watcher, or a start
    /// after an edit made while the peer was down): receive-only, so the
    /// change is never published. When the swarm has the name, the edited
    /// item is moved to `<dir>/kept/` (never lost) and the follow thread
    /// fetches the current version back; otherwise it is left where it
    /// is, not shared. The error says which, and where the edit went.
    fn keep_local_edit(&self, name: &str, swarm_has_it: bool) -> Error {
        if !swarm_has_it {
            return Error::Usage(format!(
                "{name} matches a follow pattern here, and followed items are receive-only: \
                 it is not published; move it out of files/ or `unfollow` the pattern"
            ));
        }
        let kept = self.config.dir.join("kept");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Two edits kept within one second each keep their own copy.
        let to = (0..)
            .map(|n| match n {
                0 => stamp.to_string(),
                n => format!("{stamp}-{n}"),
            })
            .map(|suffix| crate::layout::local_file(&kept, name, &suffix))
            .find(|p| p.symlink_metadata().is_err())
            .expect("an unused name");
        let moved = fs::create_dir_all(&kept)
            .and_then(|()| fs::rename(self.store.files_dir().join(name), &to));
        match moved {
            Ok(()) => {
                self.following.wake();
                Error::Local(format!(
                    "{name} is followed here, so it is receive-only: the local change was moved \
                     to {} and the swarm's current version is fetched again",
                    to.display()
                ))
            }
            Err(e) => Error::Local(format!(
                "{name} is followed here, so it is receive-only, and its local change is not \
                 published; it could not be moved aside to {}: {e}",
                to.display()
            )),
        }
    }

    /// Makes `to` the owner of `name`, which this peer owns: the same
    /// content published as the next version with the new owner (holders
    /// take it without fetching anything). From then on only `to`
    /// publishes new versions.
    pub fn handover(&self, name: &str, to: &str) -> Result<Arc<FileRecord>> {
        check_file_name(name)?;
        crate::names::check_peer_id(to)?;
        let held = self.store.get(name).ok_or_else(|| {
            Error::NotFound(format!(
                "{name} is not in files/ here; `myfiles` lists what is"
            ))
        })?;
        let current = &held.record;
        if !current.owner.is_empty() && current.owner != self.config.id {
            return Err(Error::Usage(format!(
                "{name} is owned by {}, not by this peer ({}); only its owner hands it over",
                current.owner, self.config.id
            )));
        }
        if current.owner == to {
            return Err(Error::Usage(format!("{name} is owned by {to} already")));
        }
        let record = Arc::new((**current).clone().versioned(current.version + 1, to));
        self.publish_record(&record)?;
        self.relabel(&held, record.clone())?;
        self.session.announce_now();
        Ok(record)
    }

    /// Serves `held` under `record`, a later version of the same bytes
    /// (a handover): nothing to fetch nor move.
    fn relabel(&self, held: &SharedFile, record: Arc<FileRecord>) -> Result<()> {
        debug_assert!(held.record.same_content(&record));
        let _swapping = self.swap_lock();
        let dest = self.store.files_dir().join(&record.name);
        self.serve_at(&dest, record)
    }

    /// Stops serving `name` and tells the tracker (the next announce says
    /// it is gone).
    pub(crate) fn withdraw(&self, name: &str) {
        if self.store.remove(name).is_some() {
            self.session.announce_now();
        }
    }

    /// Downloads an earlier run left unfinished, with verified pieces on
    /// disk, that are neither running nor waiting their turn now.
    pub fn paused(&self) -> Vec<paused::Paused> {
        let busy: Vec<String> = self
            .progress()
            .into_iter()
            .map(|p| p.name)
            .chain(self.downloads.waiting().into_iter().map(|(n, _)| n))
            .collect();
        paused::list(&self.partial_dir())
            .into_iter()
            .filter(|p| !busy.contains(&p.name))
            .collect()
    }

    /// Where each download in progress stands (any kind: a `get`,
    /// `bench`, following...), by name: what `status`, the web pages and
    /// `/metrics` show.
    pub fn progress(&self) -> Vec<Snapshot> {
        let mut v: Vec<Snapshot> = self.lock_active().values().map(|p| p.snapshot()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Where the download under `key` stands, once it has begun.
    pub fn progress_of(&self, key: &str) -> Option<Snapshot> {
        self.lock_active().get(key).map(|p| p.snapshot())
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Progress>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_active(&self, name: &str, progress: Arc<Progress>) -> Result<ActiveGuard<'_>> {
        let mut active = self.lock_active();
        if active.contains_key(name) {
            return Err(Error::Conflict(format!(
                "{name} is already being downloaded"
            )));
        }
        active.insert(name.to_string(), progress);
        Ok(ActiveGuard {
            peer: self,
            name: name.to_string(),
        })
    }

    /// Stops downloads (their verified blocks are kept) and leaves the
    /// tracker. Waits a moment for downloads to save their state.
    /// Returns a line per `get` that stopped, saying what was kept.
    pub fn shutdown(&self) -> Vec<String> {
        let stopping: Vec<Snapshot> = self
            .lock_active()
            .values()
            .filter(|p| p.is_kept())
            .map(|p| p.snapshot())
            .collect();
        // Asked for but not begun: they will not start now.
        let never_started: Vec<String> = self
            .downloads
            .waiting()
            .into_iter()
            .filter(|(_, origin)| *origin != downloads::Origin::Follow)
            .map(|(name, _)| {
                format!("{name}: waiting its turn, not started; run `get {name}` to fetch it")
            })
            .collect();
        self.cancel.store(true, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.lock_active().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.leave();
        stopping
            .iter()
            .map(kept_line)
            .chain(never_started)
            .collect()
    }
}

/// What a `get` stopped by Ctrl-C or SIGTERM leaves: its verified blocks,
/// and how to go on.
fn kept_line(p: &Snapshot) -> String {
    paused::Paused {
        name: p.name.clone(),
        percent: p.percent(),
    }
    .line()
}

/// Keeps a download listed under its key (`Peer::progress`), and the key
/// taken, until dropped.
pub struct ActiveGuard<'a> {
    peer: &'a Peer,
    name: String,
}

impl ActiveGuard<'_> {
    /// The bytes of a file of `size` that were verified on disk before this
    /// run began.
    pub fn resumed_bytes(&self, size: u64) -> u64 {
        self.bytes_of(size, |p| p.resumed_blocks)
    }

    /// The bytes of a file of `size` copied from local files before
    /// fetching.
    pub fn reused_bytes(&self, size: u64) -> u64 {
        self.bytes_of(size, |p| p.reused_blocks)
    }

    /// The bytes of the blocks counted by `blocks` (the last block may be
    /// short: never more than `size`).
    fn bytes_of(&self, size: u64, blocks: impl Fn(&Snapshot) -> u64) -> u64 {
        let n = self.peer.progress_of(&self.name).map_or(0, |p| blocks(&p));
        (n * crate::record::BLOCK_SIZE as u64).min(size)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.peer.lock_active().remove(&self.name);
    }
}

/// `publish::assign` with the swarm's record of the name, asked of the
/// tracker (none when it cannot be reached: the peer's own last record
/// still keeps versions going up).
fn assign_version(
    trackers: &Trackers,
    me: &str,
    hashed: FileRecord,
    previous: Option<&FileRecord>,
) -> FileRecord {
    let swarm = swarm_record(trackers, &hashed.name, &std::cell::Cell::new(true));
    publish::assign(hashed, swarm.as_ref(), previous, me)
}

/// The trackers' record of `name`, if one has it; `reachable` goes false
/// when no tracker could be reached at all.
fn swarm_record(
    trackers: &Trackers,
    name: &str,
    reachable: &std::cell::Cell<bool>,
) -> Option<FileRecord> {
    match trackers.fetch_record(name) {
        Ok(r) => Some(r),
        // `tracker_client` says NoSources for a tracker it cannot reach.
        Err(Error::NoSources(_) | Error::Net { .. } | Error::Timeout(_) | Error::Secret { .. }) => {
            reachable.set(false);
            None
        }
        Err(_) => None,
    }
}

/// The lock file in the peer's directory.
pub const LOCK_FILE: &str = "peer.lock";

/// Takes the peer's directory for this process: a second peer with the
/// same directory (the same ID, usually) would share its files, partial
/// downloads and tracker identity with the first.
fn lock_dir(config: &Config) -> Result<DirLock> {
    let path = config.dir.join(LOCK_FILE);
    DirLock::take(&path).map_err(|e| match e {
        LockError::Held(pid) => Error::Conflict(format!(
            "peer {} is already running here ({}) in {}; stop it first, or start this one with another ID or --dir",
            config.id,
            pid.map_or("another process".to_string(), |p| format!("pid {p}")),
            config.dir.display()
        )),
        LockError::Io(e) => Error::Local(store::dir_advice(
            &format!("cannot lock {}", path.display()),
            &e,
        )),
    })
}

/// Removes what scratch downloads of an earlier run left behind (a crash,
/// kill -9): nothing in there is ever resumed.
fn clear_scratch(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("cannot clear {}: {e}", dir.display());
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| Error::io(format!("starting the {name} thread"), e))
}
