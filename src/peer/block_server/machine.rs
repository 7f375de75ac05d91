//! One block-server connection as a state machine: it takes the
//! downloader's requests and the time, and says what to answer, which
//! blocks to send next and when to give up. No socket, clock, thread or
//! disk inside: `driver` drives it over TCP and reads the blocks from the
//! files, the simulator drives it over a simulated connection.
//!
//! Requests are queued before they are served (REQUEST and CANCEL act on
//! the queue), and served in slices of at most `SLICE_BLOCKS`, so a CANCEL
//! or a HAVE gets through between slices even when an upload limit makes
//! each block slow. For a file still being downloaded here, only verified
//! pieces are served, and HAVE tells of new ones. For a complete file
//! whose seeder has several downloaders at once, OPENED and HAVE carry
//! the offers of its `Seeding` schedule instead of everything.

use super::seeding::{Seeding, RATE_EVERY};
use crate::bitfield::Bitfield;
use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::peak_rate::PeakRate;
use crate::record::FileRecord;
use crate::wire::{Answer, PeerReply, PeerRequest};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Files one connection may have open at once.
pub const MAX_OPEN_PER_CONN: usize = 64;
/// Requests read ahead and not yet served; beyond this the driver stops
/// reading (the client's frames wait in the socket).
pub const MAX_PENDING: usize = 4096;
/// Most blocks served in one go.
pub const SLICE_BLOCKS: u32 = 16;
/// Offers a downloader has left alone this long, with nothing queued,
/// are topped up with others.
pub const STALE_OFFERS: Duration = Duration::from_millis(1000);
/// How long a connection may stay silent with nothing to serve.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// New pieces of a download in progress are told at most this often per
/// connection, unless `HAVE_BATCH` of them are waiting: one HAVE then
/// carries every piece verified meanwhile. A leecher verifies hundreds of
/// 4 KiB pieces a second and serves up to 64 downloaders, and telling
/// each at every 50 ms tick made HAVE most of a swarm's frames (and of
/// its wake-ups). Measured with the simulator, 16 MiB at 1 MiB/s: 100
/// peers 1.114 -> 1.092 x T* with 41 % fewer events; 8 peers at 10 MiB/s
/// (where `HAVE_BATCH` keeps the pace of a tick) 1.018 -> 1.017.
pub const HAVE_EVERY: Duration = Duration::from_millis(150);
/// New pieces that go out at once, however recent the last HAVE.
pub const HAVE_BATCH: u32 = 32;

/// A file as the block server sees it.
pub trait Served: Clone {
    fn record(&self) -> &FileRecord;
    /// For a download in progress: a number that changes whenever more
    /// pieces are verified. `None` for a complete file.
    fn version(&self) -> Option<u64>;
    /// The verified pieces (every piece of a complete file).
    fn have(&self) -> Bitfield;
    /// How many pieces `have` holds, without copying the set.
    fn verified(&self) -> u32;
    /// Every piece from `first` to `last` is verified (without copying
    /// the set: this is asked for every slice served).
    fn holds(&self, first: u32, last: u32) -> bool;
    /// The seeder's schedule, for a complete file.
    fn seeding(&self) -> Option<&Mutex<Seeding>>;
}

/// Where a connection finds the files it is asked for.
pub trait Library {
    type File: Served;
    /// The file by that name, complete or being downloaded here.
    fn find(&self, name: &str) -> Option<Self::File>;
    /// The version of `name` whose whole-file MD5 is `md5` (a peer that
    /// updates holds the old version whole and the new one in part).
    fn find_version(&self, name: &str, md5: &Md5Digest) -> Option<Self::File> {
        self.find(name).filter(|f| f.record().md5 == *md5)
    }
    /// This peer's id, for the errors it sends.
    fn id(&self) -> &str;
}

/// See `Serve::held`: `tick` is idle before `until` while fewer than
/// `below` pieces are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub until: Instant,
    pub below: u32,
}

