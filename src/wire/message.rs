//! What the tracker protocol and the peer protocol share: the type codes
//! (the first byte after a frame's length), the limits, the field
//! encodings (names, records, piece sets), and the traits every message
//! type implements. The messages themselves are split by who sends them:
//! `tracker_msg` (queries to the tracker and its answers) and `peer_msg`
//! (a downloader's requests to a block server and its answers), so each
//! side decodes only what it may receive. Layouts are documented byte by
//! byte in docs/PROTOCOL.md.

use super::codec::{put_bytes, put_str, put_u16, put_u32, put_u64, put_u8, put_varint, Decoder};
use super::frame::{header, put_frame, HEADER_LEN};
use crate::bitfield::Bitfield;
use crate::digest::{Md5Digest, PieceHash};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, TreeNode, MAX_ENTRIES, MAX_PATH_BYTES};
use crate::names::{
    check_file_name, check_peer_id, MAX_HOST_BYTES, MAX_NAME_BYTES, MAX_PEER_ID_BYTES,
};
use crate::record::{FileRecord, LegacyRecord, KIND_FILE, KIND_FOLDER, MAX_PIECES, RECORD_VERSION};
use std::io::{self, Write};

/// Longest human-readable error text.
pub const MAX_ERROR_TEXT: usize = 1024;
/// Most blocks one REQUEST may ask for (256 KiB).
pub const MAX_REQUEST_BLOCKS: u16 = 64;
/// Most holders in one HOLDERS answer.
pub const MAX_HOLDERS: usize = 64;
/// Most files in one ANNOUNCE or FILE_LIST.
pub const MAX_FILES: usize = 16_384;

pub mod ty {
    /// A Noise handshake message, both ways (swarm secret only: see
    /// `secure::channel`); an open server answers it with an ERROR.
    pub const HANDSHAKE: u8 = 0x4e;
    pub const NEW_FILE: u8 = 0x02;
    pub const LIST_FILES: u8 = 0x04;
    pub const GET_RECORD: u8 = 0x05;
    pub const WHO_HAS: u8 = 0x06;
    /// WHO_HAS with the asker's site: answered HOLDERS_AT.
    pub const WHO_HAS_AT: u8 = 0x08;
    pub const BYE: u8 = 0x07;
    pub const OPEN: u8 = 0x10;
    pub const REQUEST: u8 = 0x11;
    pub const PING: u8 = 0x12;
    pub const CANCEL: u8 = 0x13;
    pub const OK: u8 = 0x80;
    pub const FILE_LIST: u8 = 0x84;
    pub const RECORD: u8 = 0x85;
    pub const HOLDERS: u8 = 0x86;
    /// HOLDERS with each holder's site.
    pub const HOLDERS_AT: u8 = 0x88;
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
    /// A folder: how many files it holds. None for a file.
    pub folder: Option<u32>,
    /// The current version of the name, and who owns it (may be empty).
    pub version: u32,
    pub owner: String,
    /// Live peers that take part in an older version of the name (not yet
    /// updated).
    pub older: u32,
}

impl FileSummary {
    /// The name as listings show it: a folder ends in `/`.
    pub fn display_name(&self) -> String {
        match self.folder {
            Some(_) => format!("{}/", self.name),
            None => self.name.clone(),
        }
    }
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
    /// The site it said it is in (`--site`); empty: none, or not told
    /// (an older tracker, tracker-less search).
    pub site: String,
}

impl Holder {
    /// Whether a downloader in `site` (None: no `--site`) takes this
    /// holder as one of its own site. Without a site every holder is;
    /// with one, a holder of no known site is outside it.
    pub fn is_local_to(&self, site: Option<&str>) -> bool {
        site.is_none_or(|s| s == self.site)
    }
}

/// A message that can be put in a frame.
pub trait Encode {
    /// The message's name, for logs and errors.
    fn kind(&self) -> &'static str;
    /// Appends the body and returns the type code.
    fn encode_body(&self, out: &mut Vec<u8>) -> u8;

