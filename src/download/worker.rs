//! One worker per holder: connect, OPEN the file, measure the RTT, then
//! keep a pipeline of requests in flight, verify each piece as it
//! completes, and hand verified runs to the reassembler in large writes.
//!
//! Blocks arrive in the order they were requested (the server answers
//! requests one after another), so a piece's buffer only tracks the next
//! block it expects: no per-block bookkeeping or allocation.
//!
//! A holder that is itself still downloading sends HAVE as it verifies
//! pieces; the worker adds them to what it may claim and stays connected
//! while the holder has nothing new for us. In the endgame, pieces another
//! worker delivered first are cancelled (CANCEL) instead of fetched twice.

use super::Shared;
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::net::Conn;
use crate::ratelimit::throttle;
use crate::rng::Rng;
use crate::wire::message::MAX_REQUEST_BLOCKS;
use crate::wire::{Answer, Encode, PeerReply, PeerRequest, MAX_CONTROL_FRAME};
use log::{debug, warn};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Socket read timeout: how often a waiting worker checks for cancellation.
const POLL: Duration = Duration::from_millis(250);
/// A holder that sends nothing for this long while owing blocks is dropped.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pipeline bounds, in blocks (4 KiB each).
const MIN_WINDOW: u32 = 16;
const MAX_WINDOW: u32 = 1024;
/// Verified data is written in runs of up to this many bytes.
const WRITE_BATCH: usize = 1 << 20;
/// Bad pieces tolerated from one holder before it is dropped.
const MAX_BAD_PIECES: u32 = 3;
/// How often the RTT is measured again while blocks flow.
const PING_EVERY: Duration = Duration::from_secs(2);

/// What the `from` line reports about one holder.
#[derive(Default)]
pub struct SourceStats {
    pub blocks: AtomicU64,
    /// The lowest RTT measured, before and during the transfer.
    pub rtt_us: AtomicU64,
    pub bad_pieces: AtomicU32,
    /// The holder has pieces we still miss (read by the coordinator to
    /// tell a waiting download from a stuck one).
    pub useful: AtomicBool,
}

pub struct Source {
    pub peer_id: String,
    pub addr: String,
}

struct PieceBuf {
    data: Vec<u8>,
    /// Next block expected, as an index within the piece.
    next: u32,
    blocks: u32,
}

/// Contiguous verified pieces waiting to be written in one call.
struct WriteBatch {
    first: u32,
    count: u32,
    data: Vec<u8>,
}

/// `cursor`: where to start taking pieces in order when ties are not
/// broken at random (see `plan`).
pub fn run(shared: &Arc<Shared>, source: &Source, stats: &SourceStats, cursor: u32) -> Result<()> {
    let mut w = Worker::connect(shared, source, stats, cursor)?;
    let result = w.pump();
    // Keep what is verified; dropping `w` gives back what it still owes.
    let flushed = w.flush_batch();
    result.and(flushed)
}

struct Worker<'a> {
    shared: &'a Arc<Shared>,
    source: &'a Source,
    stats: &'a SourceStats,
    conn: Conn,
    handle: u32,
    have: Bitfield,
    cursor: u32,
    inflight: HashMap<u32, PieceBuf>,
    inflight_blocks: u32,
    /// Endgame pieces cancelled here after another holder delivered them:
    /// blocks of theirs already on the way are dropped, not an error.
    cancelled: HashSet<u32>,
    batch: WriteBatch,
    pool: Vec<Vec<u8>>,
    rtt: Duration,
    rate: RateMeter,
    rng: Rng,
    ping: Ping,
}

/// The RTT probe in flight during the transfer, if any.
struct Ping {
    nonce: u64,
    sent: Option<Instant>,
    last: Instant,
}

