//! The metadata record of a shared file (our `.torrent`): name, size, block
//! size, whole-file MD5 and one SHA-256 per piece. A piece is one 4 KiB block
//! for files up to 256 MiB; beyond that pieces grow by powers of two so a
//! record never holds more than `MAX_PIECES` hashes (2 MiB), whatever the
//! file's size.
//!
//! Piece hashes are SHA-256 since record version 2: MD5 collisions cost
//! seconds, so a publisher could make two versions of a piece with one hash,
//! and SHA-256 with SHA-NI is also faster. The whole-file MD5 stays: it is
//! what users compare with `md5sum`.

use crate::digest::{Md5Digest, PieceHash};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::names::check_file_name;
use md5::{Digest, Md5};
use sha2::Sha256;
use std::fs::File;
use std::io::Read;
use std::path::Path;

pub const BLOCK_SIZE: u32 = 4096;
pub const MAX_PIECES: u32 = 1 << 16;
/// 1 TiB: keeps every block index in a u32 and every piece at most 16 MiB.
pub const MAX_FILE_SIZE: u64 = crate::manifest::MAX_TOTAL_SIZE;

/// The record format this version writes and reads (§8 of PROTOCOL.md).
/// Version 1 had no version byte and MD5 piece hashes; version 2 had no
/// item version, owner nor weak sums.
pub const RECORD_VERSION: u8 = 3;
/// The kind byte after the version: what the record describes. Other
/// values are refused until a version knows them.
pub const KIND_FILE: u8 = 0;
/// A folder shared as one item: its manifest follows the piece hashes.
pub const KIND_FOLDER: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub name: String,
    pub size: u64,
    pub block_size: u32,
    pub blocks_per_piece: u32,
    pub md5: Md5Digest,
    pub piece_hashes: Vec<PieceHash>,
    /// The rolling weak checksum of each piece (`crate::rolling`): how a
    /// holder of an older version finds these pieces at any offset of it.
    pub weak_sums: Vec<u32>,
    /// A folder shared as one item: its tree. The payload (what `size`,
    /// `md5` and the pieces cover) is its files one after another.
    pub folder: Option<Box<Manifest>>,
    /// Which version of the name this is: 1, 2, ... (docs/REFERENCE.md, *Updating a
    /// fleet*). Part of the record, so every tracker and peer that has
    /// the record agrees on it.
    pub version: u32,
    /// The peer id that owns the name and alone may publish its next
    /// version; empty: nobody owns it (anyone may).
    pub owner: String,
}

/// The piece geometry for a file of `size` bytes.
pub fn blocks_per_piece_for(size: u64) -> u32 {
    let blocks = size.div_ceil(BLOCK_SIZE as u64);
    let mut per = 1u64;
    while blocks.div_ceil(per) > MAX_PIECES as u64 {
        per *= 2;
    }
    per as u32
}

/// How many pieces a file of `size` bytes has (what its record's piece
/// hashes and every piece set of it count).
pub fn piece_count_for(size: u64) -> u32 {
    let piece_size = BLOCK_SIZE as u64 * blocks_per_piece_for(size) as u64;
    size.div_ceil(piece_size) as u32
}

/// Blocks covered by the pieces set in `have`, for a file of `size` bytes,
/// without its record (a search answer carries only size and piece set).
pub fn blocks_held(size: u64, have: &crate::bitfield::Bitfield) -> u64 {
    let per = blocks_per_piece_for(size) as u64;
    let blocks = size.div_ceil(BLOCK_SIZE as u64);
    let pieces = piece_count_for(size);
    let mut n = have.count() as u64 * per;
    if pieces > 0 && have.get(pieces - 1) {
        n -= pieces as u64 * per - blocks;
    }
    n
}

