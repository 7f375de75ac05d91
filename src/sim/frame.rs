//! A frame as it waits on a link and travels: its bytes, or a BLOCK whose
//! data is a run of a shared buffer (the original file), encoded by the
//! real `write_block` when it is handed to its receiver. The receiver
//! reads the same bytes either way; what changes is that the blocks
//! waiting on the links hold no copy of them. At 10,000 peers those
//! waiting copies were most of the run's memory (about a hundred blocks
//! queued per uploading peer), and every event paid for them in cache
//! misses.

use crate::wire::message::write_block;
use crate::wire::HEADER_LEN;
use std::sync::Arc;

pub enum Frame {
    /// Bytes that take their time on the sender's upload link.
    Bytes(Vec<u8>),
    /// Bytes that take no time there (`Cx::send_control`).
    Control(Vec<u8>),
    /// BLOCK `block` on `handle`, its data `buf[at..at + len]`.
    Block {
        handle: u32,
        block: u32,
        at: u32,
        len: u32,
        buf: Arc<[u8]>,
    },
}

impl Frame {
    /// Its length on the wire, header included.
    pub fn len(&self) -> usize {
        match self {
            Frame::Bytes(b) | Frame::Control(b) => b.len(),
            Frame::Block { len, .. } => HEADER_LEN + 8 + *len as usize,
        }
    }

    /// The frame's bytes: itself, or the BLOCK encoded into `buf` (an
    /// empty buffer, used when the frame has bytes already).
    pub fn into_bytes(self, mut out: Vec<u8>) -> Vec<u8> {
        match self {
            Frame::Bytes(b) | Frame::Control(b) => b,
            Frame::Block {
                handle,
                block,
                at,
                len,
                buf,
            } => {
                let (at, len) = (at as usize, len as usize);
                let _ = write_block(&mut out, handle, block, &buf[at..at + len]);
                out
            }
        }
    }

    /// Asks the memory system for its first bytes (see
    /// `Net::prefetch_next`): the header, or for a BLOCK its data's start.
    pub fn prefetch(&self) {
        match self {
            Frame::Bytes(b) | Frame::Control(b) => super::prefetch(b.as_slice(), 1),
            Frame::Block { at, buf, .. } => {
                let at = (*at as usize).min(buf.len());
                super::prefetch(&buf[at..], 256.min(buf.len() - at));
            }
        }
    }

    /// A frame that still has its bytes needs no buffer to be handed over.
    pub fn is_encoded(&self) -> bool {
        !matches!(self, Frame::Block { .. })
    }

    /// It takes its time on the sender's upload link.
    pub fn paced(&self) -> bool {
        !matches!(self, Frame::Control(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_encoded_as_write_block_encodes_it() {
        let file: Arc<[u8]> = (0..10_000u32).map(|i| i as u8).collect();
        let mut want = Vec::new();
        write_block(&mut want, 3, 1, &file[4096..8192]).unwrap();
        let f = Frame::Block {
            handle: 3,
            block: 1,
            at: 4096,
            len: 4096,
            buf: file,
        };
        assert_eq!(f.len(), want.len());
        assert_eq!(f.into_bytes(Vec::new()), want);
    }
}