impl<'a> Worker<'a> {
    fn connect(
        shared: &'a Arc<Shared>,
        source: &'a Source,
        stats: &'a SourceStats,
        cursor: u32,
    ) -> Result<Worker<'a>> {
        let record = &shared.record;
        let mut conn = Conn::connect(&source.addr, MAX_CONTROL_FRAME)?;
        conn.set_read_timeout(POLL);
        conn.send(&PeerRequest::Open {
            name: record.name.clone(),
            md5: record.md5,
        })?;
        let (handle, have) = match wait_reply(&mut conn, shared)? {
            PeerReply::Opened { handle, have } => (handle, have),
            other => {
                return Err(Error::protocol(format!(
                    "expected OPENED, got {}",
                    other.kind()
                )))
            }
        };
        if have.len() != record.piece_count() {
            return Err(Error::protocol(
                "OPENED with a piece set of the wrong length",
            ));
        }
        let mut have = have;
        let rtt = measure_rtt(&mut conn, shared, &mut have)?;
        stats
            .rtt_us
            .store(rtt.as_micros() as u64, Ordering::Relaxed);
        debug!("{}: {} pieces, rtt {:?}", source.peer_id, have.count(), rtt);
        shared.plan().add_source(&have);
        Ok(Worker {
            shared,
            source,
            stats,
            conn,
            handle,
            have,
            cursor,
            inflight: HashMap::new(),
            inflight_blocks: 0,
            cancelled: HashSet::new(),
            batch: WriteBatch {
                first: 0,
                count: 0,
                data: Vec::with_capacity(WRITE_BATCH),
            },
            pool: Vec::new(),
            rtt,
            rate: RateMeter::new(),
            rng: Rng::new(),
            ping: Ping {
                nonce: 3,
                sent: None,
                last: Instant::now(),
            },
        })
    }

    /// Pipeline depth from the measured rate x RTT (with headroom for our
    /// own processing), so a far but fast holder still fills its pipe,
    /// and a slow one is not given more pieces than it can deliver soon.
    fn window(&self) -> u32 {
        let bdp = self.rate.bytes_per_sec() * (self.rtt.as_secs_f64() + 0.01) * 2.0;
        ((bdp / 4096.0) as u32).clamp(MIN_WINDOW, MAX_WINDOW)
    }

    fn pump(&mut self) -> Result<()> {
        let mut last_progress = Instant::now();
        loop {
            if self.shared.is_cancelled() {
                return Err(Error::Cancelled);
            }
            self.top_up()?;
            if self.inflight.is_empty() {
                self.flush_batch()?;
                self.conn.flush()?;
                if self.shared.plan().is_complete() {
                    return Ok(());
                }
                let useful = self.shared.plan().wants_any(&self.have);
                self.stats.useful.store(useful, Ordering::Relaxed);
                if !useful && self.have.is_full() {
                    // A seeder with nothing we still miss: leave, so the
                    // coordinator can tell when nobody has what is left.
                    return Ok(());
                }
                if useful && self.have.is_full() {
                    // Everything it has is in flight elsewhere: wait for
                    // pieces to come back or for the endgame.
                    if self.shared.wait_for_work() {
                        return Ok(());
                    }
                } else {
                    // A holder still downloading: wait for its HAVEs.
                    self.receive_idle()?;
                }
                last_progress = Instant::now();
                continue;
            }
            self.maybe_ping()?;
            if self.conn.read_buffer_empty() {
                // About to block on the socket: push out requests and data.
                self.conn.flush()?;
                self.flush_batch()?;
            }
            match self.conn.recv::<PeerReply>() {
                Err(Error::Timeout(_)) => {
                    if last_progress.elapsed() > STALL_TIMEOUT {
                        return Err(Error::Timeout(format!(
                            "{} sent nothing for {} s while owing {} blocks",
                            self.source.peer_id,
                            STALL_TIMEOUT.as_secs(),
                            self.inflight_blocks
                        )));
                    }
                }
                Err(e) => return Err(e),
                Ok(None) => return Err(self.closed()),
                Ok(Some(PeerReply::Block {
                    handle,
                    block,
                    data,
                })) => {
                    if handle != self.handle {
                        return Err(Error::protocol("BLOCK for a handle we did not open"));
                    }
                    let len = data.len();
                    let arrived = accept_block(
                        &mut self.inflight,
                        &self.cancelled,
                        &self.shared.record,
                        block,
                        data,
                    )?;
                    throttle(&self.shared.limiter, len, || {
                        // Keep the holder busy while we wait our turn.
                        let _ = self.conn.flush();
                    });
                    last_progress = Instant::now();
                    match arrived {
                        Arrived::Cancelled => {}
                        Arrived::Partial => {
                            self.inflight_blocks -= 1;
                            self.rate.add(len);
                        }
                        Arrived::Complete(piece) => {
                            self.inflight_blocks -= 1;
                            self.rate.add(len);
                            self.piece_complete(piece)?;
                        }
                    }
                }
                Ok(Some(other)) => {
                    let c = Control::from(other)?;
                    self.control(c)?;
                }
            }
        }
    }

    fn closed(&self) -> Error {
        Error::protocol(format!("{} closed the connection", self.source.peer_id))
    }

    fn control(&mut self, msg: Control) -> Result<()> {
        match msg {
            Control::Have(handle, have) => {
                if handle != self.handle || have.len() != self.have.len() {
                    return Err(Error::protocol("HAVE for another handle or length"));
                }
                let new = have.minus(&self.have);
                if new.count() > 0 {
                    self.have.union_with(&new);
                    self.shared.plan().add_source(&new);
                }
            }
            Control::Pong(nonce) if nonce == self.ping.nonce => {
                if let Some(sent) = self.ping.sent.take() {
                    let rtt = sent.elapsed();
                    if rtt < self.rtt {
                        self.rtt = rtt;
                        self.stats
                            .rtt_us
                            .store(rtt.as_micros() as u64, Ordering::Relaxed);
                    }
                }
            }
            Control::Pong(_) => {}
        }
        Ok(())
    }

    /// Nothing to request: read what the holder sends (HAVE) for a moment.
    /// PINGs now and then keep the holder from closing an idle connection.
    fn receive_idle(&mut self) -> Result<()> {
        self.maybe_ping()?;
        self.conn.flush()?;
        match self.conn.recv::<PeerReply>() {
            Err(Error::Timeout(_)) => Ok(()),
            Err(e) => Err(e),
            Ok(None) => Err(self.closed()),
            // Nothing is in flight: only late blocks of a piece cancelled
            // in the endgame are accepted (and dropped).
            Ok(Some(PeerReply::Block { block, data, .. })) => accept_block(
                &mut self.inflight,
                &self.cancelled,
                &self.shared.record,
                block,
                data,
            )
            .map(|_| ()),
            Ok(Some(msg)) => {
                let c = Control::from(msg)?;
                self.control(c)
            }
        }
    }

    /// Measures the RTT again now and then while blocks flow.
    fn maybe_ping(&mut self) -> Result<()> {
        if self.ping.sent.is_none() && self.ping.last.elapsed() >= PING_EVERY {
            self.ping.nonce += 1;
            self.ping.sent = Some(Instant::now());
            self.ping.last = Instant::now();
            self.conn.queue(&PeerRequest::Ping {
                nonce: self.ping.nonce,
            })?;
        }
        Ok(())
    }

    /// Claims pieces while the pipeline has room and queues their requests.
    fn top_up(&mut self) -> Result<()> {
        let record = self.shared.record.clone();
        let bpp = record.blocks_per_piece;
        self.cancel_won()?;
        loop {
            let window = self.window();
            let room = window.saturating_sub(self.inflight_blocks);
            // Top up in large requests, but before the pipe runs dry.
            let worth = (window / 2).min(MAX_REQUEST_BLOCKS as u32);
            if room < worth && !self.inflight.is_empty() {
                return Ok(());
            }
            let max_pieces = (room.max(bpp) / bpp).clamp(1, MAX_REQUEST_BLOCKS as u32) as usize;
            let claimed = {
                let mut plan = self.shared.plan();
                let got = plan.claim(&self.have, self.cursor, max_pieces, &mut self.rng);
                if got.is_empty() && self.inflight_blocks < MIN_WINDOW {
                    let inflight = &self.inflight;
                    plan.claim_endgame(
                        &self.have,
                        &|p| inflight.contains_key(&p),
                        max_pieces.min(16),
                    )
                } else {
                    got
                }
            };
            if claimed.is_empty() {
                return Ok(());
            }
            if let Some(&last) = claimed.last() {
                self.cursor = last + 1;
            }
            for &p in &claimed {
                let mut data = self.pool.pop().unwrap_or_default();
                data.resize(record.piece_len(p) as usize, 0);
                let blocks = record.piece_blocks(p);
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
            self.request_runs(&claimed)?;
        }
    }

    /// Endgame: pieces we still wait for that another holder delivered
    /// first are cancelled, so the holder spends its upload elsewhere.
    fn cancel_won(&mut self) -> Result<()> {
        if self.inflight.is_empty() {
            return Ok(());
        }
        let won: Vec<u32> = {
            let mut plan = self.shared.plan();
            if !plan.nothing_needed() {
                return Ok(());
            }
            let won: Vec<u32> = self
                .inflight
                .keys()
                .copied()
                .filter(|&p| plan.is_done(p))
                .collect();
            for &p in &won {
                plan.release(p);
            }
            won
        };
        let record = self.shared.record.clone();
        for p in won {
            let Some(buf) = self.inflight.remove(&p) else {
                continue;
            };
            let mut left = buf.blocks - buf.next;
            self.inflight_blocks -= left;
            self.cancelled.insert(p);
            self.pool.push(buf.data);
            debug!("{}: cancelling piece {p}", self.source.peer_id);
            let mut block = record.first_block(p) + buf.next;
            while left > 0 {
                let count = left.min(MAX_REQUEST_BLOCKS as u32);
                self.conn.queue(&PeerRequest::Cancel {
                    handle: self.handle,
                    block,
                    count: count as u16,
                })?;
                block += count;
                left -= count;
            }
        }
        Ok(())
    }

    /// One REQUEST per run of contiguous blocks, at most 64 blocks each.
    fn request_runs(&mut self, pieces: &[u32]) -> Result<()> {
        let record = &self.shared.record;
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &p in pieces {
            let (first, n) = (record.first_block(p), record.piece_blocks(p));
            match runs.last_mut() {
                Some((start, len)) if *start + *len == first => *len += n,
                _ => runs.push((first, n)),
            }
        }
        for (mut start, mut len) in runs {
            while len > 0 {
                let count = len.min(MAX_REQUEST_BLOCKS as u32);
                self.conn.queue(&PeerRequest::Request {
                    handle: self.handle,
                    block: start,
                    count: count as u16,
                })?;
                start += count;
                len -= count;
            }
        }
        Ok(())
    }

    fn piece_complete(&mut self, piece: u32) -> Result<()> {
        let Some(buf) = self.inflight.remove(&piece) else {
            return Ok(());
        };
        let record = self.shared.record.clone();
        if !record.verify_piece(piece, &buf.data) {
            self.shared.plan().release(piece);
            self.shared.notify();
            self.pool.push(buf.data);
            let bad = self.stats.bad_pieces.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(
                "{}: piece {piece} of {} failed its hash ({bad} so far)",
                self.source.peer_id, record.name
            );
            if bad >= MAX_BAD_PIECES {
                return Err(Error::Integrity(format!(
                    "{} sent {bad} corrupt pieces of {}; dropped for this download",
                    self.source.peer_id, record.name
                )));
            }
            return Ok(());
        }
        if self.shared.plan().is_done(piece) {
            // An endgame duplicate that lost the race.
            self.shared.plan().complete(piece);
            self.pool.push(buf.data);
            return Ok(());
        }
        let contiguous = self.batch.count > 0 && self.batch.first + self.batch.count == piece;
        if !contiguous || self.batch.data.len() + buf.data.len() > WRITE_BATCH {
            if let Err(e) = self.flush_batch() {
                // Out of `inflight` and not yet in the batch: hand it back.
                self.shared.plan().release(piece);
                return Err(e);
            }
        }
        if self.batch.count == 0 {
            self.batch.first = piece;
        }
        self.batch.data.extend_from_slice(&buf.data);
        self.batch.count += 1;
        self.pool.push(buf.data);
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.batch.count == 0 {
            return Ok(());
        }
        let (first, count) = (self.batch.first, self.batch.count);
        let result = self.shared.reasm.write(first, count, &self.batch.data);
        self.batch.count = 0;
        self.batch.data.clear();
        if let Err(e) = result {
            for p in first..first + count {
                self.shared.plan().release(p);
            }
            return Err(e);
        }
        let mut won_blocks = 0u64;
        let complete = {
            let mut plan = self.shared.plan();
            for p in first..first + count {
                if plan.complete(p) {
                    won_blocks += self.shared.record.piece_blocks(p) as u64;
                }
            }
            plan.is_complete()
        };
        self.stats.blocks.fetch_add(won_blocks, Ordering::Relaxed);
        self.shared.progress_made(won_blocks, complete);
        Ok(())
    }

    fn release_all(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        let mut plan = self.shared.plan();
        for (&p, _) in self.inflight.iter() {
            plan.release(p);
        }
        drop(plan);
        self.inflight.clear();
        self.inflight_blocks = 0;
        self.shared.notify();
    }
}