    /// Appends the whole frame (header and body) to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        put_frame(out, |body| self.encode_body(body));
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        w.write_all(&buf)
    }
}

/// A message one side may receive, decoded from a frame body: a type code
/// the other direction uses is a protocol error.
pub trait Decode<'a>: Sized {
    /// Decodes a frame body of type `ty`. Everything is validated here:
    /// names, limits, record invariants, trailing bytes.
    fn decode(ty: u8, body: &'a [u8]) -> Result<Self>;
}

/// An answer, which may be an ERROR frame instead.
pub trait Answer: Sized {
    /// An ERROR frame as `Error::Remote`; anything else passes through.
    fn into_result(self) -> Result<Self>;
    /// The ERROR frame for `e`, its text cut to what the wire allows.
    fn error(e: &Error) -> Self;
}

/// The code and text of the ERROR frame for `e`.
pub fn error_parts(e: &Error) -> (u16, String) {
    let mut message = e.to_string();
    truncate_utf8(&mut message, MAX_ERROR_TEXT);
    (e.wire_code(), message)
}

/// An ERROR frame's body.
pub fn put_error(out: &mut Vec<u8>, code: u16, message: &str) -> u8 {
    put_u16(out, code);
    put_str(out, message);
    ty::ERROR
}

/// A whole ERROR frame, header and body: the same in both protocols, so
/// it can be sent to a client before knowing which one it speaks (a
/// connection turned away BUSY).
pub fn error_frame(code: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_frame(&mut out, |body| put_error(body, code, message));
    out
}

pub(crate) fn get_error(d: &mut Decoder<'_>) -> Result<(u16, String)> {
    Ok((d.u16()?, d.str(MAX_ERROR_TEXT)?.to_string()))
}

/// A type code this side does not take.
pub(crate) fn unexpected(ty: u8, side: &str) -> Error {
    Error::protocol(format!("message type 0x{ty:02x} is not one {side} takes"))
}

/// HOLDERS (`sited` false) or HOLDERS_AT (each holder then ends in its
/// site, a `str`, empty for none).
pub(crate) fn get_holders(d: &mut Decoder<'_>, sited: bool) -> Result<Vec<Holder>> {
    let n = d.count(2 + 2 + 2 + 9 + if sited { 2 } else { 0 }, MAX_HOLDERS)?;
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
                other => return Err(Error::protocol(format!("HOLDERS complete flag {other}"))),
            },
            site: if sited {
                get_site(d, true)?
            } else {
                String::new()
            },
        });
    }
    Ok(holders)
}

/// HOLDERS, or HOLDERS_AT with `sited` (see `get_holders`).
pub(crate) fn put_holders(out: &mut Vec<u8>, holders: &[Holder], sited: bool) {
    put_u32(out, holders.len() as u32);
    for h in holders {
        put_str(out, &h.peer_id);
        put_str(out, &h.host);
        put_u16(out, h.port);
        put_u64(out, h.blocks);
        put_u8(out, u8::from(h.complete));
        if sited {
            put_str(out, &h.site);
        }
    }
}

/// A site name (`names::check_site`), or with `empty_ok` also none.
pub(crate) fn get_site(d: &mut Decoder<'_>, empty_ok: bool) -> Result<String> {
    let site = d.str(crate::names::MAX_SITE_BYTES)?;
    if !(empty_ok && site.is_empty()) {
        crate::names::check_site(site)?;
    }
    Ok(site.to_string())
}

pub(crate) fn get_files(d: &mut Decoder<'_>) -> Result<Vec<FileSummary>> {
    let n = d.count(FILE_ENTRY_MIN, MAX_FILES)?;
    let mut files = Vec::new();
    for _ in 0..n {
        files.push(FileSummary {
            name: get_name(d)?,
            size: d.u64()?,
            md5: d.array()?,
            holders: d.u32()?,
            seeders: d.u32()?,
            folder: match d.u8()? {
                0 => None,
                1 => Some(d.u32()?),
                other => return Err(Error::protocol(format!("FILE_LIST kind {other}"))),
            },
            version: d.u32()?,
            owner: get_owner(d)?,
            older: d.u32()?,
        });
    }
    Ok(files)
}

