//! The tracker's state, with no sockets and no disk: the file records, the
//! live peers, and how much of each file each peer holds. Every operation
//! that depends on time takes `now`, so expiry is tested with made-up
//! instants.
//!
//! Compact by design, for 100,000 live peers: a peer is its id, address,
//! session, deadline and a short list of holdings, each a block count, not
//! a piece set. Which pieces a holder has, a downloader learns from the
//! holder itself (OPENED, then HAVE), and rarest-first is counted over the
//! holders it is connected to; the tracker only needs to say who takes
//! part and how far along each one is. Per file, the catalogue keeps the
//! list of its participants (for WHO_HAS samples in O(64)) and running
//! totals (for FILE_LIST and the dashboards in O(files)).
//!
//! Sessions: a REGISTER gives a peer a fresh session id; announces carry
//! the (peer id, session) pair, and a stale pair is refused so the peer
//! registers again.
//!
//! Legacy names: a version 1 record (MD5 piece hashes) read back from disk
//! cannot be served, and the tracker cannot re-hash a file it does not
//! have. Its name, size and MD5 are kept so that only the same content can
//! take the name back: the first holder that publishes it (in version 2)
//! brings the file back into the catalogue.

pub mod sites;

use super::summary::{FileTotals, PeerRow, Summary, HISTOGRAM_BUCKETS};
use crate::digest::Md5Digest;
use crate::error::{code, Error, Result};
use crate::names::natural_cmp;
use crate::record::{FileRecord, LegacyRecord, BLOCK_SIZE};
use crate::rng::Rng;
use crate::units::hex;
use crate::wire::datagram::tracker::{Entry, Held};
use crate::wire::message::MAX_HOLDERS;
use crate::wire::{FileSummary, Holder, ANNOUNCE_INTERVAL};
use sites::{site_first, Sites};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The announce rate the interval is sized for: past `3 s × this` live
/// peers the interval grows, so the tracker's load stays near it.
pub const TARGET_ANNOUNCES_PER_SEC: u64 = 20_000;
/// The longest interval handed out (a million peers get 50 s).
pub const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// A peer is forgotten after this many intervals without an announce.
pub const MISSED_INTERVALS: u32 = 3;

/// The announce interval for a swarm of `peers` live peers: 3 s, or one
/// second per `TARGET_ANNOUNCES_PER_SEC` peers when that is longer.
pub fn interval_for(peers: usize) -> Duration {
    let secs = (peers as u64).div_ceil(TARGET_ANNOUNCES_PER_SEC);
    Duration::from_secs(secs)
        .max(ANNOUNCE_INTERVAL)
        .min(MAX_INTERVAL)
}

/// Where other peers dial a peer: the address the tracker saw, unless the
/// peer advertised a name (most advertise nothing: no string is kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(Box<str>),
}

impl Host {
    /// `advertise` if given (an IP literal is stored as an address), else
    /// `source` (an IPv4-mapped address as plain IPv4).
    pub fn from_announce(advertise: &str, source: IpAddr) -> Host {
        if advertise.is_empty() {
            return Host::Ip(source.to_canonical());
        }
        let bare = advertise.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip.to_canonical()),
            Err(_) => Host::Name(advertise.into()),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// How far along a peer is with one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Partial(u32),
    Complete,
}

struct Holding {
    file: u32,
    /// This peer's place in the file's `members`.
    pos: u32,
    state: State,
    /// Bytes per second gained, smoothed over announces.
    rate: f32,
    /// When `state` last changed.
    changed: Instant,
}

struct PeerEntry {
    id: Box<str>,
    host: Host,
    port: u16,
    /// Its site (`Sites` number, 0: none).
    site: u16,
    session: u64,
    last_seen: Instant,
    /// Forgotten after this, unless it announces again.
    deadline: Instant,
    holdings: Vec<Holding>,
}

struct FileEntry {
    record: Arc<FileRecord>,
    /// Peer slots taking part, in no order.
    members: Vec<u32>,
    /// Members holding every block.
    seeders: u32,
    /// Members with at least one block (or any member, for an empty file).
    holders: u32,
    /// Blocks held by the members still downloading.
    partial_blocks: u64,
    /// Superseded by a newer version of its name: kept only while peers
    /// still take part in it (a download under way finishes), never
    /// listed, freed with its last member.
    older: bool,
}

impl FileEntry {
    fn holds(&self, s: State) -> bool {
        match s {
            State::Complete => true,
            State::Partial(n) => n > 0 || self.record.size == 0,
        }
    }

