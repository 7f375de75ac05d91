//! The peer protocol: what a downloader sends a holder's block server
//! (`PeerRequest`) and what the block server sends back (`PeerReply`:
//! answers, the BLOCKs it owes, and HAVE unasked). A BLOCK borrows its
//! data from the read buffer; the server writes BLOCKs straight from its
//! file buffer with `write_block`. Layouts in docs/PROTOCOL.md §6.

use super::codec::{put_str, put_u32, put_u64, Decoder};
use super::message::{
    error_parts, get_error, get_have, get_name, get_record, get_run, put_error, put_have,
    put_record, put_run, ty, unexpected, Answer, Decode, Encode,
};
use crate::bitfield::Bitfield;
use crate::digest::Md5Digest;
use crate::error::{Error, Result};
use crate::record::{FileRecord, BLOCK_SIZE};

/// What a downloader asks a block server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerRequest {
    /// I want this file (identified by name and MD5).
    Open {
        name: String,
        md5: Md5Digest,
    },
    /// `count` blocks from `block` of the file opened as `handle`.
    Request {
        handle: u32,
        block: u32,
        count: u16,
    },
    /// Drop these blocks from the pending requests (another holder
    /// delivered them first, in the endgame). No answer.
    Cancel {
        handle: u32,
        block: u32,
        count: u16,
    },
    Ping {
        nonce: u64,
    },
    /// The record of a file this peer holds (search: a record too large
    /// for a datagram).
    GetRecord {
        name: String,
    },
    /// Done with this connection.
    Bye,
}

/// What a block server sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerReply<'a> {
    /// The handle to use in REQUESTs, and what it has.
    Opened {
        handle: u32,
        have: Bitfield,
    },
    Block {
        handle: u32,
        block: u32,
        data: &'a [u8],
    },
    Pong {
        nonce: u64,
    },
    /// Unasked: pieces verified since OPENED or the last HAVE.
    Have {
        handle: u32,
        have: Bitfield,
    },
    /// Boxed: a record is large, and every other reply is moved through
    /// the block server's queue.
    Record {
        record: Box<FileRecord>,
    },
    /// The answer to BYE.
    Ok,
    Error {
        code: u16,
        message: String,
    },
}

impl Encode for PeerRequest {
    fn kind(&self) -> &'static str {
        match self {
            PeerRequest::Open { .. } => "OPEN",
            PeerRequest::Request { .. } => "REQUEST",
            PeerRequest::Cancel { .. } => "CANCEL",
            PeerRequest::Ping { .. } => "PING",
            PeerRequest::GetRecord { .. } => "GET_RECORD",
            PeerRequest::Bye => "BYE",
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            PeerRequest::Open { name, md5 } => {
                put_str(out, name);
                out.extend_from_slice(md5);
                ty::OPEN
            }
            PeerRequest::Request {
                handle,
                block,
                count,
            } => {
                put_run(out, *handle, *block, *count);
                ty::REQUEST
            }
            PeerRequest::Cancel {
                handle,
                block,
                count,
            } => {
                put_run(out, *handle, *block, *count);
                ty::CANCEL
            }
            PeerRequest::Ping { nonce } => {
                put_u64(out, *nonce);
                ty::PING
            }
            PeerRequest::GetRecord { name } => {
                put_str(out, name);
                ty::GET_RECORD
            }
            PeerRequest::Bye => ty::BYE,
        }
    }
}

impl Decode<'_> for PeerRequest {
    fn decode(t: u8, body: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(body);
        let msg = match t {
            ty::OPEN => PeerRequest::Open {
                name: get_name(&mut d)?,
                md5: d.array()?,
            },
            ty::REQUEST => {
                let (handle, block, count) = get_run(&mut d)?;
                PeerRequest::Request {
                    handle,
                    block,
                    count,
                }
            }
            ty::CANCEL => {
                let (handle, block, count) = get_run(&mut d)?;
                PeerRequest::Cancel {
                    handle,
                    block,
                    count,
                }
            }
            ty::PING => PeerRequest::Ping { nonce: d.u64()? },
            ty::GET_RECORD => PeerRequest::GetRecord {
                name: get_name(&mut d)?,
            },
            ty::BYE => PeerRequest::Bye,
            other => return Err(unexpected(other, "a block server")),
        };
        d.finish()?;
        Ok(msg)
    }
}

impl Encode for PeerReply<'_> {
    fn kind(&self) -> &'static str {
        match self {
            PeerReply::Opened { .. } => "OPENED",
            PeerReply::Block { .. } => "BLOCK",
            PeerReply::Pong { .. } => "PONG",
            PeerReply::Have { .. } => "HAVE",
            PeerReply::Record { .. } => "RECORD",
            PeerReply::Ok => "OK",
            PeerReply::Error { .. } => "ERROR",
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            PeerReply::Opened { handle, have } => {
                put_u32(out, *handle);
                put_have(out, have);
                ty::OPENED
            }
            PeerReply::Block {
                handle,
                block,
                data,
            } => {
                put_u32(out, *handle);
                put_u32(out, *block);
                out.extend_from_slice(data);
                ty::BLOCK
            }
            PeerReply::Pong { nonce } => {
                put_u64(out, *nonce);
                ty::PONG
            }
            PeerReply::Have { handle, have } => {
                put_u32(out, *handle);
                put_have(out, have);
                ty::HAVE
            }
            PeerReply::Record { record } => {
                put_record(out, record);
                ty::RECORD
            }
            PeerReply::Ok => ty::OK,
            PeerReply::Error { code, message } => put_error(out, *code, message),
        }
    }
}