pub(crate) fn put_files(out: &mut Vec<u8>, files: &[FileSummary]) {
    put_u32(out, files.len() as u32);
    for f in files {
        put_str(out, &f.name);
        put_u64(out, f.size);
        out.extend_from_slice(&f.md5);
        put_u32(out, f.holders);
        put_u32(out, f.seeders);
        match f.folder {
            None => put_u8(out, 0),
            Some(n) => {
                put_u8(out, 1);
                put_u32(out, n);
            }
        }
        put_u32(out, f.version);
        put_str(out, &f.owner);
        put_u32(out, f.older);
    }
}

/// The smallest FILE_LIST entry: a one-byte name, a file, no owner.
pub const FILE_ENTRY_MIN: usize = 3 + 8 + 16 + 8 + 1 + 4 + 2 + 4;

/// The bytes of one FILE_LIST entry.
pub fn file_entry_len(f: &FileSummary) -> usize {
    2 + f.name.len()
        + 8
        + 16
        + 8
        + 1
        + if f.folder.is_some() { 4 } else { 0 }
        + 4
        + 2
        + f.owner.len()
        + 4
}

/// A record's or a listing's owner: a peer id, or empty (nobody).
pub(crate) fn get_owner(d: &mut Decoder<'_>) -> Result<String> {
    let id = d.str(MAX_OWNER_BYTES)?;
    if !id.is_empty() {
        check_peer_id(id)?;
    }
    Ok(id.to_string())
}

/// REQUEST and CANCEL: handle, first block, 1 to 64 blocks.
pub(crate) fn get_run(d: &mut Decoder<'_>) -> Result<(u32, u32, u16)> {
    let (handle, block, count) = (d.u32()?, d.u32()?, d.u16()?);
    if count == 0 || count > MAX_REQUEST_BLOCKS {
        return Err(Error::protocol(format!(
            "REQUEST or CANCEL of {count} blocks (1 to {MAX_REQUEST_BLOCKS} allowed)"
        )));
    }
    Ok((handle, block, count))
}

pub(crate) fn put_run(out: &mut Vec<u8>, handle: u32, block: u32, count: u16) {
    put_u32(out, handle);
    put_u32(out, block);
    put_u16(out, count);
}

/// Writes a BLOCK frame straight from the file buffer: the hot path of
/// serving, with no intermediate copy or allocation.
pub fn write_block(w: &mut impl Write, handle: u32, block: u32, data: &[u8]) -> io::Result<()> {
    w.write_all(&block_head(handle, block, data.len()))?;
    w.write_all(data)
}

/// What comes before a BLOCK frame's `len` bytes of data: the frame
/// header, the handle and the block's index (for a gathered write of
/// frames whose data stays where it was read).
pub fn block_head(handle: u32, block: u32, len: usize) -> [u8; BLOCK_HEAD] {
    let mut h = [0u8; BLOCK_HEAD];
    // The length counts the type byte, the ids and the data (a block is
    // at most 4,096 bytes).
    h[..HEADER_LEN].copy_from_slice(&header(ty::BLOCK, (1 + 8 + len) as u32));
    h[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&handle.to_be_bytes());
    h[HEADER_LEN + 4..].copy_from_slice(&block.to_be_bytes());
    h
}

/// The bytes of `block_head`.
pub const BLOCK_HEAD: usize = HEADER_LEN + 8;