impl FileRecord {
    /// The record of `size` bytes named `name`, from one pass over them
    /// (`hash_stream`); `folder`: the tree, when the payload is a folder.
    pub fn hashed(name: &str, size: u64, hashed: Hashed, folder: Option<Manifest>) -> FileRecord {
        FileRecord {
            name: name.to_string(),
            size,
            block_size: BLOCK_SIZE,
            blocks_per_piece: blocks_per_piece_for(size),
            md5: hashed.md5,
            piece_hashes: hashed.pieces,
            weak_sums: hashed.weak,
            folder: folder.map(Box::new),
            version: 1,
            owner: String::new(),
        }
    }

    /// This record as version `version` of the name, owned by `owner`.
    pub fn versioned(mut self, version: u32, owner: &str) -> FileRecord {
        self.version = version;
        self.owner = owner.to_string();
        self
    }

    /// Whether `other` describes the same bytes (whatever its version and
    /// owner).
    pub fn same_content(&self, other: &FileRecord) -> bool {
        self.size == other.size
            && self.md5 == other.md5
            && self.piece_hashes == other.piece_hashes
            && self.folder == other.folder
    }

    pub fn block_count(&self) -> u32 {
        self.size.div_ceil(self.block_size as u64) as u32
    }

    pub fn piece_count(&self) -> u32 {
        self.piece_hashes.len() as u32
    }

    pub fn piece_size(&self) -> u64 {
        self.block_size as u64 * self.blocks_per_piece as u64
    }

    pub fn piece_offset(&self, piece: u32) -> u64 {
        piece as u64 * self.piece_size()
    }

    /// Bytes in piece `piece` (the last one may be short).
    pub fn piece_len(&self, piece: u32) -> u64 {
        let start = self.piece_offset(piece);
        self.piece_size().min(self.size.saturating_sub(start))
    }

    /// Blocks in piece `piece`.
    pub fn piece_blocks(&self, piece: u32) -> u32 {
        self.piece_len(piece).div_ceil(self.block_size as u64) as u32
    }

    pub fn first_block(&self, piece: u32) -> u32 {
        piece * self.blocks_per_piece
    }

    pub fn piece_of_block(&self, block: u32) -> u32 {
        block / self.blocks_per_piece
    }

    pub fn block_len(&self, block: u32) -> usize {
        let start = block as u64 * self.block_size as u64;
        (self.block_size as u64).min(self.size.saturating_sub(start)) as usize
    }

    /// Blocks covered by the pieces set in `have`.
    pub fn blocks_in(&self, have: &crate::bitfield::Bitfield) -> u64 {
        let mut n = have.count() as u64 * self.blocks_per_piece as u64;
        let last = self.piece_count().saturating_sub(1);
        if self.piece_count() > 0 && have.get(last) {
            n -= (self.blocks_per_piece - self.piece_blocks(last)) as u64;
        }
        n
    }

    pub fn verify_piece(&self, piece: u32, data: &[u8]) -> bool {
        data.len() as u64 == self.piece_len(piece)
            && piece_hash(data) == self.piece_hashes[piece as usize]
    }