impl Drop for Worker<'_> {
    /// However the worker ends (error, cancellation, a panic), the pieces
    /// it still owes go back to the plan, and its pieces no longer count
    /// as available.
    fn drop(&mut self) {
        self.release_all();
        self.shared.plan().remove_source(&self.have);
        self.stats.useful.store(false, Ordering::Relaxed);
    }
}

/// A message other than BLOCK that a holder may send during a transfer.
enum Control {
    Have(u32, Bitfield),
    Pong(u64),
}

impl Control {
    fn from(msg: PeerReply<'_>) -> Result<Control> {
        match msg.into_result()? {
            PeerReply::Have { handle, have } => Ok(Control::Have(handle, have)),
            PeerReply::Pong { nonce } => Ok(Control::Pong(nonce)),
            other => Err(Error::protocol(format!(
                "unexpected {} during transfer",
                other.kind()
            ))),
        }
    }
}

/// What an arriving block did.
enum Arrived {
    /// Stored; its piece still misses blocks.
    Partial,
    /// Stored; the piece is whole.
    Complete(u32),
    /// Part of a piece cancelled in the endgame: dropped.
    Cancelled,
}

/// Copies a block into its piece buffer. A block nobody asked for (or
/// cancelled), out of order or of the wrong size is a protocol violation.
fn accept_block(
    inflight: &mut HashMap<u32, PieceBuf>,
    cancelled: &HashSet<u32>,
    record: &crate::record::FileRecord,
    block: u32,
    data: &[u8],
) -> Result<Arrived> {
    let piece = record.piece_of_block(block);
    let Some(buf) = inflight.get_mut(&piece) else {
        if block < record.block_count() && cancelled.contains(&piece) {
            return Ok(Arrived::Cancelled);
        }
        return Err(Error::protocol(format!("BLOCK {block} was not requested")));
    };
    let index = block - record.first_block(piece);
    if index != buf.next || data.len() != record.block_len(block) {
        return Err(Error::protocol(format!(
            "BLOCK {block} out of order or of the wrong size"
        )));
    }
    let at = index as usize * record.block_size as usize;
    buf.data[at..at + data.len()].copy_from_slice(data);
    buf.next += 1;
    Ok(if buf.next == buf.blocks {
        Arrived::Complete(piece)
    } else {
        Arrived::Partial
    })
}