pub(crate) fn truncate_utf8(s: &mut String, max: usize) {
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

/// Bytes `put_record` writes for `r`.
pub(crate) fn record_len(r: &FileRecord) -> usize {
    // version, kind, name (2+n), size, block size, blocks per piece, md5,
    // item version, owner (2+m), count, hashes, weak sums, and a folder's
    // manifest (rare: measured by encoding)
    let manifest = r.folder.as_ref().map_or(0, |m| {
        let mut out = Vec::new();
        put_manifest(&mut out, m);
        out.len()
    });
    1 + 1
        + 2
        + r.name.len()
        + 8
        + 4
        + 4
        + 16
        + 4
        + 2
        + r.owner.len()
        + 4
        + r.piece_hashes.len() * (PIECE_HASH_LEN + WEAK_SUM_LEN)
        + manifest
}

const PIECE_HASH_LEN: usize = std::mem::size_of::<PieceHash>();
const WEAK_SUM_LEN: usize = 4;
/// The longest owner: a peer id.
const MAX_OWNER_BYTES: usize = MAX_PEER_ID_BYTES;
const LEGACY_HASH_LEN: usize = 16;

pub(crate) fn put_record(out: &mut Vec<u8>, r: &FileRecord) {
    put_u8(out, RECORD_VERSION);
    put_u8(
        out,
        if r.folder.is_some() {
            KIND_FOLDER
        } else {
            KIND_FILE
        },
    );
    put_str(out, &r.name);
    put_u64(out, r.size);
    put_u32(out, r.block_size);
    put_u32(out, r.blocks_per_piece);
    out.extend_from_slice(&r.md5);
    put_u32(out, r.version);
    put_str(out, &r.owner);
    put_u32(out, r.piece_hashes.len() as u32);
    for h in &r.piece_hashes {
        out.extend_from_slice(h);
    }
    for w in &r.weak_sums {
        put_u32(out, *w);
    }
    if let Some(m) = &r.folder {
        put_manifest(out, m);
    }
}

/// The optional section after a record's piece hashes: a kind byte, then
/// what that kind carries. 1: a folder's manifest. A record is always the
/// last field of its message, so a record without the section simply
/// ends after its hashes.
const SECTION_FOLDER: u8 = 1;
const ENTRY_DIR: u8 = 0;
const ENTRY_FILE: u8 = 1;

pub(crate) fn put_manifest(out: &mut Vec<u8>, m: &Manifest) {
    put_u8(out, SECTION_FOLDER);
    put_u32(out, m.entries().len() as u32);
    for e in m.entries() {
        match e {
            TreeNode::Dir { path } => {
                put_u8(out, ENTRY_DIR);
                put_str(out, path);
            }
            TreeNode::File { path, size, md5 } => {
                put_u8(out, ENTRY_FILE);
                put_str(out, path);
                put_u64(out, *size);
                out.extend_from_slice(md5);
            }
        }
    }
}

pub(crate) fn get_manifest(d: &mut Decoder<'_>) -> Result<Manifest> {
    let kind = d.u8()?;
    if kind != SECTION_FOLDER {
        return Err(Error::protocol(format!(
            "record section of unknown kind {kind}"
        )));
    }
    // The smallest entry: a kind byte and a one-byte path.
    let n = d.count(4, MAX_ENTRIES)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = d.u8()?;
        let path = d.str(MAX_PATH_BYTES)?.to_string();
        entries.push(match kind {
            ENTRY_DIR => TreeNode::Dir { path },
            ENTRY_FILE => TreeNode::File {
                path,
                size: d.u64()?,
                md5: d.array()?,
            },
            other => {
                return Err(Error::protocol(format!(
                    "folder manifest entry of unknown kind {other} (only files and folders)"
                )))
            }
        });
    }
    Manifest::new(entries)
}

/// A version 1 record began with its name's length, whose first byte is
/// always 0 (names are at most 255 bytes): that is how one is told apart.
/// A version 2 record began with 2.
pub(crate) fn is_legacy_record(body: &[u8]) -> bool {
    matches!(body.first(), Some(&0) | Some(&2))
}

