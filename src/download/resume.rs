//! The resume state of a partial download: which pieces are verified on
//! disk, and the partial file's size and mtime when that was true. Written
//! atomically; on load, a partial file that changed since is re-verified
//! piece by piece instead of being trusted.
//!
//! A full disk must not lose the work: when a download opens, room for
//! its state is set aside (`<state>.room`, a file of the state's size);
//! a save that finds no room frees it and writes the state there, and one
//! that finds neither overwrites the previous state in place (its size
//! never changes for one record). A partial file with no state that can
//! be read (the disk was full even for that, or the state was deleted) is
//! rebuilt: every piece that holds data is verified again.

use crate::bitfield::Bitfield;
use crate::error::{Error, Result};
use crate::fsutil::{write_atomically, Stamp};
pub use crate::layout::Paths;
use crate::record::FileRecord;
use log::{info, warn};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;

const MAGIC: &[u8; 9] = b"P2PSTATE1";

pub fn save(paths: &Paths, record: &FileRecord, file: &File, on_disk: &Bitfield) -> Result<()> {
    let out = encode_state(record, Stamp::of_file(file), on_disk);
    write_atomically(&paths.state, &out)
        .or_else(|e| {
            // No room: use the room set aside, else the old state's.
            if fs::remove_file(room(paths)).is_ok() {
                write_atomically(&paths.state, &out)
            } else {
                Err(e)
            }
        })
        .or_else(|e| overwrite_in_place(&paths.state, &out).map_err(|_| e))
        .map_err(|e| Error::io(format!("saving {}", paths.state.display()), e))
}

/// Where the room for a download's state is kept.
fn room(paths: &Paths) -> std::path::PathBuf {
    let mut p = paths.state.clone().into_os_string();
    p.push(".room");
    p.into()
}

/// Sets aside room for `record`'s state: a file as large (real blocks,
/// not a sparse one), unless there is one.
pub fn reserve(paths: &Paths, record: &FileRecord) -> Result<()> {
    let path = room(paths);
    if path.exists() {
        return Ok(());
    }
    fs::write(&path, vec![0u8; state_len(record) as usize])
        .map_err(|e| Error::io(format!("setting aside {}", path.display()), e))
}

/// The room is not needed any more (the download is complete).
pub fn unreserve(paths: &Paths) {
    let _ = fs::remove_file(room(paths));
}

/// Writes `bytes` over the existing file at `path` when it is exactly as
/// long: no new block is needed, so this works on a full disk. A torn
/// write mixes two true states (pieces are only ever added, and the stamp
/// leads), or is rejected on load.
fn overwrite_in_place(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let file = File::options().write(true).open(path)?;
    if file.metadata()?.len() != bytes.len() as u64 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    file.write_all_at(bytes, 0)?;
    file.sync_data()
}

/// The length of `record`'s state file, whatever it says.
pub fn state_len(record: &FileRecord) -> u64 {
    (MAGIC.len() + 16 + 8 + Stamp::LEN + 4) as u64 + u64::from(record.piece_count()).div_ceil(8)
}

/// The bytes of a state file: magic, the record's MD5 and size, the
/// partial file's stamp, the piece count and the verified pieces' bitmap.
pub fn encode_state(record: &FileRecord, stamp: Stamp, on_disk: &Bitfield) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + on_disk.len() as usize / 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&record.md5);
    out.extend_from_slice(&record.size.to_be_bytes());
    out.extend_from_slice(&stamp.to_bytes());
    out.extend_from_slice(&on_disk.len().to_be_bytes());
    out.extend_from_slice(&on_disk.to_bytes());
    out
}

/// What a state file says for `record`: the partial file's stamp when it
/// was saved and the pieces verified then. `None` for the state of
/// another file or a damaged one (the download starts afresh). Pure, and
/// fuzzed (`fuzz/src/bin/resume_state.rs`): the file is on disk, where
/// anything may have happened to it.
pub fn decode_state(bytes: &[u8], record: &FileRecord) -> Option<(Stamp, Bitfield)> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    if take(9)? != MAGIC || take(16)? != record.md5 {
        return None;
    }
    let size = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let saved = Stamp::from_bytes(take(Stamp::LEN)?.try_into().ok()?);
    let pieces = u32::from_be_bytes(take(4)?.try_into().ok()?);
    if size != record.size || pieces != record.piece_count() {
        return None;
    }
    let claimed = Bitfield::from_bytes(pieces, take((pieces as usize).div_ceil(8))?)?;
    Some((saved, claimed))
}