    fn count(&mut self, s: State, sign: i64) {
        let d = |v: u32| (v as i64 + sign).max(0) as u32;
        if s == State::Complete {
            self.seeders = d(self.seeders);
        }
        if self.holds(s) {
            self.holders = d(self.holders);
        }
        if let State::Partial(n) = s {
            self.partial_blocks = (self.partial_blocks as i64 + sign * n as i64).max(0) as u64;
        }
    }

    fn fraction(&self, s: State) -> f64 {
        match s {
            State::Complete => 1.0,
            State::Partial(_) if self.record.size == 0 => 1.0,
            State::Partial(n) => {
                let held = (n as u64 * BLOCK_SIZE as u64).min(self.record.size);
                held as f64 / self.record.size as f64
            }
        }
    }
}

/// What an announce did, for the answer.
#[derive(Debug, PartialEq, Eq)]
pub struct AnnounceOutcome {
    /// Per entry: the catalogue has no record of that file.
    pub unknown: Vec<bool>,
    /// The interval to give the peer.
    pub interval: Duration,
}

pub struct Catalogue {
    /// Every file entry; a withdrawn one stays (its index may still be
    /// named nowhere) with an empty record, and is reused.
    files: Vec<FileEntry>,
    by_name: BTreeMap<Box<str>, u32>,
    /// Entries of withdrawn records, free for the next new name.
    free_files: Vec<u32>,
    /// Names withdrawn since the last `take_withdrawn`: the server deletes
    /// their records from disk.
    withdrawn: Vec<String>,
    peers: Vec<Option<PeerEntry>>,
    free: Vec<u32>,
    by_id: HashMap<Box<str>, u32>,
    next_session: u64,
    rng: Rng,
    announces: u64,
    /// (when, announces so far), one a second from `expire`: the rate.
    samples: VecDeque<(Instant, u64)>,
    /// Where `expire_part` goes on.
    sweep: usize,
    /// Names of version 1 records waiting for a holder to publish them again.
    legacy: HashMap<Box<str>, LegacyRecord>,
    /// Per name, the entries of its older versions that peers still take
    /// part in, oldest first.
    older: BTreeMap<Box<str>, Vec<u32>>,
    /// Older versions that became current again since the last
    /// `take_promoted` (the newer one was withdrawn): the server saves
    /// them over the withdrawn record on disk.
    promoted: Vec<Arc<FileRecord>>,
    /// Until then no name counts as abandoned: after a restart, owners
    /// and holders have not announced yet.
    names_held_until: Option<Instant>,
    sites: Sites,
}

/// How long after a restart the tracker waits before a name with no
/// holder and no live owner counts as abandoned: three announce
/// intervals, so every live peer has registered again.
pub const ABANDON_GRACE: Duration = Duration::from_secs(10);

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue::new()
    }
}

/// The error for an announce of a session the catalogue does not know.
pub fn unknown_peer(peer_id: &str) -> Error {
    Error::Remote {
        code: code::UNKNOWN_PEER,
        message: format!(
            "peer {peer_id} is not registered (it expired or registered again elsewhere); \
             register again"
        ),
    }
}

/// The error for a version of a name that is no longer kept.
pub fn superseded(name: &str, current: &FileRecord) -> Error {
    Error::NotFound(format!(
        "that version of {name} is no longer shared: the swarm has moved to version {} \
         (md5 {})",
        current.version,
        hex(&current.md5)
    ))
}

/// Why a record no newer than the current one is refused: an older
/// version (OUTDATED: its holder keeps it, a follower updates it), or
/// other content, or another owner, for the same version (CONFLICT).
fn stale_version(known: &FileRecord, record: &FileRecord) -> Error {
    if record.version < known.version {
        return Error::Remote {
            code: code::OUTDATED,
            message: format!(
                "{} is already at version {} (md5 {}, owner {}); yours is version {}: \
                 `get {}` fetches the current one",
                known.name,
                known.version,
                hex(&known.md5),
                owner_text(&known.owner),
                record.version,
                known.name
            ),
        };
    }
    Error::Conflict(format!(
        "{} is already shared with different content (md5 {}, {} bytes, version {}, \
         owner {}); rename your file",
        known.name,
        hex(&known.md5),
        known.size,
        known.version,
        owner_text(&known.owner)
    ))
}

/// The error for new content from a peer that does not own the name.
fn owned_by(known: &FileRecord) -> Error {
    Error::Conflict(format!(
        "{} is owned by {} (version {}, md5 {}): only its owner publishes new versions; \
         rename your copy, or ask {} to hand the name over",
        known.name,
        owner_text(&known.owner),
        known.version,
        hex(&known.md5),
        owner_text(&known.owner)
    ))
}

fn owner_text(owner: &str) -> &str {
    if owner.is_empty() {
        "nobody"
    } else {
        owner
    }
}

/// The error for a file name the catalogue does not know.
pub fn not_found(name: &str) -> Error {
    Error::NotFound(format!(
        "no file named {name} in the swarm; `files` lists what is shared"
    ))
}

