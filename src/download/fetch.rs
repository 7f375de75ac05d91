//! The download from one holder as a state machine: it takes the holder's
//! messages and the time, and says what to send, what to write and when
//! to wake. No socket, clock or thread inside: `worker` drives it over a
//! TCP connection, the simulator over a simulated one.
//!
//! A connection's life: OPENING (OPEN sent, and a PING behind it) ->
//! MEASURING (OPENED came; its PONG gives the first RTT; a holder still
//! downloading may send HAVE meanwhile) -> TRANSFER (a
//! pipeline of REQUESTs, sized from rate x RTT) -> DONE (the plan is
//! complete, or a complete holder has nothing we miss). Any protocol
//! violation, 3 bad pieces, or 5 s of silence while blocks are owed ends it
//! with an error; the pieces it owed go back to the plan (`abandon`).
//!
//! A piece's life, as this machine sees it: claimed from the plan
//! (REQUESTED) -> its blocks arrive in order into a buffer -> verified
//! against its hash (a bad one is released for another holder) -> batched
//! with the contiguous pieces after it -> handed out as `Write` -> marked
//! done in the plan once written (`written`). In the endgame a piece
//! another holder delivered first is cancelled (CANCEL); its late blocks
//! are dropped, not an error.

use super::plan::Plan;
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::int_hash::{IntMap, IntSet};
use crate::peak_rate::PeakRate;
use crate::record::FileRecord;
use crate::rng::Rng;
use crate::wire::message::MAX_REQUEST_BLOCKS;
use crate::wire::{PeerReply, PeerRequest};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A holder that sends nothing for this long while owing blocks is dropped.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pipeline bounds, in blocks (4 KiB each). At least 4 in flight: with 2,
/// a holder capped at 1 MiB/s answered each REQUEST with 2 blocks, and the
/// syscalls and wake-ups per block made N=48 cost 28 CPU s per GiB
/// against 25 with 4 (docs/PERFORMANCE.md, *CPU per block*).
pub const MIN_WINDOW: u32 = 4;
pub const MAX_WINDOW: u32 = 1024;
/// Verified data is handed out in runs of up to this many bytes.
pub const WRITE_BATCH: usize = 1 << 20;
/// Bad pieces tolerated from one holder before it is dropped.
pub const MAX_BAD_PIECES: u32 = 3;
/// How often the RTT is measured again while blocks flow, and how often
/// an idle connection is pinged so the holder does not close it.
pub const PING_EVERY: Duration = Duration::from_secs(2);

/// The plan is shared by every holder's machine of one download: the
/// driver decides how to reach it (a mutex for threads, a cell in the
/// simulator). Each call holds it only for the closure.
pub trait PlanRef {
    fn with<R>(&self, f: impl FnOnce(&mut Plan) -> R) -> R;
}

