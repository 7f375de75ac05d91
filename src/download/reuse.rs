//! Local reuse: before a download fetches anything, every piece of the
//! target already present in a local file is copied into its partial file,
//! verified by its SHA-256 like a fetched piece. Only what is found nowhere
//! locally then travels ("only the changed bytes travel").
//!
//! Two passes, both without sockets or threads:
//! 1. **Aligned**: the target's missing pieces indexed by SHA-256, looked up
//!    with the piece hashes of every candidate's record. No hashing to
//!    build it: the records are already there. This finds the pieces of an
//!    item edited in place and those shared with any other item.
//! 2. **Rolling** (candidates marked `roll`, the previous version of the
//!    item): the weak sums of the pieces still missing, looked up at every
//!    byte offset of the candidate with a window sliding one byte at a time
//!    (`crate::rolling`), rsync's way. This finds content that moved (an
//!    insertion, a tar that gained a file). A bitset prefilter answers "no"
//!    for nearly every offset before the hash map is asked; a weak hit is
//!    confirmed by the piece's SHA-256.
//!
//! Nothing here trusts a candidate: every piece is checked against the
//! target's hash before its bit is set, so a file that changed on disk
//! since its record was made costs a wasted read, never a wrong piece.

use crate::bitfield::Bitfield;
use crate::digest::PieceHash;
use crate::int_hash::IntMap;
use crate::record::{blocks_per_piece_for, piece_hash, FileRecord, BLOCK_SIZE};
use crate::rolling::Roller;
use log::debug;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes the rolling scan reads at a time (plus one window carried over),
/// and about how often both passes look at the cancel flag.
const SCAN_CHUNK: usize = 4 << 20;
/// The longest run of consecutive pieces the aligned pass copies at once.
const RUN_BYTES: u64 = 4 << 20;
/// The prefilter's size: 32 bits per weak sum it holds, within these
/// bounds (log2). 2^20 bits, 128 KiB, stay in the L2 cache and hold the
/// 65,536 pieces a record has at most with 1.5 % false positives; fewer
/// missing pieces, a smaller filter, in the L1 cache (0.4 %).
const FILTER_BITS: std::ops::RangeInclusive<u32> = 12..=20;
/// Strong checks that fail (a weak sum matched, the SHA-256 did not) a
/// scan may spend before any bound applies; past that, one per window
/// scanned: failing checks then cost at most one more hashing pass over
/// the candidate, whatever its content (long runs of one byte, text whose
/// weak sums collide).
const FREE_MISSES: u64 = 1024;

/// A local payload whose bytes may be reused: a file in `files/`, a
/// folder's payload (its files one after another), or a partial
/// download's file.
pub trait Payload: Send + Sync {
    fn size(&self) -> u64;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The open file, when the payload is one file: lets `fill` copy with
    /// `copy_file_range` (reflinks on file systems that have them) instead
    /// of read + write.
    fn file(&self) -> Option<&File> {
        None
    }
}

/// Bytes in memory (tests): no file, so `fill` reads and writes.
#[cfg(test)]
impl Payload for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = offset as usize;
        let bytes = self
            .get(at..at + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A local file with no record: a follower's edit kept aside, the partial
/// file of a version that was replaced while it downloaded. Offered with
/// `roll`, so its pieces are found by their weak sums wherever they sit.
pub struct PlainFile {
    file: File,
    size: u64,
}

impl PlainFile {
    pub fn open(path: &std::path::Path) -> io::Result<PlainFile> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(PlainFile { file, size })
    }
}

impl Payload for PlainFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

impl Candidate {
    /// A file with no record, scanned with the rolling checksum.
    pub fn plain(path: &std::path::Path) -> io::Result<Candidate> {
        Ok(Candidate {
            payload: Arc::new(PlainFile::open(path)?),
            record: None,
            have: None,
            roll: true,
        })
    }
}

/// A local payload offered to `fill`.
pub struct Candidate {
    pub payload: Arc<dyn Payload>,
    /// Its record when the peer has one: its piece hashes are the local
    /// index (no hashing to build it).
    pub record: Option<Arc<FileRecord>>,
    /// Only these of its pieces are verified (a partial download); `None`:
    /// all of them.
    pub have: Option<Bitfield>,
    /// Scan it with the rolling weak checksum too (the previous version of
    /// the same item: its content may have shifted).
    pub roll: bool,
}

/// What `fill` copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reused {
    pub pieces: u32,
    pub bytes: u64,
}