impl Catalogue {
    pub fn new() -> Catalogue {
        Catalogue::with_rng(Rng::new())
    }

    /// A catalogue whose random holder samples are reproducible.
    pub fn with_rng(rng: Rng) -> Catalogue {
        Catalogue {
            files: Vec::new(),
            by_name: BTreeMap::new(),
            free_files: Vec::new(),
            withdrawn: Vec::new(),
            peers: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            next_session: 1,
            rng,
            announces: 0,
            samples: VecDeque::new(),
            sweep: 0,
            legacy: HashMap::new(),
            older: BTreeMap::new(),
            promoted: Vec::new(),
            names_held_until: None,
            sites: Sites::default(),
        }
    }

    /// No name counts as abandoned before `until` (`ABANDON_GRACE` after
    /// the tracker started: its peers have not registered again yet).
    pub fn hold_names_until(&mut self, until: Instant) {
        self.names_held_until = Some(until);
    }

    /// Adds a record read back from disk. False when the name is taken.
    pub fn load_record(&mut self, record: FileRecord) -> bool {
        if self.by_name.contains_key(record.name.as_str()) {
            return false;
        }
        self.insert_file(record);
        true
    }

    /// Keeps the name of a version 1 record read back from disk for the
    /// same content. False when the name is taken.
    pub fn load_legacy(&mut self, legacy: LegacyRecord) -> bool {
        if self.by_name.contains_key(legacy.name.as_str())
            || self.legacy.contains_key(legacy.name.as_str())
        {
            return false;
        }
        self.legacy.insert(legacy.name.as_str().into(), legacy);
        true
    }

    /// Names kept for version 1 records not yet published again.
    pub fn legacy_count(&self) -> usize {
        self.legacy.len()
    }

    /// The error for a name the catalogue cannot serve: unknown, or known
    /// only from a version 1 record.
    pub fn missing(&self, name: &str) -> Error {
        if self.legacy.contains_key(name) {
            return Error::NotFound(format!(
                "{name} is known only from a record of an older p2pshare (MD5 piece hashes); \
                 it is served again once a holder of it announces; try again later"
            ));
        }
        not_found(name)
    }

    fn insert_file(&mut self, record: FileRecord) -> u32 {
        let entry = FileEntry {
            record: Arc::new(record),
            members: Vec::new(),
            seeders: 0,
            holders: 0,
            partial_blocks: 0,
            older: false,
        };
        let name: Box<str> = entry.record.name.as_str().into();
        let idx = match self.free_files.pop() {
            Some(i) => {
                self.files[i as usize] = entry;
                i
            }
            None => {
                self.files.push(entry);
                (self.files.len() - 1) as u32
            }
        };
        self.by_name.insert(name, idx);
        idx
    }

    /// The last member of `file`, a holder of all of it, withdrew it (an
    /// ANNOUNCE said it is gone, not an expiry nor a goodbye, nor a
    /// download given up): nobody can serve it any more, so the
    /// record is dropped, and its name is free for new content. A peer
    /// that still has the old content later is told the name is unknown
    /// and publishes it again.
    /// If peers still take part in an older version of the name, the
    /// newest of those becomes current again (it is what the swarm has).
    fn withdraw_file(&mut self, file: u32) {
        let name = self.files[file as usize].record.name.clone();
        self.free_entry(file);
        match self.pop_older(&name) {
            Some(back) => {
                self.files[back as usize].older = false;
                self.by_name.insert(name.as_str().into(), back);
                self.promoted.push(self.files[back as usize].record.clone());
            }
            None => {
                self.by_name.remove(name.as_str());
                self.withdrawn.push(name);
            }
        }
    }

    /// Forgets an entry's record; the slot is reused for the next one.
    fn free_entry(&mut self, file: u32) {
        let f = &mut self.files[file as usize];
        f.record = Arc::new(FileRecord::from_bytes(&f.record.name, &[]));
        f.older = false;
        self.free_files.push(file);
    }

    /// The newest older version of `name`, taken out of the older list.
    fn pop_older(&mut self, name: &str) -> Option<u32> {
        let list = self.older.get_mut(name)?;
        let back = list.pop();
        if list.is_empty() {
            self.older.remove(name);
        }
        back
    }

    /// An older version lost its last member: nobody downloads it any
    /// more, so it is forgotten.
    fn drop_older_if_unused(&mut self, file: u32) {
        let f = &self.files[file as usize];
        if !f.older || !f.members.is_empty() {
            return;
        }
        let name: Box<str> = f.record.name.as_str().into();
        if let Some(list) = self.older.get_mut(&name) {
            list.retain(|&i| i != file);
            if list.is_empty() {
                self.older.remove(&name);
            }
        }
        self.free_entry(file);
    }

