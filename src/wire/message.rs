//! Every message of the tracker protocol and the peer protocol, with its
//! encoding. Layouts are documented byte by byte in docs/PROTOCOL.md; the
//! type codes below are the first byte after the frame length.

use super::codec::{put_bytes, put_str, put_u16, put_u32, put_u64, put_u8, Decoder};
use super::frame::{write_header, HEADER_LEN};
use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::names::{check_file_name, check_peer_id, MAX_NAME_BYTES, MAX_PEER_ID_BYTES};
use crate::record::{FileRecord, Md5Digest, BLOCK_SIZE, MAX_PIECES};
use std::io::{self, Write};

/// Longest host string (a DNS name) in an address.
pub const MAX_HOST_BYTES: usize = 255;
/// Longest human-readable error text.
pub const MAX_ERROR_TEXT: usize = 1024;
/// Most blocks one REQUEST may ask for (256 KiB).
pub const MAX_REQUEST_BLOCKS: u16 = 64;
/// Most holders in one HOLDERS answer.
pub const MAX_HOLDERS: usize = 64;
/// Most files in one ANNOUNCE or FILE_LIST.
pub const MAX_FILES: usize = 16_384;

pub mod ty {
    pub const NEW_FILE: u8 = 0x02;
    pub const LIST_FILES: u8 = 0x04;
    pub const GET_RECORD: u8 = 0x05;
    pub const WHO_HAS: u8 = 0x06;
    pub const BYE: u8 = 0x07;
    pub const OPEN: u8 = 0x10;
    pub const REQUEST: u8 = 0x11;
    pub const PING: u8 = 0x12;
    pub const CANCEL: u8 = 0x13;
    pub const OK: u8 = 0x80;
    pub const FILE_LIST: u8 = 0x84;
    pub const RECORD: u8 = 0x85;
    pub const HOLDERS: u8 = 0x86;
    pub const OPENED: u8 = 0x90;
    pub const BLOCK: u8 = 0x91;
    pub const PONG: u8 = 0x92;
    pub const HAVE: u8 = 0x93;
    pub const ERROR: u8 = 0xff;
}

/// One line of the swarm's catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    pub size: u64,
    pub md5: Md5Digest,
    pub holders: u32,
    pub seeders: u32,
}

/// A peer that holds (part of) a file, and where to reach it. Which
/// pieces it has, the downloader learns from the peer itself (OPENED,
/// HAVE): the tracker keeps only how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub peer_id: String,
    pub host: String,
    pub port: u16,
    /// Verified blocks it holds (0: it has just joined the download).
    pub blocks: u64,
    /// It holds every block: a seeder.
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    NewFile {
        record: FileRecord,
    },
    ListFiles,
    FileList {
        files: Vec<FileSummary>,
    },
    GetRecord {
        name: String,
    },
    Record {
        record: FileRecord,
    },
    WhoHas {
        name: String,
    },
    Holders {
        holders: Vec<Holder>,
    },
    /// Downloader to holder: done with this connection.
    Bye,
    Ok,
    Error {
        code: u16,
        message: String,
    },
    /// Downloader to holder: I want this file (identified by name and MD5).
    Open {
        name: String,
        md5: Md5Digest,
    },
    /// Holder's answer: the handle to use in REQUESTs, and what it has.
    Opened {
        handle: u32,
        have: Bitfield,
    },
    Request {
        handle: u32,
        block: u32,
        count: u16,
    },
    Block {
        handle: u32,
        block: u32,
        data: &'a [u8],
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Downloader to holder: drop these blocks from the pending requests
    /// (another holder delivered them first, in the endgame).
    Cancel {
        handle: u32,
        block: u32,
        count: u16,
    },
    /// Holder to downloader, unasked: pieces it verified since OPENED or
    /// its last HAVE, to add to what it holds.
    Have {
        handle: u32,
        have: Bitfield,
    },
}