impl Held {
    /// `tick` would do nothing at `now` with `verified` pieces verified.
    pub fn holds(&self, now: Instant, verified: u32) -> bool {
        now < self.until && verified < self.below
    }
}

/// A run of blocks to send next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice<F> {
    pub file: F,
    pub handle: u32,
    pub block: u32,
    pub count: u32,
}

struct Opened<F> {
    file: F,
    /// What the client was told we have, and (a download in progress)
    /// the version it was read at.
    told: Bitfield,
    seen: Option<u64>,
    /// Pieces it asked for, kept only when it was told offers (`offered`):
    /// nothing else reads them, and a set per connection touched at every
    /// REQUEST cost a simulated swarm a cache miss per block.
    asked: Bitfield,
    /// It is told offers, not everything: more as it asks.
    offers: bool,
    /// It was ever told offers (what it did not take goes back).
    offered: bool,
    /// When it was last offered more.
    offered_at: Instant,
    /// When it last asked for something.
    asked_at: Instant,
    /// When it was last told new pieces (a download in progress).
    told_at: Instant,
    /// New pieces wait for `HAVE_EVERY` to pass.
    owed: bool,
    /// Pieces sent to it a second.
    rate: PeakRate,
}

/// A run of blocks asked for and not yet sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Queued {
    handle: u32,
    block: u32,
    count: u32,
}

pub struct Serve<F> {
    opened: Vec<Opened<F>>,
    pending: VecDeque<Queued>,
    heard: Instant,
    /// When the last PING came, and the least time between two: the
    /// round trip, since a downloader sends its first PINGs one after
    /// the other's PONG (`fetch`). A seeder's offers to a far one cover
    /// it (`Seeding::offer_size_for`).
    pinged: Option<Instant>,
    rtt: Option<Duration>,
    out: Vec<PeerReply<'static>>,
    closing: bool,
}

impl<F: Served> Serve<F> {
    pub fn new(now: Instant) -> Serve<F> {
        Serve {
            opened: Vec::new(),
            pending: VecDeque::new(),
            heard: now,
            pinged: None,
            rtt: None,
            out: Vec::new(),
            closing: false,
        }
    }

    /// Answers to send now, oldest first.
    pub fn replies(&mut self) -> std::vec::Drain<'_, PeerReply<'static>> {
        self.out.drain(..)
    }

    /// The client said BYE: answer, then close.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Some file is open on this connection (a download from us).
    pub fn has_open(&self) -> bool {
        !self.opened.is_empty()
    }