/// Copies into `part` (the target's partial file, at its final size) every
/// piece missing from `have` that a candidate holds, verified, and sets its
/// bit. The rolling pass looks for the weak sums of `target`'s record.
/// Returns early, with what was copied so far (all of it valid), once
/// `cancel` is set. An error is a failure to write `part`; a candidate
/// that cannot be read is skipped.
pub fn fill(
    target: &FileRecord,
    part: &File,
    have: &mut Bitfield,
    candidates: &[Candidate],
    cancel: &AtomicBool,
) -> io::Result<Reused> {
    let mut f = Filler {
        target,
        part,
        have,
        cancel,
        reused: Reused::default(),
        misses: 0,
        spans: Vec::new(),
        buf: Vec::new(),
    };
    f.run(candidates)?;
    Ok(f.reused)
}

impl Filler<'_> {
    /// The aligned pass over every candidate, then the rolling pass over
    /// those marked `roll`.
    fn run(&mut self, candidates: &[Candidate]) -> io::Result<()> {
        let wanted = self.missing_by_hash();
        // What the aligned pass took from each candidate.
        let mut taken: Vec<Vec<Span>> = Vec::with_capacity(candidates.len());
        for c in candidates {
            self.spans.clear();
            if let (Some(record), false) = (&c.record, self.done()) {
                self.aligned(c, record, &wanted)?;
            }
            taken.push(std::mem::take(&mut self.spans));
        }
        let weak = &self.target.weak_sums;
        if weak.len() != self.target.piece_hashes.len() {
            return Ok(());
        }
        for (c, spans) in candidates.iter().zip(&taken).filter(|(c, _)| c.roll) {
            if self.done() {
                break;
            }
            self.rolling(c, spans)?;
        }
        Ok(())
    }
}

/// One `fill`: the target, where its pieces go, and what was copied.
struct Filler<'a> {
    target: &'a FileRecord,
    part: &'a File,
    have: &'a mut Bitfield,
    cancel: &'a AtomicBool,
    reused: Reused,
    /// Strong checks that failed in the rolling pass.
    misses: u64,
    /// What the aligned pass took from the current candidate.
    spans: Vec<Span>,
    /// Scratch for the aligned pass's runs.
    buf: Vec<u8>,
}

