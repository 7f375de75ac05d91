//! The block server: one thread per incoming connection. It answers OPEN,
//! REQUEST (blocks read in one positioned read per request and written
//! straight into the socket buffer), CANCEL, PING and GET_RECORD. Anything
//! else, or anything malformed, gets an ERROR frame and the connection
//! closes.
//!
//! Requests are read ahead into a queue before they are served, so a
//! CANCEL can still remove the ones not yet started. A file still being
//! downloaded here is served too, its verified pieces only; as more are
//! verified, HAVE tells the connected downloader.

use super::store::SharedFile;
use super::Peer;
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::net::{Conn, IDLE_TIMEOUT};
use crate::ratelimit::throttle;
use crate::record::BLOCK_SIZE;
use crate::wire::message::{write_block, MAX_REQUEST_BLOCKS};
use crate::wire::{Answer, PeerReply, PeerRequest, MAX_CONTROL_FRAME};
use log::debug;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Files one connection may have open at once.
const MAX_OPEN_PER_CONN: usize = 64;
/// Requests read ahead and not yet served; beyond this the client waits
/// (its frames stay in the socket).
const MAX_PENDING: usize = 4096;
/// Most blocks served in one go: between slices the server reads CANCELs
/// and sends HAVEs, which matters when an upload limit makes each block slow.
const SLICE_BLOCKS: u32 = 16;
/// How often an idle connection checks for new pieces to announce.
const TICK: Duration = Duration::from_millis(50);

/// A file opened on this connection.
struct Opened {
    file: Arc<SharedFile>,
    /// For a download in progress: what the client was told we have, and
    /// the reassembler version that was read at.
    told: Option<(u64, Bitfield)>,
}

#[derive(Clone, Copy)]
struct Request {
    handle: u32,
    block: u32,
    count: u32,
}

struct Session {
    opened: Vec<Opened>,
    pending: VecDeque<Request>,
    buf: Vec<u8>,
}

pub fn handle(peer: &Arc<Peer>, stream: TcpStream) {
    let mut conn = match Conn::new(stream, MAX_CONTROL_FRAME, TICK) {
        Ok(c) => c,
        Err(e) => return debug!("server: {e}"),
    };
    let who = conn.peer_addr();
    if let Err(e) = serve(peer, &mut conn) {
        debug!("server: {who}: {e}");
        if !matches!(e, Error::Timeout(_)) && conn.send(&PeerReply::error(&e)).is_ok() {
            conn.linger_close();
        }
    }
    conn.shutdown();
}