impl<'a> Decode<'a> for PeerReply<'a> {
    fn decode(t: u8, body: &'a [u8]) -> Result<Self> {
        let mut d = Decoder::new(body);
        let msg = match t {
            ty::OPENED => PeerReply::Opened {
                handle: d.u32()?,
                have: get_have(&mut d)?,
            },
            ty::BLOCK => {
                let (handle, block) = (d.u32()?, d.u32()?);
                let data = d.take(d.remaining())?;
                if data.is_empty() || data.len() > BLOCK_SIZE as usize {
                    return Err(Error::protocol(format!("BLOCK of {} bytes", data.len())));
                }
                PeerReply::Block {
                    handle,
                    block,
                    data,
                }
            }
            ty::PONG => PeerReply::Pong { nonce: d.u64()? },
            ty::HAVE => PeerReply::Have {
                handle: d.u32()?,
                have: get_have(&mut d)?,
            },
            ty::RECORD => PeerReply::Record {
                record: Box::new(get_record(&mut d)?),
            },
            ty::OK => PeerReply::Ok,
            ty::ERROR => {
                let (code, message) = get_error(&mut d)?;
                PeerReply::Error { code, message }
            }
            other => return Err(unexpected(other, "a downloader")),
        };
        d.finish()?;
        Ok(msg)
    }
}

impl Answer for PeerReply<'_> {
    fn into_result(self) -> Result<Self> {
        match self {
            PeerReply::Error { code, message } => Err(Error::Remote { code, message }),
            m => Ok(m),
        }
    }

    fn error(e: &Error) -> Self {
        let (code, message) = error_parts(e);
        PeerReply::Error { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::parse;
    use crate::wire::message::tests::{record, round_trip, truncations};
    use crate::wire::message::write_block;
    use proptest::prelude::*;

    fn requests() -> Vec<PeerRequest> {
        vec![
            PeerRequest::Open {
                name: "a.bin".into(),
                md5: [4; 16],
            },
            PeerRequest::Request {
                handle: 7,
                block: 12,
                count: 64,
            },
            PeerRequest::Cancel {
                handle: 7,
                block: 12,
                count: 3,
            },
            PeerRequest::Ping { nonce: 42 },
            PeerRequest::GetRecord {
                name: "a.bin".into(),
            },
            PeerRequest::Bye,
        ]
    }

    fn replies() -> Vec<PeerReply<'static>> {
        let mut sparse = Bitfield::new(1000);
        sparse.set(3);
        sparse.set(999);
        let mut dense = Bitfield::new(40);
        for i in (0..40).step_by(2) {
            dense.set(i);
        }
        vec![
            PeerReply::Opened {
                handle: 7,
                have: sparse,
            },
            PeerReply::Block {
                handle: 7,
                block: 12,
                data: &[5; 4096],
            },
            PeerReply::Pong { nonce: 42 },
            PeerReply::Have {
                handle: 7,
                have: dense,
            },
            PeerReply::Record {
                record: Box::new(record()),
            },
            PeerReply::Ok,
            PeerReply::Error {
                code: 5,
                message: "busy".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in requests() {
            assert_eq!(round_trip(&m), m, "{}", m.kind());
        }
        for m in replies() {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            let (t, body, _) = parse(&buf, crate::wire::MAX_FRAME).unwrap().unwrap();
            assert_eq!(PeerReply::decode(t, body).unwrap(), m, "{}", m.kind());
        }
        truncations(&requests());
        for m in replies() {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            for cut in 0..buf.len() - 5 {
                let _ = PeerReply::decode(buf[4], &buf[5..5 + cut]);
            }
        }
    }

    #[test]
    fn write_block_matches_encode() {
        let data = [8u8; 100];
        let mut a = Vec::new();
        write_block(&mut a, 1, 2, &data).unwrap();
        let mut b = Vec::new();
        PeerReply::Block {
            handle: 1,
            block: 2,
            data: &data,
        }
        .encode(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn each_side_takes_only_its_own_messages() {
        for t in [ty::OPENED, ty::BLOCK, ty::NEW_FILE, ty::WHO_HAS, 0x03, 0x42] {
            assert!(PeerRequest::decode(t, b"").is_err(), "0x{t:02x}");
        }
        for t in [ty::OPEN, ty::REQUEST, ty::HOLDERS, ty::FILE_LIST] {
            assert!(PeerReply::decode(t, b"").is_err(), "0x{t:02x}");
        }
        let mut b = Vec::new();
        put_run(&mut b, 1, 1, 0);
        assert!(
            PeerRequest::decode(ty::REQUEST, &b).is_err(),
            "zero-block request"
        );
        let mut b = Vec::new();
        put_run(&mut b, 1, 1, 65);
        assert!(PeerRequest::decode(ty::CANCEL, &b).is_err(), "65 blocks");
        assert!(
            PeerReply::decode(ty::BLOCK, &[0; 8]).is_err(),
            "an empty block"
        );
        assert!(PeerReply::decode(ty::BLOCK, &[0; 8 + 4097]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(t in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = PeerRequest::decode(t, &body);
            let _ = PeerReply::decode(t, &body);
        }

        #[test]
        fn arbitrary_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut r = crate::wire::FrameReader::new(&bytes[..], 256);
            while let Ok(Some((t, body))) = r.read_frame() {
                let _ = PeerRequest::decode(t, body);
                let _ = PeerReply::decode(t, body);
            }
        }

        #[test]
        fn requests_round_trip(handle in any::<u32>(), block in any::<u32>(), count in 1u16..=64) {
            let m = PeerRequest::Request { handle, block, count };
            prop_assert_eq!(round_trip(&m), m);
        }
    }
}