impl Filler<'_> {
    /// Every piece is here, or the download was cancelled.
    fn done(&self) -> bool {
        self.have.is_full() || self.cancel.load(Ordering::Relaxed)
    }

    /// Records piece `p` as verified in `part`.
    fn mark(&mut self, p: u32) {
        if self.have.set(p) {
            self.reused.pieces += 1;
            self.reused.bytes += self.target.piece_len(p);
        }
    }

    /// Records piece `p` as verified in `part`, copied from the current
    /// candidate at `from` by the aligned pass.
    fn took(&mut self, p: u32, from: u64) {
        self.mark(p);
        let (to, len) = (self.target.piece_offset(p), self.target.piece_len(p));
        match self.spans.last_mut() {
            Some(s) if s.from + s.len == from && s.to + s.len == to => s.len += len,
            _ => self.spans.push(Span { from, to, len }),
        }
    }

    /// Writes the verified bytes of piece `p` into `part`.
    fn place(&mut self, p: u32, data: &[u8]) -> io::Result<()> {
        self.part.write_all_at(data, self.target.piece_offset(p))?;
        self.mark(p);
        Ok(())
    }

    // ---- the aligned pass -------------------------------------------------

    /// Copies the pieces of `c` whose hash (in its record) is that of a
    /// piece the target misses (`wanted`, from `missing_by_hash`).
    fn aligned(
        &mut self,
        c: &Candidate,
        record: &FileRecord,
        wanted: &HashMap<PieceHash, Vec<u32>>,
    ) -> io::Result<()> {
        let usable = |q: u32| c.have.as_ref().is_none_or(|h| h.get(q));
        if c.have
            .as_ref()
            .is_some_and(|h| h.len() != record.piece_count())
        {
            return Ok(());
        }
        // (target piece, candidate offset), in the candidate's order, each
        // target piece once.
        let mut matches: Vec<(u32, u64)> = Vec::new();
        let mut taken = Bitfield::new(self.target.piece_count());
        for q in 0..record.piece_count() {
            let Some(ps) = wanted.get(&record.piece_hashes[q as usize]) else {
                continue;
            };
            if !usable(q) {
                continue;
            }
            for &p in ps {
                if !self.have.get(p)
                    && self.target.piece_len(p) == record.piece_len(q)
                    && taken.set(p)
                {
                    matches.push((p, record.piece_offset(q)));
                }
            }
        }
        let piece = self.target.piece_size();
        let max = RUN_BYTES.max(piece);
        let mut i = 0;
        while i < matches.len() {
            if self.done() {
                break;
            }
            // A run: consecutive pieces here at consecutive offsets there.
            let (first, from) = matches[i];
            let mut n = 1;
            while let Some(&(p, o)) = matches.get(i + n) {
                let follows = p == first + n as u32 && o == from + n as u64 * piece;
                if !follows || (n as u64 + 1) * piece > max {
                    break;
                }
                n += 1;
            }
            self.copy_run(c, first, n as u32, from)?;
            i += n;
        }
        Ok(())
    }

    /// The target's missing pieces by hash (several when pieces repeat):
    /// the local index, probed with each candidate's piece hashes.
    ///
    /// Built over the target's pieces rather than over the candidates':
    /// the same matches, but its size is bounded by one record (at most
    /// 65,536 entries) however many items the peer shares, and it is
    /// built once.
    fn missing_by_hash(&self) -> HashMap<PieceHash, Vec<u32>> {
        let mut wanted: HashMap<PieceHash, Vec<u32>> = HashMap::new();
        let mut at = 0;
        while let Some(p) = self.have.next(at, false) {
            wanted
                .entry(self.target.piece_hashes[p as usize])
                .or_default()
                .push(p);
            at = p + 1;
        }
        wanted
    }

    /// Copies target pieces `first..first + count` from `c` at `from`,
    /// keeping those that verify.
    ///
    /// A file is copied by the kernel and then read back from `part` to be
    /// verified: what is checked is what the partial file holds, even if
    /// the candidate changes meanwhile. Other payloads are read, checked,
    /// and the good pieces written.
    fn copy_run(&mut self, c: &Candidate, first: u32, count: u32, from: u64) -> io::Result<()> {
        let target = self.target;
        let last = first + count - 1;
        let to = target.piece_offset(first);
        let len = (target.piece_offset(last) + target.piece_len(last) - to) as usize;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(len, 0);
        let copied = c.payload.file().is_some_and(|f| {
            crate::fsutil::copy_range(f, from, self.part, to, len as u64).unwrap_or(false)
        });
        let result = if copied {
            self.part.read_exact_at(&mut buf, to).map(|()| {
                for p in first..=last {
                    if self.verifies(p, &buf, first) {
                        self.took(p, from + target.piece_offset(p) - to);
                    }
                }
            })
        } else if c.payload.read_exact_at(&mut buf, from).is_ok() {
            self.place_verified(first, last, &buf, from)
        } else {
            debug!("reuse: a local candidate could not be read at {from}; skipped");
            Ok(())
        };
        self.buf = buf;
        result
    }

    /// Whether piece `p`, inside `run` (which starts with piece `first`),
    /// has the target's hash.
    fn verifies(&self, p: u32, run: &[u8], first: u32) -> bool {
        let at = (self.target.piece_offset(p) - self.target.piece_offset(first)) as usize;
        let n = self.target.piece_len(p) as usize;
        self.target.verify_piece(p, &run[at..at + n])
    }

    /// Writes the pieces of `first..=last` in `run` (read from the
    /// candidate at `from`) that verify, each stretch of good pieces in one
    /// write.
    fn place_verified(&mut self, first: u32, last: u32, run: &[u8], from: u64) -> io::Result<()> {
        let good: Vec<bool> = (first..=last)
            .map(|p| self.verifies(p, run, first))
            .collect();
        let base = self.target.piece_offset(first);
        let mut i = 0;
        while i < good.len() {
            if !good[i] {
                i += 1;
                continue;
            }
            let n = good[i..].iter().take_while(|&&g| g).count();
            let (start, end) = (first + i as u32, first + (i + n) as u32 - 1);
            let a = (self.target.piece_offset(start) - base) as usize;
            let b = (self.target.piece_offset(end) + self.target.piece_len(end) - base) as usize;
            self.part
                .write_all_at(&run[a..b], self.target.piece_offset(start))?;
            for p in start..=end {
                self.took(p, from + self.target.piece_offset(p) - base);
            }
            i += n;
        }
        Ok(())
    }

    // ---- the rolling pass -------------------------------------------------

    /// Looks for the target's missing pieces at every offset of `c`,
    /// except inside what the aligned pass took from it (`taken`).
    ///
    /// The window is one target piece, so only whole pieces are found
    /// this way. The last piece, when short, is instead compared with the
    /// candidate's tail of the same length: a file that gained or lost
    /// bytes in its middle still ends the same way.
    fn rolling(&mut self, c: &Candidate, taken: &[Span]) -> io::Result<()> {
        let size = c.payload.size();
        let Some(verified) = verified_ranges(c, size) else {
            return Ok(());
        };
        self.tail(c, &verified)?;
        let mut index = WeakIndex::new(self.target, self.have);
        if index.is_empty() {
            return Ok(());
        }
        let w = self.target.piece_size() as usize;
        let mut buf = vec![0u8; SCAN_CHUNK.max(w) + w];
        for (start, end) in scan_ranges(&verified, taken, w as u64) {
            if self.done() {
                break;
            }
            let scan = Scan {
                payload: c.payload.as_ref(),
                buf: &mut buf,
                base: start,
                len: 0,
                end,
            };
            self.scan(scan, &mut index)?;
        }
        Ok(())
    }

    /// The target's last piece when short, from the end of the verified
    /// candidate.
    fn tail(&mut self, c: &Candidate, ranges: &[(u64, u64)]) -> io::Result<()> {
        let Some(last) = self.target.piece_count().checked_sub(1) else {
            return Ok(());
        };
        let len = self.target.piece_len(last);
        if self.have.get(last) || len == self.target.piece_size() {
            return Ok(());
        }
        let Some(&(start, end)) = ranges.last() else {
            return Ok(());
        };
        if end != c.payload.size() || end - start < len {
            return Ok(());
        }
        let mut data = vec![0u8; len as usize];
        if c.payload.read_exact_at(&mut data, end - len).is_ok()
            && self.target.verify_piece(last, &data)
        {
            self.place(last, &data)?;
        }
        Ok(())
    }

    /// Slides a window of one piece along `scan`'s range. A matched
    /// window is copied into every missing piece it equals and the scan
    /// jumps past it (rsync's skip); otherwise it moves on by one byte.
    fn scan(&mut self, mut scan: Scan<'_>, index: &mut WeakIndex) -> io::Result<()> {
        let w = self.target.piece_size() as usize;
        let start = scan.base;
        let mut pos = 0usize;
        let mut misses = 0u64;
        if !self.ensure(&mut scan, &mut pos, w) {
            return Ok(());
        }
        let mut roller = Roller::new(&scan.buf[..w]);
        loop {
            if next_hit(
                &index.filter,
                &scan.buf[..scan.len],
                w,
                &mut pos,
                &mut roller,
            ) {
                let window = &scan.buf[pos..pos + w];
                match self.try_window(window, roller.sum(), index)? {
                    Hit::Matched => {
                        if index.is_empty() {
                            return Ok(());
                        }
                        pos += w;
                        if !self.ensure(&mut scan, &mut pos, w) {
                            return Ok(());
                        }
                        roller = Roller::new(&scan.buf[pos..pos + w]);
                        continue;
                    }
                    Hit::Missed => {
                        misses += 1;
                        self.misses += 1;
                        let scanned = scan.base + pos as u64 - start;
                        if misses > FREE_MISSES + scanned / w as u64 {
                            debug!("reuse: too many weak sums without a match; scan stopped");
                            return Ok(());
                        }
                    }
                    Hit::Stale => {}
                }
            }
            // One byte on: the window needs the byte after it.
            if !self.ensure(&mut scan, &mut pos, w + 1) {
                return Ok(());
            }
            roller.roll(scan.buf[pos], scan.buf[pos + w]);
            pos += 1;
        }
    }

    /// Makes `need` bytes from `pos` available, reading on when the buffer
    /// ends (then `pos` moves). False at the end of the range (or where
    /// the candidate could not be read), or once the download is
    /// cancelled (looked at on each read, every few MiB).
    fn ensure(&self, scan: &mut Scan<'_>, pos: &mut usize, need: usize) -> bool {
        if *pos + need <= scan.len {
            return true;
        }
        if self.done() {
            return false;
        }
        scan.refill(*pos);
        *pos = 0;
        need <= scan.len
    }

    /// A window whose weak sum passed the prefilter: the hash map says
    /// which missing pieces have that sum, the SHA-256 which of them it is.
    fn try_window(&mut self, window: &[u8], weak: u32, index: &mut WeakIndex) -> io::Result<Hit> {
        let Some(pieces) = index.map.get_mut(&weak) else {
            return Ok(Hit::Stale);
        };
        pieces.retain(|&p| !self.have.get(p));
        if pieces.is_empty() {
            index.map.remove(&weak);
            return Ok(Hit::Stale);
        }
        let hash = piece_hash(window);
        let found: Vec<u32> = pieces
            .iter()
            .copied()
            .filter(|&p| self.target.piece_hashes[p as usize] == hash)
            .collect();
        if found.is_empty() {
            return Ok(Hit::Missed);
        }
        for p in found {
            self.place(p, window)?;
        }
        index.remove_filled(weak, self.have);
        Ok(Hit::Matched)
    }
}

