//! `get`: an item of the swarm into `files/`, verified. The record and
//! holders come from `session::lookup`, the download itself from
//! `crate::download` (its progress listed while it runs), and the
//! verified copy goes into `files/` through `install`. A newer version
//! published meanwhile is followed; an older one held here is updated,
//! reusing what it can. `fetch` is the part `bench` and `stress` share.

use super::files::store::{SharedFile, Store};
use super::session::lookup;
use super::{ActiveGuard, Peer};
use crate::digest::Md5Digest;
use crate::download::progress::Progress;
use crate::download::{self, SourceReport};
use crate::error::{Error, Result};
use crate::fsutil::RemoveOnDrop;
use crate::names::check_file_name;
use crate::record::FileRecord;
use crate::units::{hex, mbps};
use log::{debug, info, warn};
use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of a finished `get`, printed as the contract's lines.
pub struct GetReport {
    pub name: String,
    pub bytes: u64,
    /// Of `bytes`, those already verified on disk when it started (a
    /// resumed download): not fetched by this run, not in its `MBps`.
    pub resumed: u64,
    /// Of `bytes`, those copied from local files before fetching (other
    /// items, the previous version): not fetched either.
    pub reused: u64,
    pub md5: Md5Digest,
    pub secs: f64,
    pub sources: Vec<SourceReport>,
}

impl GetReport {
    /// The bytes this run fetched from holders.
    fn fetched(&self) -> u64 {
        self.bytes.saturating_sub(self.resumed + self.reused)
    }
}

impl fmt::Display for GetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fetched = self.fetched();
        if self.resumed > 0 {
            writeln!(
                f,
                "resumed {}: {} of {} bytes were already verified; MBps counts this run's {fetched}",
                self.name, self.resumed, self.bytes,
            )?;
        }
        if self.reused > 0 {
            writeln!(
                f,
                "reused {}: {} of {} bytes were found in local files; MBps counts the {fetched} fetched",
                self.name, self.reused, self.bytes,
            )?;
        }
        write!(
            f,
            "done {} bytes={} md5={} secs={:.3} MBps={:.1}",
            self.name,
            self.bytes,
            hex(&self.md5),
            self.secs,
            mbps(fetched, self.secs)
        )?;
        for s in &self.sources {
            write!(
                f,
                "\nfrom {} blocks={} rtt_ms={:.3}",
                s.peer_id, s.blocks, s.rtt_ms
            )?;
        }
        Ok(())
    }
}

impl Peer {
    /// Downloads `name` into `files/`, verified, and announces it. An
    /// older version of it in `files/` is updated: the new one is fetched
    /// beside it (reusing what it can of it) and swapped in whole. A
    /// version that is replaced while it downloads is followed by the
    /// next one: one file in `files/` never mixes two versions.
    pub fn get(&self, name: &str) -> Result<GetReport> {
        let started = Instant::now();
        check_file_name(name)?;
        let mut tries = 0;
        loop {
            match self.get_current(name, started) {
                Err(e) if tries < MAX_SUPERSEDED && self.superseded(name, &e) => {
                    tries += 1;
                    info!("{name}: a new version appeared while it downloaded; fetching that");
                }
                other => {
                    // A file already held fetched nothing: not a download.
                    if let Ok(report) = other.as_ref() {
                        if report.secs > 0.0 {
                            self.metrics.downloaded(report.secs);
                        }
                    }
                    return other;
                }
            }
        }
    }

    /// Fetching updates of an item: what `follow` runs, the same as `get`.
    pub fn update(&self, name: &str) -> Result<GetReport> {
        self.get(name)
    }

    /// One try of `get`: the swarm's current version of `name`.
    fn get_current(&self, name: &str, started: Instant) -> Result<GetReport> {
        let held = self.store.get(name);
        let dest = self.store.files_dir().join(name);
        if held.is_none() && dest.symlink_metadata().is_ok() {
            return Err(Error::Conflict(format!(
                "{} exists but is not shared (still changing, or refused: the log says why), \
                 so the swarm's {name} is not fetched over it; move it away first",
                dest.display()
            )));
        }
        // Until the finished file is in the store (or the download failed):
        // stop serving the partial only then, so there is no gap.
        let _partial = PartialGuard(&self.store, name);
        let Fetched {
            record,
            outcome,
            active,
        } = match self.fetch_unless_held(name, held.as_deref())? {
            Some(f) => f,
            None => {
                let f = held.expect("held");
                info!("{name} in files/ is the swarm's current version");
                return Ok(GetReport {
                    name: name.to_string(),
                    bytes: f.record.size,
                    resumed: 0,
                    reused: 0,
                    md5: f.record.md5,
                    secs: 0.0,
                    sources: Vec::new(),
                });
            }
        };
        let resumed = active.resumed_bytes(record.size);
        let reused = active.reused_bytes(record.size);
        drop(active);
        self.adopt(&outcome.part, record.clone())?;
        let _ = fs::remove_file(&outcome.state);
        if let Some(old) = held.filter(|f| f.record.md5 != record.md5) {
            info!(
                "{name}: version {} replaces version {}",
                record.version, old.record.version
            );
        }
        Ok(GetReport {
            name: name.to_string(),
            bytes: record.size,
            resumed,
            reused,
            md5: outcome.md5,
            // The whole command, tracker lookups included: what a user waits.
            secs: started.elapsed().as_secs_f64(),
            sources: outcome.sources,
        })
    }