    /// Checks the invariants a record from the network must satisfy.
    pub fn validate(&self) -> Result<()> {
        check_geometry(
            &self.name,
            self.size,
            self.block_size,
            self.blocks_per_piece,
            self.piece_hashes.len(),
        )?;
        if self.weak_sums.len() != self.piece_hashes.len() {
            return Err(Error::protocol(format!(
                "record for {}: a weak sum per piece expected",
                self.name
            )));
        }
        if self.version == 0 {
            return Err(Error::protocol(format!(
                "record for {}: versions start at 1",
                self.name
            )));
        }
        if !self.owner.is_empty() {
            crate::names::check_peer_id(&self.owner)?;
        }
        if let Some(m) = &self.folder {
            m.validate()?;
            if m.total_size() != self.size {
                return Err(Error::protocol(format!(
                    "record for {}: the folder's files do not add up to its size",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// Files in the item: 1 for a file, the folder's count for a folder.
    pub fn file_count(&self) -> usize {
        self.folder.as_ref().map_or(1, |m| m.file_count())
    }

    /// The name as listings show it: a folder ends in `/`.
    pub fn display_name(&self) -> String {
        match self.folder {
            Some(_) => format!("{}/", self.name),
            None => self.name.clone(),
        }
    }

    /// Hashes a file into a record: one read pass, piece hashes (SHA-256)
    /// and the whole-file MD5 computed side by side on two threads.
    pub fn from_file(name: &str, path: &Path) -> Result<FileRecord> {
        check_file_name(name)?;
        let ctx = || format!("reading {}", path.display());
        let mut file = File::open(path).map_err(|e| Error::io(ctx(), e))?;
        let size = file.metadata().map_err(|e| Error::io(ctx(), e))?.len();
        if size > MAX_FILE_SIZE {
            return Err(Error::Usage(format!("{name} is larger than 1 TiB")));
        }
        let hashed = hash_path(&mut file, size, &[], path, "changed size")?;
        Ok(FileRecord::hashed(name, size, hashed, None))
    }

    /// The record of bytes already in memory (tests, small files).
    pub fn from_bytes(name: &str, data: &[u8]) -> FileRecord {
        let blocks_per_piece = blocks_per_piece_for(data.len() as u64);
        let piece_size = blocks_per_piece as usize * BLOCK_SIZE as usize;
        FileRecord {
            name: name.to_string(),
            size: data.len() as u64,
            block_size: BLOCK_SIZE,
            blocks_per_piece,
            md5: md5_of(data),
            piece_hashes: data.chunks(piece_size).map(piece_hash).collect(),
            weak_sums: data
                .chunks(piece_size)
                .map(crate::rolling::weak_sum)
                .collect(),
            folder: None,
            version: 1,
            owner: String::new(),
        }
    }
}

/// The rules every record version shares: name, block size, file size,
/// piece geometry and one hash per piece.
fn check_geometry(
    name: &str,
    size: u64,
    block_size: u32,
    blocks_per_piece: u32,
    hashes: usize,
) -> Result<()> {
    check_file_name(name)?;
    let bad = |what: &str| Err(Error::protocol(format!("record for {name}: {what}")));
    if block_size != BLOCK_SIZE {
        return bad("block size is not 4096");
    }
    if size > MAX_FILE_SIZE {
        return bad("file larger than 1 TiB");
    }
    if blocks_per_piece != blocks_per_piece_for(size) {
        return bad("piece size does not match the file size");
    }
    if hashes as u64 != piece_count_for(size) as u64 {
        return bad("wrong number of piece hashes");
    }
    Ok(())
}

/// What is kept of a record of an older format found on disk (version 1,
/// MD5 piece hashes; version 2, no item version, owner nor weak sums):
/// enough to recognise the same content when its record comes back in
/// the current format, never used to verify a piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyRecord {
    pub name: String,
    pub size: u64,
    pub md5: Md5Digest,
}

impl LegacyRecord {
    /// Checks the fields a version 1 record had beside these three.
    pub fn validate(&self, block_size: u32, blocks_per_piece: u32, hashes: usize) -> Result<()> {
        check_geometry(&self.name, self.size, block_size, blocks_per_piece, hashes)
    }

    /// True when `record` describes the same content under the same name.
    pub fn matches(&self, record: &FileRecord) -> bool {
        self.name == record.name && self.size == record.size && self.md5 == record.md5
    }
}

/// What one pass over a payload gives.
pub struct Hashed {
    pub md5: Md5Digest,
    pub pieces: Vec<PieceHash>,
    /// The weak rolling sum of each piece.
    pub weak: Vec<u32>,
    /// The MD5 of each part, for `hash_stream`'s `parts`.
    pub parts: Vec<Md5Digest>,
}

/// `hash_stream` over the file or folder at `path`, where reading it must
/// give exactly `size` bytes: an I/O error or another length (what was
/// `changed` while it was hashed) is an error naming `path`.
pub fn hash_path(
    reader: &mut impl Read,
    size: u64,
    parts: &[u64],
    path: &Path,
    changed: &str,
) -> Result<Hashed> {
    hash_stream(reader, size, parts)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .ok_or_else(|| {
            Error::Integrity(format!(
                "{} {changed} while it was being hashed",
                path.display()
            ))
        })
}

/// Hashes `size` bytes from `reader`: the piece hashes on this thread,
/// the whole MD5 (and that of each part: `parts` are sizes adding up to
/// `size`, a folder's files) on a scoped helper, side by side. `None`
/// when the reader gives another number of bytes than `size`.
pub fn hash_stream(
    reader: &mut impl Read,
    size: u64,
    parts: &[u64],
) -> std::io::Result<Option<Hashed>> {
    let piece_size = blocks_per_piece_for(size) as usize * BLOCK_SIZE as usize;
    // Pieces are powers of two, so 1 MiB chunks (or one piece, if
    // larger) hold whole pieces and piece hashing never straddles two.
    let chunk = (1usize << 20).max(piece_size);
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<Vec<u8>>(6);
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut whole = Md5::new();
            let mut split = PartHasher::new(parts);
            for buf in rx {
                whole.update(&buf);
                split.update(&buf);
                let _ = back_tx.try_send(buf);
            }
            (whole.finalize().into(), split.finish())
        });
        let mut pieces = Vec::with_capacity(size.div_ceil(piece_size as u64) as usize);
        let mut weak = Vec::with_capacity(pieces.capacity());
        let mut read_total = 0u64;
        let read = loop {
            let mut buf = back_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(chunk));
            buf.resize(chunk, 0);
            let n = match read_full(reader, &mut buf) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            buf.truncate(n);
            if n == 0 {
                break Ok(());
            }
            read_total += n as u64;
            for p in buf.chunks(piece_size) {
                pieces.push(piece_hash(p));
                weak.push(crate::rolling::weak_sum(p));
            }
            if tx.send(buf).is_err() {
                break Ok(());
            }
        };
        drop(tx);
        let (md5, parts) = hasher.join().expect("the hasher thread does not panic");
        read?;
        Ok((read_total == size).then_some(Hashed {
            md5,
            pieces,
            weak,
            parts,
        }))
    })
}