/// Bytes the aligned pass copied from a candidate at `from` to the target
/// at `to`, contiguous in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    from: u64,
    to: u64,
    len: u64,
}

/// The byte ranges of a candidate the rolling pass scans: its `verified`
/// ranges, less the windows lying inside one span the aligned pass
/// `taken` from it. Such a window is already in the target, at the span's
/// offset there; it could still match a missing piece only if the new
/// version held the same bytes twice, at two offsets. Skipping it is
/// what makes an edit in place cost a scan of the changed regions, not of
/// the whole file (a duplicate like that is fetched instead).
fn scan_ranges(verified: &[(u64, u64)], taken: &[Span], w: u64) -> Vec<(u64, u64)> {
    // Window starts to skip, merged.
    let mut skip: Vec<(u64, u64)> = taken
        .iter()
        .filter(|s| s.len >= w)
        .map(|s| (s.from, s.from + s.len - w + 1))
        .collect();
    skip.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(skip.len());
    for (a, b) in skip {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out = Vec::new();
    for &(r0, r1) in verified {
        if r1 - r0 < w {
            continue;
        }
        // Window starts in r0..end, less the skipped ones; a run of
        // starts a..b needs the bytes a..b - 1 + w.
        let (mut at, end) = (r0, r1 - w + 1);
        for &(a, b) in &merged {
            if b <= at {
                continue;
            }
            if a >= end {
                break;
            }
            if a > at {
                out.push((at, a - 1 + w));
            }
            at = b;
        }
        if at < end {
            out.push((at, r1));
        }
    }
    out
}

/// What a window that passed the prefilter turned out to be.
enum Hit {
    /// Its SHA-256 is that of missing pieces, now copied.
    Matched,
    /// Its weak sum is that of a missing piece, its SHA-256 is not.
    Missed,
    /// The prefilter's false positive, or a sum whose pieces are all here.
    Stale,
}

/// The byte ranges of `c` whose content is verified, in order: all of it,
/// or the runs of its `have` pieces. `None` when its `have` does not fit
/// its size.
fn verified_ranges(c: &Candidate, size: u64) -> Option<Vec<(u64, u64)>> {
    let Some(have) = &c.have else {
        return Some(vec![(0, size)]);
    };
    let piece = BLOCK_SIZE as u64 * blocks_per_piece_for(size) as u64;
    if have.len() as u64 != size.div_ceil(piece) {
        return None;
    }
    Some(
        have.runs()
            .into_iter()
            .map(|(s, n)| (s as u64 * piece, ((s + n) as u64 * piece).min(size)))
            .collect(),
    )
}

/// Advances the window from `pos` until its weak sum passes the
/// prefilter (true: a hit at `pos`) or the buffer has no byte left to take
/// in (false: the window at `pos` was looked at and is no hit). The hot
/// loop of the rolling pass: a roll, a multiply and a bit test per byte.
#[inline]
fn next_hit(
    filter: &Prefilter,
    buf: &[u8],
    w: usize,
    pos: &mut usize,
    roller: &mut Roller,
) -> bool {
    if filter.may_hold(roller.sum()) {
        return true;
    }
    let (outs, ins) = (&buf[*pos..buf.len() - w], &buf[*pos + w..]);
    for (&out, &inp) in outs.iter().zip(ins) {
        roller.roll(out, inp);
        *pos += 1;
        if filter.may_hold(roller.sum()) {
            return true;
        }
    }
    false
}

/// The part of a candidate's range in memory: `buf[..len]` holds its bytes
/// from `base`; the range ends at `end`.
struct Scan<'a> {
    payload: &'a dyn Payload,
    buf: &'a mut Vec<u8>,
    base: u64,
    len: usize,
    end: u64,
}

