//! One worker per holder: connect, OPEN the file, measure the RTT, then
//! keep a pipeline of requests in flight, verify each piece as it
//! completes, and hand verified runs to the reassembler in large writes.
//!
//! Blocks arrive in the order they were requested (the server answers
//! requests one after another), so a piece's buffer only tracks the next
//! block it expects: no per-block bookkeeping or allocation.

use super::Shared;
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::net::Conn;
use crate::ratelimit::throttle;
use crate::wire::message::MAX_REQUEST_BLOCKS;
use crate::wire::{Msg, MAX_CONTROL_FRAME};
use log::{debug, warn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Socket read timeout: how often a waiting worker checks for cancellation.
const POLL: Duration = Duration::from_millis(250);
/// A holder that sends nothing for this long while owing blocks is dropped.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pipeline bounds, in blocks (4 KiB each).
const MIN_WINDOW: u32 = 128;
const MAX_WINDOW: u32 = 1024;
/// Verified data is written in runs of up to this many bytes.
const WRITE_BATCH: usize = 1 << 20;
/// Bad pieces tolerated from one holder before it is dropped.
const MAX_BAD_PIECES: u32 = 3;

/// What the `from` line reports about one holder.
#[derive(Default)]
pub struct SourceStats {
    pub blocks: AtomicU64,
    pub rtt_us: AtomicU64,
    pub bad_pieces: AtomicU32,
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
    batch: WriteBatch,
    pool: Vec<Vec<u8>>,
    rtt: Duration,
    rate: RateMeter,
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
        conn.send(&Msg::Open {
            name: record.name.clone(),
            md5: record.md5,
        })?;
        let (handle, have) = match wait_reply(&mut conn, shared)? {
            Msg::Opened { handle, have } => (handle, have),
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
        let rtt = measure_rtt(&mut conn, shared)?;
        stats
            .rtt_us
            .store(rtt.as_micros() as u64, Ordering::Relaxed);
        debug!("{}: {} pieces, rtt {:?}", source.peer_id, have.count(), rtt);
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
            batch: WriteBatch {
                first: 0,
                count: 0,
                data: Vec::with_capacity(WRITE_BATCH),
            },
            pool: Vec::new(),
            rtt,
            rate: RateMeter::new(),
        })
    }

    /// Pipeline depth from the measured rate x RTT (with headroom for our
    /// own processing), so a far but fast holder still fills its pipe.
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
                if !self.shared.plan().wants_any(&self.have) {
                    // This holder has nothing we still miss: leave, so the
                    // coordinator can tell when nobody has what is left.
                    return Ok(());
                }
                if self.shared.wait_for_work() {
                    return Ok(());
                }
                last_progress = Instant::now();
                continue;
            }
            if self.conn.read_buffer_empty() {
                // About to block on the socket: push out requests and data.
                self.conn.flush()?;
                self.flush_batch()?;
            }
            match self.conn.recv() {
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
                Ok(None) => {
                    return Err(Error::protocol(format!(
                        "{} closed the connection",
                        self.source.peer_id
                    )))
                }
                Ok(Some(Msg::Block {
                    handle,
                    block,
                    data,
                })) => {
                    if handle != self.handle {
                        return Err(Error::protocol("BLOCK for a handle we did not open"));
                    }
                    let len = data.len();
                    let piece = accept_block(&mut self.inflight, &self.shared.record, block, data)?;
                    throttle(&self.shared.limiter, len, || {
                        // Keep the holder busy while we wait our turn.
                        let _ = self.conn.flush();
                    });
                    self.inflight_blocks -= 1;
                    self.rate.add(len);
                    last_progress = Instant::now();
                    if let Some(piece) = piece {
                        self.piece_complete(piece)?;
                    }
                }
                Ok(Some(Msg::Error { code, message })) => {
                    return Err(Error::Remote { code, message })
                }
                Ok(Some(other)) => {
                    return Err(Error::protocol(format!(
                        "unexpected {} during transfer",
                        other.kind()
                    )))
                }
            }
        }
    }

    /// Claims pieces while the pipeline has room and queues their requests.
    fn top_up(&mut self) -> Result<()> {
        let record = self.shared.record.clone();
        let bpp = record.blocks_per_piece;
        loop {
            let room = self.window().saturating_sub(self.inflight_blocks);
            if room < MAX_REQUEST_BLOCKS as u32 && !self.inflight.is_empty() {
                return Ok(());
            }
            let max_pieces = (room.max(bpp) / bpp).clamp(1, MAX_REQUEST_BLOCKS as u32) as usize;
            let claimed = {
                let mut plan = self.shared.plan();
                let got = plan.claim(&self.have, self.cursor, max_pieces);
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
                self.conn.queue(&Msg::Request {
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
    /// it still owes go back to the plan.
    fn drop(&mut self) {
        self.release_all();
    }
}

/// Copies a block into its piece buffer; returns the piece if it is now
/// complete. A block nobody asked for, out of order or of the wrong size
/// is a protocol violation.
fn accept_block(
    inflight: &mut HashMap<u32, PieceBuf>,
    record: &crate::record::FileRecord,
    block: u32,
    data: &[u8],
) -> Result<Option<u32>> {
    let piece = record.piece_of_block(block);
    let Some(buf) = inflight.get_mut(&piece) else {
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
    Ok((buf.next == buf.blocks).then_some(piece))
}

/// Waits for the next message, polling for cancellation, up to the stall
/// timeout.
fn wait_reply<'c>(conn: &'c mut Conn, shared: &Shared) -> Result<Msg<'c>> {
    conn.expect_by(Instant::now() + STALL_TIMEOUT, &|| shared.is_cancelled())
}

fn measure_rtt(conn: &mut Conn, shared: &Shared) -> Result<Duration> {
    let mut best = Duration::MAX;
    for nonce in 0..3u64 {
        let t0 = Instant::now();
        conn.send(&Msg::Ping { nonce })?;
        match wait_reply(conn, shared)? {
            Msg::Pong { nonce: n } if n == nonce => best = best.min(t0.elapsed()),
            other => {
                return Err(Error::protocol(format!(
                    "expected PONG, got {}",
                    other.kind()
                )))
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
