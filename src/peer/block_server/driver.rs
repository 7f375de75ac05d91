//! The block server: one thread per active connection (the gate, `net::
//! gate`, keeps idle and half-open ones in its lobby and bounds the
//! threads), driving that connection's `Serve` machine. The machine decides what to answer and
//! which blocks go next; this thread reads requests ahead (so a CANCEL can
//! still remove the ones not yet started), sends the answers, and reads
//! each slice of blocks with one positioned read, written straight into
//! the socket buffer under the upload limit. The slices queued go out
//! together, up to `BATCH_BLOCKS` or 50 ms of the upload limit (shared out
//! among the connections a seeder's schedule has open): one grant of the
//! limit (one wait), one check for requests, one write, where a grant per
//! block cost a sleep, a wake-up and a system call each.
//! Anything malformed gets an ERROR frame and the connection closes.

use super::machine::{Library, Serve, Served, Slice, MAX_PENDING, SLICE_BLOCKS};
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::net::conn::Conn;
use crate::net::gate::Ticket;
use crate::net::once::{log_clock_refusal, OncePer};
use crate::peer::files::store::SharedFile;
use crate::peer::Peer;
use crate::ratelimit::throttle;
use crate::record::{FileRecord, BLOCK_SIZE};
use crate::wire::message::block_head;
use crate::wire::{Answer, PeerReply, PeerRequest, MAX_CONTROL_FRAME};
use log::debug;
use std::io::IoSlice;
use std::net::{IpAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often an idle connection checks for new pieces to announce. New
/// pieces go out at most every `HAVE_EVERY` (150 ms) anyway: a 50 ms
/// tick woke each of up to 64 handler threads twenty times a second for
/// nothing most times. Simulated: the same ratios within 0.5 %.
pub const TICK: Duration = Duration::from_millis(100);
/// Most blocks sent per grant of the upload limit (256 KiB, the socket
/// buffer): a slice is at most `SLICE_BLOCKS`, so a batch may pass this
/// by less than one slice.
pub const BATCH_BLOCKS: u32 = 64;
/// A batch under an upload limit is at most this much of it, so one
/// connection's batch does not hold the others back for long.
const BATCH_TIME: f64 = 0.05;

impl Served for Arc<SharedFile> {
    fn record(&self) -> &FileRecord {
        &self.record
    }
    fn version(&self) -> Option<u64> {
        self.partial.as_ref().map(|r| r.version())
    }
    fn have(&self) -> Bitfield {
        SharedFile::have(self)
    }
    fn verified(&self) -> u32 {
        self.partial
            .as_ref()
            .map_or(self.record.piece_count(), |r| r.count())
    }
    fn holds(&self, first: u32, last: u32) -> bool {
        self.partial.as_ref().is_none_or(|r| r.holds(first, last))
    }
    fn seeding(&self) -> Option<&Mutex<super::seeding::Seeding>> {
        self.seeding.as_ref()
    }
}

impl Library for Peer {
    type File = Arc<SharedFile>;
    fn find(&self, name: &str) -> Option<Arc<SharedFile>> {
        self.store.servable(name)
    }
    fn find_version(&self, name: &str, md5: &crate::digest::Md5Digest) -> Option<Arc<SharedFile>> {
        self.store.servable_version(name, md5)
    }
    fn id(&self) -> &str {
        &self.config.id
    }
}

/// The addresses whose clock this process's block server named already
/// (one peer per process).
fn clock_said() -> &'static Mutex<OncePer<IpAddr>> {
    static SAID: OnceLock<Mutex<OncePer<IpAddr>>> = OnceLock::new();
    SAID.get_or_init(|| Mutex::new(OncePer::default()))
}

pub fn handle(peer: &Arc<Peer>, stream: TcpStream, ticket: &Ticket) {
    let _open = peer.metrics.accepted();
    let ip = stream.peer_addr().ok().map(|a| a.ip());
    let mut conn = match Conn::accept(stream, MAX_CONTROL_FRAME, TICK, ticket.deadline()) {
        Ok(c) => c,
        Err(Error::Clock(what)) => return log_clock_refusal(clock_said(), ip, &what),
        Err(e) => return debug!("server: {e}"),
    };
    let who = conn.peer_addr();
    let mut machine = Serve::new(Instant::now());
    let result = serve(peer, &mut conn, &mut machine, ticket);
    machine.close();
    if let Err(e) = result {
        debug!("server: {who}: {e}");
        if !matches!(e, Error::Timeout(_)) && conn.send(&PeerReply::error(&e)).is_ok() {
            conn.linger_close();
        }
    }
    conn.shutdown();
}