impl Msg<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::NewFile { .. } => "NEW_FILE",
            Msg::ListFiles => "LIST_FILES",
            Msg::FileList { .. } => "FILE_LIST",
            Msg::GetRecord { .. } => "GET_RECORD",
            Msg::Record { .. } => "RECORD",
            Msg::WhoHas { .. } => "WHO_HAS",
            Msg::Holders { .. } => "HOLDERS",
            Msg::Bye => "BYE",
            Msg::Ok => "OK",
            Msg::Error { .. } => "ERROR",
            Msg::Open { .. } => "OPEN",
            Msg::Opened { .. } => "OPENED",
            Msg::Request { .. } => "REQUEST",
            Msg::Block { .. } => "BLOCK",
            Msg::Ping { .. } => "PING",
            Msg::Pong { .. } => "PONG",
            Msg::Cancel { .. } => "CANCEL",
            Msg::Have { .. } => "HAVE",
        }
    }

    /// An ERROR frame as an `Error::Remote`; anything else passes through.
    pub fn into_result(self) -> Result<Self> {
        match self {
            Msg::Error { code, message } => Err(Error::Remote { code, message }),
            m => Ok(m),
        }
    }

    pub fn error(e: &Error) -> Msg<'static> {
        let mut message = e.to_string();
        truncate_utf8(&mut message, MAX_ERROR_TEXT);
        Msg::Error {
            code: e.wire_code(),
            message,
        }
    }

    /// Appends the whole frame (header and body) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let ty = self.encode_body(out);
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        out[start + 4] = ty;
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        w.write_all(&buf)
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> u8 {
        match self {
            Msg::NewFile { record } => {
                put_record(out, record);
                ty::NEW_FILE
            }
            Msg::ListFiles => ty::LIST_FILES,
            Msg::FileList { files } => {
                put_u32(out, files.len() as u32);
                for f in files {
                    put_str(out, &f.name);
                    put_u64(out, f.size);
                    out.extend_from_slice(&f.md5);
                    put_u32(out, f.holders);
                    put_u32(out, f.seeders);
                }
                ty::FILE_LIST
            }
            Msg::GetRecord { name } => {
                put_str(out, name);
                ty::GET_RECORD
            }
            Msg::Record { record } => {
                put_record(out, record);
                ty::RECORD
            }
            Msg::WhoHas { name } => {
                put_str(out, name);
                ty::WHO_HAS
            }
            Msg::Holders { holders } => {
                put_u32(out, holders.len() as u32);
                for h in holders {
                    put_str(out, &h.peer_id);
                    put_str(out, &h.host);
                    put_u16(out, h.port);
                    put_u64(out, h.blocks);
                    put_u8(out, u8::from(h.complete));
                }
                ty::HOLDERS
            }
            Msg::Bye => ty::BYE,
            Msg::Ok => ty::OK,
            Msg::Error { code, message } => {
                put_u16(out, *code);
                put_str(out, message);
                ty::ERROR
            }
            Msg::Open { name, md5 } => {
                put_str(out, name);
                out.extend_from_slice(md5);
                ty::OPEN
            }
            Msg::Opened { handle, have } => {
                put_u32(out, *handle);
                put_have(out, have);
                ty::OPENED
            }
            Msg::Request {
                handle,
                block,
                count,
            } => {
                put_u32(out, *handle);
                put_u32(out, *block);
                put_u16(out, *count);
                ty::REQUEST
            }
            Msg::Block {
                handle,
                block,
                data,
            } => {
                put_u32(out, *handle);
                put_u32(out, *block);
                out.extend_from_slice(data);
                ty::BLOCK
            }
            Msg::Ping { nonce } => {
                put_u64(out, *nonce);
                ty::PING
            }
            Msg::Pong { nonce } => {
                put_u64(out, *nonce);
                ty::PONG
            }
            Msg::Cancel {
                handle,
                block,
                count,
            } => {
                put_u32(out, *handle);
                put_u32(out, *block);
                put_u16(out, *count);
                ty::CANCEL
            }
            Msg::Have { handle, have } => {
                put_u32(out, *handle);
                put_have(out, have);
                ty::HAVE
            }
        }
    }

    /// Decodes a frame body of type `ty`. Everything is validated here:
    /// names, limits, record invariants, trailing bytes.
    pub fn decode(ty: u8, body: &[u8]) -> Result<Msg<'_>> {
        let mut d = Decoder::new(body);
        let msg = match ty {
            ty::NEW_FILE => Msg::NewFile {
                record: get_record(&mut d)?,
            },
            ty::LIST_FILES => Msg::ListFiles,
            ty::FILE_LIST => {
                let n = d.count(2 + 8 + 16 + 8, MAX_FILES)?;
                let mut files = Vec::new();
                for _ in 0..n {
                    files.push(FileSummary {
                        name: get_name(&mut d)?,
                        size: d.u64()?,
                        md5: d.array()?,
                        holders: d.u32()?,
                        seeders: d.u32()?,
                    });
                }
                Msg::FileList { files }
            }
            ty::GET_RECORD => Msg::GetRecord {
                name: get_name(&mut d)?,
            },
            ty::RECORD => Msg::Record {
                record: get_record(&mut d)?,
            },
            ty::WHO_HAS => Msg::WhoHas {
                name: get_name(&mut d)?,
            },
            ty::HOLDERS => {
                let n = d.count(2 + 2 + 2 + 9, MAX_HOLDERS)?;
                let mut holders = Vec::new();
                for _ in 0..n {
                    let peer_id = d.str(MAX_PEER_ID_BYTES)?.to_string();
                    check_peer_id(&peer_id)?;
                    holders.push(Holder {
                        peer_id,
                        host: d.str(MAX_HOST_BYTES)?.to_string(),
                        port: d.u16()?,
                        blocks: d.u64()?,
                        complete: match d.u8()? {
                            0 => false,
                            1 => true,
                            other => {
                                return Err(Error::protocol(format!(
                                    "HOLDERS complete flag {other}"
                                )))
                            }
                        },
                    });
                }
                Msg::Holders { holders }
            }
            ty::BYE => Msg::Bye,
            ty::OK => Msg::Ok,
            ty::ERROR => Msg::Error {
                code: d.u16()?,
                message: d.str(MAX_ERROR_TEXT)?.to_string(),
            },
            ty::OPEN => Msg::Open {
                name: get_name(&mut d)?,
                md5: d.array()?,
            },
            ty::OPENED => Msg::Opened {
                handle: d.u32()?,
                have: get_have(&mut d)?,
            },
            ty::REQUEST | ty::CANCEL => {
                let (handle, block, count) = (d.u32()?, d.u32()?, d.u16()?);
                if count == 0 || count > MAX_REQUEST_BLOCKS {
                    return Err(Error::protocol(format!(
                        "REQUEST or CANCEL of {count} blocks (1 to {MAX_REQUEST_BLOCKS} allowed)"
                    )));
                }
                if ty == ty::CANCEL {
                    Msg::Cancel {
                        handle,
                        block,
                        count,
                    }
                } else {
                    Msg::Request {
                        handle,
                        block,
                        count,
                    }
                }
            }
            ty::HAVE => Msg::Have {
                handle: d.u32()?,
                have: get_have(&mut d)?,
            },
            ty::BLOCK => {
                let (handle, block) = (d.u32()?, d.u32()?);
                let data = d.take(d.remaining())?;
                if data.is_empty() || data.len() > BLOCK_SIZE as usize {
                    return Err(Error::protocol(format!("BLOCK of {} bytes", data.len())));
                }
                Msg::Block {
                    handle,
                    block,
                    data,
                }
            }
            ty::PING => Msg::Ping { nonce: d.u64()? },
            ty::PONG => Msg::Pong { nonce: d.u64()? },
            other => {
                return Err(Error::protocol(format!(
                    "unknown message type 0x{other:02x}"
                )))
            }
        };
        d.finish()?;
        Ok(msg)
    }
}