impl PlanRef for std::sync::Mutex<Plan> {
    fn with<R>(&self, f: impl FnOnce(&mut Plan) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl PlanRef for std::cell::RefCell<Plan> {
    fn with<R>(&self, f: impl FnOnce(&mut Plan) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Send(PeerRequest),
    /// Write `count` verified pieces from `first` (contiguous) at their
    /// offset, then call `written`.
    Write {
        first: u32,
        count: u32,
        data: Vec<u8>,
    },
    /// A piece failed its hash and went back to the plan: wake the idle.
    Released,
}

/// What the machine waits for after `poll`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Wait {
    /// A message from the holder, or the time given (a PING, the stall
    /// check).
    Reply(Instant),
    /// Nothing to request: every piece this holder has is in flight
    /// elsewhere. Wake on a change in the plan (or the time given).
    Work(Instant),
    /// Finished with this holder: the plan is complete, or it is a
    /// complete holder with nothing we miss.
    Done,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// OPEN and PING 0 sent at `pinged`.
    Opening {
        pinged: Instant,
    },
    /// OPENED came; PONG `nonce` to the PING sent at `sent` is awaited.
    Measuring {
        nonce: u64,
        sent: Instant,
    },
    Transfer,
    /// Abandoned.
    Over,
}

struct PieceBuf {
    data: Vec<u8>,
    /// Next block expected, as an index within the piece.
    next: u32,
    blocks: u32,
}

/// Contiguous verified pieces waiting to be handed out in one `Write`.
struct Batch {
    first: u32,
    count: u32,
    data: Vec<u8>,
}

/// How long an update waits before it asks the item's owner for anything:
/// the other holders' OPENED come in meanwhile (`Fetch::spare_as_origin`).
pub const ORIGIN_GRACE: Duration = Duration::from_millis(300);
/// How long the owner of an item being updated is spared at all: past
/// this, it serves what others were to give and did not.
pub const ORIGIN_SPARED: Duration = Duration::from_secs(3);

/// How long a download waits before it asks a holder of another site for
/// anything (`Fetch::set_remote`): the OPENED of its own site's holders,
/// nearer, come in meanwhile.
pub const REMOTE_GRACE: Duration = Duration::from_millis(500);

/// A spared seeder (`Spared`) is asked for a piece once no connected
/// downloading holder has had it at `LOOKS` + 1 looks spanning this
/// long. The simulator at N=1,000 (16 MiB, 1 MiB/s, seed 1), all at
/// 1.143 x T*: 0.9 s, 1.064 copies; 1.2 s, 1.032; two looks 1.5 s
/// apart, 1.028. A piece lost with a leecher that left for good costs
/// the wait (N=100 with a fifth of the leechers leaving: 1.14 x T* ->
/// 1.19; two looks 1.5 s apart, 1.23; docs/PERFORMANCE.md).
pub const SEEDER_WAIT: Duration = Duration::from_millis(1200);
/// Looks per `SEEDER_WAIT`: a piece is asked for between 1 and 1 +
/// 1 / `LOOKS` waits after it was first seen with the seeder alone.
const LOOKS: u32 = 3;

/// A seeder of a swarm larger than the tracker's answer
/// (`spare_as_seeder`) that gave us offers, then told us everything by
/// HAVE: its fresh pieces ran out (`seeding`), and every piece it sends
/// from now on is a second copy. A piece it alone has among our holders
/// was most likely sent lately to a leecher we do not see, and is on its
/// way through the swarm to one we do: at N=1,000, asking the seeder for
/// those at once made it send 1.12 copies, waiting `SEEDER_WAIT` 1.03,
/// in the same time.
/// In a swarm we see whole such a piece is with the seeder alone (its
/// holders left), and waiting would gain nothing.
struct Spared {
    /// When the pieces only complete holders have were last looked at.
    looked: Instant,
    /// Those pieces at the last `LOOKS` + 1 looks, oldest first.
    seen: VecDeque<Bitfield>,
    /// Those at all of them: what it may be asked for.
    ripe: Bitfield,
}

/// How long the rate is measured before the window leaves its minimum,
/// and then at most how long each measure runs. The first look is early
/// because until then the window is `MIN_WINDOW`: a fast holder waited a
/// quarter second at 2 blocks per round trip (a third of a 256 MiB
/// transfer on loopback), while a slow one, measured early, still gets a
/// small window.
const FIRST_RATE_AFTER: f64 = 0.02;
const RATE_EVERY: f64 = 0.25;

/// Bytes per second over the last measure, smoothed on the way down.
///
/// A window too small for the link limits the rate it measures, so the
/// window grows only as fast as the measure lets it: measured every 250 ms
/// and averaged, it grew 1.5 x a quarter second, and a holder 50 ms away
/// took over 2 s to fill a link of 8 MiB/s (a third of a 48 MiB download
/// done by then). Measured every round trip (20 ms at least), and taken
/// at once when higher, it about doubles each round trip, as TCP's slow
/// start does: that holder's window passes the link's bandwidth-delay
/// product 0.75 s after the first request (`fetch::tests`), and the
/// simulator's N=8 swarm at 50 ms RTT went from 1.24 to 1.13 x T* (no
/// change at 0.1 ms).
struct DeliveryRate(PeakRate);

impl DeliveryRate {
    fn add(&mut self, n: usize, now: Instant, rtt: Duration) {
        self.0.add(n as u64);
        let every = if self.0.per_sec() == 0.0 {
            FIRST_RATE_AFTER
        } else {
            rtt.as_secs_f64().clamp(FIRST_RATE_AFTER, RATE_EVERY)
        };
        self.0.measure(now, every);
    }
}

pub struct Fetch {
    record: Arc<FileRecord>,
    phase: Phase,
    handle: u32,
    /// What the holder has: from OPENED, grown by HAVE.
    have: Bitfield,
    cursor: u32,
    inflight: IntMap<u32, PieceBuf>,
    inflight_blocks: u32,
    /// Endgame pieces cancelled here after another holder delivered them.
    cancelled: IntSet<u32>,
    batch: Batch,
    pool: Vec<Vec<u8>>,
    rtt: Duration,
    rate: DeliveryRate,
    rng: Rng,
    /// Since when this holder, the owner of an item being updated, is
    /// spared (`spare_as_origin`): asked nothing for `ORIGIN_GRACE`, so
    /// the other holders' OPENED (slower: they are busy updating too) come
    /// in first; then, until `ORIGIN_SPARED`, only for what no other
    /// connected holder has (`Plan::claim_as`); after that like any holder,
    /// so a piece some other holder claims but never sends (it moved on to
    /// yet another version, its offers went elsewhere) still arrives.
    origin_from: Option<Instant>,
    /// The PING in flight during the transfer, and when the last went.
    ping: (u64, Option<Instant>, Instant),
    /// When the holder last sent something useful (a block, or anything
    /// while nothing is owed).
    heard: Instant,
    bad_pieces: u32,
    /// Blocks this holder delivered that counted.
    blocks: u64,
    /// The holder is of another site (`set_remote`): since when.
    remote: Option<Instant>,
    /// The tracker listed the holder as complete (`spare_as_seeder`).
    seeder: bool,
    /// It told us everything only late (`Spared`).
    spared: Option<Spared>,
    /// How a piece is verified, if not by the record (`check_pieces_with`).
    check: Option<PieceCheck>,
    out: VecDeque<Action>,
}

/// Whether piece `i`'s bytes are right.
pub type PieceCheck = Arc<dyn Fn(u32, &[u8]) -> bool + Send + Sync>;

impl Fetch {
    /// A machine for one holder; `cursor` is where to take pieces in order
    /// when ties are not broken at random (see `plan`). Queues the OPEN.
    /// Spares this holder, the owner of an item being updated, as the
    /// last source of every piece (`Plan::claim_as`).
    pub fn spare_as_origin(&mut self, now: Instant) {
        self.origin_from = Some(now);
    }

    /// Pieces are judged by `check` instead of their SHA-256 against the
    /// record: the simulator, which knows the original, compares bytes
    /// (the same verdict, without the hashing CPU it does not model).
    pub fn check_pieces_with(&mut self, check: PieceCheck) {
        self.check = Some(check);
    }

    /// The holder is of another site than this peer's: it is asked only
    /// for what the site lacks and this peer fetches for it
    /// (`Plan::claim_remote`), and nothing for `REMOTE_GRACE` from `now`,
    /// so the local holders' OPENED (what the site has) come in first.
    pub fn set_remote(&mut self, now: Instant) {
        self.remote = Some(now);
    }

    /// The tracker listed the holder as complete, in a swarm larger than
    /// its answer: if it gives offers and later tells us everything, it is
    /// spared (`Spared`).
    pub fn spare_as_seeder(&mut self) {
        self.seeder = true;
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    pub fn new(record: Arc<FileRecord>, cursor: u32, seed: u64, now: Instant) -> Fetch {
        let pieces = record.piece_count();
        let mut f = Fetch {
            phase: Phase::Opening { pinged: now },
            handle: 0,
            have: Bitfield::new(pieces),
            cursor,
            inflight: IntMap::default(),
            inflight_blocks: 0,
            cancelled: IntSet::default(),
            batch: Batch {
                first: 0,
                count: 0,
                data: Vec::new(),
            },
            pool: Vec::new(),
            rtt: Duration::MAX,
            rate: DeliveryRate(PeakRate::starting(now)),
            rng: Rng::seeded(seed),
            origin_from: None,
            ping: (0, None, now),
            heard: now,
            bad_pieces: 0,
            blocks: 0,
            remote: None,
            seeder: false,
            spared: None,
            check: None,
            out: VecDeque::new(),
            record,
        };
        f.out.push_back(Action::Send(PeerRequest::Open {
            name: f.record.name.clone(),
            md5: f.record.md5,
        }));
        // The first RTT is measured alongside OPEN, not after it: a far
        // holder's first block comes 2 round trips after the connection
        // instead of 5 (OPEN, three PINGs in turn, REQUEST).
        f.out
            .push_back(Action::Send(PeerRequest::Ping { nonce: 0 }));
        f
    }

    /// What to do now, oldest first.
    pub fn actions(&mut self) -> std::collections::vec_deque::Drain<'_, Action> {
        self.out.drain(..)
    }

    /// The oldest action not yet taken, for a driver that acts on the
    /// machine between actions (a write reported back with `written`).
    pub fn next_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// The lowest RTT measured (zero before the first PONG).
    pub fn rtt(&self) -> Duration {
        if self.rtt == Duration::MAX {
            Duration::ZERO
        } else {
            self.rtt
        }
    }

    /// Blocks this holder delivered that were written first.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    pub fn bad_pieces(&self) -> u32 {
        self.bad_pieces
    }

    /// The holder has pieces we still miss.
    pub fn useful(&self, plan: &impl PlanRef) -> bool {
        self.phase == Phase::Transfer && plan.with(|p| p.wants_any(&self.have))
    }

    /// Blocks requested and not yet arrived.
    pub fn owed(&self) -> u32 {
        self.inflight_blocks
    }

    /// Pipeline depth from the measured rate x RTT (with headroom for our
    /// own processing), so a far but fast holder still fills its pipe,
    /// and a slow one is not given more pieces than it can deliver soon.
    /// Until the first measure it opens as TCP's slow start does, by one
    /// block per block delivered (doubling each round trip): held at its
    /// minimum, a loopback holder spent the first 20 ms at a tenth of its
    /// rate (12 ms of a 256 MiB `make bench`), while a slow or far holder,
    /// which delivers little in that time, is given little more.
    pub fn window(&self) -> u32 {
        let rate = self.rate.0.per_sec();
        if rate == 0.0 {
            let delivered = (self.rate.0.counted() / 4096).min(MAX_WINDOW as u64) as u32;
            return (MIN_WINDOW + delivered).min(MAX_WINDOW);
        }
        let bdp = rate * (self.rtt().as_secs_f64() + 0.01) * 2.0;
        ((bdp / 4096.0) as u32).clamp(MIN_WINDOW, MAX_WINDOW)
    }

    /// Takes one message from the holder.
    pub fn on_reply(
        &mut self,
        reply: PeerReply<'_>,
        now: Instant,
        plan: &impl PlanRef,
    ) -> Result<()> {
        match (self.phase, reply) {
            (_, PeerReply::Error { code, message }) => Err(Error::Remote { code, message }),
            (Phase::Opening { pinged }, PeerReply::Opened { handle, have }) => {
                if have.len() != self.record.piece_count() {
                    return Err(Error::protocol(
                        "OPENED with a piece set of the wrong length",
                    ));
                }
                self.handle = handle;
                self.have = have;
                self.heard = now;
                self.phase = Phase::Measuring {
                    nonce: 0,
                    sent: pinged,
                };
                Ok(())
            }
            (Phase::Measuring { nonce, sent }, PeerReply::Pong { nonce: n }) if n == nonce => {
                self.rtt = self.rtt.min(now.saturating_duration_since(sent));
                self.heard = now;
                self.phase = Phase::Transfer;
                // The rate counts transfer time only: OPEN took a round
                // trip, which would make a far holder's first 20 ms sample
                // far too low.
                self.rate.0.restart(now);
                let local = !self.is_remote();
                plan.with(|p| p.add_source_at(&self.have, local));
                // A second PING at once, ahead of the first REQUEST: its
                // gap after the first tells the holder our round trip (a
                // seeder sizes a far downloader's offers by it), and its
                // PONG may bring a lower RTT than the first, which waited
                // for OPEN.
                self.ping = (nonce + 1, Some(now), now);
                self.out
                    .push_back(Action::Send(PeerRequest::Ping { nonce: nonce + 1 }));
                Ok(())
            }
            (Phase::Measuring { .. }, PeerReply::Have { handle, have }) => {
                self.on_have(handle, have, now, plan)
            }
            (
                Phase::Transfer,
                PeerReply::Block {
                    handle,
                    block,
                    data,
                },
            ) => {
                if handle != self.handle {
                    return Err(Error::protocol("BLOCK for a handle we did not open"));
                }
                self.on_block(block, data, now, plan)
            }
            (Phase::Transfer, PeerReply::Have { handle, have }) => {
                if self.inflight.is_empty() {
                    self.heard = now;
                }
                self.on_have(handle, have, now, plan)
            }
            (Phase::Transfer, PeerReply::Pong { nonce }) => {
                if let (n, Some(sent), _) = self.ping {
                    if n == nonce {
                        self.rtt = self.rtt.min(now.saturating_duration_since(sent));
                        self.ping.1 = None;
                    }
                }
                if self.inflight.is_empty() {
                    self.heard = now;
                }
                Ok(())
            }
            (_, other) => Err(Error::protocol(format!(
                "unexpected {} from a holder",
                crate::wire::Encode::kind(&other)
            ))),
        }
    }

    fn on_have(
        &mut self,
        handle: u32,
        have: Bitfield,
        now: Instant,
        plan: &impl PlanRef,
    ) -> Result<()> {
        if handle != self.handle || have.len() != self.have.len() {
            return Err(Error::protocol("HAVE for another handle or length"));
        }
        // What is new, in the HAVE's own set (no copy per HAVE).
        let mut new = have;
        new.subtract(&self.have);
        if new.count() > 0 {
            self.have.union_with(&new);
            if self.seeder && self.have.is_full() {
                let local = !self.is_remote();
                let seen = plan.with(|p| p.only_complete_have(local));
                self.spared = Some(Spared {
                    looked: now,
                    ripe: Bitfield::new(seen.len()),
                    seen: VecDeque::from([seen]),
                });
            }
            if self.phase == Phase::Transfer {
                let (full, local) = (self.have.is_full(), !self.is_remote());
                plan.with(|p| p.add_pieces_at(&new, full, local));
            }
        }
        Ok(())
    }

    /// Copies a block into its piece buffer. A block nobody asked for,
    /// out of order or of the wrong size is a protocol violation; one of a
    /// piece cancelled in the endgame is dropped.
    fn on_block(
        &mut self,
        block: u32,
        data: &[u8],
        now: Instant,
        plan: &impl PlanRef,
    ) -> Result<()> {
        let record = &self.record;
        let piece = record.piece_of_block(block);
        let Some(buf) = self.inflight.get_mut(&piece) else {
            if block < record.block_count() && self.cancelled.contains(&piece) {
                return Ok(());
            }
            return Err(Error::protocol(format!("BLOCK {block} was not requested")));
        };
        let index = block - record.first_block(piece);
        if index != buf.next || data.len() != record.block_len(block) {
            return Err(Error::protocol(format!(
                "BLOCK {block} out of order or of the wrong size"
            )));
        }
        buf.next += 1;
        let whole = buf.next == buf.blocks;
        if buf.blocks > 1 {
            let at = index as usize * record.block_size as usize;
            buf.data[at..at + data.len()].copy_from_slice(data);
        }
        self.inflight_blocks -= 1;
        self.rate.add(data.len(), now, self.rtt());
        self.heard = now;
        if whole {
            let buf = self
                .inflight
                .remove(&piece)
                .expect("the piece is in flight");
            // A one-block piece (every piece of a file up to 256 MiB) is
            // verified straight from the frame: no piece buffer, one copy
            // fewer on the download's busiest thread.
            let bytes = if buf.blocks > 1 { &buf.data[..] } else { data };
            self.piece_complete(piece, bytes, plan);
            self.pool.push(buf.data);
            if self.bad_pieces >= MAX_BAD_PIECES {
                return Err(Error::Integrity(format!(
                    "sent {} corrupt pieces of {}; dropped for this download",
                    self.bad_pieces, self.record.name
                )));
            }
        }
        Ok(())
    }

    /// A piece's bytes are all here: verified, then batched for writing,
    /// or released to be fetched again.
    fn piece_complete(&mut self, piece: u32, bytes: &[u8], plan: &impl PlanRef) {
        let good = match &self.check {
            Some(check) => check(piece, bytes),
            None => self.record.verify_piece(piece, bytes),
        };
        if !good {
            plan.with(|p| p.release(piece));
            self.bad_pieces += 1;
            self.out.push_back(Action::Released);
            return;
        }
        if plan.with(|p| p.is_done(piece)) {
            // An endgame duplicate that lost the race.
            plan.with(|p| p.complete(piece));
            return;
        }
        let contiguous = self.batch.count > 0 && self.batch.first + self.batch.count == piece;
        if !contiguous || self.batch.data.len() + bytes.len() > WRITE_BATCH {
            self.flush();
        }
        if self.batch.count == 0 {
            self.batch.first = piece;
        } else if self.batch.count == 1 {
            // Room for a whole batch only once a second piece joins: most
            // batches are one piece, and a megabyte each was allocated
            // and freed for them.
            self.batch
                .data
                .reserve(WRITE_BATCH.saturating_sub(self.batch.data.len()));
        }
        self.batch.data.extend_from_slice(bytes);
        self.batch.count += 1;
    }

    /// Hands out the verified pieces batched so far as one `Write`.
    pub fn flush(&mut self) {
        if self.batch.count == 0 {
            return;
        }
        let data = std::mem::take(&mut self.batch.data);
        self.out.push_back(Action::Write {
            first: self.batch.first,
            count: self.batch.count,
            data,
        });
        self.batch.count = 0;
    }

    /// The driver wrote (or failed to write) a `Write`. On success the
    /// pieces are done in the plan; returns the blocks that counted and
    /// whether the plan is now complete. On failure they go back.
    pub fn written(
        &mut self,
        first: u32,
        count: u32,
        ok: bool,
        plan: &impl PlanRef,
    ) -> (u64, bool) {
        let record = &self.record;
        let (won, complete) = plan.with(|p| {
            let mut won = 0u64;
            for piece in first..first + count {
                if !ok {
                    p.release(piece);
                } else if p.complete(piece) {
                    won += record.piece_blocks(piece) as u64;
                }
            }
            (won, p.is_complete())
        });
        self.blocks += won;
        (won, complete)
    }

    /// Claims, cancels and pings as the time and the plan allow; says what
    /// to wait for. An error ends the connection (call `abandon`).
    pub fn poll(&mut self, now: Instant, plan: &impl PlanRef) -> Result<Wait> {
        let stall = self.heard + STALL_TIMEOUT;
        match self.phase {
            Phase::Opening { .. } | Phase::Measuring { .. } | Phase::Over => {
                if now > stall {
                    return Err(Error::Timeout(format!(
                        "no answer for {} s",
                        STALL_TIMEOUT.as_secs()
                    )));
                }
                return Ok(Wait::Reply(stall));
            }
            Phase::Transfer => {}
        }
        if !self.inflight.is_empty() && now > stall {
            return Err(Error::Timeout(format!(
                "sent nothing for {} s while owing {} blocks",
                STALL_TIMEOUT.as_secs(),
                self.inflight_blocks
            )));
        }
        self.cancel_won(plan);
        if self.inflight.is_empty() {
            // The stall clock starts when blocks are owed again.
            self.heard = now;
        }
        let origin_after = self.origin_from.map(|t| t + ORIGIN_GRACE);
        let remote_after = self.remote.map(|t| t + REMOTE_GRACE);
        let after = origin_after.into_iter().chain(remote_after).max();
        if let Some(after) = after.filter(|&t| now < t) {
            return Ok(Wait::Work(after));
        }
        let origin = self.origin_from.is_some_and(|t| now < t + ORIGIN_SPARED);
        let next_look = self.look_again(now, plan);
        self.top_up(plan, origin);
        let ping_at = self.maybe_ping(now);
        if !self.inflight.is_empty() {
            return Ok(Wait::Reply(ping_at.min(self.heard + STALL_TIMEOUT)));
        }
        self.flush();
        let (complete, useful) = plan.with(|p| (p.is_complete(), p.wants_any(&self.have)));
        if complete || (!useful && self.have.is_full()) {
            // Done, or a seeder with nothing we still miss: leave, so the
            // coordinator can tell when nobody has what is left.
            return Ok(Wait::Done);
        }
        if useful && self.have.is_full() {
            // Everything it has is in flight elsewhere (or, spared, in
            // the swarm): wait for pieces to come back or for the
            // endgame.
            return Ok(Wait::Work(next_look.map_or(ping_at, |t| t.min(ping_at))));
        }
        // A holder still downloading: wait for its HAVEs.
        Ok(Wait::Reply(ping_at))
    }

    /// A spared seeder's pieces looked at again if a look is due
    /// (`Spared`); when the next one is.
    fn look_again(&mut self, now: Instant, plan: &impl PlanRef) -> Option<Instant> {
        let local = !self.is_remote();
        let s = self.spared.as_mut()?;
        let step = SEEDER_WAIT / LOOKS;
        if now >= s.looked + step {
            let only = plan.with(|p| p.only_complete_have(local));
            s.seen.push_back(only);
            if s.seen.len() > LOOKS as usize + 1 {
                s.seen.pop_front();
            }
            if s.seen.len() > LOOKS as usize {
                let mut ripe = s.seen[0].clone();
                for b in s.seen.iter().skip(1) {
                    ripe.intersect_with(b);
                }
                s.ripe = ripe;
            }
            s.looked = now;
        }
        Some(s.looked + step)
    }

    /// Queues a PING if one is due; when the next one is.
    fn maybe_ping(&mut self, now: Instant) -> Instant {
        let (nonce, sent, last) = self.ping;
        if sent.is_none() && now >= last + PING_EVERY {
            let nonce = nonce + 1;
            self.ping = (nonce, Some(now), now);
            self.out
                .push_back(Action::Send(PeerRequest::Ping { nonce }));
            return now + PING_EVERY;
        }
        last + PING_EVERY
    }

    /// Claims pieces while the pipeline has room and queues their requests;
    /// `origin`: the holder is spared (`origin_from`).
    fn top_up(&mut self, plan: &impl PlanRef, origin: bool) {
        let bpp = self.record.blocks_per_piece;
        loop {
            let window = self.window();
            let room = window.saturating_sub(self.inflight_blocks);
            // Top up in large requests, but before the pipe runs dry.
            let worth = (window / 2).min(MAX_REQUEST_BLOCKS as u32);
            if room < worth && !self.inflight.is_empty() {
                return;
            }
            let max_pieces = (room.max(bpp) / bpp).clamp(1, MAX_REQUEST_BLOCKS as u32) as usize;
            let (have, cursor, inflight_blocks) = (&self.have, self.cursor, self.inflight_blocks);
            let inflight = &self.inflight;
            let rng = &mut self.rng;
            let remote = self.remote.is_some();
            let ripe = self.spared.as_ref().map(|s| &s.ripe);
            let claimed = plan.with(|p| {
                // A spared seeder is asked only for its ripe pieces.
                let wanted = ripe.map(|ripe| {
                    let mut wanted = ripe.clone();
                    if remote {
                        wanted.intersect_with(&p.remote_wanted(have));
                    }
                    wanted
                });
                let got = match &wanted {
                    Some(w) => p.claim_within(have, w, !remote, max_pieces, rng),
                    None if remote => p.claim_remote(have, cursor, max_pieces, rng, origin),
                    None => p.claim_as(have, cursor, max_pieces, rng, origin),
                };
                if !got.is_empty() || inflight_blocks >= MIN_WINDOW {
                    return got;
                }
                let mine = |piece| inflight.contains_key(&piece);
                let max = max_pieces.min(16);
                match &wanted {
                    Some(w) => p.claim_endgame_within(have, w, !remote, &mine, max),
                    None if remote => p.claim_endgame_remote(have, &mine, max, origin),
                    None => p.claim_endgame_as(have, &mine, max, origin),
                }
            });
            let Some(&last) = claimed.last() else {
                return;
            };
            self.cursor = last + 1;
            for &p in &claimed {
                let blocks = self.record.piece_blocks(p);
                let mut data = self.pool.pop().unwrap_or_default();
                // A one-block piece needs no buffer (see `on_block`).
                data.resize(
                    if blocks > 1 {
                        self.record.piece_len(p) as usize
                    } else {
                        0
                    },
                    0,
                );
                self.inflight.insert(
                    p,
                    PieceBuf {
                        data,
                        next: 0,
                        blocks,
                    },
                );
                self.inflight_blocks += blocks;
            }
            self.request_runs(&claimed);
        }
    }

    /// Endgame: pieces we still wait for that another holder delivered
    /// first are cancelled, so the holder spends its upload elsewhere.
    fn cancel_won(&mut self, plan: &impl PlanRef) {
        if self.inflight.is_empty() {
            return;
        }
        let inflight = &self.inflight;
        let won: Vec<u32> = plan.with(|p| {
            if !p.nothing_needed() {
                return Vec::new();
            }
            let won: Vec<u32> = inflight
                .keys()
                .copied()
                .filter(|&piece| p.is_done(piece))
                .collect();
            for &piece in &won {
                p.release(piece);
            }
            won
        });
        for p in won {
            let Some(buf) = self.inflight.remove(&p) else {
                continue;
            };
            let left = buf.blocks - buf.next;
            self.inflight_blocks -= left;
            self.cancelled.insert(p);
            self.pool.push(buf.data);
            let first = self.record.first_block(p) + buf.next;
            for (block, count) in runs_of(first, left) {
                self.out.push_back(Action::Send(PeerRequest::Cancel {
                    handle: self.handle,
                    block,
                    count,
                }));
            }
        }
    }

    /// One REQUEST per run of contiguous blocks, at most 64 blocks each.
    fn request_runs(&mut self, pieces: &[u32]) {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &p in pieces {
            let (first, n) = (self.record.first_block(p), self.record.piece_blocks(p));
            match runs.last_mut() {
                Some((start, len)) if *start + *len == first => *len += n,
                _ => runs.push((first, n)),
            }
        }
        for (start, len) in runs {
            for (block, count) in runs_of(start, len) {
                self.out.push_back(Action::Send(PeerRequest::Request {
                    handle: self.handle,
                    block,
                    count,
                }));
            }
        }
    }

    /// The connection is over, however it ended: the pieces still owed go
    /// back to the plan, and this holder's pieces no longer count as
    /// available. Verified pieces not yet handed out are handed out.
    pub fn abandon(&mut self, plan: &impl PlanRef) {
        self.flush();
        let owed: Vec<u32> = self.inflight.keys().copied().collect();
        let transfer = self.phase == Phase::Transfer;
        let transfer_remote = self.is_remote();
        plan.with(|p| {
            for &piece in &owed {
                p.release(piece);
            }
            if transfer {
                p.remove_source_at(&self.have, !transfer_remote);
            }
        });
        self.inflight.clear();
        self.inflight_blocks = 0;
        self.phase = Phase::Over;
    }
}

/// `len` blocks from `start` as runs of at most 64 (REQUEST, CANCEL).
fn runs_of(start: u32, len: u32) -> impl Iterator<Item = (u32, u16)> {
    let max = MAX_REQUEST_BLOCKS as u32;
    (0..len.div_ceil(max)).map(move |i| {
        let block = start + i * max;
        (block, (len - i * max).min(max) as u16)
    })
}

#[cfg(test)]
mod tests;