    /// Whether `e`, the end of a download of `name`, came from the swarm
    /// moving to another version meanwhile (then the next one is fetched).
    /// A download left with no holder may be one step ahead of that: the
    /// owner changed the item and stopped serving it, and publishes the
    /// new version once it has settled and been hashed. So the tracker is
    /// asked again for a few seconds before the failure stands.
    fn superseded(&self, name: &str, e: &Error) -> bool {
        if matches!(e, Error::Cancelled | Error::Usage(_) | Error::Local(_)) {
            return false;
        }
        let Some(partial) = self.partial_md5(name) else {
            return false;
        };
        let moved_on = || {
            self.trackers
                .fetch_record(name)
                .is_ok_and(|r| r.md5 != partial)
        };
        if !matches!(e, Error::NoSources(_)) {
            return moved_on();
        }
        let deadline = Instant::now() + SUPERSEDE_WAIT;
        loop {
            if moved_on() {
                return true;
            }
            if Instant::now() >= deadline || self.is_cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The whole-file MD5 of the last download of `name` (its resume state).
    fn partial_md5(&self, name: &str) -> Option<Md5Digest> {
        let paths = crate::layout::Paths::new(&self.partial_dir(), name);
        let bytes = fs::read(paths.state).ok()?;
        download::resume::state_md5(&bytes)
    }

    /// Fetches `name` into `partial_dir` and verifies it, without placing
    /// it in `files/`: the part of `get` that `bench` and `stress` share.
    /// `key` names the download in `status`; two downloads under one key
    /// at once are refused; the key stays taken until the returned
    /// `Fetched` is dropped. With `share` (a `get`, which also holds a
    /// `PartialGuard`) the verified pieces are served and announced while
    /// it runs; without (`bench`, `stress`: a throw-away copy in a scratch
    /// directory) the swarm never sees it.
    pub fn fetch(
        &self,
        name: &str,
        key: &str,
        partial_dir: &Path,
        share: bool,
    ) -> Result<Fetched<'_>> {
        let found = lookup::locate(self, name)?;
        self.fetch_found(found, key, partial_dir, share)
    }

    /// `get`'s fetch: None when `held` is already the swarm's version.
    fn fetch_unless_held(
        &self,
        name: &str,
        held: Option<&SharedFile>,
    ) -> Result<Option<Fetched<'_>>> {
        let found = lookup::locate(self, name)?;
        if let Some(f) = held.filter(|f| f.record.same_content(&found.record)) {
            if *f.record != *found.record {
                // The same bytes under a later version (a handover).
                self.relabel(f, found.record.clone())?;
            }
            return Ok(None);
        }
        self.fetch_found(found, name, &self.partial_dir(), true)
            .map(Some)
    }

