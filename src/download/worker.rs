//! One worker thread per holder: it connects and drives that holder's
//! `Fetch` machine over the connection. The machine decides what to
//! request, verifies and batches; this thread only moves bytes, writes
//! verified runs through the reassembler, applies the download limit and
//! tells the coordinator what it sees.

use super::fetch::{Action, Fetch, PlanRef, Wait};
use super::plan::Plan;
use super::DownloadState;
use crate::error::{Error, Result};
use crate::net::conn::Conn;
use crate::ratelimit::throttle;
use crate::rng::Rng;
use crate::wire::{PeerReply, MAX_CONTROL_FRAME};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::fetch::STALL_TIMEOUT;

/// Socket read timeout: how often a waiting worker checks for cancellation
/// and lets the machine look at the time.
pub const POLL: Duration = Duration::from_millis(250);

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
    /// Of another site than this peer's (`Fetch::set_remote`).
    pub remote: bool,
    /// A complete holder of a swarm larger than the tracker's answer
    /// (`Fetch::spare_as_seeder`).
    pub spare: bool,
}

impl PlanRef for DownloadState {
    fn with<R>(&self, f: impl FnOnce(&mut Plan) -> R) -> R {
        f(&mut self.plan())
    }
}

/// Below this round trip a holder's requests wait for the read buffer to
/// run dry (the worker is about to block) before they are flushed.
const NEAR_RTT: Duration = Duration::from_millis(1);

/// `cursor`: where to start taking pieces in order when ties are not
/// broken at random (see `plan`).
pub fn run(
    shared: &Arc<DownloadState>,
    source: &Source,
    stats: &SourceStats,
    cursor: u32,
) -> Result<()> {
    let mut conn = Conn::connect(&source.addr, MAX_CONTROL_FRAME)?;
    conn.set_read_timeout(POLL);
    let seed = Rng::new().next_u64();
    let mut fetch = Fetch::new(shared.record.clone(), cursor, seed, Instant::now());
    if shared.is_update() && source.peer_id == shared.record.owner {
        fetch.spare_as_origin(Instant::now());
    }
    if source.remote {
        fetch.set_remote(Instant::now());
    }
    if source.spare {
        fetch.spare_as_seeder();
    }
    let result = drive(shared, &mut conn, &mut fetch, stats);
    // However it ended, what it owes goes back; what is verified is kept.
    fetch.abandon(shared.as_ref());
    let kept = perform(shared, &mut conn, &mut fetch, stats);
    stats.useful.store(false, Ordering::Relaxed);
    shared.notify();
    result.and(kept).map_err(|e| about(e, &source.peer_id))
}

/// Names the holder in an error of its own making.
fn about(e: Error, peer_id: &str) -> Error {
    match e {
        Error::Timeout(m) => Error::Timeout(format!("{peer_id}: {m}")),
        Error::Integrity(m) => Error::Integrity(format!("{peer_id} {m}")),
        other => other,
    }
}

fn drive(
    shared: &DownloadState,
    conn: &mut Conn,
    fetch: &mut Fetch,
    stats: &SourceStats,
) -> Result<()> {
    loop {
        if shared.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let wait = fetch.poll(Instant::now(), shared)?;
        perform(shared, conn, fetch, stats)?;
        if fetch.owed() == 0 {
            // Only while nothing is owed: a scan of the plan per block
            // would cost more than the block.
            stats.useful.store(fetch.useful(shared), Ordering::Relaxed);
        }
        match wait {
            Wait::Done => return conn.flush(),
            Wait::Work(_) => {
                conn.flush()?;
                if shared.wait_for_work() {
                    return Ok(());
                }
                continue;
            }
            Wait::Reply(_) => {}
        }
        if conn.read_buffer_empty() {
            // About to block on the socket: push out the requests, and
            // write what is verified so it is served and hashed sooner.
            fetch.flush();
            perform(shared, conn, fetch, stats)?;
            conn.flush()?;
        }
        let block_len = match conn.recv::<PeerReply>() {
            Err(Error::Timeout(_)) => continue,
            Err(e) => return Err(e),
            Ok(None) => return Err(Error::protocol("the holder closed the connection")),
            Ok(Some(reply)) => {
                let len = match &reply {
                    PeerReply::Block { data, .. } => data.len(),
                    _ => 0,
                };
                shared.metrics.received_from(len, fetch.is_remote());
                fetch.on_reply(reply, Instant::now(), shared)?;
                len
            }
        };
        if block_len > 0 {
            throttle(&shared.limiter, block_len, || {
                // Keep the holder busy while we wait our turn.
                let _ = conn.flush();
            });
        }
    }
}

/// Carries out what the machine asked for: requests are queued on the
/// connection, verified runs written, progress reported.
fn perform(
    shared: &DownloadState,
    conn: &mut Conn,
    fetch: &mut Fetch,
    stats: &SourceStats,
) -> Result<()> {
    let mut result = Ok(());
    let mut sent = false;
    while let Some(a) = fetch.next_action() {
        match a {
            Action::Send(req) => {
                if result.is_ok() {
                    result = conn.queue(&req);
                    sent = true;
                }
            }
            Action::Write { first, count, data } => {
                let wrote = shared.reasm.write(first, count, data);
                if wrote.is_ok() {
                    shared.metrics.verified(count);
                }
                let (won, complete) = fetch.written(first, count, wrote.is_ok(), shared);
                stats.blocks.fetch_add(won, Ordering::Relaxed);
                shared.progress_made(won, complete);
                if let Err(e) = wrote {
                    result = Err(e);
                }
            }
            Action::Released => {
                shared.metrics.rejected();
                let bad = stats.bad_pieces.fetch_add(1, Ordering::Relaxed) + 1;
                log::warn!(
                    "{}: a piece failed its hash ({bad} so far)",
                    shared.record.name
                );
                shared.notify();
            }
        }
    }
    let rtt = fetch.rtt();
    if sent && result.is_ok() && (rtt == Duration::ZERO || rtt >= NEAR_RTT) {
        // Requests to a holder not known to be near go out now, not when
        // the read buffer next runs dry: a holder streaming to us keeps it
        // full, so they left only once its blocks had all arrived, and a
        // far holder's link idled a round trip per window (63 % of a
        // 10 MiB/s link used at 40 ms). A near one idles too briefly to
        // matter, and a write per top-up cost 5 % of a loopback 1->1.
        result = conn.flush();
    }
    if rtt > Duration::ZERO {
        stats
            .rtt_us
            .store(rtt.as_micros() as u64, Ordering::Relaxed);
    }
    result
}