    /// How many connections share the upload of what is open here: the
    /// most of any seeder's schedule of those files, 1 without one.
    pub fn sharers(&self) -> u32 {
        self.opened
            .iter()
            .filter_map(|o| o.file.seeding())
            .map(|s| lock(s).open_count())
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Requests queued and not yet served.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// With nothing pending, `tick` has nothing to do at `now` unless a
    /// file's `version` changed since it last ran: no seeder's offers to
    /// top up (they follow the other connections too), no new pieces
    /// waiting for `HAVE_EVERY`, and the idle timeout not reached. For a
    /// driver that ticks only on those events.
    pub fn quiet(&self, now: Instant) -> bool {
        self.quiet_until().is_some_and(|until| now <= until)
    }

    /// Until when `quiet` holds, if it does at all, as long as the
    /// machine is not called: for a driver that keeps it beside the
    /// other connections' instead of reading each machine at every tick.
    pub fn quiet_until(&self) -> Option<Instant> {
        if self.opened.iter().any(|o| o.offers || o.owed) {
            return None;
        }
        Some(self.heard + IDLE_TIMEOUT)
    }

    /// With nothing pending and no call meanwhile, `tick` sends nothing
    /// and ends nothing before `until` as long as fewer than `below`
    /// pieces of the file(s) are verified: new pieces wait for
    /// `HAVE_EVERY` or `HAVE_BATCH`. `None` when it may act at any tick
    /// (a seeder's offers). For a driver that ticks only the connections
    /// that can act, without reading each machine.
    pub fn held(&self) -> Option<Held> {
        let mut held = Held {
            // The idle timeout ends it only once `IDLE_TIMEOUT` has passed.
            until: self.heard + IDLE_TIMEOUT + Duration::from_nanos(1),
            below: u32::MAX,
        };
        for o in &self.opened {
            if o.offers {
                return None;
            }
            if o.seen.is_some() {
                held.until = held.until.min(o.told_at + HAVE_EVERY);
                held.below = held.below.min(o.told.count().saturating_add(HAVE_BATCH));
            }
        }
        Some(held)
    }

    /// Takes one request. An error ends the connection (send its ERROR).
    pub fn on_request<L: Library<File = F>>(
        &mut self,
        req: PeerRequest,
        now: Instant,
        lib: &L,
    ) -> Result<()> {
        self.heard = now;
        match req {
            PeerRequest::Open { name, md5 } => self.open(&name, &md5, lib)?,
            PeerRequest::Request {
                handle,
                block,
                count,
            } => {
                let Some(o) = self.opened.get_mut(handle as usize) else {
                    return Err(Error::protocol(format!(
                        "REQUEST on handle {handle}, which was never opened"
                    )));
                };
                check_range(o.file.record(), block, count as u32)?;
                let record = o.file.record();
                if o.offered {
                    for p in record.piece_of_block(block)
                        ..=record.piece_of_block(block + count as u32 - 1)
                    {
                        o.asked.set(p);
                    }
                }
                o.asked_at = now;
                self.pending.push_back(Queued {
                    handle,
                    block,
                    count: count as u32,
                });
            }
            PeerRequest::Cancel {
                handle,
                block,
                count,
            } => cancel(&mut self.pending, handle, block, count as u32),
            PeerRequest::Ping { nonce } => {
                if let Some(last) = self.pinged {
                    let gap = now.saturating_duration_since(last);
                    self.rtt = Some(self.rtt.map_or(gap, |r| r.min(gap)));
                }
                self.pinged = Some(now);
                self.out.push(PeerReply::Pong { nonce });
            }
            PeerRequest::GetRecord { name } => match lib.find(&name) {
                Some(f) => self.out.push(PeerReply::Record {
                    record: Box::new(f.record().clone()),
                }),
                None => self.out.push(PeerReply::error(&Error::NotFound(format!(
                    "{} does not hold {name}",
                    lib.id()
                )))),
            },
            PeerRequest::Bye => {
                self.out.push(PeerReply::Ok);
                self.closing = true;
            }
        }
        Ok(())
    }

    fn open<L: Library<File = F>>(&mut self, name: &str, md5: &Md5Digest, lib: &L) -> Result<()> {
        let f = match lib.find_version(name, md5) {
            Some(f) => f,
            None if lib.find(name).is_some() => {
                self.out.push(PeerReply::error(&Error::NotFound(format!(
                    "{} holds a different version of {name}",
                    lib.id()
                ))));
                return Ok(());
            }
            None => {
                self.out.push(PeerReply::error(&Error::NotFound(format!(
                    "{} does not hold {name}",
                    lib.id()
                ))));
                return Ok(());
            }
        };
        if self.opened.len() >= MAX_OPEN_PER_CONN {
            return Err(Error::protocol("too many files opened on one connection"));
        }
        let pieces = f.record().piece_count();
        let bpp = f.record().blocks_per_piece;
        let (told, offers) = match f.seeding() {
            Some(s) => {
                let told = lock(s).open(bpp);
                let offers = !told.is_full();
                (told, offers)
            }
            None => (f.have(), false),
        };
        self.out.push(PeerReply::Opened {
            handle: self.opened.len() as u32,
            have: told.clone(),
        });
        self.opened.push(Opened {
            seen: f.version(),
            told,
            asked: Bitfield::new(if offers { pieces } else { 0 }),
            offers,
            offered: offers,
            offered_at: self.heard,
            asked_at: self.heard,
            told_at: self.heard,
            owed: false,
            rate: PeakRate::default(),
            file: f,
        });
        Ok(())
    }

    /// Looks at the time and the files: HAVE for pieces newly verified
    /// here or newly offered, and the idle timeout.
    pub fn tick(&mut self, now: Instant) -> Result<()> {
        if self.pending.is_empty() && now.saturating_duration_since(self.heard) > IDLE_TIMEOUT {
            return Err(Error::Timeout("idle connection".into()));
        }
        let idle = self.pending.is_empty();
        for (handle, o) in self.opened.iter_mut().enumerate() {
            let new = if o.offers {
                more_offers(o, idle, self.rtt.unwrap_or_default(), now)
            } else if let (Some(seen), Some(version)) = (o.seen, o.file.version()) {
                if version == seen {
                    continue;
                }
                // What it was told is a subset of what is verified, so the
                // counts tell how many wait without copying the set.
                let waiting = o.file.verified().saturating_sub(o.told.count());
                let early = now.saturating_duration_since(o.told_at) < HAVE_EVERY;
                o.owed = early && waiting < HAVE_BATCH;
                if o.owed {
                    continue;
                }
                o.seen = Some(version);
                o.told_at = now;
                // The new pieces are computed in the old set's words.
                let mut new = std::mem::replace(&mut o.told, o.file.have());
                new.rest_of(&o.told);
                new
            } else {
                continue;
            };
            if new.count() > 0 {
                self.out.push(PeerReply::Have {
                    handle: handle as u32,
                    have: new,
                });
            }
        }
        Ok(())
    }

    /// The next run of blocks to send, at most `SLICE_BLOCKS`; the rest
    /// of its request stays queued. An error if the client asked for
    /// blocks this file does not hold (verified, or offered).
    pub fn next_slice(&mut self) -> Result<Option<Slice<F>>> {
        let Some(mut r) = self.pending.pop_front() else {
            return Ok(None);
        };
        if r.count > SLICE_BLOCKS {
            self.pending.push_front(Queued {
                block: r.block + SLICE_BLOCKS,
                count: r.count - SLICE_BLOCKS,
                ..r
            });
            r.count = SLICE_BLOCKS;
        }
        let o = &mut self.opened[r.handle as usize];
        let record = o.file.record();
        let (first, last) = (
            record.piece_of_block(r.block),
            record.piece_of_block(r.block + r.count - 1),
        );
        let allowed = if o.file.version().is_some() {
            o.file.holds(first, last)
        } else {
            (first..=last).all(|p| o.told.get(p))
        };
        if !allowed {
            return Err(Error::protocol(format!(
                "REQUEST for blocks {}+{} of {}, which are not offered or verified here",
                r.block, r.count, record.name
            )));
        }
        if let Some(s) = o.file.seeding() {
            let mut s = lock(s);
            for p in first..=last {
                if record.first_block(p) >= r.block {
                    s.sent(p);
                    o.rate.add(1);
                }
            }
        }
        Ok(Some(Slice {
            file: o.file.clone(),
            handle: r.handle,
            block: r.block,
            count: r.count,
        }))
    }

    /// The connection is over: offers it did not take go back.
    pub fn close(&mut self) {
        for o in self.opened.drain(..) {
            if let Some(s) = o.file.seeding() {
                lock(s).close(o.offered.then_some((&o.told, &o.asked)));
            }
        }
    }
}

/// Tops up a connection's offers (see `Seeding::offer_size`); the newly
/// offered pieces.
fn more_offers<F: Served>(o: &mut Opened<F>, idle: bool, rtt: Duration, now: Instant) -> Bitfield {
    let record = o.file.record();
    let none = || Bitfield::new(record.piece_count());
    let Some(s) = o.file.seeding() else {
        return none();
    };
    let waiting = o.told.minus(&o.asked).count();
    let mut s = lock(s);
    let want = s.offer_size_for(
        record.blocks_per_piece,
        rtt,
        o.rate.measure(now, RATE_EVERY),
        now,
    );
    // A downloader that asks for nothing it was offered may have those
    // pieces from others already: offer it others after a while.
    // One that is still asking is only slow: its offers are not stale
    // (a seeder shared by many serves each one a few blocks a second).
    let last = o.offered_at.max(o.asked_at);
    let stale = idle && now.saturating_duration_since(last) >= STALE_OFFERS;
    if (waiting >= want.div_ceil(2) && !stale) || o.told.is_full() {
        return none();
    }
    let new = if stale && (s.fresh() == 0 || s.new_pieces_fresh()) {
        // It has what it was offered, from others, and waits for pieces
        // that perhaps only we still hold (their holders left, under
        // churn): one more piece per STALE_OFFERS could take minutes to
        // reach them. It is told everything, and asks us only for what no
        // connected leecher has (`plan::claim`). So is a peer updating
        // that asks for none of the new pieces offered: it holds them
        // already, found shifted in its old copy (an insertion makes
        // every piece after it new by its hash), and needs others.
        let all = Bitfield::full(record.piece_count());
        let rest = all.minus(&o.told);
        o.told = all;
        rest
    } else if stale {
        s.offer_stale(&mut o.told, want.saturating_sub(waiting).max(1))
    } else {
        s.offer(&mut o.told, want.saturating_sub(waiting).max(1))
    };
    o.offered_at = now;
    if o.told.is_full() {
        o.offers = false;
    }
    new
}

fn lock(s: &Mutex<Seeding>) -> std::sync::MutexGuard<'_, Seeding> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn check_range(record: &FileRecord, block: u32, count: u32) -> Result<()> {
    let total = record.block_count();
    match block.checked_add(count) {
        Some(end) if end <= total => Ok(()),
        _ => Err(Error::protocol(format!(
            "REQUEST for blocks {block}+{count} beyond the file's {total}"
        ))),
    }
}