impl Scan<'_> {
    /// Keeps `buf[from..len]`, moved to the front, and reads on as much
    /// as fits. A candidate that cannot be read (it shrank, it went) ends
    /// its range here: what was found stays, the download goes on.
    fn refill(&mut self, from: usize) {
        self.buf.copy_within(from..self.len, 0);
        self.base += from as u64;
        self.len -= from;
        let at = self.base + self.len as u64;
        let n = ((self.end - at) as usize).min(self.buf.len() - self.len);
        let read = self
            .payload
            .read_exact_at(&mut self.buf[self.len..self.len + n], at);
        match read {
            Ok(()) => self.len += n,
            Err(e) => {
                debug!("reuse: reading a local candidate at {at}: {e}; its scan stops");
                self.end = at;
            }
        }
    }
}

/// The target's missing whole pieces by weak sum, behind a prefilter.
struct WeakIndex {
    map: IntMap<u32, Vec<u32>>,
    filter: Prefilter,
}

impl WeakIndex {
    fn new(target: &FileRecord, have: &Bitfield) -> WeakIndex {
        let weak = &target.weak_sums;
        let mut map: IntMap<u32, Vec<u32>> = IntMap::default();
        let mut at = 0;
        while let Some(p) = have.next(at, false) {
            at = p + 1;
            if target.piece_len(p) == target.piece_size() {
                map.entry(weak[p as usize]).or_default().push(p);
            }
        }
        let mut filter = Prefilter::new(map.len());
        map.keys().for_each(|&k| filter.insert(k));
        WeakIndex { map, filter }
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets `weak` once all its pieces are here. Its prefilter bit
    /// stays (bits are shared): later hits on it cost one map lookup.
    fn remove_filled(&mut self, weak: u32, have: &Bitfield) {
        if let Some(ps) = self.map.get(&weak) {
            if ps.iter().all(|&p| have.get(p)) {
                self.map.remove(&weak);
            }
        }
    }
}

/// A blocked Bloom filter over weak sums (two bits in one 64-bit word):
/// answers "certainly not" for nearly every offset of a scan with one
/// load and a mask test.
struct Prefilter {
    bits: Vec<u64>,
    /// 32 less log2 of the word count.
    shift: u32,
}

impl Prefilter {
    /// An empty filter sized for `sums` weak sums.
    fn new(sums: usize) -> Prefilter {
        let log2 = (sums.max(1) * 32).next_power_of_two().trailing_zeros();
        let log2 = log2.clamp(*FILTER_BITS.start(), *FILTER_BITS.end());
        Prefilter {
            bits: vec![0; 1 << (log2 - 6)],
            shift: 32 - (log2 - 6),
        }
    }