    /// Records that became current again (`withdraw_file`) since the last
    /// call: the server writes them to disk.
    pub fn take_promoted(&mut self) -> Vec<Arc<FileRecord>> {
        std::mem::take(&mut self.promoted)
    }

    /// Names whose records were dropped since the last call (the server
    /// deletes them from disk).
    pub fn take_withdrawn(&mut self) -> Vec<String> {
        std::mem::take(&mut self.withdrawn)
    }

    /// A record shared with NEW_FILE by `publisher` (a peer id, or empty).
    /// Ok(true) when it is new (the caller persists
    /// it), Ok(false) when an identical one is known. A name has one owner
    /// (docs/REFERENCE.md, *Updating a fleet*): only the owner publishes the next
    /// version (or hands the name over by publishing it with another
    /// owner); other content under the name is refused, the current
    /// version stays (until its last member withdraws it,
    /// `withdraw_file`), unless the name is abandoned: no live peer takes
    /// part in any version of it and its owner is not live either.
    pub fn publish(&mut self, record: FileRecord, publisher: &str, now: Instant) -> Result<bool> {
        let name = record.name.clone();
        let Some(&idx) = self.by_name.get(name.as_str()) else {
            if let Some(old) = self.legacy.get(name.as_str()) {
                if !old.matches(&record) {
                    return Err(Error::Conflict(format!(
                        "{name} is already shared with different content (md5 {}, {} bytes) \
                         by a peer of an older p2pshare; rename your file",
                        hex(&old.md5),
                        old.size
                    )));
                }
                self.legacy.remove(name.as_str());
            }
            self.insert_file(record);
            return Ok(true);
        };
        let known = self.files[idx as usize].record.clone();
        // The same bytes, labelled no later: peers that shared one file at
        // the same moment each made it their version 1. The first stays;
        // the others hold it (their announces name the same MD5).
        if record.same_content(&known) && record.version <= known.version {
            return Ok(false);
        }
        if record.version <= known.version {
            return Err(stale_version(&known, &record));
        }
        if !self.may_publish(&known, &record, publisher, now) {
            return Err(owned_by(&known));
        }
        if record.same_content(&known) {
            // A handover: the same bytes, a later version and owner. Its
            // holders hold it already (their announces name the same MD5).
            self.files[idx as usize].record = Arc::new(record);
            return Ok(true);
        }
        self.supersede(idx);
        self.insert_file(record);
        Ok(true)
    }

    /// Whether `publisher` may publish `record` as a new version over
    /// `known`: the name is unowned, `publisher` owns it, the record is
    /// the owner's own later version relayed by a holder, or nobody holds
    /// or owns the name any more.
    fn may_publish(
        &self,
        known: &FileRecord,
        record: &FileRecord,
        publisher: &str,
        now: Instant,
    ) -> bool {
        if known.owner.is_empty() {
            return true;
        }
        // A tracker that missed the owner's later version (it was down,
        // cut off, or started empty) learns it from whichever holder
        // announces it first: the version rule then decides the same on
        // every tracker. A holder's own content under the name carries
        // its own id as owner, so it is still refused.
        if publisher == known.owner || record.owner == known.owner {
            // By id: the address a peer registered from is not where it
            // connects from behind NAT, a proxy or `--advertise`, so it
            // cannot be checked (SECURITY.md, "Who may publish").
            return true;
        }
        self.is_abandoned(&known.name, &known.owner, now)
    }

    /// No live peer takes part in any version of `name`, its owner is not
    /// live, and the tracker has been up long enough to know.
    fn is_abandoned(&self, name: &str, owner: &str, now: Instant) -> bool {
        if self.names_held_until.is_some_and(|t| now < t) {
            return false;
        }
        let current_empty = self
            .by_name
            .get(name)
            .is_none_or(|&i| self.files[i as usize].members.is_empty());
        current_empty && !self.older.contains_key(name) && !self.is_live(owner, now)
    }

    /// Whether `peer_id` is a live peer (registered, within its deadline).
    fn is_live(&self, peer_id: &str, now: Instant) -> bool {
        self.by_id
            .get(peer_id)
            .is_some_and(|&slot| now <= self.peer(slot).deadline)
    }

    /// The current version of a name makes way for a newer one: kept as
    /// an older version while peers take part in it, else forgotten.
    fn supersede(&mut self, file: u32) {
        let f = &mut self.files[file as usize];
        let name: Box<str> = f.record.name.as_str().into();
        self.by_name.remove(&name);
        if f.members.is_empty() {
            self.free_entry(file);
        } else {
            f.older = true;
            self.older.entry(name).or_default().push(file);
        }
    }