pub(crate) fn get_record(d: &mut Decoder<'_>) -> Result<FileRecord> {
    match d.u8()? {
        RECORD_VERSION => {}
        0 => {
            return Err(Error::protocol(
                "a version 1 record (MD5 piece hashes), which this version no longer \
                 accepts: the sender runs an older p2pshare",
            ))
        }
        2 => {
            return Err(Error::protocol(
                "a version 2 record (no item version nor owner), which this version no \
                 longer accepts: the sender runs an older p2pshare",
            ))
        }
        v => {
            return Err(Error::protocol(format!(
                "record version {v} is unknown (this p2pshare reads version {RECORD_VERSION})"
            )))
        }
    }
    let kind = d.u8()?;
    if kind != KIND_FILE && kind != KIND_FOLDER {
        return Err(Error::protocol(format!("record kind {kind} is unknown")));
    }
    let (name, size, block_size, blocks_per_piece, md5) = get_record_head(d)?;
    let version = d.u32()?;
    let owner = get_owner(d)?;
    let n = d.count(PIECE_HASH_LEN + WEAK_SUM_LEN, MAX_PIECES as usize)?;
    let piece_hashes = d
        .take(n * PIECE_HASH_LEN)?
        .chunks_exact(PIECE_HASH_LEN)
        .map(|c| c.try_into().expect("32-byte chunk"))
        .collect();
    let weak_sums = d
        .take(n * WEAK_SUM_LEN)?
        .chunks_exact(WEAK_SUM_LEN)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4-byte chunk")))
        .collect();
    // A file's record ends here (its message's decoder refuses what is
    // left); a folder's manifest follows.
    let folder = if kind == KIND_FOLDER {
        Some(Box::new(get_manifest(d)?))
    } else {
        None
    };
    let record = FileRecord {
        name,
        size,
        block_size,
        blocks_per_piece,
        md5,
        piece_hashes,
        weak_sums,
        folder,
        version,
        owner,
    };
    record.validate()?;
    Ok(record)
}

/// Name, size, block size, blocks per piece and whole-file MD5: the fields
/// versions 1 and 2 share, in the same order.
fn get_record_head(d: &mut Decoder<'_>) -> Result<(String, u64, u32, u32, Md5Digest)> {
    Ok((get_name(d)?, d.u64()?, d.u32()?, d.u32()?, d.array()?))
}

/// A version 1 or 2 record, read only to upgrade what is on disk: its
/// piece hashes are checked for count and then dropped (and a version 2
/// folder's manifest skipped).
pub(crate) fn get_legacy_record(d: &mut Decoder<'_>) -> Result<LegacyRecord> {
    if d.peek_u8() == Some(2) {
        d.u8()?;
        let kind = d.u8()?;
        let (name, size, block_size, blocks_per_piece, md5) = get_record_head(d)?;
        let n = d.count(PIECE_HASH_LEN, MAX_PIECES as usize)?;
        d.take(n * PIECE_HASH_LEN)?;
        if kind == KIND_FOLDER {
            get_manifest(d)?;
        }
        let legacy = LegacyRecord { name, size, md5 };
        legacy.validate(block_size, blocks_per_piece, n)?;
        return Ok(legacy);
    }
    let (name, size, block_size, blocks_per_piece, md5) = get_record_head(d)?;
    let n = d.count(LEGACY_HASH_LEN, MAX_PIECES as usize)?;
    d.take(n * LEGACY_HASH_LEN)?;
    let legacy = LegacyRecord { name, size, md5 };
    legacy.validate(block_size, blocks_per_piece, n)?;
    Ok(legacy)
}

// A set of pieces: u32 length, then a tag choosing the smallest form.
const HAVE_NONE: u8 = 0;
const HAVE_ALL: u8 = 1;
const HAVE_RUNS: u8 = 2;
const HAVE_BITS: u8 = 3;
const HAVE_GAPS: u8 = 4;

pub(crate) fn put_have(out: &mut Vec<u8>, have: &Bitfield) {
    put_u32(out, have.len());
    if have.count() == 0 {
        put_u8(out, HAVE_NONE);
    } else if have.is_full() {
        put_u8(out, HAVE_ALL);
    } else {
        // The smaller of a bitmap and the runs as gaps: a HAVE of a few
        // scattered pieces goes to every downloader of every piece, so
        // with 4 KiB pieces its size is a share of the swarm's upload.
        // The gaps are written first and the bitmap built only if it is
        // smaller (this runs for every HAVE a block server sends).
        let start = out.len();
        put_u8(out, HAVE_GAPS);
        put_gap_runs(out, have);
        let gaps = out.len() - start - 1;
        if gaps >= (have.len() as usize).div_ceil(8) {
            out.truncate(start);
            put_u8(out, HAVE_BITS);
            put_bytes(out, &have.to_bytes());
        }
    }
}