    /// Two bits of one word: the word from the top bits of a Fibonacci
    /// hash (which depend on all the sum's bits, both 16-bit halves), the
    /// bits from two of its low 6-bit groups. One load per test, and a
    /// quarter of the false positives of a single bit.
    #[inline]
    fn slot(&self, weak: u32) -> (usize, u64) {
        let h = weak.wrapping_mul(0x9E37_79B1);
        let word = (h >> self.shift) as usize;
        (word, 1 << (h & 63) | 1 << ((h >> 6) & 63))
    }

    fn insert(&mut self, weak: u32) {
        let (w, m) = self.slot(weak);
        self.bits[w] |= m;
    }

    #[inline]
    fn may_hold(&self, weak: u32) -> bool {
        let (w, m) = self.slot(weak);
        self.bits[w] & m == m
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new partial file of `len` bytes, all holes, at `path`.
    pub(crate) fn empty_part(path: &std::path::Path, len: u64) -> File {
        let part = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        part.set_len(len).unwrap();
        part
    }
    use crate::rolling::weak_sum;
    use std::os::unix::fs::FileExt;

    const PIECE: usize = BLOCK_SIZE as usize;

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = crate::rng::Rng::seeded(seed);
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// A download of `data` about to start: its record, weak sums, and
    /// an empty partial file of its size.
    struct Target {
        dir: tempfile::TempDir,
        data: Vec<u8>,
        record: FileRecord,
        part: File,
        have: Bitfield,
    }

    impl Target {
        fn new(data: Vec<u8>) -> Target {
            let dir = tempfile::tempdir().unwrap();
            let record = FileRecord::from_bytes("t", &data);
            let part = empty_part(&dir.path().join("part"), data.len() as u64);
            let have = Bitfield::new(record.piece_count());
            Target {
                dir,
                data,
                record,
                part,
                have,
            }
        }

        fn fill(&mut self, candidates: &[Candidate]) -> Reused {
            let cancel = AtomicBool::new(false);
            let got = fill(
                &self.record,
                &self.part,
                &mut self.have,
                candidates,
                &cancel,
            )
            .unwrap();
            self.check();
            got
        }

        /// Every piece marked holds the target's bytes.
        fn check(&self) {
            for p in self.have.iter_ones() {
                let (at, n) = (self.record.piece_offset(p), self.record.piece_len(p));
                let mut buf = vec![0u8; n as usize];
                self.part.read_exact_at(&mut buf, at).unwrap();
                assert!(
                    buf == self.data[at as usize..(at + n) as usize],
                    "piece {p} marked but wrong"
                );
            }
        }

        /// A file in the target's scratch directory holding `data`.
        /// `data` in a file of its own: `fill` copies from it with
        /// `copy_file_range`.
        fn file_of(&self, name: &str, data: &[u8]) -> PlainFile {
            let path = self.dir.path().join(name);
            std::fs::write(&path, data).unwrap();
            PlainFile::open(&path).unwrap()
        }

        fn missing(&self) -> u32 {
            self.have.len() - self.have.count()
        }
    }

    /// The previous version of an item, as the store offers it.
    fn previous(payload: Arc<dyn Payload>, data: &[u8], roll: bool) -> Candidate {
        Candidate {
            payload,
            record: Some(Arc::new(FileRecord::from_bytes("old", data))),
            have: None,
            roll,
        }
    }

    /// Pieces whose bytes are equal in `a` and `b` at the same offset.
    fn same_pieces(a: &[u8], b: &[u8]) -> u32 {
        a.chunks(PIECE)
            .zip(b.chunks(PIECE))
            .filter(|(x, y)| x == y)
            .count() as u32
    }

    #[test]
    fn an_edited_copy_gives_every_unchanged_piece_by_its_hash() {
        let old = random(8 << 20, 1);
        let mut new = old.clone();
        // 1 % of the bytes, in 40 scattered regions of 2,097 bytes.
        let mut rng = crate::rng::Rng::seeded(2);
        for _ in 0..40 {
            let at = rng.below((new.len() - 4096) as u64) as usize;
            for b in &mut new[at..at + 2097] {
                *b ^= 0x5a;
            }
        }
        let unchanged = same_pieces(&old, &new);
        assert!(unchanged >= 2048 * 95 / 100, "{unchanged}");
        for on_disk in [true, false] {
            let mut t = Target::new(new.clone());
            let payload: Arc<dyn Payload> = if on_disk {
                Arc::new(t.file_of("old", &old))
            } else {
                Arc::new(old.clone())
            };
            let got = t.fill(&[previous(payload, &old, false)]);
            assert_eq!(got.pieces, unchanged, "on disk: {on_disk}");
            assert_eq!(got.bytes, unchanged as u64 * PIECE as u64);
            assert_eq!(t.have.count(), unchanged);
        }
    }

    #[test]
    fn an_insertion_costs_only_the_pieces_it_covers() {
        // 8 MiB, then 1 MiB + 1,111 bytes inserted in the middle: the new
        // file's pieces 1024..=1280 hold inserted bytes, every other piece
        // is somewhere in the old file (the short last one at its end).
        let old = random(8 << 20, 3);
        let inserted = random((1 << 20) + 1111, 4);
        let mut new = old[..4 << 20].to_vec();
        new.extend_from_slice(&inserted);
        new.extend_from_slice(&old[4 << 20..]);
        let touched = (4 << 20) / PIECE as u32..=((5 << 20) + 1111) / PIECE as u32;
        // With its record (the aligned pass takes the first half), and
        // without (rolling alone finds it all).
        for with_record in [true, false] {
            let mut t = Target::new(new.clone());
            let payload = Arc::new(t.file_of("old", &old));
            let mut c = previous(payload, &old, true);
            if !with_record {
                c.record = None;
            }
            let got = t.fill(&[c]);
            assert_eq!(t.missing(), touched.clone().count() as u32, "{with_record}");
            assert!(touched.clone().all(|p| !t.have.get(p)));
            let fetched = touched.clone().count() as u64 * PIECE as u64;
            assert_eq!(got.bytes, new.len() as u64 - fetched);
        }
    }

    #[test]
    fn pieces_of_other_items_are_reused() {
        // The new item is made of pieces found in two unrelated items, at
        // other offsets than theirs (but whole pieces).
        let x = random(1 << 20, 5);
        let y = random(1 << 20, 6);
        let mut new = y[64 * PIECE..128 * PIECE].to_vec();
        new.extend_from_slice(&x[..100 * PIECE]);
        new.extend_from_slice(&y[..5000]);
        let mut t = Target::new(new.clone());
        let item = |data: &[u8], name: &str| Candidate {
            payload: Arc::new(data.to_vec()),
            record: Some(Arc::new(FileRecord::from_bytes(name, data))),
            have: None,
            roll: false,
        };
        // y[..5000] ends in a short piece of 904 bytes, unlike y's second
        // piece: only the first of its two pieces is found.
        let got = t.fill(&[item(&x, "x"), item(&y, "y")]);
        assert_eq!(got.pieces, 64 + 100 + 1);
        assert_eq!(t.have.next(0, false), Some(164 + 1));
        assert_eq!(t.missing(), 1);
    }

    #[test]
    fn the_unverified_pieces_of_a_partial_are_not_used() {
        // Its file holds all the right bytes, but only its even pieces are
        // verified: the odd ones are not taken, by hash nor by rolling.
        let data = random(63 * PIECE + 100, 7);
        let mut t = Target::new(data.clone());
        let mut have = Bitfield::new(64);
        (0..64).step_by(2).for_each(|p| {
            have.set(p);
        });
        let c = Candidate {
            payload: Arc::new(t.file_of("partial", &data)),
            record: Some(Arc::new(FileRecord::from_bytes("t", &data))),
            have: Some(have.clone()),
            roll: true,
        };
        t.fill(&[c]);
        assert_eq!(t.have, have);
    }

    #[test]
    fn a_candidate_that_changed_on_disk_is_not_trusted() {
        // Its record says it holds the target; its first half was
        // overwritten since.
        let data = random(256 * PIECE, 8);
        let mut changed = data.clone();
        changed[..128 * PIECE].copy_from_slice(&random(128 * PIECE, 9));
        for on_disk in [true, false] {
            let mut t = Target::new(data.clone());
            let payload: Arc<dyn Payload> = if on_disk {
                Arc::new(t.file_of("stale", &changed))
            } else {
                Arc::new(changed.clone())
            };
            let got = t.fill(&[previous(payload, &data, true)]);
            assert_eq!(got.pieces, 128, "on disk: {on_disk}");
            assert_eq!(t.have.next(0, true), Some(128));
        }
        // One that shrank: what is left of it is used, nothing fails.
        let mut t = Target::new(data.clone());
        let c = previous(Arc::new(data[..10 * PIECE + 7].to_vec()), &data, true);
        assert_eq!(t.fill(&[c]).pieces, 10);
    }

    #[test]
    fn an_empty_target_needs_nothing() {
        let mut t = Target::new(Vec::new());
        let c = previous(Arc::new(random(9000, 10)), b"", true);
        assert_eq!(t.fill(&[c]), Reused::default());
        assert!(t.have.is_full());
    }

    #[test]
    fn a_short_last_piece_comes_from_the_same_tail() {
        // Same file: the short piece by its hash.
        let old = random(2 * PIECE + 1808, 11);
        let mut t = Target::new(old.clone());
        let c = previous(Arc::new(old.clone()), &old, false);
        assert_eq!(t.fill(&[c]).bytes, old.len() as u64);
        // Three bytes inserted in front: the first piece is new, the
        // second is found by rolling, the short last one at the old end.
        let mut new = b"xyz".to_vec();
        new.extend_from_slice(&old);
        let mut t = Target::new(new);
        let c = previous(Arc::new(old.clone()), &old, true);
        t.fill(&[c]);
        assert_eq!(t.have.iter_ones().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn repeated_pieces_are_all_filled_from_one_match() {
        let mut new = vec![0u8; 8 * PIECE];
        new.extend_from_slice(&random(3 * PIECE, 12));
        new.extend_from_slice(&[0u8; 4 * PIECE]);
        let mut old = random(1000, 13);
        old.extend_from_slice(&[0u8; PIECE + 10]);
        let mut t = Target::new(new);
        let c = previous(Arc::new(old.clone()), &old, true);
        assert_eq!(t.fill(&[c]).pieces, 12);
        assert_eq!(t.have.runs(), vec![(0, 8), (11, 4)]);
    }

    #[test]
    fn weak_sums_that_never_confirm_stop_the_scan() {
        // Every window of a file of zeros has the weak sum 0; the target's
        // piece claims that sum but is not zeros. Without a bound the scan
        // would hash every one of its 4 Mi windows.
        let zeros = vec![0u8; 4 << 20];
        let mut t = Target::new(random(PIECE, 14));
        t.record.weak_sums = vec![weak_sum(&[0u8; PIECE])];
        let c = Candidate {
            payload: Arc::new(zeros),
            record: None,
            have: None,
            roll: true,
        };
        let cancel = AtomicBool::new(false);
        let mut f = Filler {
            target: &t.record,
            part: &t.part,
            have: &mut t.have,
            cancel: &cancel,
            reused: Reused::default(),
            misses: 0,
            spans: Vec::new(),
            buf: Vec::new(),
        };
        f.run(&[c]).unwrap();
        assert_eq!(f.reused.pieces, 0);
        assert_eq!(f.misses, FREE_MISSES + 1);
    }

    #[test]
    fn the_rolling_scan_skips_windows_inside_what_was_taken() {
        let span = |from, len| Span { from, to: 0, len };
        // Nothing taken: the verified ranges whole (those holding a window).
        assert_eq!(
            scan_ranges(&[(0, 100), (200, 205)], &[], 10),
            vec![(0, 100)]
        );
        // 20..60 taken: windows starting in 20..=50 skipped; those
        // starting at 11..=19 and 51..=90 still read bytes up to 60 and
        // from 51.
        assert_eq!(
            scan_ranges(&[(0, 100)], &[span(20, 40)], 10),
            vec![(0, 29), (51, 100)]
        );
        // Two spans side by side (not contiguous in the target): windows
        // across their border are scanned. A span shorter than a window
        // skips nothing.
        assert_eq!(
            scan_ranges(&[(0, 100)], &[span(0, 50), span(50, 50), span(70, 5)], 10),
            vec![(41, 59)]
        );
        // Everything taken in one span.
        assert_eq!(scan_ranges(&[(0, 100)], &[span(0, 100)], 10), vec![]);
        // Spans beyond a verified range do not cut the next one.
        assert_eq!(
            scan_ranges(&[(0, 30), (50, 90)], &[span(50, 20)], 10),
            vec![(0, 30), (61, 90)]
        );
    }

    #[test]
    fn a_cancelled_fill_copies_nothing_more() {
        let data = random(64 * PIECE, 15);
        let mut t = Target::new(data.clone());
        let cancel = AtomicBool::new(true);
        let c = previous(Arc::new(data.clone()), &data, true);
        let got = fill(&t.record, &t.part, &mut t.have, &[c], &cancel).unwrap();
        assert_eq!(got, Reused::default());
        assert_eq!(t.have.count(), 0);
    }
}