    /// The entry of `name` whose record has `md5`: the current version or
    /// an older one still kept.
    fn version_of(&self, name: &str, md5: &Md5Digest) -> Option<u32> {
        let current = self.by_name.get(name).copied();
        let older = self.older.get(name).into_iter().flatten().copied();
        current
            .into_iter()
            .chain(older)
            .find(|&i| self.files[i as usize].record.md5 == *md5)
    }

    /// Starts a session for `peer_id`. Registering again replaces the old
    /// entry (last wins): a fresh session id, the old holdings dropped.
    /// Where another live peer holding `peer_id` is dialled, if one is and
    /// not at `host`:`port`. The same address is the same peer come back
    /// (a restart): its REGISTER replaces the old entry; another address
    /// is a second peer that took the same id by mistake.
    pub fn in_use_elsewhere(
        &self,
        peer_id: &str,
        host: &Host,
        port: u16,
        now: Instant,
    ) -> Option<String> {
        let p = self.peer(*self.by_id.get(peer_id)?);
        (now <= p.deadline && (&p.host != host || p.port != port))
            .then(|| crate::net::addrs::join_host_port(&p.host.to_string(), p.port))
    }

    pub fn register(&mut self, peer_id: &str, host: Host, port: u16, now: Instant) -> u64 {
        self.register_at(peer_id, host, port, "", now)
    }