/// Writes a BLOCK frame straight from the file buffer: the hot path of
/// serving, with no intermediate copy or allocation.
pub fn write_block(w: &mut impl Write, handle: u32, block: u32, data: &[u8]) -> io::Result<()> {
    write_header(w, ty::BLOCK, 8 + data.len())?;
    let mut ids = [0u8; 8];
    ids[..4].copy_from_slice(&handle.to_be_bytes());
    ids[4..].copy_from_slice(&block.to_be_bytes());
    w.write_all(&ids)?;
    w.write_all(data)
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

pub(crate) fn get_name(d: &mut Decoder<'_>) -> Result<String> {
    let name = d.str(MAX_NAME_BYTES)?;
    check_file_name(name)?;
    Ok(name.to_string())
}

pub(crate) fn put_record(out: &mut Vec<u8>, r: &FileRecord) {
    put_str(out, &r.name);
    put_u64(out, r.size);
    put_u32(out, r.block_size);
    put_u32(out, r.blocks_per_piece);
    out.extend_from_slice(&r.md5);
    put_u32(out, r.piece_hashes.len() as u32);
    for h in &r.piece_hashes {
        out.extend_from_slice(h);
    }
}

pub(crate) fn get_record(d: &mut Decoder<'_>) -> Result<FileRecord> {
    let name = get_name(d)?;
    let size = d.u64()?;
    let block_size = d.u32()?;
    let blocks_per_piece = d.u32()?;
    let md5 = d.array()?;
    let n = d.count(16, MAX_PIECES as usize)?;
    let piece_hashes = d
        .take(n * 16)?
        .chunks_exact(16)
        .map(|c| c.try_into().expect("16-byte chunk"))
        .collect();
    let record = FileRecord {
        name,
        size,
        block_size,
        blocks_per_piece,
        md5,
        piece_hashes,
    };
    record.validate()?;
    Ok(record)
}

// A set of pieces: u32 length, then a tag choosing the smallest form.
const HAVE_NONE: u8 = 0;
const HAVE_ALL: u8 = 1;
const HAVE_RUNS: u8 = 2;
const HAVE_BITS: u8 = 3;

pub(crate) fn put_have(out: &mut Vec<u8>, have: &Bitfield) {
    put_u32(out, have.len());
    if have.count() == 0 {
        put_u8(out, HAVE_NONE);
    } else if have.is_full() {
        put_u8(out, HAVE_ALL);
    } else {
        let runs = have.runs();
        let bits = have.to_bytes();
        if runs.len() * 8 < bits.len() {
            put_u8(out, HAVE_RUNS);
            put_u32(out, runs.len() as u32);
            for (start, len) in runs {
                put_u32(out, start);
                put_u32(out, len);
            }
        } else {
            put_u8(out, HAVE_BITS);
            put_bytes(out, &bits);
        }
    }
}

pub(crate) fn get_have(d: &mut Decoder<'_>) -> Result<Bitfield> {
    let len = d.u32()?;
    if len > MAX_PIECES {
        return Err(Error::protocol(format!("piece set of {len} pieces")));
    }
    let bad = || Error::protocol("malformed piece set");
    match d.u8()? {
        HAVE_NONE => Ok(Bitfield::new(len)),
        HAVE_ALL => Ok(Bitfield::full(len)),
        HAVE_RUNS => {
            let n = d.count(8, MAX_PIECES as usize)?;
            let mut runs = Vec::with_capacity(n);
            for _ in 0..n {
                runs.push((d.u32()?, d.u32()?));
            }
            Bitfield::from_runs(len, &runs).ok_or_else(bad)
        }
        HAVE_BITS => Bitfield::from_bytes(len, d.bytes(MAX_PIECES as usize / 8)?).ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::parse;

    fn record() -> FileRecord {
        FileRecord {
            name: "a.bin".into(),
            size: 10_000,
            block_size: BLOCK_SIZE,
            blocks_per_piece: 1,
            md5: [9; 16],
            piece_hashes: vec![[1; 16], [2; 16], [3; 16]],
        }
    }

    fn sample_messages() -> Vec<Msg<'static>> {
        let mut sparse = Bitfield::new(1000);
        sparse.set(3);
        sparse.set(999);
        let mut dense = Bitfield::new(40);
        for i in (0..40).step_by(2) {
            dense.set(i);
        }
        vec![
            Msg::NewFile { record: record() },
            Msg::ListFiles,
            Msg::FileList {
                files: vec![FileSummary {
                    name: "a".into(),
                    size: 5,
                    md5: [0; 16],
                    holders: 2,
                    seeders: 1,
                }],
            },
            Msg::GetRecord {
                name: "a.bin".into(),
            },
            Msg::Record { record: record() },
            Msg::WhoHas {
                name: "a.bin".into(),
            },
            Msg::Holders {
                holders: vec![
                    Holder {
                        peer_id: "B".into(),
                        host: "127.0.0.1".into(),
                        port: 1,
                        blocks: 20,
                        complete: false,
                    },
                    Holder {
                        peer_id: "C".into(),
                        host: "seed.lan".into(),
                        port: 2,
                        blocks: 40,
                        complete: true,
                    },
                ],
            },
            Msg::Bye,
            Msg::Ok,
            Msg::Error {
                code: 2,
                message: "no such file".into(),
            },
            Msg::Open {
                name: "a.bin".into(),
                md5: [4; 16],
            },
            Msg::Opened {
                handle: 7,
                have: sparse,
            },
            Msg::Request {
                handle: 7,
                block: 12,
                count: 64,
            },
            Msg::Block {
                handle: 7,
                block: 12,
                data: &[5; 4096],
            },
            Msg::Ping { nonce: 42 },
            Msg::Pong { nonce: 42 },
            Msg::Cancel {
                handle: 7,
                block: 12,
                count: 3,
            },
            Msg::Have {
                handle: 7,
                have: Bitfield::from_runs(100, &[(3, 4), (50, 10)]).unwrap(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in sample_messages() {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            let (ty, body, used) = parse(&buf, crate::wire::MAX_FRAME).unwrap().unwrap();
            assert_eq!(used, buf.len());
            assert_eq!(Msg::decode(ty, body).unwrap(), m, "{}", m.kind());
        }
    }

    #[test]
    fn write_block_matches_encode() {
        let data = [8u8; 100];
        let mut a = Vec::new();
        write_block(&mut a, 1, 2, &data).unwrap();
        let mut b = Vec::new();
        Msg::Block {
            handle: 1,
            block: 2,
            data: &data,
        }
        .encode(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(Msg::decode(0x42, b"").is_err());
        assert!(Msg::decode(ty::OK, b"x").is_err(), "trailing bytes");
        let mut b = Vec::new();
        put_str(&mut b, "../etc/passwd");
        assert!(Msg::decode(ty::GET_RECORD, &b).is_err());
        let mut b = Vec::new();
        put_u32(&mut b, 1);
        put_u32(&mut b, 1);
        put_u16(&mut b, 0);
        assert!(Msg::decode(ty::REQUEST, &b).is_err(), "zero-block request");
        let mut bad_record = record();
        bad_record.piece_hashes.pop();
        let mut buf = Vec::new();
        Msg::Record { record: bad_record }.encode(&mut buf);
        assert!(Msg::decode(ty::RECORD, &buf[HEADER_LEN..]).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for m in sample_messages() {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            let body = &buf[HEADER_LEN..];
            for cut in 0..body.len() {
                let _ = Msg::decode(buf[4], &body[..cut]);
            }
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bodies_never_panic(ty in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = Msg::decode(ty, &body);
            }

            #[test]
            fn arbitrary_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let mut r = crate::wire::FrameReader::new(&bytes[..], 256);
                while let Ok(Some((ty, body))) = r.read_frame() {
                    let _ = Msg::decode(ty, body);
                }
            }

            #[test]
            fn piece_sets_round_trip(len in 0u32..3000, seeds in proptest::collection::vec(any::<u32>(), 0..200)) {
                let mut b = Bitfield::new(len);
                if len > 0 {
                    for s in seeds { b.set(s % len); }
                }
                let m = Msg::Opened { handle: 1, have: b };
                let mut buf = Vec::new();
                m.encode(&mut buf);
                prop_assert_eq!(Msg::decode(buf[4], &buf[HEADER_LEN..]).unwrap(), m);
            }

            #[test]
            fn requests_round_trip(handle in any::<u32>(), block in any::<u32>(), count in 1u16..=64) {
                let m = Msg::Request { handle, block, count };
                let mut buf = Vec::new();
                m.encode(&mut buf);
                prop_assert_eq!(Msg::decode(buf[4], &buf[HEADER_LEN..]).unwrap(), m);
            }
        }
    }
}