/// The runs of set bits as varints: their number, then per run the gap
/// since the previous run's end and its length less one.
fn put_gap_runs(out: &mut Vec<u8>, have: &Bitfield) {
    put_varint(out, have.count_runs());
    let mut end = 0;
    for (start, len) in have.iter_runs() {
        put_varint(out, start - end);
        put_varint(out, len - 1);
        end = start + len;
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
        HAVE_GAPS => {
            let n = d.varint()? as usize;
            // Each run takes at least two bytes.
            if n > len as usize || n.saturating_mul(2) > d.remaining() {
                return Err(bad());
            }
            // Straight into the set, under `from_runs`'s rules (every HAVE
            // a peer receives comes this way: no list of runs first).
            let mut have = Bitfield::new(len);
            let mut prev_end: Option<u32> = None;
            for _ in 0..n {
                let start = prev_end
                    .unwrap_or(0)
                    .checked_add(d.varint()?)
                    .ok_or_else(bad)?;
                let run = d.varint()?.checked_add(1).ok_or_else(bad)?;
                prev_end = Some(have.add_run(start, run, prev_end).ok_or_else(bad)?);
            }
            Ok(have)
        }
        HAVE_BITS => Bitfield::from_bytes(len, d.bytes(MAX_PIECES as usize / 8)?).ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::frame::{parse, HEADER_LEN};

    pub fn record() -> FileRecord {
        FileRecord {
            name: "a.bin".into(),
            size: 10_000,
            block_size: crate::record::BLOCK_SIZE,
            blocks_per_piece: 1,
            md5: [9; 16],
            piece_hashes: vec![[1; 32], [2; 32], [3; 32]],
            weak_sums: vec![1, 2, 3],
            folder: None,
            version: 1,
            owner: String::new(),
        }
    }

    /// Encodes `m`, decodes the frame as `M`.
    pub fn round_trip<M>(m: &M) -> M
    where
        M: Encode + for<'a> Decode<'a>,
    {
        let mut buf = Vec::new();
        m.encode(&mut buf);
        let (ty, body, used) = parse(&buf, crate::wire::MAX_FRAME).unwrap().unwrap();
        assert_eq!(used, buf.len());
        M::decode(ty, body).unwrap()
    }

    /// Every cut of every sample's body is an error, never a panic.
    pub fn truncations<M>(samples: &[M])
    where
        M: Encode + for<'a> Decode<'a>,
    {
        for m in samples {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            let body = &buf[HEADER_LEN..];
            for cut in 0..body.len() {
                let _ = M::decode(buf[4], &body[..cut]);
            }
        }
    }

    /// A client turned away before either protocol began reads the same
    /// frame as the ERROR its own protocol would send.
    #[test]
    fn the_error_frame_is_both_protocols_error() {
        let frame = error_frame(6, "busy");
        let (code, message) = (6, "busy".to_string());
        let mut peer = Vec::new();
        crate::wire::PeerReply::Error {
            code,
            message: message.clone(),
        }
        .encode(&mut peer);
        let mut tracker = Vec::new();
        crate::wire::TrackerReply::Error { code, message }.encode(&mut tracker);
        assert_eq!(frame, peer);
        assert_eq!(frame, tracker);
        assert_eq!(crate::units::hex(&frame), "00000009ff0006000462757379");
    }

    #[test]
    fn scattered_pieces_cost_about_two_bytes_each() {
        // Ten scattered pieces of 4,096: what a HAVE carries every few
        // milliseconds to each downloader in a swarm.
        let mut b = Bitfield::new(4096);
        for p in [3, 400, 401, 402, 900, 1500, 2200, 2900, 3500, 4095] {
            b.set(p);
        }
        let mut buf = Vec::new();
        put_have(&mut buf, &b);
        assert_eq!(buf[4], HAVE_GAPS);
        // len, tag, count, then 8 runs: gaps up to 700 take two bytes.
        assert!(buf.len() <= 4 + 1 + 1 + 8 * 3, "{} bytes", buf.len());
        assert_eq!(get_have(&mut Decoder::new(&buf)).unwrap(), b);
    }

    #[test]
    fn the_protocol_documents_examples_are_what_is_sent() {
        let hex = |b: &Bitfield| {
            let mut buf = Vec::new();
            put_have(&mut buf, b);
            buf.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let set = |len: u32, ones: &[u32]| {
            let mut b = Bitfield::new(len);
            for &p in ones {
                b.set(p);
            }
            b
        };
        // docs/PROTOCOL.md §7.
        assert_eq!(hex(&Bitfield::full(7)), "00 00 00 07 01");
        assert_eq!(
            hex(&set(10, &[0, 1, 2, 8])),
            "00 00 00 0a 03 00 00 00 02 07 01"
        );
        assert_eq!(
            hex(&set(1000, &[3, 999])),
            "00 00 03 e8 04 02 03 00 e3 07 00"
        );
        assert_eq!(
            hex(&set(1000, &(40..48).collect::<Vec<_>>())),
            "00 00 03 e8 04 01 28 07"
        );
    }

    #[test]
    fn hostile_gap_coded_sets_are_refused() {
        let set = |body: &[u8]| {
            let mut buf = vec![0, 0, 0, 100, HAVE_GAPS];
            buf.extend_from_slice(body);
            get_have(&mut Decoder::new(&buf))
        };
        assert_eq!(set(&[1, 99, 0]).unwrap().count(), 1, "the last piece");
        assert!(set(&[1, 100, 0]).is_err(), "past the end");
        assert!(set(&[1, 90, 20]).is_err(), "a run past the end");
        assert!(set(&[2, 0, 0, 0, 0]).is_err(), "runs must not touch");
        assert!(set(&[200, 0, 0]).is_err(), "more runs than fit");
        assert!(
            set(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0]).is_err(),
            "a 6-byte varint"
        );
        assert!(
            set(&[1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]).is_err(),
            "beyond 32 bits"
        );
        assert!(set(&[1, 5]).is_err(), "truncated");
    }

    /// A folder's record: a, d/, d/e (empty), d/f, empty/.
    pub fn folder_record() -> FileRecord {
        let (a, f) = (b"hello".as_slice(), b"world!".as_slice());
        let mut r = FileRecord::from_bytes("tree", &[a, f].concat());
        let file = |path: &str, data: &[u8]| TreeNode::File {
            path: path.into(),
            size: data.len() as u64,
            md5: crate::record::md5_of(data),
        };
        let dir = |path: &str| TreeNode::Dir { path: path.into() };
        r.folder = Some(Box::new(
            Manifest::new(vec![
                file("a", a),
                dir("d"),
                file("d/e", b""),
                file("d/f", f),
                dir("empty"),
            ])
            .unwrap(),
        ));
        r
    }

    fn decode_record(bytes: &[u8]) -> Result<FileRecord> {
        let mut d = Decoder::new(bytes);
        let r = get_record(&mut d)?;
        d.finish()?;
        Ok(r)
    }

    #[test]
    fn a_folder_record_round_trips_and_every_cut_fails() {
        let r = folder_record();
        r.validate().unwrap();
        let mut buf = Vec::new();
        put_record(&mut buf, &r);
        assert_eq!(decode_record(&buf).unwrap(), r);
        for cut in 0..buf.len() {
            // Cut right after the piece hashes it is a plain record (of
            // the same bytes): valid, but not this one.
            if let Ok(other) = decode_record(&buf[..cut]) {
                assert!(other.folder.is_none(), "{cut}");
            }
        }
        let mut plain = Vec::new();
        put_record(&mut plain, &record());
        assert_eq!(decode_record(&plain).unwrap(), record());
    }

    /// The folder record's bytes with the manifest's entries replaced.
    fn with_entries(entries: &[(u8, &str, Option<u64>)]) -> Vec<u8> {
        let r = folder_record();
        let mut buf = Vec::new();
        let mut plain = r.clone();
        plain.folder = None;
        put_record(&mut buf, &plain);
        buf[1] = KIND_FOLDER; // after the version byte
        put_u8(&mut buf, SECTION_FOLDER);
        put_u32(&mut buf, entries.len() as u32);
        for (kind, path, size) in entries {
            put_u8(&mut buf, *kind);
            put_str(&mut buf, path);
            if let Some(size) = size {
                put_u64(&mut buf, *size);
                buf.extend_from_slice(&[0; 16]);
            }
        }
        buf
    }

    #[test]
    fn the_folder_record_example_of_protocol_md() {
        let mut r = FileRecord::from_bytes("t", b"hi");
        r.folder = Some(Box::new(
            Manifest::new(vec![
                TreeNode::File {
                    path: "a".into(),
                    size: 2,
                    md5: crate::record::md5_of(b"hi"),
                },
                TreeNode::Dir { path: "e".into() },
            ])
            .unwrap(),
        ));
        let mut frame = Vec::new();
        crate::wire::record_file::encode(&r, &mut frame);
        let hi = "49f68a5c8493ec2c0bf489821c21fc3b";
        let sha_hi = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
        let expected = format!(
            "0000007985 03 01 000174 0000000000000002 00001000 00000001 {hi} 00000001 0000 \
             00000001 {sha_hi} 013900d1 01 00000002 01000161 0000000000000002 {hi} 00000165"
        )
        .replace(' ', "");
        assert_eq!(crate::units::hex(&frame), expected);
        assert_eq!(frame.len(), 125);
        assert_eq!(
            crate::wire::record_file::decode(&frame).unwrap(),
            crate::wire::record_file::Stored::Current(r)
        );
    }

    #[test]
    fn hostile_manifests_are_refused_by_the_decoder() {
        // Sanity: the same builder with good entries decodes.
        assert!(decode_record(&with_entries(&[(1, "a", Some(5)), (1, "b", Some(6))])).is_ok());
        for entries in [
            vec![(1, "../a", Some(5)), (1, "b", Some(6))],
            vec![(1, "/etc/passwd", Some(11))],
            vec![(0, "d", None), (1, "d/../../x", Some(11))],
            vec![(1, "a", Some(5)), (1, "x/b", Some(6))],
            // Kind 2 (a symlink, say) does not exist.
            vec![(1, "a", Some(11)), (2, "link", Some(0))],
            // Sizes that do not add up to the record's.
            vec![(1, "a", Some(5)), (1, "b", Some(7))],
            vec![(1, "b", Some(5)), (1, "a", Some(6))],
        ] {
            let bytes = with_entries(&entries);
            assert!(decode_record(&bytes).is_err(), "{entries:?}");
        }
        // An unknown section kind.
        let mut buf = Vec::new();
        put_record(&mut buf, &record());
        buf.push(9);
        assert!(decode_record(&buf).is_err());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn piece_sets_round_trip(len in 0u32..3000, seeds in proptest::collection::vec(any::<u32>(), 0..200)) {
                let mut b = Bitfield::new(len);
                if len > 0 {
                    for s in seeds { b.set(s % len); }
                }
                let mut buf = Vec::new();
                put_have(&mut buf, &b);
                let mut d = Decoder::new(&buf);
                prop_assert_eq!(get_have(&mut d).unwrap(), b);
                prop_assert!(d.finish().is_ok());
            }

            #[test]
            fn arbitrary_piece_sets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                let mut buf = vec![0, 0, 1, 0, HAVE_GAPS];
                buf.extend_from_slice(&bytes);
                let _ = get_have(&mut Decoder::new(&buf));
            }
        }
    }
}