/// The whole-file MD5 a state file was saved for: which version of a name
/// the partial download beside it is.
pub fn state_md5(bytes: &[u8]) -> Option<crate::digest::Md5Digest> {
    let rest = bytes.strip_prefix(MAGIC)?;
    rest.get(..16)?.try_into().ok()
}

/// How far a state file says its download got, without its record:
/// (verified pieces, pieces). For listing paused downloads; None for a
/// damaged file.
pub fn state_progress(bytes: &[u8]) -> Option<(u32, u32)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let at = 16 + 8 + Stamp::LEN;
    let pieces = u32::from_be_bytes(rest.get(at..at + 4)?.try_into().ok()?);
    let map = rest.get(at + 4..at + 4 + (pieces as usize).div_ceil(8))?;
    let have = Bitfield::from_bytes(pieces, map)?;
    Some((have.count(), pieces))
}

/// Opens (or creates) the partial file and returns it with the pieces
/// already verified in it.
pub fn open(paths: &Paths, record: &FileRecord) -> Result<(File, Bitfield)> {
    let ctx = || format!("opening {}", paths.part.display());
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&paths.part)
        .map_err(|e| Error::io(ctx(), e))?;
    let pieces = record.piece_count();
    let on_disk = match load(paths, record, &file).or_else(|| rebuild(paths, record, &file)) {
        Some(b) => b,
        None => {
            // Fresh start: a sparse file of the final size. Truncated only
            // if something is there: on ext4 a truncate to 0, even of an
            // empty file, makes the last close start writing back every
            // dirty page (auto_da_alloc), which held the end of a 256 MiB
            // `get` for 75-190 ms.
            let len = file.metadata().map_err(|e| Error::io(ctx(), e))?.len();
            if len > 0 {
                file.set_len(0).map_err(|e| Error::io(ctx(), e))?;
            }
            Bitfield::new(pieces)
        }
    };
    file.set_len(record.size).map_err(|e| Error::io(ctx(), e))?;
    Ok((file, on_disk))
}

fn load(paths: &Paths, record: &FileRecord, file: &File) -> Option<Bitfield> {
    let bytes = fs::read(&paths.state).ok()?;
    let (saved, claimed) = decode_state(&bytes, record)?;
    if Stamp::of_file(file) == saved {
        info!(
            "resuming {}: {} of {} pieces already verified",
            record.name,
            claimed.count(),
            claimed.len()
        );
        return Some(claimed);
    }
    warn!(
        "{} changed since its state was saved; re-verifying its pieces",
        paths.part.display()
    );
    Some(reverify(record, file, &claimed))
}

/// The verified pieces of a partial file whose state is missing or
/// unreadable: those with data on disk (holes are skipped, so a sparse
/// 5 GiB file with 40 MB written reads 40 MB) whose bytes match their
/// hash. None when the file is not of this record's size or holds no data.
fn rebuild(paths: &Paths, record: &FileRecord, file: &File) -> Option<Bitfield> {
    if file.metadata().ok()?.len() != record.size {
        return None;
    }
    let candidates = pieces_with_data(record, file)?;
    if candidates.count() == 0 {
        return None;
    }
    let ok = reverify(record, file, &candidates);
    warn!(
        "{} had no usable state: rebuilt from its data, {} of {} pieces verified",
        paths.part.display(),
        ok.count(),
        ok.len()
    );
    Some(ok)
}

/// The pieces of `file` that overlap a data extent (`SEEK_DATA` and
/// `SEEK_HOLE`); None if the file system cannot say.
fn pieces_with_data(record: &FileRecord, file: &File) -> Option<Bitfield> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let mut have = Bitfield::new(record.piece_count());
    let piece = record.piece_size();
    let mut at: libc::off_t = 0;
    loop {
        // SAFETY: lseek on a descriptor we own; it touches no memory.
        let start = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if start < 0 {
            // ENXIO: no data at or after `at`.
            let e = std::io::Error::last_os_error();
            return (e.raw_os_error() == Some(libc::ENXIO)).then_some(have);
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if end <= start {
            return None;
        }
        let (first, last) = (start as u64 / piece, (end as u64 - 1) / piece);
        for p in first..=last.min(u64::from(record.piece_count()) - 1) {
            have.set(p as u32);
        }
        at = end;
    }
}