/// Waits for the next message, polling for cancellation, up to the stall
/// timeout.
fn wait_reply<'c>(conn: &'c mut Conn, shared: &Shared) -> Result<PeerReply<'c>> {
    conn.expect_by(Instant::now() + STALL_TIMEOUT, &|| shared.is_cancelled())
}

/// The best of three PINGs. A holder still downloading may send HAVE
/// meanwhile: those pieces are added to `have`.
fn measure_rtt(conn: &mut Conn, shared: &Shared, have: &mut Bitfield) -> Result<Duration> {
    let mut best = Duration::MAX;
    for nonce in 0..3u64 {
        let t0 = Instant::now();
        conn.send(&PeerRequest::Ping { nonce })?;
        loop {
            match wait_reply(conn, shared)? {
                PeerReply::Pong { nonce: n } if n == nonce => {
                    best = best.min(t0.elapsed());
                    break;
                }
                PeerReply::Have { have: new, .. } if new.len() == have.len() => {
                    have.union_with(&new)
                }
                other => {
                    return Err(Error::protocol(format!(
                        "expected PONG, got {}",
                        other.kind()
                    )))
                }
            }
        }
    }
    Ok(best)
}

/// Bytes per second over the last couple of seconds.
struct RateMeter {
    start: Instant,
    bytes: u64,
    rate: f64,
}

impl RateMeter {
    fn new() -> RateMeter {
        RateMeter {
            start: Instant::now(),
            bytes: 0,
            rate: 0.0,
        }
    }

    fn add(&mut self, n: usize) {
        self.bytes += n as u64;
        let t = self.start.elapsed().as_secs_f64();
        if t >= 0.25 {
            let now = self.bytes as f64 / t;
            self.rate = if self.rate == 0.0 {
                now
            } else {
                0.5 * self.rate + 0.5 * now
            };
            self.start = Instant::now();
            self.bytes = 0;
        }
    }

    fn bytes_per_sec(&self) -> f64 {
        self.rate
    }
}