/// Removes `block..block+count` of `handle` from the requests not yet
/// served, splitting a request that straddles the range.
fn cancel(pending: &mut VecDeque<Queued>, handle: u32, block: u32, count: u32) {
    let end = block.saturating_add(count);
    let mut kept = VecDeque::with_capacity(pending.len());
    for r in pending.drain(..) {
        let r_end = r.block + r.count;
        if r.handle != handle || r_end <= block || r.block >= end {
            kept.push_back(r);
            continue;
        }
        if r.block < block {
            kept.push_back(Queued {
                count: block - r.block,
                ..r
            });
        }
        if r_end > end {
            kept.push_back(Queued {
                block: end,
                count: r_end - end,
                ..r
            });
        }
    }
    *pending = kept;
}

/// A file in memory, for the tests and the simulator.
#[derive(Clone)]
pub struct MemFile {
    pub record: Arc<FileRecord>,
    /// `Some` while being downloaded: its verified pieces and version.
    pub partial: Option<Arc<Mutex<(u64, Bitfield)>>>,
    pub seeding: Option<Arc<Mutex<Seeding>>>,
}

impl Served for MemFile {
    fn record(&self) -> &FileRecord {
        &self.record
    }
    fn version(&self) -> Option<u64> {
        self.partial
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).0)
    }
    fn verified(&self) -> u32 {
        match &self.partial {
            Some(p) => p.lock().unwrap_or_else(|e| e.into_inner()).1.count(),
            None => self.record.piece_count(),
        }
    }
    fn have(&self) -> Bitfield {
        match &self.partial {
            Some(p) => p.lock().unwrap_or_else(|e| e.into_inner()).1.clone(),
            None => Bitfield::full(self.record.piece_count()),
        }
    }
    fn holds(&self, first: u32, last: u32) -> bool {
        match &self.partial {
            Some(p) => {
                let p = p.lock().unwrap_or_else(|e| e.into_inner());
                (first..=last).all(|piece| p.1.get(piece))
            }
            None => true,
        }
    }
    fn seeding(&self) -> Option<&Mutex<Seeding>> {
        self.seeding.as_deref()
    }
}

#[cfg(test)]
mod tests;