    /// `register` for a peer in `site` ("" for none).
    pub fn register_at(
        &mut self,
        peer_id: &str,
        host: Host,
        port: u16,
        site: &str,
        now: Instant,
    ) -> u64 {
        let site = self.sites.intern(site);
        if let Some(&slot) = self.by_id.get(peer_id) {
            self.remove_slot(slot);
        }
        let session = self.next_session;
        self.next_session += 1;
        let peer = PeerEntry {
            id: peer_id.into(),
            host,
            port,
            site,
            session,
            last_seen: now,
            deadline: now + self.interval() * MISSED_INTERVALS,
            holdings: Vec::new(),
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.peers[s as usize] = Some(peer);
                s
            }
            None => {
                self.peers.push(Some(peer));
                (self.peers.len() - 1) as u32
            }
        };
        self.by_id.insert(peer_id.into(), slot);
        session
    }

    fn slot_of(&self, peer_id: &str, session: u64) -> Result<u32> {
        match self.by_id.get(peer_id) {
            Some(&s) if self.peer(s).session == session => Ok(s),
            _ => Err(unknown_peer(peer_id)),
        }
    }

    fn peer(&self, slot: u32) -> &PeerEntry {
        self.peers[slot as usize].as_ref().expect("live slot")
    }

    fn peer_mut(&mut self, slot: u32) -> &mut PeerEntry {
        self.peers[slot as usize].as_mut().expect("live slot")
    }

    /// The announce interval for the swarm as it is now.
    pub fn interval(&self) -> Duration {
        interval_for(self.by_id.len())
    }

    /// Applies one announce: each entry replaces what the peer held of
    /// that file; files not named keep what they had. Entries for files
    /// the catalogue has no record of are reported back; entries naming
    /// another md5 are ignored, and a block count of the whole file or
    /// more counts as complete.
    pub fn announce(
        &mut self,
        peer_id: &str,
        session: u64,
        entries: &[Entry<'_>],
        now: Instant,
    ) -> Result<AnnounceOutcome> {
        let slot = self.slot_of(peer_id, session)?;
        self.announces += 1;
        let interval = self.interval();
        let p = self.peer_mut(slot);
        p.last_seen = now;
        p.deadline = now + interval * MISSED_INTERVALS;
        let mut unknown = vec![false; entries.len()];
        for (i, e) in entries.iter().enumerate() {
            if !self.by_name.contains_key(e.name) {
                unknown[i] = e.held != Held::Gone;
                continue;
            }
            let Some(file) = self.version_of(e.name, &e.md5) else {
                // A version the tracker does not have (a new one whose
                // NEW_FILE failed, an old one it has forgotten): flagged,
                // so the holder publishes it and the owner rule decides.
                unknown[i] = e.held != Held::Gone;
                continue;
            };
            let f = &self.files[file as usize];
            let state = match e.held {
                Held::Gone => None,
                Held::Complete => Some(State::Complete),
                Held::Partial(n) if n >= f.record.block_count() => Some(State::Complete),
                Held::Partial(n) => Some(State::Partial(n)),
            };
            if state.is_some() {
                self.leave_other_versions(slot, file);
            }
            self.set_holding(slot, file, state, now);
        }
        Ok(AnnounceOutcome { unknown, interval })
    }

    /// A peer takes part in one version of a name: announcing one drops
    /// what it held of the others (it updated, or gave an update up).
    fn leave_other_versions(&mut self, slot: u32, file: u32) {
        let name = &self.files[file as usize].record.name;
        let others: Vec<u32> = self
            .peer(slot)
            .holdings
            .iter()
            .map(|h| h.file)
            .filter(|&f| f != file && self.files[f as usize].record.name == *name)
            .collect();
        for f in others {
            let p = self.peer_mut(slot);
            let i = p.holdings.iter().position(|h| h.file == f).expect("held");
            let h = p.holdings.swap_remove(i);
            self.drop_member(f, h.pos, h.state);
        }
    }

    /// Sets (or, with `None`, drops) what peer `slot` holds of `file`.
    fn set_holding(&mut self, slot: u32, file: u32, state: Option<State>, now: Instant) {
        let peer = self.peers[slot as usize].as_mut().expect("live slot");
        let f = &mut self.files[file as usize];
        let at = peer.holdings.iter().position(|h| h.file == file);
        match (at, state) {
            (None, None) => {}
            (None, Some(s)) => {
                f.count(s, 1);
                // Most peers hold one file: room for exactly one, not the
                // four a first push would make.
                peer.holdings.reserve_exact(1);
                peer.holdings.push(Holding {
                    file,
                    pos: f.members.len() as u32,
                    state: s,
                    rate: 0.0,
                    changed: now,
                });
                f.members.push(slot);
            }
            (Some(i), Some(s)) => {
                let h = &mut peer.holdings[i];
                if h.state == s {
                    return;
                }
                f.count(h.state, -1);
                f.count(s, 1);
                if let (State::Partial(old), State::Partial(new)) = (h.state, s) {
                    let secs = now.saturating_duration_since(h.changed).as_secs_f32();
                    if secs > 0.0 && new > old {
                        let r = (new - old) as f32 * BLOCK_SIZE as f32 / secs;
                        h.rate = if h.rate == 0.0 {
                            r
                        } else {
                            0.5 * h.rate + 0.5 * r
                        };
                    }
                } else {
                    h.rate = 0.0;
                }
                h.state = s;
                h.changed = now;
            }
            (Some(i), None) => {
                let h = peer.holdings.swap_remove(i);
                self.drop_member(file, h.pos, h.state);
                // A holder of the whole file took it back, and nobody is
                // left: the content is withdrawn. (A download given up
                // withdraws nothing: its seeder may only be away.) Only
                // the current version: an older one was freed with its
                // last member already (`drop_member`).
                let f = &self.files[file as usize];
                let current = self.by_name.get(f.record.name.as_str()) == Some(&file);
                if h.state == State::Complete && f.members.is_empty() && current {
                    self.withdraw_file(file);
                }
            }
        }
    }

    /// Takes the member at `pos` out of `file`'s list; the member moved
    /// into its place learns its new position.
    fn drop_member(&mut self, file: u32, pos: u32, state: State) {
        let f = &mut self.files[file as usize];
        f.count(state, -1);
        f.members.swap_remove(pos as usize);
        if let Some(&moved) = f.members.get(pos as usize) {
            let p = self.peers[moved as usize].as_mut().expect("live member");
            if let Some(h) = p.holdings.iter_mut().find(|h| h.file == file) {
                h.pos = pos;
            }
        }
        self.drop_older_if_unused(file);
    }

    fn remove_slot(&mut self, slot: u32) {
        let Some(peer) = self.peers[slot as usize].take() else {
            return;
        };
        for h in &peer.holdings {
            self.drop_member(h.file, h.pos, h.state);
        }
        self.by_id.remove(&peer.id);
        self.free.push(slot);
    }

    /// Ends a session. Only the current session may: a late goodbye of a
    /// peer that registered again must not remove the newer entry.
    pub fn remove_peer(&mut self, peer_id: &str, session: u64) -> bool {
        match self.slot_of(peer_id, session) {
            Ok(slot) => {
                self.remove_slot(slot);
                true
            }
            Err(_) => false,
        }
    }

    /// Forgets the peers past their deadline; their ids, sorted. Called
    /// about once a second, it also samples the announce rate.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let ids = self.expire_slots(0, self.peers.len(), now);
        self.sample(now);
        ids
    }

    /// `expire` in `parts` turns, each over the next slice of the peer
    /// slots, so the lock is never held for a scan of every peer (a
    /// million take milliseconds). The rate is sampled once per sweep.
    pub fn expire_part(&mut self, parts: usize, now: Instant) -> Vec<String> {
        let n = self.peers.len().div_ceil(parts.max(1)).max(1);
        let start = self.sweep.min(self.peers.len());
        self.sweep = start + n;
        if self.sweep >= self.peers.len() {
            self.sweep = 0;
            self.sample(now);
        }
        let end = (start + n).min(self.peers.len());
        self.expire_slots(start, end, now)
    }

    fn expire_slots(&mut self, start: usize, end: usize, now: Instant) -> Vec<String> {
        let gone: Vec<u32> = self.peers[start..end]
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref()
                    .filter(|p| now > p.deadline)
                    .map(|_| (start + i) as u32)
            })
            .collect();
        let mut ids: Vec<String> = gone.iter().map(|&s| self.peer(s).id.to_string()).collect();
        for s in gone {
            self.remove_slot(s);
        }
        ids.sort();
        ids
    }

    fn sample(&mut self, now: Instant) {
        self.samples.push_back((now, self.announces));
        while self.samples.len() > 6 {
            self.samples.pop_front();
        }
    }

    pub fn peer_count(&self) -> usize {
        self.by_id.len()
    }

    pub fn file_count(&self) -> usize {
        self.by_name.len()
    }

    /// Announces handled since the start.
    pub fn announce_count(&self) -> u64 {
        self.announces
    }

    /// Every file, sorted by name, with how many live peers hold it.
    pub fn list_files(&self) -> Vec<FileSummary> {
        self.by_name
            .values()
            .map(|&i| {
                let f = &self.files[i as usize];
                FileSummary {
                    name: f.record.name.clone(),
                    size: f.record.size,
                    md5: f.record.md5,
                    holders: f.holders,
                    seeders: f.seeders,
                    folder: f.record.folder.as_ref().map(|m| m.file_count() as u32),
                    version: f.record.version,
                    owner: f.record.owner.clone(),
                    older: self.older_members(&f.record.name),
                }
            })
            .collect()
    }

    /// Live peers taking part in an older version of `name`.
    fn older_members(&self, name: &str) -> u32 {
        self.older
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| self.files[i as usize].members.len() as u32)
            .sum()
    }

    pub fn record(&self, name: &str) -> Option<Arc<FileRecord>> {
        let &i = self.by_name.get(name)?;
        Some(self.files[i as usize].record.clone())
    }

    /// The live peers taking part in `name`, sorted by id: holders of some
    /// or all of it, and peers that started downloading it (they will have
    /// pieces to trade soon). A random sample of `MAX_HOLDERS` when there
    /// are more.
    /// With `md5`, those of that version of it (the current one or an
    /// older one still kept).
    pub fn holders(&mut self, name: &str, md5: Option<&Md5Digest>) -> Result<Vec<Holder>> {
        self.holders_for(name, md5, None)
    }

    /// `holders` for an asker in `site`: the holders of that site first
    /// (all of them, up to `MAX_HOLDERS`, `sites::site_first`), each part
    /// sorted by id, every holder with its site.
    pub fn holders_for(
        &mut self,
        name: &str,
        md5: Option<&Md5Digest>,
        site: Option<&str>,
    ) -> Result<Vec<Holder>> {
        let &current = self.by_name.get(name).ok_or_else(|| self.missing(name))?;
        let file = match md5 {
            None => current,
            Some(m) => self
                .version_of(name, m)
                .ok_or_else(|| superseded(name, &self.files[current as usize].record))?,
        };
        let asker = site.map_or(0, |s| self.sites.lookup(s));
        let peers = &self.peers;
        let picked = site_first(
            &self.files[file as usize].members,
            |slot| peers[slot as usize].as_ref().map_or(0, |p| p.site),
            asker,
            MAX_HOLDERS,
            &mut self.rng,
        );
        let record = &self.files[file as usize].record;
        let mut out: Vec<Holder> = picked
            .into_iter()
            .map(|slot| {
                let p = self.peer(slot);
                let state = p
                    .holdings
                    .iter()
                    .find(|h| h.file == file)
                    .map_or(State::Partial(0), |h| h.state);
                let (blocks, complete) = match state {
                    State::Complete => (record.block_count() as u64, true),
                    State::Partial(n) => (n as u64, false),
                };
                Holder {
                    peer_id: p.id.to_string(),
                    host: p.host.to_string(),
                    port: p.port,
                    blocks,
                    complete,
                    site: self.sites.name(p.site).to_string(),
                }
            })
            .collect();
        let own = |h: &Holder| site.is_some_and(|s| s == h.site);
        out.sort_by(|a, b| own(b).cmp(&own(a)).then(a.peer_id.cmp(&b.peer_id)));
        Ok(out)
    }

    /// Announces per second over the last few `expire` samples.
    fn announce_rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// What the dashboards draw, in one pass over the live peers, with at
    /// most `max_rows` peer rows: the slowest downloads first, then the
    /// peers seen most recently, those in natural order of their ids.
    pub fn summary(&self, now: Instant, max_rows: usize) -> Summary {
        let interval = self.interval();
        // A download with no announce for a whole interval gains nothing.
        let fresh = |h: &Holding| {
            if now.saturating_duration_since(h.changed) <= interval + Duration::from_secs(1) {
                h.rate as f64
            } else {
                0.0
            }
        };
        let mut s = Summary {
            peers: self.by_id.len(),
            files: self.by_name.len(),
            interval,
            announces_per_s: self.announce_rate(),
            ..Summary::default()
        };
        let mut file_rate = vec![0.0f64; self.files.len()];
        // (rate, fraction) of downloads, (seen) of the rest, as slot/holding.
        let mut slow: Vec<(f64, f64, u32, usize)> = Vec::new();
        let mut recent: Vec<(Duration, u32, Option<usize>)> = Vec::new();
        for (slot, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            let mut downloading = false;
            for (i, h) in p.holdings.iter().enumerate() {
                let f = &self.files[h.file as usize];
                if let State::Partial(_) = h.state {
                    downloading = true;
                    let rate = fresh(h);
                    s.rate_bps += rate;
                    file_rate[h.file as usize] += rate;
                    let frac = f.fraction(h.state);
                    let b = ((frac * HISTOGRAM_BUCKETS as f64) as usize).min(HISTOGRAM_BUCKETS - 1);
                    s.histogram[b] += 1;
                    slow.push((rate, frac, slot as u32, i));
                } else {
                    recent.push((
                        now.saturating_duration_since(p.last_seen),
                        slot as u32,
                        Some(i),
                    ));
                }
            }
            if p.holdings.is_empty() {
                recent.push((
                    now.saturating_duration_since(p.last_seen),
                    slot as u32,
                    None,
                ));
            }
            if downloading {
                s.leechers += 1;
            } else if p.holdings.iter().any(|h| h.state == State::Complete) {
                s.seeders += 1;
            }
        }
        s.file_totals = self
            .by_name
            .values()
            .map(|&i| {
                let f = &self.files[i as usize];
                let leechers = f.members.len() as u32 - f.seeders;
                let mean = if leechers == 0 || f.record.size == 0 {
                    0.0
                } else {
                    let held = (f.partial_blocks * BLOCK_SIZE as u64) as f64;
                    (held / leechers as f64 / f.record.size as f64).min(1.0)
                };
                FileTotals {
                    // A folder shows as `name/`.
                    name: f.record.display_name(),
                    size: f.record.size,
                    version: f.record.version,
                    owner: f.record.owner.clone(),
                    seeders: f.seeders,
                    leechers,
                    older: self.older_members(&f.record.name),
                    mean_fraction: mean,
                    rate_bps: file_rate[i as usize],
                }
            })
            .collect();
        s.rows = self.rows(now, slow, recent, max_rows);
        s
    }

    fn rows(
        &self,
        now: Instant,
        mut slow: Vec<(f64, f64, u32, usize)>,
        mut recent: Vec<(Duration, u32, Option<usize>)>,
        max_rows: usize,
    ) -> Vec<PeerRow> {
        let by_slow = |a: &(f64, f64, u32, usize), b: &(f64, f64, u32, usize)| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then_with(|| natural_cmp(&self.peer(a.2).id, &self.peer(b.2).id))
        };
        if slow.len() > max_rows {
            slow.select_nth_unstable_by(max_rows, by_slow);
            slow.truncate(max_rows);
        }
        slow.sort_by(by_slow);
        let left = max_rows - slow.len();
        if recent.len() > left {
            if left == 0 {
                recent.clear();
            } else {
                recent.select_nth_unstable_by_key(left, |r| r.0);
                recent.truncate(left);
            }
        }
        // Chosen by recency, shown by name (P1, P2, P10): rows do not
        // jump about with every announce.
        recent.sort_by(|a, b| {
            natural_cmp(&self.peer(a.1).id, &self.peer(b.1).id).then(a.2.cmp(&b.2))
        });
        let row = |slot: u32, holding: Option<usize>, rate: f64| {
            let p = self.peer(slot);
            let mut r = PeerRow {
                peer_id: p.id.to_string(),
                addr: crate::net::addrs::join_host_port(&p.host.to_string(), p.port),
                seen_ago: now.saturating_duration_since(p.last_seen),
                rate_bps: rate,
                ..PeerRow::default()
            };
            if let Some(h) = holding.map(|i| &p.holdings[i]) {
                let f = &self.files[h.file as usize];
                r.file = f.record.display_name();
                r.fraction = f.fraction(h.state);
                r.complete = h.state == State::Complete;
            }
            r
        };
        slow.iter()
            .map(|&(rate, _, slot, i)| row(slot, Some(i), rate))
            .chain(recent.iter().map(|&(_, slot, h)| row(slot, h, 0.0)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