/// Moves the machine's bytes: reads requests ahead (waiting a tick only
/// with nothing to serve), sends its answers, then a batch of slices.
/// The gate hears whether it waits for the client (and may be evicted
/// for a newcomer) or has blocks queued for it.
fn serve(
    peer: &Arc<Peer>,
    conn: &mut Conn,
    m: &mut Serve<Arc<SharedFile>>,
    ticket: &Ticket,
) -> Result<()> {
    let most = batch_blocks(peer.upload.as_ref().map(|l| l.rate()));
    let mut buf = vec![0u8; (most + SLICE_BLOCKS) as usize * BLOCK_SIZE as usize];
    let mut batch = Vec::new();
    // Written and not yet flushed: something other than HAVE (see
    // `send_blocks`).
    let mut urgent = false;
    loop {
        // Whether this pass read the socket: once it has and the buffer
        // is drained, another look would almost always find nothing (an
        // EAGAIN system call per request). Requests that come meanwhile
        // are read before the next batch.
        let mut read = false;
        while m.pending() < MAX_PENDING {
            if read && m.pending() > 0 && conn.read_buffer_empty() {
                break;
            }
            let got = if m.pending() == 0 {
                conn.flush()?;
                urgent = false;
                ticket.idle(m.has_open());
                conn.fill()
            } else {
                conn.try_fill()
            };
            match got {
                Ok(true) => {
                    read = true;
                    ticket.busy();
                    let req = conn.take::<PeerRequest>()?;
                    m.on_request(req, Instant::now(), peer.as_ref())?;
                    // Answers go out before the next wait for a request.
                    urgent |= queue_replies(conn, m)?;
                }
                Ok(false) => return Ok(()),
                Err(Error::Timeout(_)) => break,
                Err(e) => return Err(e),
            }
        }
        m.tick(Instant::now())?;
        urgent |= queue_replies(conn, m)?;
        if m.closing() {
            return conn.flush();
        }
        batch.clear();
        let mut blocks = 0;
        // A seeder's connections share its upload a grant at a time. The
        // downloader told everything, its queue always full, took a whole
        // batch per grant where the others took the few blocks they had
        // been offered: about half of the seeder's upload at N=8, and the
        // others then waited on its copies.
        let fair = (most / m.sharers()).max(1);
        while blocks < fair {
            let Some(slice) = m.next_slice()? else { break };
            blocks += slice.count;
            batch.push(slice);
        }
        urgent = send_blocks(peer, conn, &batch, &mut buf, urgent)?;
    }
}

/// Blocks per batch under an upload limit of `rate` bytes a second (none:
/// `BATCH_BLOCKS`), at least one.
fn batch_blocks(rate: Option<u64>) -> u32 {
    let Some(rate) = rate else {
        return BATCH_BLOCKS;
    };
    let blocks = (rate as f64 * BATCH_TIME / BLOCK_SIZE as f64) as u32;
    blocks.clamp(1, BATCH_BLOCKS)
}

/// Queues the machine's answers; true if one of them is not a HAVE.
fn queue_replies(conn: &mut Conn, m: &mut Serve<Arc<SharedFile>>) -> Result<bool> {
    let mut urgent = false;
    for reply in m.replies() {
        urgent |= !matches!(reply, PeerReply::Have { .. });
        conn.queue(&reply)?;
    }
    Ok(urgent)
}

/// Reads each slice (the machine checked it holds those pieces) with one
/// positioned read, takes the whole batch from the upload limit at once,
/// and writes its BLOCK frames into the socket buffer. `urgent`: the
/// buffer holds more than HAVEs, which go out before a wait for the
/// limit; HAVEs alone wait for this batch and leave with it, where a
/// write of their own woke the downloader once more (a third of a
/// leecher's writes at N=48). Returns what `urgent` is now.
fn send_blocks(
    peer: &Peer,
    conn: &mut Conn,
    batch: &[Slice<Arc<SharedFile>>],
    buf: &mut [u8],
    urgent: bool,
) -> Result<bool> {
    let mut at = 0;
    for slice in batch {
        let record = &slice.file.record;
        let (offset, len) = bytes_of(slice);
        slice
            .file
            .read_exact_at(&mut buf[at..at + len], offset)
            .map_err(|e| Error::io(format!("reading {} to serve it", record.name), e))?;
        at += len;
    }
    if at == 0 {
        return Ok(urgent);
    }
    throttle(&peer.upload, at, || {
        // Out with what is due before waiting for this batch's turn.
        if urgent {
            let _ = conn.flush();
        }
    });
    let who = conn.peer_addr();
    let mut data = &buf[..at];
    let mut frames = Vec::new();
    for slice in batch {
        let (this, rest) = data.split_at(bytes_of(slice).1);
        data = rest;
        for (i, chunk) in this.chunks(BLOCK_SIZE as usize).enumerate() {
            frames.push((
                block_head(slice.handle, slice.block + i as u32, chunk.len()),
                chunk,
            ));
        }
    }
    let mut parts: Vec<IoSlice<'_>> = frames
        .iter()
        .flat_map(|(head, chunk)| [IoSlice::new(head), IoSlice::new(chunk)])
        .collect();
    conn.write_parts(&mut parts)
        .map_err(|e| Error::net(format!("sending to {who}"), e))?;
    peer.metrics.sent(at);
    Ok(true)
}

/// Where a slice's bytes start in its file, and how many there are (the
/// file's last block may be short).
fn bytes_of(slice: &Slice<Arc<SharedFile>>) -> (u64, usize) {
    let offset = slice.block as u64 * BLOCK_SIZE as u64;
    let end = ((slice.block + slice.count) as u64 * BLOCK_SIZE as u64).min(slice.file.record.size);
    (offset, (end - offset) as usize)
}