    fn fetch_found(
        &self,
        found: lookup::Located,
        key: &str,
        partial_dir: &Path,
        share: bool,
    ) -> Result<Fetched<'_>> {
        let record = found.record.clone();
        let name = record.name.as_str();
        let progress = Arc::new(Progress::new(key, record.block_count() as u64, share));
        let active = self.mark_active(key, progress.clone())?;
        let outcome = if record.size == 0 {
            empty_download(partial_dir, &record)?
        } else {
            // An update is announced once its partial file is open, with
            // the pieces found locally: announced at once as joining (0
            // pieces), the other peers updating would try it while it is
            // still copying, be refused, and count it as a failed holder.
            if share && self.store.get(&record.name).is_none() {
                self.session.joining(&record);
            }
            let (holders, refresh) = found.holders()?;
            let superseded = share
                .then(|| set_aside_superseded(partial_dir, &record))
                .flatten();
            let _superseded = superseded.as_deref().map(RemoveOnDrop);
            let reuse = if share {
                self.reuse_candidates(&record.name, superseded.as_deref())
            } else {
                Vec::new()
            };
            // Serve verified pieces while downloading, and let the tracker
            // know at once that we take part.
            let share_partial = |reasm| match self.store.add_partial(reasm) {
                Ok(()) => self.session.announce_now(),
                Err(e) => warn!("not serving the partial {name}: {e}"),
            };
            download::run(download::Job {
                record: record.clone(),
                holders,
                partial_dir,
                self_id: &self.config.id,
                site: self.config.site.as_deref(),
                limiter: self.download.clone(),
                metrics: self.metrics.clone(),
                cancel: self.cancel.clone(),
                refresh,
                progress,
                share_partial: if share { Some(&share_partial) } else { None },
                reuse,
            })?
        };
        Ok(Fetched {
            record,
            outcome,
            active,
        })
    }

    /// What a download of `name` may copy instead of fetching: every item
    /// in `files/` (the one named `name`, its previous version, scanned
    /// for shifted content too), the newest local edit of it kept aside,
    /// and the partial file of a version replaced while it downloaded.
    fn reuse_candidates(
        &self,
        name: &str,
        superseded: Option<&Path>,
    ) -> Vec<download::reuse::Candidate> {
        let mut out = self.store.reuse_candidates(name);
        let kept = self.newest_kept(name);
        for path in kept.iter().map(PathBuf::as_path).chain(superseded) {
            match download::reuse::Candidate::plain(path) {
                Ok(c) => out.push(c),
                Err(e) => debug!("not reusing {}: {e}", path.display()),
            }
        }
        out
    }

    /// The newest copy of `name` kept aside by `keep_local_edit`.
    fn newest_kept(&self, name: &str) -> Option<PathBuf> {
        let prefix = format!("{}.", crate::layout::local_stem(name));
        fs::read_dir(self.config.dir.join("kept"))
            .ok()?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let time: u64 = n.strip_prefix(&prefix)?.split('-').next()?.parse().ok()?;
                Some((time, e.path()))
            })
            .max()
            .map(|(_, p)| p)
    }
}

/// A verified copy in a partial directory, with the record it matches.
pub struct Fetched<'a> {
    pub record: Arc<FileRecord>,
    pub outcome: download::Outcome,
    /// Keeps the download listed (and its key taken) until dropped.
    pub active: ActiveGuard<'a>,
}

/// The partial file of another version of `record`'s name (one replaced
/// while it downloaded), moved out of the way of the new download: its
/// verified pieces can still be copied. `resume::open` would otherwise
/// start the new version's partial file afresh over it.
fn set_aside_superseded(partial_dir: &Path, record: &FileRecord) -> Option<PathBuf> {
    let paths = crate::layout::Paths::new(partial_dir, &record.name);
    let saved = download::resume::state_md5(&fs::read(&paths.state).ok()?)?;
    if saved == record.md5 {
        return None;
    }
    let aside = crate::layout::local_file(partial_dir, &record.name, "superseded");
    fs::rename(&paths.part, &aside).ok()?;
    let _ = fs::remove_file(&paths.state);
    Some(aside)
}

/// How long a download left with no holder waits for the next version of
/// its item to be published (`Peer::superseded`): the owner's watcher
/// settles (0.5 s) and hashes the new version first.
const SUPERSEDE_WAIT: Duration = Duration::from_secs(5);

/// How many times a `get` moves on to a newer version that appeared
/// while it downloaded, before it gives up.
const MAX_SUPERSEDED: u32 = 3;

/// Stops serving a download's partial file however the download ends; a
/// finished one is served from `files/` by then.
struct PartialGuard<'a>(&'a Store, &'a str);

impl Drop for PartialGuard<'_> {
    fn drop(&mut self) {
        self.0.remove_partial(self.1);
    }
}

fn empty_download(partial_dir: &Path, record: &FileRecord) -> Result<download::Outcome> {
    fs::create_dir_all(partial_dir)
        .map_err(|e| Error::io(format!("creating {}", partial_dir.display()), e))?;
    let crate::layout::Paths { part, state } = crate::layout::Paths::new(partial_dir, &record.name);
    File::create(&part).map_err(|e| Error::io(format!("creating {}", part.display()), e))?;
    let md5 = crate::record::md5_of(b"");
    if md5 != record.md5 {
        return Err(Error::Integrity(format!(
            "{}: the record of an empty file has a wrong MD5",
            record.name
        )));
    }
    Ok(download::Outcome {
        state,
        part,
        md5,
        sources: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbps_counts_only_what_was_fetched() {
        let report = GetReport {
            name: "f".into(),
            bytes: 10_000_000,
            resumed: 2_000_000,
            reused: 7_000_000,
            md5: [0; 16],
            secs: 1.0,
            sources: Vec::new(),
        };
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..2],
            [
                "resumed f: 2000000 of 10000000 bytes were already verified; MBps counts this run's 1000000",
                "reused f: 7000000 of 10000000 bytes were found in local files; MBps counts the 1000000 fetched",
            ]
        );
        assert!(lines[2].ends_with("secs=1.000 MBps=1.0"), "{}", lines[2]);
    }
}