/// The MD5 of each part of a stream cut at known sizes.
struct PartHasher<'a> {
    sizes: &'a [u64],
    left: u64,
    current: Md5,
    done: Vec<Md5Digest>,
}

impl<'a> PartHasher<'a> {
    fn new(sizes: &'a [u64]) -> PartHasher<'a> {
        let mut h = PartHasher {
            sizes,
            left: 0,
            current: Md5::new(),
            done: Vec::with_capacity(sizes.len()),
        };
        h.next_part();
        h
    }

    /// Moves to the next part with bytes; empty parts are done at once.
    fn next_part(&mut self) {
        while self.left == 0 {
            let Some((&size, rest)) = self.sizes.split_first() else {
                return;
            };
            self.sizes = rest;
            if size == 0 {
                self.done.push(Md5::digest(b"").into());
            } else {
                self.left = size;
            }
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.left > 0 {
            let n = (self.left.min(data.len() as u64)) as usize;
            self.current.update(&data[..n]);
            self.left -= n as u64;
            data = &data[n..];
            if self.left == 0 {
                let h = std::mem::replace(&mut self.current, Md5::new());
                self.done.push(h.finalize().into());
                self.next_part();
            }
        }
    }

    fn finish(self) -> Vec<Md5Digest> {
        self.done
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The hash of one piece: SHA-256 of exactly its bytes.
pub fn piece_hash(data: &[u8]) -> PieceHash {
    Sha256::digest(data).into()
}

/// MD5 of a byte slice, for tests and small checks.
pub fn md5_of(data: &[u8]) -> Md5Digest {
    Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        assert_eq!(blocks_per_piece_for(0), 1);
        assert_eq!(blocks_per_piece_for(256 << 20), 1);
        assert_eq!(blocks_per_piece_for((256 << 20) + 1), 2);
        assert_eq!(blocks_per_piece_for(4 << 30), 16);
        assert!(
            (MAX_FILE_SIZE)
                .div_ceil(BLOCK_SIZE as u64 * blocks_per_piece_for(MAX_FILE_SIZE) as u64)
                <= MAX_PIECES as u64
        );
    }

    #[test]
    fn record_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let r = FileRecord::from_file("f", &path).unwrap();
        assert_eq!(r.size, 10_000);
        assert_eq!(r.block_count(), 3);
        assert_eq!(r.piece_count(), 3);
        assert_eq!(r.md5, md5_of(&data));
        assert_eq!(r.piece_len(2), 10_000 - 8192);
        assert!(r.verify_piece(1, &data[4096..8192]));
        assert!(!r.verify_piece(1, &data[0..4096]));
        // SHA-256 of exactly the piece's bytes (sha256sum of "hello").
        assert_eq!(
            crate::units::hex(&piece_hash(b"hello")),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        r.validate().unwrap();
        let mut all = crate::bitfield::Bitfield::full(3);
        assert_eq!(r.blocks_in(&all), 3);
        all.clear(0);
        assert_eq!(r.blocks_in(&all), 2);
    }

    #[test]
    fn geometry_without_a_record() {
        for size in [0u64, 1, 4096, 10_000, (256 << 20) + 1, 5 << 30] {
            let r = FileRecord {
                name: "g".into(),
                size,
                block_size: BLOCK_SIZE,
                blocks_per_piece: blocks_per_piece_for(size),
                md5: [0; 16],
                piece_hashes: vec![[0; 32]; piece_count_for(size) as usize],
                weak_sums: vec![0; piece_count_for(size) as usize],
                folder: None,
                version: 1,
                owner: String::new(),
            };
            r.validate().unwrap();
            let mut have = crate::bitfield::Bitfield::full(r.piece_count());
            assert_eq!(blocks_held(size, &have), r.blocks_in(&have), "{size}");
            assert_eq!(blocks_held(size, &have), r.block_count() as u64);
            if r.piece_count() > 1 {
                have.clear(r.piece_count() - 1);
                assert_eq!(blocks_held(size, &have), r.blocks_in(&have), "{size}");
                have.clear(0);
                have.set(r.piece_count() - 1);
                assert_eq!(blocks_held(size, &have), r.blocks_in(&have), "{size}");
            }
        }
    }

    #[test]
    fn a_stream_hashes_whole_by_piece_and_by_part() {
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 77u32)
            .map(|i| (i % 251) as u8)
            .collect();
        // Empty parts at the start, inside and at the end; one part
        // straddling the 1 MiB chunks.
        let parts = [
            0,
            10,
            0,
            (2 << 20) + 5,
            data.len() as u64 - (2 << 20) - 15,
            0,
        ];
        let h = hash_stream(&mut &data[..], data.len() as u64, &parts)
            .unwrap()
            .unwrap();
        assert_eq!(h.md5, md5_of(&data));
        assert_eq!(h.pieces, FileRecord::from_bytes("x", &data).piece_hashes);
        let mut at = 0usize;
        let want: Vec<Md5Digest> = parts
            .iter()
            .map(|&n| {
                let d = md5_of(&data[at..at + n as usize]);
                at += n as usize;
                d
            })
            .collect();
        assert_eq!(h.parts, want);
        // A stream shorter or longer than said is no record.
        assert!(hash_stream(&mut &data[..10], 11, &[]).unwrap().is_none());
        assert!(hash_stream(&mut &data[..12], 11, &[]).unwrap().is_none());
    }

    #[test]
    fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        std::fs::write(&path, b"").unwrap();
        let r = FileRecord::from_file("e", &path).unwrap();
        assert_eq!(r.piece_count(), 0);
        assert_eq!(r.md5, md5_of(b""));
        r.validate().unwrap();
    }
}