fn serve(peer: &Arc<Peer>, conn: &mut Conn) -> Result<()> {
    let mut s = Session {
        opened: Vec::new(),
        pending: VecDeque::new(),
        buf: vec![0u8; MAX_REQUEST_BLOCKS as usize * BLOCK_SIZE as usize],
    };
    let mut heard = Instant::now();
    loop {
        // Take in what has arrived; wait (a tick) only with nothing to do.
        while s.pending.len() < MAX_PENDING {
            let got = if s.pending.is_empty() {
                conn.flush()?;
                conn.fill()
            } else {
                conn.try_fill()
            };
            match got {
                Ok(true) => {
                    heard = Instant::now();
                    let msg = conn.take::<PeerRequest>()?;
                    if !on_message(peer, conn, &mut s, msg)? {
                        return Ok(());
                    }
                }
                Ok(false) => return Ok(()),
                Err(Error::Timeout(_)) => {
                    if s.pending.is_empty() && heard.elapsed() > IDLE_TIMEOUT {
                        return Err(Error::Timeout("idle connection".into()));
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        tell_new_pieces(conn, &mut s)?;
        if let Some(mut r) = s.pending.pop_front() {
            if r.count > SLICE_BLOCKS {
                s.pending.push_front(Request {
                    block: r.block + SLICE_BLOCKS,
                    count: r.count - SLICE_BLOCKS,
                    ..r
                });
                r.count = SLICE_BLOCKS;
            }
            let file = s.opened[r.handle as usize].file.clone();
            send_blocks(peer, conn, &file, r, &mut s.buf)?;
        }
    }
}

/// Handles one message; false when the client said BYE.
fn on_message(peer: &Peer, conn: &mut Conn, s: &mut Session, msg: PeerRequest) -> Result<bool> {
    match msg {
        PeerRequest::Open { name, md5 } => match peer.store.servable(&name) {
            Some(f) if f.record.md5 == md5 => {
                if s.opened.len() >= MAX_OPEN_PER_CONN {
                    return Err(Error::protocol("too many files opened on one connection"));
                }
                let version = f.partial.as_ref().map(|r| r.version());
                let have = f.have();
                conn.queue(&PeerReply::Opened {
                    handle: s.opened.len() as u32,
                    have: have.clone(),
                })?;
                s.opened.push(Opened {
                    told: version.map(|v| (v, have)),
                    file: f,
                });
            }
            Some(_) => conn.queue(&PeerReply::error(&Error::NotFound(format!(
                "{} holds a different version of {name}",
                peer.config.id
            ))))?,
            None => conn.queue(&PeerReply::error(&Error::NotFound(format!(
                "{} does not hold {name}",
                peer.config.id
            ))))?,
        },
        PeerRequest::Request {
            handle,
            block,
            count,
        } => {
            let Some(o) = s.opened.get(handle as usize) else {
                return Err(Error::protocol(format!(
                    "REQUEST on handle {handle}, which was never opened"
                )));
            };
            check_range(&o.file, block, count)?;
            s.pending.push_back(Request {
                handle,
                block,
                count: count as u32,
            });
        }
        PeerRequest::Cancel {
            handle,
            block,
            count,
        } => cancel(&mut s.pending, handle, block, count as u32),
        PeerRequest::Ping { nonce } => conn.queue(&PeerReply::Pong { nonce })?,
        PeerRequest::GetRecord { name } => match peer.store.servable(&name) {
            Some(f) => conn.queue(&PeerReply::Record {
                record: (*f.record).clone(),
            })?,
            None => conn.queue(&PeerReply::error(&Error::NotFound(format!(
                "{} does not hold {name}",
                peer.config.id
            ))))?,
        },
        PeerRequest::Bye => {
            conn.send(&PeerReply::Ok)?;
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_range(file: &SharedFile, block: u32, count: u16) -> Result<()> {
    let total = file.record.block_count();
    match block.checked_add(count as u32) {
        Some(end) if end <= total => Ok(()),
        _ => Err(Error::protocol(format!(
            "REQUEST for blocks {block}+{count} beyond the file's {total}"
        ))),
    }
}

/// Removes `block..block+count` of `handle` from the requests not yet
/// served, splitting a request that straddles the range.
fn cancel(pending: &mut VecDeque<Request>, handle: u32, block: u32, count: u32) {
    let end = block.saturating_add(count);
    let mut kept = VecDeque::with_capacity(pending.len());
    for r in pending.drain(..) {
        let r_end = r.block + r.count;
        if r.handle != handle || r_end <= block || r.block >= end {
            kept.push_back(r);
            continue;
        }
        if r.block < block {
            kept.push_back(Request {
                count: block - r.block,
                ..r
            });
        }
        if r_end > end {
            kept.push_back(Request {
                block: end,
                count: r_end - end,
                ..r
            });
        }
    }
    *pending = kept;
}

/// Sends HAVE for pieces verified since the client was last told, for
/// each download in progress it opened here.
fn tell_new_pieces(conn: &mut Conn, s: &mut Session) -> Result<()> {
    for (handle, o) in s.opened.iter_mut().enumerate() {
        let (Some(reasm), Some((seen, told))) = (&o.file.partial, &mut o.told) else {
            continue;
        };
        let version = reasm.version();
        if version == *seen {
            continue;
        }
        let now = reasm.on_disk();
        let new = now.minus(told);
        if new.count() > 0 {
            conn.queue(&PeerReply::Have {
                handle: handle as u32,
                have: new,
            })?;
        }
        *seen = version;
        *told = now;
    }
    Ok(())
}

/// Reads the requested run with one positioned read and writes its BLOCK
/// frames into the socket buffer.
fn send_blocks(
    peer: &Peer,
    conn: &mut Conn,
    file: &SharedFile,
    r: Request,
    buf: &mut [u8],
) -> Result<()> {
    let record = &file.record;
    if !file.holds_blocks(r.block, r.count) {
        return Err(Error::protocol(format!(
            "REQUEST for blocks {}+{} of {}, which are not verified here yet",
            r.block, r.count, record.name
        )));
    }
    let offset = r.block as u64 * BLOCK_SIZE as u64;
    let len = ((r.block + r.count) as u64 * BLOCK_SIZE as u64).min(record.size) - offset;
    let data = &mut buf[..len as usize];
    file.file
        .read_exact_at(data, offset)
        .map_err(|e| Error::io(format!("reading {} to serve it", record.name), e))?;
    let who = conn.peer_addr();
    for (i, chunk) in data.chunks(BLOCK_SIZE as usize).enumerate() {
        throttle(&peer.upload, chunk.len(), || {
            // Out with what is due before waiting for the next block's turn.
            let _ = conn.flush();
        });
        write_block(conn.writer(), r.handle, r.block + i as u32, chunk)
            .map_err(|e| Error::net(format!("sending to {who}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(block: u32, count: u32) -> Request {
        Request {
            handle: 0,
            block,
            count,
        }
    }

    fn spans(q: &VecDeque<Request>) -> Vec<(u32, u32, u32)> {
        q.iter().map(|r| (r.handle, r.block, r.count)).collect()
    }

    #[test]
    fn cancel_trims_and_splits_pending_requests() {
        let mut q: VecDeque<Request> = [req(0, 64), req(64, 64), req(200, 10)].into();
        q.push_back(Request {
            handle: 1,
            block: 70,
            count: 4,
        });
        cancel(&mut q, 0, 60, 10);
        assert_eq!(
            spans(&q),
            [(0, 0, 60), (0, 70, 58), (0, 200, 10), (1, 70, 4)],
            "another handle is untouched"
        );
        cancel(&mut q, 0, 200, 10);
        assert_eq!(spans(&q), [(0, 0, 60), (0, 70, 58), (1, 70, 4)]);
        cancel(&mut q, 0, 0, 1000);
        assert_eq!(spans(&q), [(1, 70, 4)]);
    }
}