/// Keeps only the claimed pieces whose bytes on disk still match.
pub fn reverify(record: &FileRecord, file: &File, claimed: &Bitfield) -> Bitfield {
    let mut ok = Bitfield::new(claimed.len());
    let mut buf = vec![0u8; record.piece_size() as usize];
    for p in claimed.iter_ones() {
        let n = record.piece_len(p) as usize;
        if file
            .read_exact_at(&mut buf[..n], record.piece_offset(p))
            .is_ok()
            && record.verify_piece(p, &buf[..n])
        {
            ok.set(p);
        }
    }
    ok
}

pub fn remove(paths: &Paths) {
    let _ = fs::remove_file(&paths.state);
    unreserve(paths);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::md5_of;

    #[test]
    fn state_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..12288u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
            .collect();
        let src = dir.path().join("src");
        fs::write(&src, &data).unwrap();
        let record = FileRecord::from_file("f", &src).unwrap();
        let paths = Paths::new(dir.path(), "f");

        let (file, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk.count(), 0);
        file.write_all_at(&data[..8192], 0).unwrap();
        let mut have = Bitfield::new(3);
        have.set_range(0, 2);
        save(&paths, &record, &file, &have).unwrap();
        drop(file);

        let (file, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk, have, "unchanged partial is trusted");

        // Corrupt piece 1 behind our back: only piece 0 survives.
        file.write_all_at(&[0xee; 10], 4096 + 5).unwrap();
        drop(file);
        let (_file, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk.iter_ones().collect::<Vec<_>>(), vec![0]);
        assert_ne!(md5_of(&data), [0; 16]);
    }

    #[test]
    fn a_partial_file_without_its_state_is_rebuilt_from_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let src = dir.path().join("src");
        fs::write(&src, &data).unwrap();
        let record = FileRecord::from_file("f", &src).unwrap();
        assert!(record.piece_count() >= 3, "{}", record.piece_count());
        let paths = Paths::new(dir.path(), "f");
        let (file, _) = open(&paths, &record).unwrap();
        // The first piece and the last, and a damaged start of a third.
        let last = record.piece_count() - 1;
        for p in [0, last] {
            let (off, len) = (record.piece_offset(p), record.piece_len(p));
            file.write_all_at(&data[off as usize..(off + len) as usize], off)
                .unwrap();
        }
        file.write_all_at(&[1; 100], record.piece_offset(1))
            .unwrap();
        drop(file);
        // No state at all (the disk was full for it).
        let _ = fs::remove_file(&paths.state);
        let (_, on_disk) = open(&paths, &record).unwrap();
        assert_eq!(on_disk.iter_ones().collect::<Vec<_>>(), vec![0, last]);
    }

    #[test]
    fn a_state_says_how_far_it_got_without_its_record() {
        let record = FileRecord::from_bytes("f", &[7u8; 100_000]);
        let mut have = Bitfield::new(record.piece_count());
        have.set(0);
        let out = encode_state(
            &record,
            Stamp {
                size: 1,
                mtime_ns: 2,
            },
            &have,
        );
        assert_eq!(state_progress(&out), Some((1, record.piece_count())));
        assert_eq!(state_progress(&out[..out.len() - 1]), None);
        assert_eq!(state_progress(b"nonsense"), None);
    }

    #[test]
    fn the_state_length_is_known_before_it_is_written() {
        let record = FileRecord::from_bytes("f", &[7u8; 100_000]);
        let out = encode_state(
            &record,
            Stamp {
                size: 1,
                mtime_ns: 2,
            },
            &Bitfield::new(record.piece_count()),
        );
        assert_eq!(state_len(&record), out.len() as u64);
    }

    #[test]
    fn the_room_set_aside_is_the_states_size_and_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let record = FileRecord::from_bytes("f", &[7u8; 100_000]);
        let paths = Paths::new(dir.path(), "f");
        reserve(&paths, &record).unwrap();
        assert_eq!(
            fs::metadata(room(&paths)).unwrap().len(),
            state_len(&record)
        );
        remove(&paths);
        assert!(!room(&paths).exists());
    }

    #[test]
    fn a_save_with_no_room_for_a_copy_overwrites_the_state_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        fs::write(&path, b"old!").unwrap();
        overwrite_in_place(&path, b"new!").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new!");
        assert!(
            overwrite_in_place(&path, b"longer").is_err(),
            "only the same size"
        );
    }
}
