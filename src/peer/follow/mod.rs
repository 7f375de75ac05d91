//! Followers: a peer with follow patterns (`--follow`, the shell's
//! `follow`) keeps every matching item of the swarm in `files/` at its
//! current version, with nobody typing `get`.
//!
//! The `follow` thread polls the tracker's listing every `POLL_EVERY`
//! while any pattern is set, asks the pure `machine::Follower` what to
//! fetch, and starts each download through `peer::downloads` (so the
//! cap and the record of outcomes are the same as for every background
//! download) with `Peer::update`, after `room::check` finds the disk
//! space for it. Each download's end comes back to the thread as an
//! `FollowEvent`, and the machine decides on retries.

pub mod list;
pub mod machine;
pub mod pattern;
pub mod room;

use super::downloads::{done_line, Origin};
use super::get::GetReport;
use super::Peer;
use crate::error::{Error, Result};
use crate::record::FileRecord;
use crate::rng::Rng;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use list::FollowList;
use log::{debug, info, warn};
use machine::{Follower, Local, SwarmItem, Wanted};
pub use pattern::Pattern;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the tracker's listing is read while any pattern is set: a
/// new version reaches a follower half a second after it is published,
/// on average, for one LIST_FILES a second per follower at the tracker.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// What wakes the follow thread besides its clock.
pub enum FollowEvent {
    /// A pattern was added: look at the swarm now.
    Changed,
    /// A follow download ended.
    Ended { name: String, ok: bool },
}

/// The peer's follow patterns, and the way to the follow thread.
pub struct Following {
    list: FollowList,
    events: Sender<FollowEvent>,
}

impl Following {
    /// The patterns kept in `dir` plus `extra` (the `--follow` flags), and
    /// the receiving end for `run`.
    pub fn open(dir: &Path, extra: &[Pattern]) -> Result<(Following, Receiver<FollowEvent>)> {
        let (events, rx) = crossbeam_channel::unbounded();
        let list = FollowList::open(dir, extra)?;
        Ok((Following { list, events }, rx))
    }

    /// `follow <pattern>`: false if it was followed already.
    pub fn follow(&self, text: &str) -> Result<bool> {
        let added = self.list.add(Pattern::parse(text)?)?;
        if added {
            let _ = self.events.send(FollowEvent::Changed);
        }
        Ok(added)
    }

    /// `unfollow <pattern>`: what it fetched stays in `files/`; downloads
    /// it started finish.
    pub fn unfollow(&self, text: &str) -> Result<()> {
        self.list.remove(text)
    }

    /// The patterns, in the order they were added.
    pub fn patterns(&self) -> Vec<Pattern> {
        self.list.patterns()
    }

    /// Look at the swarm now (a followed item was set aside and is to be
    /// fetched again).
    pub fn wake(&self) {
        let _ = self.events.send(FollowEvent::Changed);
    }

    /// Whether `name` is followed (a pattern matches it).
    pub fn covers(&self, name: &str) -> bool {
        self.list.matches(name)
    }
}

/// The follow thread's body: until shutdown.
pub fn run(peer: Arc<Peer>, events: Receiver<FollowEvent>) {
    let mut machine = Follower::new();
    let mut rng = Rng::new();
    let mut next_poll = Instant::now();
    loop {
        let wait = next_poll.saturating_duration_since(Instant::now());
        match events.recv_timeout(wait) {
            Ok(FollowEvent::Ended { name, ok }) => {
                machine.finished(&name, ok, Instant::now(), rng.next_u64());
                // A slot is free: the next item need not wait for the clock.
                next_poll = Instant::now();
            }
            Ok(FollowEvent::Changed) => next_poll = Instant::now(),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if peer.is_cancelled() {
            return;
        }
        if Instant::now() < next_poll {
            continue;
        }
        next_poll = Instant::now() + POLL_EVERY;
        let patterns = peer.following().patterns();
        if !patterns.is_empty() {
            poll(&peer, &mut machine, &patterns, &mut rng);
        }
    }
}

/// One look at the swarm: the machine's downloads are started.
fn poll(peer: &Arc<Peer>, machine: &mut Follower, patterns: &[Pattern], rng: &mut Rng) {
    let swarm = match peer.swarm_files() {
        Ok(files) => files.iter().map(SwarmItem::of).collect::<Vec<_>>(),
        Err(e) => {
            // The session logs a tracker that cannot be reached; the next
            // poll tries again.
            debug!("following: cannot list the swarm's items: {e}");
            return;
        }
    };
    let local = local_items(&peer.records());
    let mut busy = peer.downloads().busy();
    busy.extend(peer.progress().into_iter().map(|p| p.name));
    let now = Instant::now();
    for fetch in machine.step(now, patterns, &swarm, &local, &busy) {
        let name = fetch.name.clone();
        if let Err(e) = start(peer, fetch) {
            warn!("following: cannot start {name}: {e}");
            machine.finished(&name, false, now, rng.next_u64());
        }
    }
}

/// The local items, as the machine compares them.
fn local_items(records: &[Arc<FileRecord>]) -> BTreeMap<String, Local> {
    records
        .iter()
        .map(|r| {
            let local = Local {
                md5: r.md5,
                version: r.version,
            };
            (r.name.clone(), local)
        })
        .collect()
}

/// Starts one follow download: the disk space first, then `update`.
fn start(peer: &Arc<Peer>, fetch: Wanted) -> Result<()> {
    let Wanted {
        name,
        size,
        version,
    } = fetch;
    let (p, n) = (peer.clone(), name.clone());
    let run = move || -> Result<GetReport> {
        room::check(p.files_dir(), &n, size)?;
        p.update(&n)
    };
    let events = peer.following().events.clone();
    let n = name.clone();
    let then = move |result: &Result<GetReport>| {
        match result {
            Ok(report) => info!("following: {n} version {version}: {}", done_line(report)),
            Err(Error::Cancelled) => {}
            Err(e) => warn!("following: {n}: {e}"),
        }
        let ok = result.is_ok();
        let _ = events.send(FollowEvent::Ended { name: n, ok });
    };
    peer.downloads()
        .start(&name, Origin::Follow, run, then)
        .map(|_| ())
}
