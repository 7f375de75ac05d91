//! The block server: one thread per incoming connection. It answers OPEN,
//! REQUEST (blocks read in one positioned read per request and written
//! straight into the socket buffer), PING and GET_RECORD. Anything else,
//! or anything malformed, gets an ERROR frame and the connection closes.

use super::store::SharedFile;
use super::Peer;
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::net::{Conn, IDLE_TIMEOUT};
use crate::ratelimit::throttle;
use crate::record::BLOCK_SIZE;
use crate::wire::message::{write_block, MAX_REQUEST_BLOCKS};
use crate::wire::{Msg, MAX_CONTROL_FRAME};
use log::debug;
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Files one connection may have open at once.
const MAX_OPEN_PER_CONN: usize = 64;

enum Action {
    Open(String, [u8; 16]),
    Blocks(u32, u32, u16),
    Ping(u64),
    Record(String),
    Bye,
}

pub fn handle(peer: &Arc<Peer>, stream: TcpStream) {
    let mut conn = match Conn::new(stream, MAX_CONTROL_FRAME, IDLE_TIMEOUT) {
        Ok(c) => c,
        Err(e) => return debug!("server: {e}"),
    };
    let who = conn.peer_addr();
    if let Err(e) = serve(peer, &mut conn) {
        debug!("server: {who}: {e}");
        if !matches!(e, Error::Timeout(_)) && conn.send(&Msg::error(&e)).is_ok() {
            conn.linger_close();
        }
    }
    conn.shutdown();
}

fn serve(peer: &Arc<Peer>, conn: &mut Conn) -> Result<()> {
    let mut opened: Vec<Arc<SharedFile>> = Vec::new();
    let mut buf = vec![0u8; MAX_REQUEST_BLOCKS as usize * BLOCK_SIZE as usize];
    loop {
        if conn.read_buffer_empty() {
            conn.flush()?;
        }
        let action = match conn.recv()? {
            None => return Ok(()),
            Some(Msg::Open { name, md5 }) => Action::Open(name, md5),
            Some(Msg::Request {
                handle,
                block,
                count,
            }) => Action::Blocks(handle, block, count),
            Some(Msg::Ping { nonce }) => Action::Ping(nonce),
            Some(Msg::GetRecord { name }) => Action::Record(name),
            Some(Msg::Bye) => Action::Bye,
            Some(other) => {
                return Err(Error::protocol(format!(
                    "a block server does not take {}",
                    other.kind()
                )))
            }
        };
        match action {
            Action::Open(name, md5) => match peer.store.get(&name) {
                Some(f) if f.record.md5 == md5 => {
                    if opened.len() >= MAX_OPEN_PER_CONN {
                        return Err(Error::protocol("too many files opened on one connection"));
                    }
                    let have = Bitfield::full(f.record.piece_count());
                    conn.queue(&Msg::Opened {
                        handle: opened.len() as u32,
                        have,
                    })?;
                    opened.push(f);
                }
                Some(_) => conn.queue(&Msg::error(&Error::NotFound(format!(
                    "{} holds a different version of {name}",
                    peer.config.id
                ))))?,
                None => conn.queue(&Msg::error(&Error::NotFound(format!(
                    "{} does not hold {name}",
                    peer.config.id
                ))))?,
            },
            Action::Blocks(handle, block, count) => {
                let file = opened.get(handle as usize).ok_or_else(|| {
                    Error::protocol(format!(
                        "REQUEST on handle {handle}, which was never opened"
                    ))
                })?;
                send_blocks(peer, conn, file, handle, block, count, &mut buf)?;
            }
            Action::Ping(nonce) => conn.queue(&Msg::Pong { nonce })?,
            Action::Record(name) => match peer.store.get(&name) {
                Some(f) => conn.queue(&Msg::Record {
                    record: (*f.record).clone(),
                })?,
                None => conn.queue(&Msg::error(&Error::NotFound(format!(
                    "{} does not hold {name}",
                    peer.config.id
                ))))?,
            },
            Action::Bye => {
                conn.send(&Msg::Ok)?;
                return Ok(());
            }
        }
    }
}

/// Reads the requested run with one positioned read and writes its BLOCK
/// frames into the socket buffer.
fn send_blocks(
    peer: &Peer,
    conn: &mut Conn,
    file: &SharedFile,
    handle: u32,
    block: u32,
    count: u16,
    buf: &mut [u8],
) -> Result<()> {
    let record = &file.record;
    let end = block
        .checked_add(count as u32)
        .filter(|&e| e <= record.block_count())
        .ok_or_else(|| {
            Error::protocol(format!(
                "REQUEST for blocks {block}+{count} beyond the file's {}",
                record.block_count()
            ))
        })?;
    let offset = block as u64 * BLOCK_SIZE as u64;
    let len = (end as u64 * BLOCK_SIZE as u64).min(record.size) - offset;
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
        write_block(conn.writer(), handle, block + i as u32, chunk)
            .map_err(|e| Error::net(format!("sending to {who}"), e))?;
    }
    Ok(())
}
